//! `spindle resource-manager` and `spindle node-manager`: build the daemon's config from
//! `spindle.yaml` plus flags, start it, print where it listens (stdout, `key: value` lines that
//! scripts and tests read; the RM first prints the `export` lines that name the cluster's
//! secrets), and run until SIGINT or SIGTERM (caught from the start, so a stop right after the
//! announcement is still clean), then shut down cleanly.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use spindle_containers::launch_script::shell_quote;
use spindle_node_manager::{CgroupMode, NmConfig, NodeManager};
use spindle_resource_manager::{ResourceManager, RmConfig};
use spindle_security::SecretKind;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::args;
use crate::config::SpindleConfig;

#[derive(Debug, clap::Args)]
pub struct RmArgs {
    /// The gRPC address for clients, AMs and NMs (default: resource-manager.bind, 0.0.0.0:8032).
    #[arg(long, value_name = "HOST:PORT", value_parser = args::bind_addr)]
    pub bind: Option<SocketAddr>,
    /// The HTTP address of the web UI and REST API (default: resource-manager.web-bind).
    #[arg(long, value_name = "HOST:PORT", value_parser = args::bind_addr)]
    pub web_bind: Option<SocketAddr>,
    /// Where the RM keeps its state and staged files (default: resource-manager.state-dir).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// A node silent this long is LOST, e.g. 2s or 10m.
    #[arg(long, value_name = "DURATION", value_parser = args::duration)]
    pub nm_liveness_expiry: Option<Duration>,
    /// An AM silent this long has failed its attempt, e.g. 2s or 10m.
    #[arg(long, value_name = "DURATION", value_parser = args::duration)]
    pub am_liveness_expiry: Option<Duration>,
    /// The client secret every client proves (mode 0600; default: generated as client.secret
    /// in the state dir on first start).
    #[arg(long, value_name = "PATH", env = "SPINDLE_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// The daemon secret node managers prove to join (mode 0600; default: generated as
    /// daemon.secret in the state dir on first start).
    #[arg(long, value_name = "PATH", env = "SPINDLE_DAEMON_SECRET_FILE")]
    pub daemon_secret_file: Option<PathBuf>,
}

impl RmArgs {
    pub fn apply(&self, mut config: RmConfig) -> RmConfig {
        if let Some(bind) = self.bind {
            config.bind = bind;
        }
        if let Some(web_bind) = self.web_bind {
            config.web_bind = Some(web_bind);
        }
        if let Some(dir) = &self.state_dir {
            config.state_dir = dir.clone();
        }
        if let Some(expiry) = self.nm_liveness_expiry {
            config.nm_liveness_expiry = expiry;
        }
        if let Some(expiry) = self.am_liveness_expiry {
            config.am_liveness_expiry = expiry;
        }
        if let Some(path) = &self.secret_file {
            config.secret_file = Some(path.clone());
        }
        if let Some(path) = &self.daemon_secret_file {
            config.daemon_secret_file = Some(path.clone());
        }
        config
    }
}

/// `export SPINDLE_SECRET_FILE=/abs/client.secret` and the daemon secret's line, to paste into
/// a shell: the clients' and the node managers' way to the cluster's secrets.
pub fn export_lines(files: &[(SecretKind, PathBuf)]) -> Vec<String> {
    files
        .iter()
        .map(|(kind, path)| format!("export {}={}", kind.env_var(), shell_word(&absolute(path))))
        .collect()
}

/// Prints [`export_lines`] on stdout, ahead of the `key: value` announcement.
pub(crate) fn announce_exports(files: &[(SecretKind, PathBuf)]) {
    let mut stdout = std::io::stdout().lock();
    for line in export_lines(files) {
        let _ = writeln!(stdout, "{line}");
    }
    let _ = stdout.flush();
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A path as one shell word: as it is when nothing in it is special to a shell, else quoted.
fn shell_word(path: &Path) -> String {
    let text = path.to_string_lossy();
    let plain = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-+:,@%".contains(&b));
    if plain && !text.is_empty() {
        text.into_owned()
    } else {
        shell_quote(&text)
    }
}

#[derive(Debug, clap::Args)]
pub struct NmArgs {
    /// The resource manager's gRPC address (default: node-manager.rm, 127.0.0.1:8032).
    #[arg(long, value_name = "HOST:PORT", value_parser = args::host_port)]
    pub rm: Option<String>,
    /// Where the container manager listens (default: node-manager.bind, 0.0.0.0:8041).
    #[arg(long, value_name = "HOST:PORT", value_parser = args::bind_addr)]
    pub bind: Option<SocketAddr>,
    /// Containers' working dirs, logs and the file cache (default: node-manager.work-dir).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
    /// The HTTP address for logs and node info (default: an ephemeral port on the bind host).
    #[arg(long, value_name = "HOST:PORT", value_parser = args::bind_addr)]
    pub web_bind: Option<SocketAddr>,
    /// Memory offered to the cluster: 4096, 4g (default: the host's memory).
    #[arg(long, value_name = "MB", value_parser = args::memory_mb, allow_hyphen_values = true)]
    pub memory_mb: Option<u64>,
    /// Virtual cores offered to the cluster (default: the host's logical cores).
    #[arg(long, value_name = "N", value_parser = args::vcores, allow_hyphen_values = true)]
    pub vcores: Option<u32>,
    /// The node's display name (default: the host name); never resolved.
    #[arg(long, value_name = "NAME")]
    pub hostname: Option<String>,
    /// The address others reach this node at, and its node id, when --bind is a wildcard.
    #[arg(long, value_name = "HOST:PORT", value_parser = args::host_port)]
    pub advertise: Option<String>,
    /// How often each container's memory is sampled, e.g. 500ms (default: 3s).
    #[arg(long, value_name = "DURATION", value_parser = args::duration)]
    pub monitor_interval: Option<Duration>,
    /// Whether containers get cgroup memory limits: auto (where the host allows) or off.
    #[arg(long, value_name = "MODE", value_parser = cgroup_mode)]
    pub cgroups: Option<CgroupMode>,
    /// The cluster's daemon secret, as the RM generated it (its state dir's daemon.secret)
    /// or was given it; mode 0600.
    #[arg(long, value_name = "PATH", env = "SPINDLE_DAEMON_SECRET_FILE")]
    pub daemon_secret_file: Option<PathBuf>,
}

fn cgroup_mode(s: &str) -> Result<CgroupMode, String> {
    match s {
        "auto" => Ok(CgroupMode::Auto),
        "off" => Ok(CgroupMode::Off),
        other => Err(format!(
            "unknown cgroups mode {other:?}: expected auto or off"
        )),
    }
}

impl NmArgs {
    pub fn apply(&self, mut config: NmConfig) -> NmConfig {
        if let Some(rm) = &self.rm {
            config.rm = rm.clone();
        }
        if let Some(bind) = self.bind {
            config.bind = bind;
        }
        if let Some(dir) = &self.work_dir {
            config.work_dir = dir.clone();
        }
        if let Some(web_bind) = self.web_bind {
            config.web_bind = Some(web_bind);
        }
        if let Some(memory_mb) = self.memory_mb {
            config.memory_mb = Some(memory_mb);
        }
        if let Some(vcores) = self.vcores {
            config.vcores = Some(vcores);
        }
        if let Some(hostname) = &self.hostname {
            config.hostname = Some(hostname.clone());
        }
        if let Some(advertise) = &self.advertise {
            config.advertise = Some(advertise.clone());
        }
        if let Some(interval) = self.monitor_interval {
            config.monitor_interval = interval;
        }
        if let Some(cgroups) = self.cgroups {
            config.cgroups = cgroups;
        }
        if let Some(path) = &self.daemon_secret_file {
            config.daemon_secret_file = Some(path.clone());
        }
        config
    }
}

pub async fn run_resource_manager(args: RmArgs, config: SpindleConfig) -> anyhow::Result<ExitCode> {
    let mut stop = StopSignals::install()?;
    let config = args.apply(config.resource_manager);
    let rm = ResourceManager::start(config)
        .await
        .context("starting the resource manager")?;
    // The files the RM itself read or generated, so the lines can never name others.
    announce_exports(&[
        (SecretKind::Client, rm.client_secret_file().to_path_buf()),
        (SecretKind::Daemon, rm.daemon_secret_file().to_path_buf()),
    ]);
    let web = rm
        .web_addr()
        .map_or_else(|| "none".to_string(), |a| a.to_string());
    announce(&[
        ("rpc-address", rm.rpc_addr().to_string()),
        ("web-address", web),
        ("cluster-timestamp", rm.cluster_timestamp().to_string()),
    ]);
    let signal = stop.recv().await;
    tracing::info!(%signal, "stopping the resource manager");
    rm.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn run_node_manager(args: NmArgs, config: SpindleConfig) -> anyhow::Result<ExitCode> {
    let mut stop = StopSignals::install()?;
    let config = args.apply(config.node_manager);
    let nm = NodeManager::start(config)
        .await
        .context("starting the node manager")?;
    announce(&[
        ("node-id", nm.node_id().to_string()),
        ("rpc-address", nm.rpc_addr().to_string()),
        ("web-address", nm.web_addr().to_string()),
    ]);
    // A refused registration (a wrong daemon secret, say) is not mended by waiting: say why
    // and exit non-zero, so a supervisor sees it.
    let refused = tokio::select! {
        signal = stop.recv() => {
            tracing::info!(%signal, node = %nm.node_id(), "stopping the node manager");
            None
        }
        error = nm.failed() => Some(error),
    };
    nm.shutdown().await;
    match refused {
        None => Ok(ExitCode::SUCCESS),
        Some(error) => Err(error).context("the node manager gave up"),
    }
}

/// Where the daemon listens, on stdout, flushed at once so a supervising script can read the
/// (possibly ephemeral) ports.
pub(crate) fn announce(lines: &[(&str, String)]) {
    let mut stdout = std::io::stdout().lock();
    for (key, value) in lines {
        let _ = writeln!(stdout, "{key}: {value}");
    }
    let _ = stdout.flush();
}

/// SIGINT and SIGTERM, caught from before the daemon announces itself: a supervisor that
/// stops it as soon as it has read the ports must get a clean shutdown, not the default death.
pub(crate) struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    pub(crate) fn install() -> anyhow::Result<StopSignals> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt()).context("installing a SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("installing a SIGTERM handler")?,
        })
    }

    /// Waits for SIGINT or SIGTERM and names the one that came.
    pub(crate) async fn recv(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_config_file() {
        let rm = RmArgs {
            bind: Some("127.0.0.1:0".parse().unwrap()),
            web_bind: None,
            state_dir: Some("/s".into()),
            nm_liveness_expiry: Some(Duration::from_secs(2)),
            am_liveness_expiry: None,
            secret_file: None,
            daemon_secret_file: Some("/d.secret".into()),
        };
        let base = RmConfig {
            am_liveness_expiry: Duration::from_secs(7),
            ..RmConfig::default()
        };
        let config = rm.apply(base.clone());
        assert_eq!(config.bind.port(), 0);
        assert_eq!(config.web_bind, base.web_bind);
        assert_eq!(config.state_dir, PathBuf::from("/s"));
        assert_eq!(config.nm_liveness_expiry, Duration::from_secs(2));
        assert_eq!(config.am_liveness_expiry, Duration::from_secs(7));
        assert_eq!(config.daemon_secret_file, Some(PathBuf::from("/d.secret")));
        assert_eq!(config.secret_file, None);

        let nm = NmArgs {
            rm: Some("rm:1".into()),
            bind: None,
            work_dir: Some("/w".into()),
            web_bind: None,
            memory_mb: Some(2048),
            vcores: Some(2),
            hostname: None,
            advertise: Some("node:9".into()),
            monitor_interval: Some(Duration::from_millis(500)),
            cgroups: Some(CgroupMode::Off),
            daemon_secret_file: Some("/etc/spindle/daemon.secret".into()),
        };
        let config = nm.apply(NmConfig::default());
        assert_eq!(config.rm, "rm:1");
        assert_eq!(config.bind, NmConfig::default().bind);
        assert_eq!(config.work_dir, PathBuf::from("/w"));
        assert_eq!(config.memory_mb, Some(2048));
        assert_eq!(config.advertise.as_deref(), Some("node:9"));
        assert_eq!(config.monitor_interval, Duration::from_millis(500));
        assert_eq!(config.cgroups, CgroupMode::Off);
        assert_eq!(
            config.daemon_secret_file,
            Some(PathBuf::from("/etc/spindle/daemon.secret"))
        );
    }

    #[test]
    fn the_rm_names_its_secrets_in_lines_a_shell_can_paste() {
        let files = [
            (
                SecretKind::Client,
                "/var/lib/spindle/rm/client.secret".into(),
            ),
            (SecretKind::Daemon, "/etc/spindle dir/daemon.secret".into()),
        ];
        assert_eq!(
            export_lines(&files),
            [
                "export SPINDLE_SECRET_FILE=/var/lib/spindle/rm/client.secret",
                "export SPINDLE_DAEMON_SECRET_FILE='/etc/spindle dir/daemon.secret'",
            ]
        );
        let relative = [
            (SecretKind::Client, "state/client.secret".into()),
            (SecretKind::Daemon, "state/daemon.secret".into()),
        ];
        let lines = export_lines(&relative);
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            lines[1],
            format!(
                "export SPINDLE_DAEMON_SECRET_FILE={}",
                shell_word(&cwd.join("state/daemon.secret"))
            )
        );
    }
}
