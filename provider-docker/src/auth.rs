//! Basic auth of the provider API (`basic_auth=true`): `ferry-provider-core`'s (see
//! [`ferry_provider_core::auth`]): every `/system/*` request must carry the credentials the
//! gateway writes to `secret_mount_path`; `/healthz` and `/metrics` stay open.

pub use ferry_provider_core::auth::{WAIT, load, protected, require};
