//! What the core asks the world to do after an event: the server carries these out (writes to the
//! state store, RPCs to node managers, answering long polls, notifying watchers). The core never
//! performs I/O itself.

use std::collections::{BTreeMap, BTreeSet};

use spindle_containers::{ApplicationId, AttemptId, ContainerId, LaunchContext, NodeId, Resource};

use super::record::Record;

#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Keep this in the state store, in order, before anything that follows it (or any answer
    /// to the call that caused it) leaves the RM.
    Persist(Record),
    /// Start an attempt's AM container on its node (ContainerManager.StartContainers); the result
    /// comes back as `on_am_launched` or `on_am_launch_failed`.
    LaunchAm {
        container: ContainerId,
        node: NodeId,
        resource: Resource,
        launch: LaunchContext,
        user: String,
    },
    /// Stop these containers on `node`, recording `exit_status` for them.
    StopContainers {
        node: NodeId,
        containers: Vec<ContainerId>,
        exit_status: i32,
    },
    /// The attempt has news (allocations, completions or a command): answer its open poll.
    WakeAllocate(AttemptId),
    /// The application's report changed: tell its watchers.
    AppChanged(ApplicationId),
}

/// Collects effects during one event, merging duplicates: one wake per attempt, one change per
/// app, one StopContainers per node and exit status.
#[derive(Debug, Default)]
pub(crate) struct Effects {
    records: Vec<Record>,
    launches: Vec<Effect>,
    stops: BTreeMap<(NodeId, i32), Vec<ContainerId>>,
    wakes: BTreeSet<AttemptId>,
    changed: BTreeSet<ApplicationId>,
}

impl Effects {
    pub fn persist(&mut self, record: Record) {
        self.records.push(record);
    }

    pub fn launch(&mut self, effect: Effect) {
        debug_assert!(matches!(effect, Effect::LaunchAm { .. }));
        self.launches.push(effect);
    }

    pub fn stop(&mut self, node: &NodeId, container: ContainerId, exit_status: i32) {
        self.stops
            .entry((node.clone(), exit_status))
            .or_default()
            .push(container);
    }

    pub fn wake(&mut self, attempt: AttemptId) {
        self.wakes.insert(attempt);
    }

    pub fn changed(&mut self, app: ApplicationId) {
        self.changed.insert(app);
    }

    /// The records first, in the order they were made: everything else may depend on them.
    pub fn into_vec(self) -> Vec<Effect> {
        let mut out: Vec<Effect> = self.records.into_iter().map(Effect::Persist).collect();
        out.extend(self.launches);
        out.extend(
            self.stops
                .into_iter()
                .map(|((node, exit_status), containers)| Effect::StopContainers {
                    node,
                    containers,
                    exit_status,
                }),
        );
        out.extend(self.wakes.into_iter().map(Effect::WakeAllocate));
        out.extend(self.changed.into_iter().map(Effect::AppChanged));
        out
    }
}
