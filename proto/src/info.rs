//! `GET /system/info`.

use serde::{Deserialize, Serialize};

/// What the provider reports about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderInfo {
    /// Provider name, e.g. `ferry-provider-docker`.
    pub provider: String,
    /// What runs the functions, e.g. `docker`.
    pub orchestration: String,
    /// Provider build.
    pub version: VersionInfo,
}

/// A build's version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Commit message (optional).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commit_message: String,
    /// Commit SHA.
    #[serde(default)]
    pub sha: String,
    /// Release version.
    #[serde(default)]
    pub release: String,
}

/// The gateway's `GET /system/info`: the provider's info plus the gateway's own version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayInfo {
    /// The provider's info (`null` if it could not be read).
    pub provider: Option<ProviderInfo>,
    /// The gateway's version.
    pub version: VersionInfo,
    /// CPU architecture, e.g. `x86_64`.
    pub arch: String,
}
