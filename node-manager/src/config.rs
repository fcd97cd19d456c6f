//! The node manager's settings: the `node_manager:` section of `spindle.yaml`. Command-line flags
//! of `spindle node-manager` override fields of it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use spindle_containers::units::serde_duration;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct NmConfig {
    /// The RM's gRPC address (host:port).
    pub rm: String,
    /// Where the container manager listens (AMs and the RM call it here).
    pub bind: SocketAddr,
    /// The address others reach the container manager at, when `bind` is a wildcard.
    /// It is also the node's id.
    pub advertise: Option<String>,
    /// HTTP address for logs and metrics; default: an ephemeral port on the bind host.
    pub web_bind: Option<SocketAddr>,
    /// Containers' working dirs, logs and the localized-file cache live under here.
    pub work_dir: PathBuf,
    /// Capacity offered to the cluster; default: the host's memory and cores (`sysinfo`).
    pub memory_mb: Option<u64>,
    pub vcores: Option<u32>,
    /// The node's display name (never resolved); default: the host's name.
    pub hostname: Option<String>,
    /// Between SIGTERM and SIGKILL when a container is stopped.
    #[serde(with = "serde_duration")]
    pub kill_grace: Duration,
    /// How often the memory monitor samples each container's process tree.
    #[serde(with = "serde_duration")]
    pub monitor_interval: Duration,
    /// Whether containers get cgroups (a kernel-enforced memory limit, whole-container kills).
    pub cgroups: CgroupMode,
    /// The cluster's daemon secret (a file only its owner may read; the RM generates
    /// `<state-dir>/daemon.secret`). Every call to the RM proves it, and the keys that check
    /// container and NM tokens derive from it. Required: `spindle node-manager` fills it from
    /// `--daemon-secret-file` or `SPINDLE_DAEMON_SECRET_FILE` when the file does not say.
    pub daemon_secret_file: Option<PathBuf>,
    /// When the node manager runs as root: the user a container runs as when its application's
    /// owner is not a user of this host, or is root (YARN's non-secure-mode local user).
    pub fallback_user: String,
    /// When the node manager runs as root: whether a container of an application owned by root
    /// may run as root. Off by default: such containers run as `fallback-user`.
    pub allow_root: bool,
    /// When the node manager runs as root: owners whose uid is below this (system accounts such
    /// as `daemon` or `postgres`) run as `fallback-user`, as YARN's `min.user.id` bans them:
    /// with simple authentication a client names its own user.
    pub min_user_id: u32,
}

/// `cgroups:` in `spindle.yaml`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CgroupMode {
    /// Use cgroup v2 or v1 where the host lets the node manager write them; else run without,
    /// relying on the memory monitor (and say why once).
    #[default]
    Auto,
    /// Never: the memory monitor alone enforces limits.
    Off,
}

impl Default for NmConfig {
    fn default() -> Self {
        NmConfig {
            rm: "127.0.0.1:8032".to_string(),
            bind: SocketAddr::from(([0, 0, 0, 0], 8041)),
            advertise: None,
            web_bind: None,
            work_dir: PathBuf::from("/var/lib/spindle/nm"),
            memory_mb: None,
            vcores: None,
            hostname: None,
            kill_grace: Duration::from_millis(250),
            monitor_interval: Duration::from_secs(3),
            cgroups: CgroupMode::Auto,
            daemon_secret_file: None,
            fallback_user: "nobody".to_string(),
            allow_root: false,
            min_user_id: 1000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_and_cgroup_settings_have_defaults_and_their_names() {
        let config: NmConfig =
            serde_json::from_str(r#"{"monitor-interval": "500ms", "cgroups": "off"}"#).unwrap();
        assert_eq!(config.monitor_interval, Duration::from_millis(500));
        assert_eq!(config.cgroups, CgroupMode::Off);
        let defaults: NmConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(defaults.monitor_interval, Duration::from_secs(3));
        assert_eq!(defaults.cgroups, CgroupMode::Auto);
        assert_eq!(defaults.fallback_user, "nobody");
        assert!(!defaults.allow_root);
        let users: NmConfig =
            serde_json::from_str(r#"{"fallback-user": "yarn", "allow-root": true}"#).unwrap();
        assert_eq!(
            (users.fallback_user.as_str(), users.allow_root),
            ("yarn", true)
        );
        let err = serde_json::from_str::<NmConfig>(r#"{"cgroups": "v3"}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown variant `v3`, expected `auto` or `off`"),
            "{err}"
        );
    }
}
