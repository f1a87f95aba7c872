//! The body of `/system/secrets`.

use serde::{Deserialize, Serialize};

/// Where a function finds its secrets: one read-only file per secret, `<MOUNT_DIR>/<name>`.
pub const MOUNT_DIR: &str = "/var/openfaas/secrets";

/// A secret: its name, and on create/update its value (plain `value`, or base64 `rawValue`
/// for binary data, used when `value` is empty). Listing returns names and namespaces only.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    /// Secret name.
    #[serde(default)]
    pub name: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Plain-text value.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    /// Binary value, base64 (standard alphabet) on the wire.
    #[serde(
        default,
        with = "crate::queue::base64_bytes",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub raw_value: Vec<u8>,
}

impl Secret {
    /// The secret's bytes: `value` if set, else `rawValue`.
    pub fn bytes(&self) -> &[u8] {
        if self.value.is_empty() {
            &self.raw_value
        } else {
            self.value.as_bytes()
        }
    }
}

impl std::fmt::Debug for Secret {
    /// Never prints the value.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("name", &self.name)
            .field("namespace", &self.namespace)
            .field("value", &"<redacted>")
            .finish()
    }
}
