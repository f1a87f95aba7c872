//! The body of `/system/namespace/{name}`: OpenFaaS' `FunctionNamespace`.
//!
//! faas-provider declares `labels` and `annotations` with `omitempty`; ferry always writes both
//! (`{}` when empty) so clients need not tell a missing map from an empty one, and reads a
//! missing or `null` map as empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The label (and, on Kubernetes, annotation) that marks a namespace as one OpenFaaS may use.
/// faas-cli sets it to `"1"` on every create and update.
pub const OPENFAAS: &str = "openfaas";

/// A namespace with its labels and annotations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionNamespace {
    /// The namespace's name (a DNS label, see [`crate::Name`]).
    #[serde(default)]
    pub name: String,
    /// Labels.
    #[serde(default, deserialize_with = "crate::function::null_as_default")]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default, deserialize_with = "crate::function::null_as_default")]
    pub annotations: BTreeMap<String, String>,
}

impl FunctionNamespace {
    /// A namespace with no labels or annotations.
    pub fn new(name: impl Into<String>) -> Self {
        FunctionNamespace {
            name: name.into(),
            ..FunctionNamespace::default()
        }
    }

    /// A namespace with these labels and annotations.
    pub fn labelled(
        name: impl Into<String>,
        labels: &[(&str, &str)],
        annotations: &[(&str, &str)],
    ) -> Self {
        let map = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        FunctionNamespace {
            name: name.into(),
            labels: map(labels),
            annotations: map(annotations),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_are_always_written_and_may_be_missing_or_null() {
        let ns: FunctionNamespace =
            serde_json::from_str(r#"{"name":"dev","labels":null}"#).unwrap();
        assert_eq!(ns, FunctionNamespace::new("dev"));
        assert_eq!(
            serde_json::to_string(&ns).unwrap(),
            r#"{"name":"dev","labels":{},"annotations":{}}"#
        );
        let ns: FunctionNamespace = serde_json::from_str(
            r#"{"name":"dev","labels":{"openfaas":"1"},"annotations":{"team":"a"}}"#,
        )
        .unwrap();
        assert_eq!(ns.labels[OPENFAAS], "1");
        assert_eq!(ns.annotations["team"], "a");
    }
}
