//! Settings both backends share: declared once ([`Shared`]) with the parsing they use.

use std::time::Duration;

use ferry_runtime::settings;

/// `instance`, `stop_timeout` and `reconcile_interval`, the same in provider-docker and
/// provider-swarm.
#[derive(Debug, Clone, clap::Args)]
#[group(skip)]
pub struct Shared {
    /// Value of the com.ferry.instance label on everything this provider creates; providers
    /// with different values on one engine ignore each other.
    #[arg(long = "instance", env = "instance", default_value = "ferry", value_parser = name_like)]
    pub instance: String,
    /// Grace between SIGTERM and SIGKILL when a replica stops.
    #[arg(long = "stop_timeout", env = "stop_timeout", default_value = "30s",
          value_parser = settings::duration)]
    pub stop_timeout: Duration,
    /// How often the functions are checked against the engine (replica counts restored,
    /// objects of the instance that belong to no function removed); also at start.
    #[arg(long = "reconcile_interval", env = "reconcile_interval", default_value = "5s",
          value_parser = settings::duration)]
    pub reconcile_interval: Duration,
}

/// A Docker object name or label value from a setting (`functions_network`, `instance`):
/// letters, digits, `-`, `_` and `.`, starting with a letter or digit.
pub fn name_like(v: &str) -> Result<String, String> {
    let v = v.trim();
    let ok = !v.is_empty()
        && v.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
        && v.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(v.to_string())
    } else {
        Err("use letters, digits, '-', '_' and '.'".into())
    }
}

#[cfg(test)]
mod tests {
    use super::name_like;

    #[test]
    fn names() {
        assert!(name_like("ferry-functions").is_ok());
        assert!(name_like("-x").is_err());
        assert!(name_like("a b").is_err());
    }
}
