//! The table of this node's containers: each one's phase (being launched, running, complete),
//! the stop asked of it, and whether the RM has acknowledged its completion. Plain data behind a
//! lock, no I/O; the launcher, the container manager and the status updater all go through it.
//! A completion wakes the status updater, which sends an out-of-band heartbeat.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use spindle_containers::process::ContainerProcess;
use spindle_containers::{ApplicationId, ContainerId, Resource};
use spindle_protocol as proto;
use tokio::sync::Notify;

use crate::error::LaunchError;

#[derive(Debug)]
enum Phase {
    /// Admitted; its files are being localized and its script written.
    Launching,
    Running(ContainerProcess),
    Complete {
        exit_status: i32,
        diagnostics: String,
        acknowledged: bool,
    },
}

#[derive(Debug)]
struct Entry {
    resource: Resource,
    phase: Phase,
    /// The exit status to record if it ends because it was stopped; the first stop wins.
    stop: Option<i32>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<ContainerId, Entry>,
    /// Applications the RM said are over: their containers may not start any more, and are
    /// forgotten once their completion is acknowledged.
    finished_apps: HashSet<ApplicationId>,
}

/// What a stop request found.
#[derive(Debug)]
pub enum StopTarget {
    Unknown,
    /// Already complete: nothing to do.
    Complete,
    /// Still launching: the launcher stops it as soon as its process exists.
    Launching,
    Running(ContainerProcess),
}

#[derive(Debug, Default)]
pub struct ContainerTable {
    inner: Mutex<Inner>,
    completed: Notify,
}

impl ContainerTable {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The table's invariants hold between statements, so a panic elsewhere leaves it usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes when a container completes (coalesced: many completions, one wake-up).
    pub fn completed(&self) -> &Notify {
        &self.completed
    }

    /// Takes a new container in; refused if its id was seen before or its app is over.
    pub fn admit(&self, id: ContainerId, resource: Resource) -> Result<(), LaunchError> {
        let mut inner = self.lock();
        if inner.finished_apps.contains(&id.application()) {
            return Err(LaunchError::ApplicationFinished(id.application()));
        }
        if inner.entries.contains_key(&id) {
            return Err(LaunchError::AlreadyKnown(id));
        }
        inner.entries.insert(
            id,
            Entry {
                resource,
                phase: Phase::Launching,
                stop: None,
            },
        );
        Ok(())
    }

    /// Drops a container whose launch failed before it ran (the caller was told why).
    pub fn forget(&self, id: ContainerId) {
        let mut inner = self.lock();
        if matches!(inner.entries.get(&id), Some(e) if matches!(e.phase, Phase::Launching)) {
            inner.entries.remove(&id);
        }
    }

    /// Records the process of a launched container. Returns the stop status if a stop arrived
    /// while it was launching: the caller must stop it now.
    pub fn running(&self, id: ContainerId, process: ContainerProcess) -> Option<i32> {
        let mut inner = self.lock();
        let entry = inner.entries.get_mut(&id)?;
        entry.phase = Phase::Running(process);
        entry.stop
    }

    /// Asks for `id` to be stopped with `exit_status` recorded.
    pub fn request_stop(&self, id: ContainerId, exit_status: i32) -> StopTarget {
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(&id) else {
            return StopTarget::Unknown;
        };
        match &entry.phase {
            Phase::Complete { .. } => StopTarget::Complete,
            Phase::Launching => {
                entry.stop.get_or_insert(exit_status);
                StopTarget::Launching
            }
            Phase::Running(process) => {
                entry.stop.get_or_insert(exit_status);
                StopTarget::Running(process.clone())
            }
        }
    }

    /// The status a stop asked to record, if one did.
    pub fn stop_status(&self, id: ContainerId) -> Option<i32> {
        self.lock().entries.get(&id).and_then(|e| e.stop)
    }

    /// Marks `id` complete and wakes the status updater; `false` (and nothing changes) if it is
    /// unknown or was already complete.
    pub fn complete(&self, id: ContainerId, exit_status: i32, diagnostics: String) -> bool {
        let mut inner = self.lock();
        match inner.entries.get_mut(&id) {
            Some(entry) if !matches!(entry.phase, Phase::Complete { .. }) => {
                entry.phase = Phase::Complete {
                    exit_status,
                    diagnostics,
                    acknowledged: false,
                };
                drop(inner);
                self.completed.notify_one();
                true
            }
            _ => false,
        }
    }

    pub fn status(&self, id: ContainerId) -> Option<proto::ContainerStatus> {
        self.lock().entries.get(&id).map(|e| status_of(id, e))
    }

    /// Everything the RM must hear about: live containers and unacknowledged completions.
    pub fn statuses_to_report(&self) -> Vec<proto::ContainerStatus> {
        let inner = self.lock();
        let mut statuses: Vec<proto::ContainerStatus> = inner
            .entries
            .iter()
            .filter(|(_, e)| {
                !matches!(
                    e.phase,
                    Phase::Complete {
                        acknowledged: true,
                        ..
                    }
                )
            })
            .map(|(id, e)| status_of(*id, e))
            .collect();
        statuses.sort_by(|a, b| a.container_id.cmp(&b.container_id));
        statuses
    }

    /// The RM has recorded these completions: stop reporting them, and forget those whose
    /// application is over.
    pub fn acknowledge(&self, ids: impl IntoIterator<Item = ContainerId>) {
        let mut inner = self.lock();
        let Inner {
            entries,
            finished_apps,
        } = &mut *inner;
        for id in ids {
            if let Some(Entry {
                phase: Phase::Complete { acknowledged, .. },
                ..
            }) = entries.get_mut(&id)
            {
                *acknowledged = true;
                if finished_apps.contains(&id.application()) {
                    entries.remove(&id);
                }
            }
        }
    }

    /// Marks `app` over. The first time, returns its containers (to stop); `None` after.
    pub fn finish_app(&self, app: ApplicationId) -> Option<Vec<ContainerId>> {
        let mut inner = self.lock();
        if !inner.finished_apps.insert(app) {
            return None;
        }
        inner.entries.retain(|id, e| {
            id.application() != app
                || !matches!(
                    e.phase,
                    Phase::Complete {
                        acknowledged: true,
                        ..
                    }
                )
        });
        Some(
            inner
                .entries
                .keys()
                .filter(|id| id.application() == app)
                .copied()
                .collect(),
        )
    }

    /// Containers not yet complete.
    pub fn live(&self) -> Vec<ContainerId> {
        let inner = self.lock();
        let mut ids: Vec<ContainerId> = inner
            .entries
            .iter()
            .filter(|(_, e)| !matches!(e.phase, Phase::Complete { .. }))
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    /// The processes of running containers.
    pub fn running_processes(&self) -> Vec<ContainerProcess> {
        let inner = self.lock();
        inner
            .entries
            .values()
            .filter_map(|e| match &e.phase {
                Phase::Running(process) => Some(process.clone()),
                _ => None,
            })
            .collect()
    }

    /// The resources of the containers not yet complete, and how many there are.
    pub fn allocated(&self) -> (Resource, usize) {
        let inner = self.lock();
        inner
            .entries
            .values()
            .filter(|e| !matches!(e.phase, Phase::Complete { .. }))
            .fold((Resource::ZERO, 0), |(sum, n), e| (sum + e.resource, n + 1))
    }
}

fn status_of(id: ContainerId, entry: &Entry) -> proto::ContainerStatus {
    let (state, exit_status, diagnostics) = match &entry.phase {
        Phase::Launching => (proto::ContainerState::New, 0, String::new()),
        Phase::Running(_) => (proto::ContainerState::Running, 0, String::new()),
        Phase::Complete {
            exit_status,
            diagnostics,
            ..
        } => (
            proto::ContainerState::Complete,
            *exit_status,
            diagnostics.clone(),
        ),
    };
    proto::ContainerStatus {
        container_id: id.to_string(),
        state: state as i32,
        exit_status,
        diagnostics,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_containers::exit_status;

    fn cid(app: u32, id: u64) -> ContainerId {
        format!("container_1700000000000_{app:04}_01_{id:06}")
            .parse()
            .unwrap()
    }

    fn reported(table: &ContainerTable) -> Vec<(String, i32, i32)> {
        table
            .statuses_to_report()
            .into_iter()
            .map(|s| (s.container_id, s.state, s.exit_status))
            .collect()
    }

    const R: Resource = Resource::new(512, 1);

    #[test]
    fn a_container_id_is_admitted_once() {
        let table = ContainerTable::default();
        table.admit(cid(1, 1), R).unwrap();
        assert!(matches!(
            table.admit(cid(1, 1), R),
            Err(LaunchError::AlreadyKnown(_))
        ));
        table.forget(cid(1, 1));
        table.admit(cid(1, 1), R).unwrap();
    }

    #[test]
    fn completions_are_reported_until_acknowledged() {
        let table = ContainerTable::default();
        table.admit(cid(1, 1), R).unwrap();
        table.admit(cid(1, 2), R).unwrap();
        assert!(table.complete(cid(1, 1), 3, "exited".into()));
        // The first record of an exit wins.
        assert!(!table.complete(cid(1, 1), -105, "stopped".into()));
        let complete = proto::ContainerState::Complete as i32;
        let new = proto::ContainerState::New as i32;
        assert_eq!(
            reported(&table),
            vec![
                (cid(1, 1).to_string(), complete, 3),
                (cid(1, 2).to_string(), new, 0)
            ]
        );
        // Acknowledging a container that is not complete changes nothing.
        table.acknowledge([cid(1, 1), cid(1, 2)]);
        assert_eq!(reported(&table), vec![(cid(1, 2).to_string(), new, 0)]);
        // Still known to status queries until its application is over.
        assert_eq!(table.status(cid(1, 1)).unwrap().exit_status, 3);
        assert_eq!(table.allocated(), (R, 1));
    }

    #[test]
    fn the_first_stop_decides_the_status() {
        let table = ContainerTable::default();
        table.admit(cid(1, 1), R).unwrap();
        assert!(matches!(
            table.request_stop(cid(1, 1), exit_status::KILLED_BY_APPMASTER),
            StopTarget::Launching
        ));
        table.request_stop(cid(1, 1), exit_status::KILLED_BY_RESOURCEMANAGER);
        assert_eq!(
            table.stop_status(cid(1, 1)),
            Some(exit_status::KILLED_BY_APPMASTER)
        );
        assert!(matches!(
            table.request_stop(cid(9, 9), -105),
            StopTarget::Unknown
        ));
        table.complete(cid(1, 1), -105, String::new());
        assert!(matches!(
            table.request_stop(cid(1, 1), -105),
            StopTarget::Complete
        ));
    }

    #[test]
    fn a_finished_app_takes_no_new_containers_and_is_forgotten_once_acknowledged() {
        let table = ContainerTable::default();
        table.admit(cid(1, 1), R).unwrap();
        table.admit(cid(1, 2), R).unwrap();
        table.admit(cid(2, 1), R).unwrap();
        table.complete(cid(1, 1), 0, String::new());
        table.acknowledge([cid(1, 1)]);
        assert_eq!(
            table.finish_app(cid(1, 1).application()),
            Some(vec![cid(1, 2)])
        );
        assert_eq!(table.finish_app(cid(1, 1).application()), None);
        assert!(table.status(cid(1, 1)).is_none());
        assert!(matches!(
            table.admit(cid(1, 3), R),
            Err(LaunchError::ApplicationFinished(_))
        ));
        table.complete(
            cid(1, 2),
            exit_status::KILLED_AFTER_APP_COMPLETION,
            String::new(),
        );
        assert_eq!(reported(&table).len(), 2);
        table.acknowledge([cid(1, 2)]);
        assert!(table.status(cid(1, 2)).is_none());
        assert_eq!(table.live(), vec![cid(2, 1)]);
    }
}
