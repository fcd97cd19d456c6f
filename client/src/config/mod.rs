//! `spindle.yaml`: one file with a section per role (`resource-manager:`, `node-manager:`,
//! `client:`). Every key has a default, unknown keys are refused by name, and the file is found
//! through `--config`, then `SPINDLE_CONFIG`, then `/etc/spindle/spindle.yaml` — never the
//! current directory, so where a command runs never changes what it does. `SPINDLE_*`
//! variables named after a key's path override the file (see `env`); flags override both.

mod annotated;
mod env;
pub mod keys;

pub use annotated::annotated;

use std::path::{Path, PathBuf};
use std::time::Duration;

use spindle_containers::units::serde_duration;
use spindle_node_manager::NmConfig;
use spindle_resource_manager::RmConfig;

/// The system-wide file, read when neither `--config` nor `SPINDLE_CONFIG` names one.
pub const SYSTEM_CONFIG: &str = "/etc/spindle/spindle.yaml";
/// The environment variable that names the config file.
pub const CONFIG_ENV: &str = "SPINDLE_CONFIG";
/// Where clients look for the RM when nothing else says (YARN's port).
pub const DEFAULT_RM_ADDRESS: &str = "127.0.0.1:8032";

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct SpindleConfig {
    pub resource_manager: RmConfig,
    pub node_manager: NmConfig,
    pub client: ClientConfig,
}

/// What `spindle submit`, `apps`, `status`, `kill`, `nodes` and `logs` use when no flag says.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct ClientConfig {
    /// The RM's gRPC address (host:port); `--rm` and `SPINDLE_RM` override it.
    pub rm: String,
    /// The queue applications are submitted to unless `--queue` says otherwise.
    pub queue: String,
    /// How long to wait for the RM to accept a connection before giving up.
    #[serde(with = "serde_duration")]
    pub connect_timeout: Duration,
    /// The cluster's client secret (a file only its owner may read); `--secret-file` and
    /// `SPINDLE_SECRET_FILE` override it. None: calls prove nothing and the RM refuses them.
    pub secret_file: Option<PathBuf>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            rm: DEFAULT_RM_ADDRESS.to_string(),
            queue: "default".to_string(),
            connect_timeout: Duration::from_secs(3),
            secret_file: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The parser's message already names the unknown key or the bad value, and where it is.
    #[error("invalid config file {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("invalid environment variable {var}={value:?}: {message} ({key} takes {expected})")]
    Env {
        var: String,
        value: String,
        message: String,
        /// The key's dotted path.
        key: String,
        /// What the key's values look like.
        expected: String,
    },
}

/// Which file to read: the explicit one, else the one `SPINDLE_CONFIG` names, else the
/// system file if it exists; `None` means defaults only.
pub fn locate(explicit: Option<&Path>, env_value: Option<&str>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_path_buf());
    }
    if let Some(path) = env_value.filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let system = Path::new(SYSTEM_CONFIG);
    system.exists().then(|| system.to_path_buf())
}

/// Loads the config the way every `spindle` command does: `--config`, `SPINDLE_CONFIG`, the
/// system file, or defaults; then the environment's overrides. A named file that is missing
/// is an error, not a silent default.
pub fn load(explicit: Option<&Path>) -> Result<SpindleConfig, ConfigError> {
    let env_value = std::env::var(CONFIG_ENV).ok();
    let file = match locate(explicit, env_value.as_deref()) {
        Some(path) => load_file(&path)?,
        None => SpindleConfig::default(),
    };
    env::apply(file, std::env::vars_os())
}

pub fn load_file(path: &Path) -> Result<SpindleConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(&text).map_err(|message| ConfigError::Parse {
        path: path.to_path_buf(),
        message,
    })
}

/// Parses the text of a config file; an empty file is all defaults.
pub fn parse(text: &str) -> Result<SpindleConfig, String> {
    if text.trim().is_empty() {
        return Ok(SpindleConfig::default());
    }
    serde_yaml::from_str(text).map_err(|e| {
        let message = e.to_string();
        // The parser usually says where; make sure the reader always learns it.
        match e.location() {
            Some(at) if !message.contains("line") => {
                format!("{message} at line {} column {}", at.line(), at.column())
            }
            _ => message,
        }
    })
}

/// The config as a YAML tree: the shape the file has, keys in the structs' order.
pub(crate) fn tree(config: &SpindleConfig) -> serde_yaml::Value {
    // Plain data (addresses, paths, numbers, strings) always serializes.
    serde_yaml::to_value(config).unwrap_or(serde_yaml::Value::Null)
}

/// Every key's dotted path, sections and nested mappings included, in the file's order.
pub(crate) fn key_paths(tree: &serde_yaml::Value) -> Vec<String> {
    fn walk(node: &serde_yaml::Value, prefix: &str, out: &mut Vec<String>) {
        let serde_yaml::Value::Mapping(mapping) = node else {
            return;
        };
        for (key, value) in mapping {
            let name = key.as_str().unwrap_or_default();
            let path = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            };
            out.push(path.clone());
            walk(value, &path, out);
        }
    }
    let mut out = Vec::new();
    walk(tree, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_containers::Resource;

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(parse("").unwrap(), SpindleConfig::default());
        assert_eq!(parse("# nothing\n").unwrap(), SpindleConfig::default());
    }

    #[test]
    fn sections_fill_their_structs() {
        let config = parse(
            "resource-manager:\n  bind: 127.0.0.1:9032\n  nm-liveness-expiry: 2s\n  \
             minimum-allocation: {memory_mb: 128, vcores: 1}\n\
             node-manager:\n  memory-mb: 4096\n  kill-grace: 500ms\n\
             client:\n  rm: rm.example:9032\n  queue: batch\n",
        )
        .unwrap();
        assert_eq!(config.resource_manager.bind.port(), 9032);
        assert_eq!(
            config.resource_manager.nm_liveness_expiry,
            Duration::from_secs(2)
        );
        assert_eq!(
            config.resource_manager.minimum_allocation,
            Resource::new(128, 1)
        );
        assert_eq!(config.node_manager.memory_mb, Some(4096));
        assert_eq!(config.node_manager.kill_grace, Duration::from_millis(500));
        assert_eq!(config.client.rm, "rm.example:9032");
        assert_eq!(config.client.queue, "batch");
        // Untouched keys keep their defaults.
        assert_eq!(config.client.connect_timeout, Duration::from_secs(3));
    }

    #[test]
    fn unknown_keys_are_named_with_their_place() {
        let err = parse("client:\n  queue: a\n  colour: blue\n").unwrap_err();
        assert!(err.contains("colour"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        let err = parse("resource-manager:\n  bind: 127.0.0.1:1\nnode_manager: {}\n").unwrap_err();
        assert!(err.contains("node_manager"), "{err}");
    }

    #[test]
    fn malformed_files_report_line_and_column() {
        let err = parse("client:\n  rm: [unclosed\n").unwrap_err();
        assert!(err.contains("line"), "{err}");
        assert!(err.contains("column"), "{err}");
        let err = parse("resource-manager:\n  nm-liveness-expiry: soon\n").unwrap_err();
        assert!(err.contains("soon"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn the_file_is_found_by_flag_then_env_never_the_current_dir() {
        let flag = Path::new("/a/flag.yaml");
        assert_eq!(
            locate(Some(flag), Some("/b/env.yaml")),
            Some(flag.to_path_buf())
        );
        assert_eq!(
            locate(None, Some("/b/env.yaml")),
            Some(PathBuf::from("/b/env.yaml"))
        );
        let fallback = locate(None, None);
        assert!(fallback.is_none() || fallback == Some(PathBuf::from(SYSTEM_CONFIG)));
    }

    #[test]
    fn a_named_file_that_is_missing_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("spindle.yaml");
        let err = load_file(&missing).unwrap_err();
        assert!(err.to_string().contains("spindle.yaml"), "{err}");
    }
}
