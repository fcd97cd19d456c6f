//! The pure core of the resource manager: nodes, applications, attempts, containers and the
//! scheduler as plain data. Each `on_*` method takes one event and the time (ms since the epoch,
//! passed in: the core has no clock, no I/O and no tasks) and returns the `Effect`s the server
//! must carry out. Every rule of the cluster is testable here without a socket. What must survive
//! a restart leaves as `Effect::Persist` records; `Core::recover` rebuilds a core from them.

mod am;
mod app;
mod container;
mod container_end;
mod effect;
mod error;
mod invariants;
mod lifecycle;
mod liveness;
mod metrics;
mod node;
mod normalize;
mod record;
mod recover;
mod requests;
mod retention;
mod scheduler;
mod tracker;

#[cfg(test)]
mod proptests;
#[cfg(test)]
pub(crate) mod testkit;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use spindle_containers::{ApplicationId, AttemptId, ContainerId, Resource};

use crate::config::{Placement, RmConfig};

pub use am::{AllocateCall, AllocateNews, AllocatedContainer, Ask, FinishCall, RegisterCall};
pub use app::{
    AmCommand, App, AppState, Attempt, AttemptState, CompletedContainer, FinalStatus, News,
    Submission,
};
pub use container::{Container, ContainerState};
pub use effect::Effect;
pub use error::{CoreError, ErrorClass};
pub use metrics::{Histogram, LATENCY_BUCKETS_MS, Metrics};
pub use node::{Node, NodeIdx, NodeInfo, NodeState, NodeTable};
pub use record::{AppRecord, AttemptRecord, ContainerRecord, Image, Record};
pub use requests::{Locality, RequestKey, Requests};
pub use tracker::{HeartbeatOutcome, NodeHeartbeat, ReportedContainer, ReportedState};

use effect::Effects;
use recover::Awaiting;
use scheduler::Queues;

/// The core's settings, taken from `RmConfig` with durations in ms.
#[derive(Debug, Clone, PartialEq)]
pub struct CoreConfig {
    /// The timestamp ids carry: this start's time, unless a recorded one is recovered.
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
    /// Finished applications kept (in memory and in the store); the oldest go first.
    pub max_completed_applications: usize,
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
            max_completed_applications: config.max_completed_applications,
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
    /// How many times the RM started on this state before this start (0 on the first); new
    /// container ids carry it, so none repeats one handed out before a restart.
    epoch: u32,
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
    /// Recovered containers whose nodes have not registered since the restart.
    awaiting: Awaiting,
    /// Applications in a final state, by (finish time, id): the retention order.
    completed: BTreeSet<(u64, ApplicationId)>,
    metrics: Metrics,
}

impl Core {
    /// A core with no history (epoch 0). A server starts with `recover` instead, even on an
    /// empty store, so that the start is recorded.
    pub fn new(config: CoreConfig) -> Self {
        Core {
            config,
            epoch: 0,
            last_app_seq: 0,
            next_order: 0,
            apps: BTreeMap::new(),
            active: BTreeSet::new(),
            containers: HashMap::new(),
            nodes: NodeTable::default(),
            queues: Queues::default(),
            unstarted: BTreeSet::new(),
            am_grace: BTreeSet::new(),
            awaiting: Awaiting::default(),
            completed: BTreeSet::new(),
            metrics: Metrics::default(),
        }
    }

    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    pub fn epoch(&self) -> u32 {
        self.epoch
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

    /// What happened since this start that the state no longer shows.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn nodes(&self) -> &NodeTable {
        &self.nodes
    }

    pub fn node(&self, idx: NodeIdx) -> &Node {
        self.nodes.get(idx)
    }

    /// Hands out the next application id (state NEW: no application is recorded until it is
    /// submitted, but the sequence is, so that no id is handed out twice across a restart).
    /// Should 2^32 ids ever be handed out, the last one is repeated and its second submission is
    /// refused: a client asking for ids in a loop cannot bring the RM down.
    pub fn new_application(&mut self) -> (ApplicationId, Vec<Effect>) {
        self.last_app_seq = self.last_app_seq.saturating_add(1);
        let id = ApplicationId::new(self.config.cluster_timestamp, self.last_app_seq);
        let persist = Effect::Persist(Record::AppSequence(self.last_app_seq));
        (id, vec![persist])
    }

    /// Records the application's current state.
    pub(crate) fn save_app(&self, id: ApplicationId, fx: &mut Effects) {
        if let Some(app) = self.apps.get(&id) {
            fx.persist(Record::App(app.to_record()));
        }
    }

    /// Records the attempt's current state.
    pub(crate) fn save_attempt(&self, id: AttemptId, fx: &mut Effects) {
        if let Some(a) = self
            .apps
            .get(&id.application)
            .and_then(|app| app.attempt(id))
        {
            fx.persist(Record::Attempt(a.to_record()));
        }
    }
}
