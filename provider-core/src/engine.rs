//! The Docker engine connection both backends open the same way: the local defaults
//! (`DOCKER_HOST`, else `/var/run/docker.sock`), the API version negotiated (the engine may
//! be older than bollard's default), and a ping that says whether it answers.

use bollard::Docker;
use bollard::errors::Error as DockerError;

/// Connects with the local defaults and negotiates the API version.
pub async fn connect() -> Result<Docker, DockerError> {
    Docker::connect_with_local_defaults()?
        .negotiate_version()
        .await
}

/// Checks that the engine answers.
pub async fn ping(docker: &Docker) -> Result<(), DockerError> {
    docker.ping().await.map(|_| ())
}
