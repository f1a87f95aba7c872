//! The functions network both backends attach replicas to: created once, labelled with the
//! provider's instance, attachable (so a gateway or a test container can join it).

use std::collections::HashMap;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::ListNetworksOptionsBuilder;
use ferry_proto::labels;

/// Creates the attachable network `name` with `driver` (`bridge`, `overlay`) labelled
/// `com.ferry.instance=<instance>`, unless it exists. Returns whether it was created here.
pub async fn ensure_network(
    docker: &Docker,
    name: &str,
    driver: &str,
    instance: &str,
) -> Result<bool, DockerError> {
    let filters = HashMap::from([("name", vec![name])]);
    let options = ListNetworksOptionsBuilder::default()
        .filters(&filters)
        .build();
    let existing = docker.list_networks(Some(options)).await?;
    // The name filter matches substrings; look for the exact name.
    if existing.iter().any(|n| n.name.as_deref() == Some(name)) {
        return Ok(false);
    }
    let request = NetworkCreateRequest {
        name: name.to_string(),
        driver: Some(driver.into()),
        attachable: Some(true),
        labels: Some(HashMap::from([(
            labels::FERRY_INSTANCE.into(),
            instance.to_string(),
        )])),
        ..Default::default()
    };
    match docker.create_network(request).await {
        Ok(_) => {
            tracing::info!(network = %name, driver, "created the functions network");
            Ok(true)
        }
        // Another provider (or a concurrent call) created it first.
        Err(DockerError::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(false),
        Err(e) => Err(e),
    }
}
