//! Finding and removing Docker objects by label: a test's own ([`remove_all`]), what killed test
//! runs left behind ([`sweep_stale`]), and what is left ([`leftovers`]).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use bollard::Docker;
use bollard::errors::Error;
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListImagesOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder, RemoveImageOptionsBuilder,
    RemoveVolumeOptionsBuilder,
};

use super::{ID_PREFIX, INSTANCE_LABEL, TEST_LABEL};

/// Kinds of Docker objects, in the order they must be removed (a network or image cannot go
/// while a container uses it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Container,
    Network,
    Image,
    Volume,
}

const KINDS: [Kind; 4] = [Kind::Container, Kind::Network, Kind::Image, Kind::Volume];

/// One Docker object found by label.
struct Found {
    kind: Kind,
    /// Id (or, for volumes, name).
    id: String,
    labels: HashMap<String, String>,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short: String = self
            .id
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect();
        write!(f, "{:?} {short} {:?}", self.kind, self.labels)
    }
}

/// Objects of `kind` matching the Docker label filter `filter` (`key` or `key=value`).
async fn list(docker: &Docker, kind: Kind, filter: &str) -> Result<Vec<Found>, Error> {
    let filters = HashMap::from([("label", vec![filter])]);
    Ok(match kind {
        Kind::Container => {
            let options = ListContainersOptionsBuilder::new()
                .all(true)
                .filters(&filters);
            docker
                .list_containers(Some(options.build()))
                .await?
                .into_iter()
                .map(|c| Found {
                    kind,
                    id: c.id.unwrap_or_default(),
                    labels: c.labels.unwrap_or_default(),
                })
                .collect()
        }
        Kind::Network => {
            let options = ListNetworksOptionsBuilder::new().filters(&filters);
            docker
                .list_networks(Some(options.build()))
                .await?
                .into_iter()
                .map(|n| Found {
                    kind,
                    id: n.id.unwrap_or_default(),
                    labels: n.labels.unwrap_or_default(),
                })
                .collect()
        }
        Kind::Image => {
            let options = ListImagesOptionsBuilder::new().all(true).filters(&filters);
            docker
                .list_images(Some(options.build()))
                .await?
                .into_iter()
                .map(|i| Found {
                    kind,
                    id: i.id,
                    labels: i.labels,
                })
                .collect()
        }
        Kind::Volume => {
            let options = ListVolumesOptionsBuilder::new().filters(&filters);
            docker
                .list_volumes(Some(options.build()))
                .await?
                .volumes
                .unwrap_or_default()
                .into_iter()
                .map(|v| Found {
                    kind,
                    id: v.name,
                    labels: v.labels,
                })
                .collect()
        }
    })
}

/// Force-removes one object; one that is already gone counts as removed.
async fn remove(docker: &Docker, found: &Found) -> Result<(), Error> {
    let result = match found.kind {
        Kind::Container => {
            let options = RemoveContainerOptionsBuilder::new()
                .force(true)
                .v(true)
                .build();
            docker.remove_container(&found.id, Some(options)).await
        }
        Kind::Network => docker.remove_network(&found.id).await,
        Kind::Image => {
            let options = RemoveImageOptionsBuilder::new().force(true).build();
            docker
                .remove_image(&found.id, Some(options), None)
                .await
                .map(drop)
        }
        Kind::Volume => {
            let options = RemoveVolumeOptionsBuilder::new().force(true).build();
            docker.remove_volume(&found.id, Some(options)).await
        }
    };
    match result {
        Err(Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        other => other,
    }
}

/// Everything labelled `com.ferry.test=<id>` or `com.ferry.instance=<id>`.
async fn list_owned(docker: &Docker, kind: Kind, id: &str) -> Result<Vec<Found>, Error> {
    let mut found = list(docker, kind, &format!("{TEST_LABEL}={id}")).await?;
    for more in list(docker, kind, &format!("{INSTANCE_LABEL}={id}")).await? {
        if !found.iter().any(|f| f.id == more.id) {
            found.push(more);
        }
    }
    Ok(found)
}

/// Descriptions of every object still labelled with test id `id` (either label); empty when
/// everything is gone.
pub async fn leftovers(docker: &Docker, id: &str) -> Vec<String> {
    let mut left = Vec::new();
    for kind in KINDS {
        match list_owned(docker, kind, id).await {
            Ok(found) => left.extend(found.iter().map(Found::to_string)),
            Err(e) => left.push(format!("cannot list {kind:?}s: {e}")),
        }
    }
    left
}

/// Removes every object labelled with test id `id`: containers, then networks, images and
/// volumes. Returns the errors of the last of up to four passes (empty when all went).
///
/// A pass that removed containers or networks a provider made (`com.ferry.instance`) is
/// followed, after [`SETTLE`], by another: a provider dropped mid-request (its task aborted
/// when its test ended) may have a create in flight that the engine completes after the first
/// pass looked.
pub(crate) async fn remove_all(docker: &Docker, id: &str) -> Vec<String> {
    let mut errors = Vec::new();
    for _pass in 0..4 {
        errors.clear();
        let mut provider_made = false;
        for kind in KINDS {
            match list_owned(docker, kind, id).await {
                Ok(found) => {
                    for f in &found {
                        provider_made |= matches!(kind, Kind::Container | Kind::Network)
                            && f.labels.get(INSTANCE_LABEL).is_some_and(|v| v == id);
                        if let Err(e) = remove(docker, f).await {
                            errors.push(format!("removing {f}: {e}"));
                        }
                    }
                }
                Err(e) => errors.push(format!("listing {kind:?}s: {e}")),
            }
        }
        if errors.is_empty() && !provider_made {
            break;
        }
        if provider_made {
            tokio::time::sleep(SETTLE).await;
        }
    }
    errors
}

/// How long a create already sent to the engine may take to show up.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Removes objects whose `com.ferry.test` or `com.ferry.instance` label names a test process
/// (`ferry-test-<pid>-...`) that is no longer alive: what killed test runs left behind.
///
/// [`DockerGuard::new`](super::DockerGuard::new) runs this once per process.
pub async fn sweep_stale(docker: &Docker) {
    for kind in KINDS {
        for label in [TEST_LABEL, INSTANCE_LABEL] {
            let found = match list(docker, kind, label).await {
                Ok(found) => found,
                Err(e) => {
                    eprintln!("ferry-tests: sweeping stale {kind:?}s: {e}");
                    continue;
                }
            };
            for f in found.iter().filter(|f| is_stale(f.labels.get(label))) {
                match remove(docker, f).await {
                    Ok(()) => eprintln!("ferry-tests: removed stale {f}"),
                    Err(e) => eprintln!("ferry-tests: removing stale {f}: {e}"),
                }
            }
        }
    }
}

/// Whether a label value names a test process that has exited.
fn is_stale(value: Option<&String>) -> bool {
    let Some(pid) = value
        .and_then(|v| v.strip_prefix(ID_PREFIX))
        .and_then(|rest| rest.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok())
    else {
        return false;
    };
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}
