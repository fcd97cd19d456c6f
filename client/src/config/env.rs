//! Environment overrides of `spindle.yaml`: `SPINDLE_` and a key's path upper-cased, sections
//! joined by `__`, dashes as `_` (`SPINDLE_NODE_MANAGER__MONITOR_INTERVAL=500ms`). They are
//! applied after the file and before flags. Other `SPINDLE_*` variables are not settings
//! (`SPINDLE_RM`, `SPINDLE_ROLE`, …) and are left alone; one that looks like a key of a known
//! section but is not one is ignored with a warning, since it is most likely a typo.

use std::collections::BTreeMap;
use std::ffi::OsString;

use serde_yaml::Value;

use super::{ConfigError, SpindleConfig, key_paths, keys, tree};

/// Applies every override found in `vars` (name, value) to `config`.
pub fn apply(
    config: SpindleConfig,
    vars: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<SpindleConfig, ConfigError> {
    // Keys inside a section; a whole section is no single setting.
    let known: BTreeMap<String, String> = key_paths(&tree(&SpindleConfig::default()))
        .into_iter()
        .filter(|path| path.contains('.'))
        .map(|path| (keys::env_name(&path), path))
        .collect();
    // Sorted, so that which of two bad variables is reported never depends on the OS's order.
    let mut overrides = BTreeMap::new();
    for (name, value) in vars {
        let Some(name) = name.to_str().filter(|n| n.starts_with("SPINDLE_")) else {
            continue;
        };
        match known.get(name) {
            Some(path) => {
                let value = value.into_string().map_err(|raw| ConfigError::Env {
                    var: name.to_string(),
                    value: raw.to_string_lossy().into_owned(),
                    message: "it is not valid UTF-8".to_string(),
                    key: path.clone(),
                    expected: expected(path),
                })?;
                overrides.insert(name.to_string(), (path.clone(), value));
            }
            None if looks_like_a_key(name) => {
                tracing::warn!("ignoring {name}: it names no key of spindle.yaml");
            }
            None => {}
        }
    }
    let mut current = tree(&config);
    let mut config = config;
    for (var, (path, raw)) in overrides {
        // Empty means unset, as for SPINDLE_RM and SPINDLE_CONFIG; `null` clears a key.
        if raw.is_empty() {
            continue;
        }
        config = set(&mut current, &path, &raw).map_err(|message| ConfigError::Env {
            var,
            value: raw.clone(),
            message,
            expected: expected(&path),
            key: path,
        })?;
    }
    Ok(config)
}

fn expected(path: &str) -> String {
    keys::find(path)
        .map_or("a value", |k| k.expected)
        .to_string()
}

/// `SPINDLE_<SECTION>__…` for a section the file has.
fn looks_like_a_key(name: &str) -> bool {
    ["resource-manager", "node-manager", "client"]
        .iter()
        .any(|section| name.starts_with(&format!("{}__", keys::env_name(section))))
}

/// Sets `path` in the tree to the value read from `raw`, and reads the whole config back.
/// The value is read as YAML (`500`, `true`, `null`, `{memory_mb: 128, vcores: 1}`); when
/// that does not fit the key, as the plain string (a queue named `2024`).
fn set(tree: &mut Value, path: &str, raw: &str) -> Result<SpindleConfig, String> {
    let as_yaml = serde_yaml::from_str::<Value>(raw).unwrap_or(Value::String(raw.to_string()));
    let mut candidates = vec![as_yaml];
    if !candidates[0].is_string() {
        candidates.push(Value::String(raw.to_string()));
    }
    let mut first_error = None;
    for candidate in candidates {
        let mut attempt = tree.clone();
        if let Some(slot) = slot(&mut attempt, path) {
            *slot = candidate;
        }
        match serde_yaml::from_value::<SpindleConfig>(attempt.clone()) {
            Ok(config) => {
                *tree = attempt;
                return Ok(config);
            }
            Err(e) => {
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    Err(first_error.unwrap_or_default())
}

fn slot<'a>(tree: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.')
        .try_fold(tree, |node, segment| node.get_mut(segment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_containers::Resource;
    use spindle_node_manager::CgroupMode;
    use std::time::Duration;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn with(pairs: &[(&str, &str)]) -> Result<SpindleConfig, ConfigError> {
        apply(SpindleConfig::default(), vars(pairs))
    }

    #[test]
    fn variables_set_the_keys_they_name() {
        let config = with(&[
            ("SPINDLE_RESOURCE_MANAGER__BIND", "0.0.0.0:9032"),
            ("SPINDLE_NODE_MANAGER__MONITOR_INTERVAL", "500ms"),
            ("SPINDLE_NODE_MANAGER__MEMORY_MB", "4096"),
            ("SPINDLE_NODE_MANAGER__CGROUPS", "off"),
            (
                "SPINDLE_RESOURCE_MANAGER__MINIMUM_ALLOCATION__MEMORY_MB",
                "128",
            ),
            ("SPINDLE_RESOURCE_MANAGER__ANONYMOUS_READS", "false"),
            ("SPINDLE_RESOURCE_MANAGER__WEB_BIND", "null"),
            ("SPINDLE_CLIENT__QUEUE", "2024"),
        ])
        .unwrap();
        assert_eq!(config.resource_manager.bind.port(), 9032);
        assert_eq!(
            config.node_manager.monitor_interval,
            Duration::from_millis(500)
        );
        assert_eq!(config.node_manager.memory_mb, Some(4096));
        assert_eq!(config.node_manager.cgroups, CgroupMode::Off);
        assert_eq!(
            config.resource_manager.minimum_allocation,
            Resource::new(128, 1)
        );
        assert!(!config.resource_manager.anonymous_reads);
        assert_eq!(config.resource_manager.web_bind, None);
        assert_eq!(config.client.queue, "2024");
    }

    #[test]
    fn a_whole_mapping_can_be_given_as_yaml() {
        let config = with(&[(
            "SPINDLE_RESOURCE_MANAGER__MAXIMUM_ALLOCATION",
            "{memory_mb: 4096, vcores: 4}",
        )])
        .unwrap();
        assert_eq!(
            config.resource_manager.maximum_allocation,
            Resource::new(4096, 4)
        );
    }

    #[test]
    fn variables_win_over_the_file_and_keep_the_rest_of_it() {
        let file = super::super::parse("client:\n  queue: batch\n  rm: a:1\n").unwrap();
        let config = apply(file, vars(&[("SPINDLE_CLIENT__RM", "b:2")])).unwrap();
        assert_eq!(config.client.rm, "b:2");
        assert_eq!(config.client.queue, "batch");
    }

    #[test]
    fn a_bad_value_names_the_variable_and_what_was_expected() {
        let err = with(&[("SPINDLE_NODE_MANAGER__MONITOR_INTERVAL", "soon")])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("SPINDLE_NODE_MANAGER__MONITOR_INTERVAL"),
            "{err}"
        );
        assert!(err.contains("\"soon\""), "{err}");
        assert!(err.contains("node-manager.monitor-interval"), "{err}");
        assert!(err.contains("250ms"), "{err}");
        let err = with(&[("SPINDLE_RESOURCE_MANAGER__BIND", "nowhere")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SPINDLE_RESOURCE_MANAGER__BIND"), "{err}");
        assert!(err.contains("HOST:PORT"), "{err}");
        let err = with(&[("SPINDLE_NODE_MANAGER__CGROUPS", "v3")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("auto or off"), "{err}");
    }

    #[test]
    fn other_spindle_variables_are_not_settings() {
        let config = with(&[
            ("SPINDLE_RM", "rm:1"),
            ("SPINDLE_MASTER", "local[2]"),
            ("SPINDLE_ROLE", "am"),
            ("SPINDLE_CONFIG", "/nowhere.yaml"),
            ("SPINDLE_RESOURCE_MANAGER__COLOUR", "blue"),
            ("SPINDLE_CLIENT", "x"),
            ("SPINDLE_NODE_MANAGER__MEMORY_MB", ""),
            ("PATH", "/bin"),
        ])
        .unwrap();
        assert_eq!(config, SpindleConfig::default());
    }

    #[test]
    fn a_non_utf8_value_of_a_key_is_an_error_naming_it() {
        use std::os::unix::ffi::OsStringExt as _;
        let err = apply(
            SpindleConfig::default(),
            [(
                OsString::from("SPINDLE_CLIENT__QUEUE"),
                OsString::from_vec(vec![0xff, b'q']),
            )],
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("SPINDLE_CLIENT__QUEUE"), "{err}");
        assert!(err.contains("UTF-8"), "{err}");
    }
}
