//! The resource manager's settings: the `resource_manager:` section of `spindle.yaml`, with
//! YARN's defaults. Command-line flags of `spindle resource-manager` override fields of it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use spindle_containers::Resource;
use spindle_containers::units::serde_duration;

/// Where a new container goes among the nodes it fits on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// The node with the most free memory (Spark standalone's `spreadOut`).
    #[default]
    Spread,
    /// The node with the least free memory that still fits: fills nodes one by one.
    Pack,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct RmConfig {
    /// gRPC address for clients, AMs and NMs (YARN's 8032).
    pub bind: SocketAddr,
    /// HTTP address for the web UI, REST API and metrics (YARN's 8088).
    pub web_bind: Option<SocketAddr>,
    /// Where the RM keeps its state store and staged files.
    pub state_dir: PathBuf,
    /// Requests are rounded up to a multiple of this (memory) and at least this.
    pub minimum_allocation: Resource,
    /// Requests above this are refused.
    pub maximum_allocation: Resource,
    pub placement: Placement,
    /// How often NMs heartbeat; capped at a third of `nm_liveness_expiry`.
    #[serde(with = "serde_duration")]
    pub nm_heartbeat_interval: Duration,
    /// A node silent for this long is LOST.
    #[serde(with = "serde_duration")]
    pub nm_liveness_expiry: Duration,
    /// An AM silent for this long (no Allocate, none open) has failed its attempt.
    #[serde(with = "serde_duration")]
    pub am_liveness_expiry: Duration,
    /// Attempts per application when the submission does not say.
    pub default_max_attempts: u32,
    /// The most attempts a submission may ask for.
    pub max_attempts_limit: u32,
    /// Finished applications kept, in memory and in the state store (YARN's
    /// `yarn.resourcemanager.max-completed-applications`); the oldest are forgotten first.
    pub max_completed_applications: usize,
    /// The client secret every client proves on its gRPC calls, and that calls changing
    /// something over HTTP present (`Authorization: Bearer <secret>`): a file only its owner may
    /// read. None: the RM generates `state-dir/client.secret` on its first start and keeps
    /// using it.
    pub secret_file: Option<PathBuf>,
    /// The daemon secret NMs prove to register, from which the keys of container and NM tokens
    /// are derived: a file only its owner may read. None: the RM generates
    /// `state-dir/daemon.secret` on its first start and keeps using it.
    pub daemon_secret_file: Option<PathBuf>,
    /// Whether reads on the web port (the UI, REST GETs and `/metrics`) need no secret.
    pub anonymous_reads: bool,
    /// Users who may kill any application, read its logs, submit to any queue and submit on
    /// another user's behalf. The RM's own OS user always may.
    pub admins: Vec<String>,
    /// Who may submit to a queue: `queue → {submit: [users, or "*" for anyone]}` (admins always
    /// may). A queue not listed accepts anyone.
    pub queue_acls: BTreeMap<String, QueueAcl>,
    /// How long a master key (AM tokens) or a node key (container and NM tokens) signs before a
    /// new one takes over. AM and NM tokens live twice this; a rolled key is accepted until the
    /// last token it signed has expired.
    #[serde(with = "serde_duration")]
    pub key_roll_interval: Duration,
    /// How long after its allocation a container may be started with its container token
    /// (YARN's allocation expiry).
    #[serde(with = "serde_duration")]
    pub container_token_expiry: Duration,
}

/// One queue's access control list.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default, rename_all = "kebab-case")]
pub struct QueueAcl {
    /// The users who may submit to the queue; `"*"` stands for anyone.
    pub submit: Vec<String>,
}

/// In a queue ACL, anyone.
pub const ANYONE: &str = "*";

impl Default for RmConfig {
    fn default() -> Self {
        RmConfig {
            bind: SocketAddr::from(([0, 0, 0, 0], 8032)),
            web_bind: Some(SocketAddr::from(([0, 0, 0, 0], 8088))),
            state_dir: PathBuf::from("/var/lib/spindle/rm"),
            minimum_allocation: Resource::new(1024, 1),
            maximum_allocation: Resource::new(8192, 32),
            placement: Placement::Spread,
            nm_heartbeat_interval: Duration::from_secs(1),
            nm_liveness_expiry: Duration::from_secs(600),
            am_liveness_expiry: Duration::from_secs(600),
            default_max_attempts: 2,
            max_attempts_limit: 10,
            max_completed_applications: 10_000,
            secret_file: None,
            daemon_secret_file: None,
            anonymous_reads: true,
            admins: Vec::new(),
            queue_acls: BTreeMap::new(),
            key_roll_interval: Duration::from_secs(24 * 60 * 60),
            container_token_expiry: Duration::from_secs(10 * 60),
        }
    }
}

impl RmConfig {
    /// The interval NMs are told: never more than a third of the expiry, so one lost
    /// heartbeat never expires a healthy node.
    pub fn effective_heartbeat_interval(&self) -> Duration {
        self.nm_heartbeat_interval.min(self.nm_liveness_expiry / 3)
    }

    /// The longest an `Allocate` long poll is held open: a third of the AM expiry.
    pub fn max_allocate_wait(&self) -> Duration {
        self.am_liveness_expiry / 3
    }

    /// How long AM and NM tokens live: two roll intervals, so that a token renewed at half its
    /// life never expires in use.
    pub fn am_and_nm_token_life(&self) -> Duration {
        self.key_roll_interval.saturating_mul(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_security_keys_read_as_written_and_default_as_the_contract_says() {
        let defaults = RmConfig::default();
        assert_eq!(defaults.key_roll_interval, Duration::from_secs(86_400));
        assert_eq!(defaults.container_token_expiry, Duration::from_secs(600));
        assert_eq!(
            defaults.am_and_nm_token_life(),
            Duration::from_secs(2 * 86_400)
        );
        let config: RmConfig = serde_json::from_value(serde_json::json!({
            "admins": ["boss"],
            "queue-acls": {"prod": {"submit": ["alice", "*"]}},
            "key-roll-interval": "12h",
            "container-token-expiry": "5m",
        }))
        .unwrap();
        assert_eq!(config.admins, ["boss"]);
        assert_eq!(config.queue_acls["prod"].submit, ["alice", ANYONE]);
        assert_eq!(config.key_roll_interval, Duration::from_secs(12 * 3600));
        assert_eq!(config.container_token_expiry, Duration::from_secs(300));
        let unknown = serde_json::from_value::<RmConfig>(serde_json::json!({
            "queue-acls": {"prod": {"administer": ["alice"]}},
        }))
        .unwrap_err();
        assert!(unknown.to_string().contains("administer"), "{unknown}");
    }
}
