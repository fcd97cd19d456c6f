//! The pure core of the resource manager: nodes, applications, attempts, containers and the
//! scheduler as plain data. Each `on_*` method takes one event and the time (ms since the epoch,
//! passed in: the core has no clock, no I/O and no tasks) and returns the `Effect`s the server
//! must carry out. Every rule of the cluster is testable here without a socket.

mod am;
mod app;
mod container;
mod container_end;
mod effect;
mod error;
mod invariants;
mod lifecycle;
mod liveness;
mod node;
mod normalize;
mod requests;
mod scheduler;
mod tracker;

#[cfg(test)]
mod proptests;
#[cfg(test)]
pub(crate) mod testkit;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use spindle_containers::{ApplicationId, ContainerId, Resource};

use crate::config::{Placement, RmConfig};

pub use am::{AllocateCall, AllocateNews, AllocatedContainer, Ask, FinishCall, RegisterCall};
pub use app::{
    AmCommand, App, AppState, Attempt, AttemptState, CompletedContainer, FinalStatus, News,
    Submission,
};
pub use container::{Container, ContainerState};
pub use effect::Effect;
pub use error::{CoreError, ErrorClass};
pub use node::{Node, NodeIdx, NodeInfo, NodeState, NodeTable};
pub use requests::{Locality, RequestKey, Requests};
pub use tracker::{HeartbeatOutcome, NodeHeartbeat, ReportedContainer, ReportedState};

use scheduler::Queues;

/// The core's settings, taken from `RmConfig` with durations in ms.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreConfig {
    pub cluster_timestamp: u64,
    pub minimum_allocation: Resource,
    pub maximum_allocation: Resource,
    pub placement: Placement,
    pub nm_liveness_expiry_ms: u64,
    pub am_liveness_expiry_ms: u64,
    pub default_max_attempts: u32,
    pub max_attempts_limit: u32,
    /// How long an AM that unregistered may take to exit by itself before its container is
    /// stopped (YARN waits for the AM container to end, too).
    pub am_exit_grace_ms: u64,
}

/// Ten seconds is ample for a process that has already said goodbye.
const AM_EXIT_GRACE_MS: u64 = 10_000;

impl CoreConfig {
    pub fn new(config: &RmConfig, cluster_timestamp: u64) -> Self {
        CoreConfig {
            cluster_timestamp,
            minimum_allocation: config.minimum_allocation,
            maximum_allocation: config.maximum_allocation,
            placement: config.placement,
            nm_liveness_expiry_ms: config.nm_liveness_expiry.as_millis() as u64,
            am_liveness_expiry_ms: config.am_liveness_expiry.as_millis() as u64,
            default_max_attempts: config.default_max_attempts,
            max_attempts_limit: config.max_attempts_limit,
            am_exit_grace_ms: AM_EXIT_GRACE_MS,
        }
    }

    /// An allocated container nobody started is taken back after this long (YARN's
    /// container-allocation expiry); never before the NM had a chance to report it running.
    pub fn allocation_expiry_ms(&self) -> u64 {
        self.am_liveness_expiry_ms.max(self.nm_liveness_expiry_ms)
    }
}

pub struct Core {
    config: CoreConfig,
    /// The sequence number of the last application id handed out.
    last_app_seq: u32,
    next_order: u64,
    apps: BTreeMap<ApplicationId, App>,
    /// Applications not yet in a final state.
    active: BTreeSet<ApplicationId>,
    containers: HashMap<ContainerId, Container>,
    nodes: NodeTable,
    queues: Queues,
    /// Allocated, not yet running, non-AM containers by allocation time (for expiry).
    unstarted: BTreeSet<(u64, ContainerId)>,
    /// AM containers of unregistered attempts by the time they must have exited.
    am_grace: BTreeSet<(u64, ContainerId)>,
}

impl Core {
    pub fn new(config: CoreConfig) -> Self {
        Core {
            config,
            last_app_seq: 0,
            next_order: 0,
            apps: BTreeMap::new(),
            active: BTreeSet::new(),
            containers: HashMap::new(),
            nodes: NodeTable::default(),
            queues: Queues::default(),
            unstarted: BTreeSet::new(),
            am_grace: BTreeSet::new(),
        }
    }

    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    pub fn app(&self, id: ApplicationId) -> Option<&App> {
        self.apps.get(&id)
    }

    /// Every application, in id order.
    pub fn apps(&self) -> impl Iterator<Item = &App> {
        self.apps.values()
    }

    pub fn container(&self, id: ContainerId) -> Option<&Container> {
        self.containers.get(&id)
    }

    pub fn nodes(&self) -> &NodeTable {
        &self.nodes
    }

    pub fn node(&self, idx: NodeIdx) -> &Node {
        self.nodes.get(idx)
    }

    /// Hands out the next application id (state NEW: nothing is recorded until it is submitted).
    /// Should 2^32 ids ever be handed out, the last one is repeated and its second submission is
    /// refused: a client asking for ids in a loop cannot bring the RM down.
    pub fn new_application(&mut self) -> ApplicationId {
        self.last_app_seq = self.last_app_seq.saturating_add(1);
        ApplicationId::new(self.config.cluster_timestamp, self.last_app_seq)
    }
}
