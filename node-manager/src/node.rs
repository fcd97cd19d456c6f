//! What every part of a running node manager shares: who the node is, where its files live, its
//! container table, localizer and cgroups, the keys its tokens are checked with, who its
//! containers run as, its metrics, and the tasks it has started.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;

use spindle_containers::cgroup::NodeCgroups;
use spindle_containers::localize::Localizer;
use spindle_containers::{ApplicationId, NodeId, Resource};

use crate::auth::NodeKeys;
use crate::containers::ContainerTable;
use crate::layout::Layout;
use crate::metrics::NodeMetrics;
use crate::rm_client::Rm;
use crate::tasks::Tasks;
use crate::users::UserPolicy;

/// Variables a container inherits from the node manager's own environment (YARN's
/// `env-whitelist`): enough to find programs and speak the host's language, nothing more.
pub const INHERITED_ENV: &[&str] = &["PATH", "LANG", "LC_ALL", "TZ", "RUST_LOG", "RUST_BACKTRACE"];

/// Used when the node manager itself runs without a PATH.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

pub struct Node {
    pub node_id: NodeId,
    /// Display name only.
    pub hostname: String,
    /// host:port of the web server, as others reach it.
    pub http_address: String,
    pub capability: Resource,
    /// The RM's address exactly as configured (containers get it as `SPINDLE_RM_ADDRESS`).
    pub rm_address: String,
    /// To the RM: its services beyond the heartbeats (application watches, the log store).
    pub rm: Rm,
    /// What container and NM tokens are checked with.
    pub keys: NodeKeys,
    /// Who containers run as.
    pub users: UserPolicy,
    pub kill_grace: Duration,
    pub layout: Layout,
    pub containers: ContainerTable,
    pub localizer: Localizer,
    /// Where containers get their cgroups; `None` where the host has none writable (or they
    /// are turned off), and the memory monitor alone enforces limits.
    pub cgroups: Option<NodeCgroups>,
    pub tasks: Tasks,
    pub metrics: NodeMetrics,
    /// Applications whose end this node is watching for at the RM.
    pub watched_apps: Mutex<HashSet<ApplicationId>>,
    pub inherited_env: Vec<(String, String)>,
    /// Turns true when the node manager stops: long-lived work (log followers, clean-ups
    /// waiting on the RM) ends then instead of holding shutdown up.
    pub stopping: watch::Receiver<bool>,
    /// Set when the node manager gives up by itself (the RM refused it), saying why.
    pub fatal: watch::Sender<Option<String>>,
}

/// The whitelisted part of this process's environment, with a PATH in any case.
pub fn inherited_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = INHERITED_ENV
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|v| (name.to_string(), v)))
        .collect();
    if !env.iter().any(|(name, _)| name == "PATH") {
        env.push(("PATH".to_string(), DEFAULT_PATH.to_string()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_inherit_only_the_allowed_variables() {
        // The test's own environment holds many more (CARGO_*, HOME, the runner's): none passes.
        let inherited = inherited_env();
        for (name, _) in &inherited {
            assert!(
                INHERITED_ENV.contains(&name.as_str()),
                "{name} leaks into containers"
            );
        }
        assert!(inherited.iter().any(|(name, _)| name == "PATH"));
        assert!(std::env::vars().count() > inherited.len());
    }
}
