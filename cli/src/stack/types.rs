//! The stack file's schema (faas-cli's `go-sdk/stack/schema.go`), every key known.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, Visitor};

/// A whole stack file.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    /// `version`: `1.0` when present.
    pub version: Option<String>,
    /// `provider`.
    pub provider: Option<Provider>,
    /// `functions`, by name.
    pub functions: BTreeMap<String, Function>,
    /// `configuration` (templates to pull, extra files to copy: read, not used offline).
    pub configuration: Option<Configuration>,
}

/// `provider:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provider {
    /// Must be `openfaas` (or `ferry`).
    pub name: String,
    /// Gateway URL.
    #[serde(default)]
    pub gateway: Option<String>,
}

/// `configuration:`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Configuration {
    /// Templates to pull (ferry's are built in; listed ones must be among them).
    #[serde(default)]
    pub templates: Vec<TemplateSource>,
    /// Extra paths copied into every build context.
    #[serde(default)]
    pub copy: Vec<String>,
}

/// One of `configuration.templates`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateSource {
    /// Template name.
    pub name: String,
    /// Where faas-cli would fetch it from (not used: ferry's templates are built in).
    #[serde(default)]
    pub source: Option<String>,
}

/// One function.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Function {
    /// Template: `shell`, `dockerfile`, `rust`.
    #[serde(default)]
    pub lang: Option<String>,
    /// Handler folder, relative to the stack file.
    #[serde(default)]
    pub handler: Option<String>,
    /// Image reference.
    #[serde(default)]
    pub image: Option<String>,
    /// The watchdog's `fprocess` (sent as `envProcess`).
    #[serde(default)]
    pub fprocess: Option<String>,
    /// Environment variables.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// YAML files with an `environment:` map, merged over `environment`.
    #[serde(default)]
    pub environment_file: Vec<String>,
    /// Secret names.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Resource limits.
    #[serde(default)]
    pub limits: Option<Resources>,
    /// Resource requests.
    #[serde(default)]
    pub requests: Option<Resources>,
    /// Read-only root filesystem.
    #[serde(default)]
    pub readonly_root_filesystem: bool,
    /// Docker build arguments.
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// Namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Deploy the image as it is, without building it.
    #[serde(default)]
    pub skip_build: bool,
    /// Scheduling constraints.
    #[serde(default)]
    pub constraints: Vec<String>,
    /// Template build options (none of ferry's templates has any).
    #[serde(default)]
    pub build_options: Vec<String>,
}

/// `limits:` or `requests:`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Memory, e.g. `128M`.
    #[serde(default)]
    pub memory: Option<String>,
    /// CPU, e.g. `100m`.
    #[serde(default)]
    pub cpu: Option<String>,
}

/// The top-level keys, for "unknown field" errors.
const FIELDS: &[&str] = &["version", "provider", "functions", "configuration"];

impl<'de> Deserialize<'de> for Stack {
    /// By hand rather than derived, for one rule: unknown keys are errors, except `x-*`.
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(StackVisitor)
    }
}

struct StackVisitor;

impl<'de> Visitor<'de> for StackVisitor {
    type Value = Stack;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a stack file (version, provider, functions, configuration)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Stack, A::Error> {
        let mut stack = Stack::default();
        let mut functions = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "version" => stack.version = Some(map.next_value()?),
                "provider" => stack.provider = Some(map.next_value()?),
                "functions" => functions = Some(map.next_value()?),
                "configuration" => stack.configuration = Some(map.next_value()?),
                k if k.starts_with("x-") => {
                    map.next_value::<IgnoredAny>()?;
                }
                other => return Err(de::Error::unknown_field(other, FIELDS)),
            }
        }
        stack.functions = functions.ok_or_else(|| de::Error::missing_field("functions"))?;
        Ok(stack)
    }
}

impl Stack {
    /// The rules serde cannot say: version, provider name, function names.
    pub(super) fn check(&self) -> Result<(), String> {
        if let Some(v) = &self.version
            && v != "1.0"
            && v != "1"
        {
            return Err(format!("version {v:?} is not supported (only 1.0)"));
        }
        if let Some(p) = &self.provider
            && p.name != "openfaas"
            && p.name != "ferry"
        {
            return Err(format!(
                "provider.name {:?} is not supported (openfaas or ferry)",
                p.name
            ));
        }
        for name in self.functions.keys() {
            ferry_proto::Name::new(name.as_str())
                .map_err(|e| format!("function name {name:?}: {e}"))?;
        }
        Ok(())
    }
}
