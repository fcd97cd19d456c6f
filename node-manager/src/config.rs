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
        }
    }
}
