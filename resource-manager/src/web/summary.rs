//! The cluster at a glance, counted once from the core for every page that shows it: YARN's
//! cluster metrics, the UI's overview and the Prometheus metrics all read this, so that they
//! never disagree about what "available" or "pending" means.

use spindle_containers::Resource;

use crate::core::{AppState, AttemptState, ContainerState, Core, NodeState};

pub const APP_STATES: [AppState; 6] = [
    AppState::Submitted,
    AppState::Accepted,
    AppState::Running,
    AppState::Finished,
    AppState::Failed,
    AppState::Killed,
];

pub const NODE_STATES: [NodeState; 3] = [NodeState::Running, NodeState::Unhealthy, NodeState::Lost];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    /// Applications the RM still knows, by state (in `APP_STATES` order).
    pub apps: [u64; APP_STATES.len()],
    /// Nodes by state (in `NODE_STATES` order).
    pub nodes: [u64; NODE_STATES.len()],
    /// What live containers hold, on every node.
    pub used: Resource,
    /// Free capacity of the nodes that take new containers (RUNNING ones).
    pub available: Resource,
    /// Live containers not yet reported running by their node, and running ones.
    pub containers_allocated: u64,
    pub containers_running: u64,
    /// Containers asked for and not yet allocated: AMs' asks plus attempts waiting for their
    /// AM container.
    pub containers_pending: u64,
    pub pending_memory_mb: u64,
}

impl Summary {
    pub fn of(core: &Core) -> Summary {
        let mut s = Summary::default();
        for app in core.apps() {
            s.apps[app_slot(app.state)] += 1;
            if app.state.is_final() {
                continue;
            }
            if let Some(a) = app.current_attempt() {
                if a.state == AttemptState::New && !app.unmanaged {
                    s.containers_pending += 1;
                    s.pending_memory_mb += app.am_resource.memory_mb;
                }
                s.containers_pending += a.requests.outstanding();
                s.pending_memory_mb += a
                    .requests
                    .groups()
                    .map(|(key, n)| key.capability.memory_mb * u64::from(n))
                    .sum::<u64>();
            }
        }
        for (_, node) in core.nodes().iter() {
            s.nodes[node_slot(node.state)] += 1;
            s.used += node.used;
            for id in &node.live {
                match core.container(*id).map(|c| c.state) {
                    Some(ContainerState::Running) => s.containers_running += 1,
                    Some(_) => s.containers_allocated += 1,
                    None => {}
                }
            }
        }
        s.available = core.nodes().available();
        s
    }

    pub fn apps_in(&self, state: AppState) -> u64 {
        self.apps[app_slot(state)]
    }

    pub fn nodes_in(&self, state: NodeState) -> u64 {
        self.nodes[node_slot(state)]
    }

    pub fn total_apps(&self) -> u64 {
        self.apps.iter().sum()
    }

    pub fn total_nodes(&self) -> u64 {
        self.nodes.iter().sum()
    }

    /// What the cluster can give out: used plus available (YARN's totalMB), so that an
    /// unhealthy node's free room, which nobody can have, is not counted.
    pub fn total(&self) -> Resource {
        self.used + self.available
    }
}

fn app_slot(state: AppState) -> usize {
    APP_STATES.iter().position(|s| *s == state).unwrap_or(0)
}

fn node_slot(state: NodeState) -> usize {
    NODE_STATES.iter().position(|s| *s == state).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::testkit::*;

    #[test]
    fn counts_add_up_over_apps_nodes_and_containers() {
        let mut t = Harness::new();
        t.node("a:1", 4096);
        t.node("b:1", 2048);
        let attempt = t.running_app(1024);
        t.ask(attempt, 1, 1024, 6);
        let (_, _) = t.submit_app(1024);
        let s = Summary::of(&t.core);
        assert_eq!(s.apps_in(AppState::Running), 1);
        assert_eq!(s.apps_in(AppState::Accepted), 1);
        assert_eq!(s.total_apps(), 2);
        assert_eq!(s.nodes_in(NodeState::Running), 2);
        assert_eq!(
            s.used.memory_mb, 6144,
            "the AM and five containers fill both nodes"
        );
        assert_eq!(s.available.memory_mb, 0);
        assert_eq!(s.total().memory_mb, 6144);
        assert_eq!(s.containers_running, 1, "the AM registered");
        assert_eq!(s.containers_allocated, 5);
        assert_eq!(
            (s.containers_pending, s.pending_memory_mb),
            (2, 2048),
            "one ask and one AM wait"
        );
    }
}
