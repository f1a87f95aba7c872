//! Kubernetes resource quantities (`128M`, `40Mi`, `100m`): `ferry-provider-core`'s, shared
//! with provider-swarm (see [`ferry_provider_core::quantity`]).

pub use ferry_provider_core::quantity::{QuantityError, parse_cpu, parse_memory};
