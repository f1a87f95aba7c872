//! The provider API checks shared with provider-swarm ([`ferry_tests::provider_suite`]), run
//! against provider-docker with replicas reached on their published loopback ports.

use ferry_tests::provider::TestProvider;
use ferry_tests::provider_suite::namespaces::namespaces;
use ferry_tests::provider_suite::secrets::secrets;
use ferry_tests::provider_suite::{Reach, lifecycle};
use ferry_tests::{DockerGuard, FunctionImage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_docker_passes_the_shared_provider_checks() {
    let guard = DockerGuard::new().await;
    let echo = FunctionImage::echo_http(&guard).await;
    let provider = TestProvider::start(&guard).await;
    lifecycle(&provider, &Reach::Direct, &echo.tag).await;
    secrets(&provider, &Reach::Direct, &echo.tag).await;
    namespaces(&provider).await;
}
