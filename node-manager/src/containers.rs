//! The table of this node's containers: each one's phase (being launched, running, complete),
//! the stop asked of it, and whether the RM has acknowledged its completion. Plain data behind a
//! lock; the launcher, the container manager, the monitor and the status updater all go through
//! it. Every change a restart must know of is journaled to the state store, in the order made.
//! A completion wakes the status updater, which sends an out-of-band heartbeat, and everyone
//! waiting for some container to end (log followers, an application's clean-up).

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use spindle_containers::process::ContainerProcess;
use spindle_containers::{ApplicationId, ContainerId, Resource};
use spindle_protocol as proto;
use tokio::sync::{Notify, watch};

use crate::error::LaunchError;
use crate::state_store::{Journal, RecordState, StopReason};

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
    /// The host user it runs as (unknown for records of a version that did not keep it).
    user: Option<String>,
    phase: Phase,
    /// Why it is being stopped, if it is; the first stop wins.
    stop: Option<StopReason>,
}

impl Entry {
    /// What the state store keeps of it; nothing while it is launching (no process to take
    /// back yet).
    fn record(&self) -> Option<RecordState> {
        Some(match &self.phase {
            Phase::Launching => return None,
            Phase::Running(process) => RecordState::Running {
                pid: process.pid(),
                start_time: process.start_time(),
                cgroup: process.cgroup().cloned(),
            },
            Phase::Complete {
                exit_status,
                diagnostics,
                acknowledged,
            } => RecordState::Complete {
                exit_status: *exit_status,
                diagnostics: diagnostics.clone(),
                acknowledged: *acknowledged,
            },
        })
    }
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
    Running(ContainerProcess, Resource),
}

/// How a container an earlier run knew is found again.
#[derive(Debug)]
pub enum Restored {
    /// Still running, taken back.
    Running(ContainerProcess),
    /// Complete, before that run ended or since.
    Complete {
        exit_status: i32,
        diagnostics: String,
        acknowledged: bool,
    },
}

/// A running container, as the memory monitor sees it.
#[derive(Debug, Clone)]
pub struct Watched {
    pub id: ContainerId,
    pub resource: Resource,
    pub process: ContainerProcess,
    /// A stop was asked of it already.
    pub stopping: bool,
}

#[derive(Debug)]
pub struct ContainerTable {
    inner: Mutex<Inner>,
    completed: Notify,
    /// Bumped whenever a container completes or is forgotten: unlike `completed`, every
    /// subscriber hears of each change.
    ended: watch::Sender<u64>,
    journal: Journal,
}

impl ContainerTable {
    pub fn new(journal: Journal) -> ContainerTable {
        ContainerTable {
            inner: Mutex::default(),
            completed: Notify::new(),
            ended: watch::Sender::new(0),
            journal,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The table's invariants hold between statements, so a panic elsewhere leaves it usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Journals `entry` as it is now. Called with the lock held, so records reach the store in
    /// the order the changes were made.
    fn journal(&self, id: ContainerId, entry: &Entry) {
        if let Some(state) = entry.record() {
            self.journal.put(
                id,
                entry.resource,
                entry.user.as_deref(),
                entry.stop.as_ref(),
                state,
            );
        }
    }

    pub fn journal_handle(&self) -> &Journal {
        &self.journal
    }

    /// Wakes when a container completes (coalesced: many completions, one wake-up).
    pub fn completed(&self) -> &Notify {
        &self.completed
    }

    /// Changes whenever a container completes or is forgotten; check the one of interest then.
    pub fn ended(&self) -> watch::Receiver<u64> {
        self.ended.subscribe()
    }

    fn bump_ended(&self) {
        self.ended.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Known and not complete (launching or running).
    pub fn is_live(&self, id: ContainerId) -> bool {
        self.lock()
            .entries
            .get(&id)
            .is_some_and(|e| !matches!(e.phase, Phase::Complete { .. }))
    }

    /// Whether any container of `app` is not complete.
    pub fn app_is_live(&self, app: ApplicationId) -> bool {
        self.lock()
            .entries
            .iter()
            .any(|(id, e)| id.application() == app && !matches!(e.phase, Phase::Complete { .. }))
    }

    /// Takes a new container in, to run as `user`; refused if its id was seen before or its app
    /// is over.
    pub fn admit(
        &self,
        id: ContainerId,
        resource: Resource,
        user: &str,
    ) -> Result<(), LaunchError> {
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
                user: Some(user.to_string()),
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
            drop(inner);
            self.bump_ended();
        }
    }

    /// Records the process of a launched container (journaled: `Journal::synced` makes it
    /// durable). Returns the stop reason if a stop arrived while it was launching: the caller
    /// must stop it now.
    pub fn running(&self, id: ContainerId, process: ContainerProcess) -> Option<StopReason> {
        let mut inner = self.lock();
        let entry = inner.entries.get_mut(&id)?;
        entry.phase = Phase::Running(process);
        self.journal(id, entry);
        entry.stop.clone()
    }

    /// Takes back a container an earlier run of the node manager knew.
    pub fn restore(
        &self,
        id: ContainerId,
        resource: Resource,
        user: Option<String>,
        stop: Option<StopReason>,
        restored: Restored,
    ) {
        let phase = match restored {
            Restored::Running(process) => Phase::Running(process),
            Restored::Complete {
                exit_status,
                diagnostics,
                acknowledged,
            } => Phase::Complete {
                exit_status,
                diagnostics,
                acknowledged,
            },
        };
        let unreported = matches!(
            phase,
            Phase::Complete {
                acknowledged: false,
                ..
            }
        );
        let entry = Entry {
            resource,
            user,
            phase,
            stop,
        };
        let mut inner = self.lock();
        self.journal(id, &entry);
        inner.entries.insert(id, entry);
        drop(inner);
        if unreported {
            self.completed.notify_one();
        }
    }

    /// Asks for `id` to be stopped for `reason`.
    pub fn request_stop(&self, id: ContainerId, reason: StopReason) -> StopTarget {
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(&id) else {
            return StopTarget::Unknown;
        };
        let first = entry.stop.is_none();
        match &entry.phase {
            Phase::Complete { .. } => StopTarget::Complete,
            Phase::Launching => {
                entry.stop.get_or_insert(reason);
                StopTarget::Launching
            }
            Phase::Running(process) => {
                let process = process.clone();
                if first {
                    entry.stop = Some(reason);
                    self.journal(id, entry);
                }
                StopTarget::Running(process, entry.resource)
            }
        }
    }

    /// Why `id` was stopped, if a stop was asked.
    pub fn stop_reason(&self, id: ContainerId) -> Option<StopReason> {
        self.lock().entries.get(&id).and_then(|e| e.stop.clone())
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
                self.journal(id, entry);
                drop(inner);
                self.completed.notify_one();
                self.bump_ended();
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
            let Some(entry) = entries.get_mut(&id) else {
                continue;
            };
            let Phase::Complete { acknowledged, .. } = &mut entry.phase else {
                continue;
            };
            *acknowledged = true;
            if finished_apps.contains(&id.application()) {
                entries.remove(&id);
                self.journal.remove(id);
            } else {
                self.journal(id, entry);
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
            let forget = id.application() == app
                && matches!(
                    e.phase,
                    Phase::Complete {
                        acknowledged: true,
                        ..
                    }
                );
            if forget {
                self.journal.remove(*id);
            }
            !forget
        });
        let mut ids: Vec<ContainerId> = inner
            .entries
            .keys()
            .filter(|id| id.application() == app)
            .copied()
            .collect();
        ids.sort();
        Some(ids)
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
        self.watched().into_iter().map(|w| w.process).collect()
    }

    /// The running containers, with the resources they were given.
    pub fn watched(&self) -> Vec<Watched> {
        let inner = self.lock();
        let mut watched: Vec<Watched> = inner
            .entries
            .iter()
            .filter_map(|(id, e)| match &e.phase {
                Phase::Running(process) => Some(Watched {
                    id: *id,
                    resource: e.resource,
                    process: process.clone(),
                    stopping: e.stop.is_some(),
                }),
                _ => None,
            })
            .collect();
        watched.sort_by_key(|w| w.id);
        watched
    }

    /// How many containers are being localized, and how many run.
    pub fn phase_counts(&self) -> (usize, usize) {
        let inner = self.lock();
        inner
            .entries
            .values()
            .fold((0, 0), |(launching, running), e| match e.phase {
                Phase::Launching => (launching + 1, running),
                Phase::Running(_) => (launching, running + 1),
                Phase::Complete { .. } => (launching, running),
            })
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
    use crate::layout::Layout;
    use crate::state_store::StateStore;
    use spindle_containers::exit_status;
    use std::path::PathBuf;

    struct Fixture {
        table: ContainerTable,
        path: PathBuf,
        _dir: tempfile::TempDir,
    }

    /// A table journaling to a store of its own.
    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("containers.redb");
        let journal =
            Journal::start(StateStore::open(&path).unwrap(), Layout::new(dir.path())).unwrap();
        Fixture {
            table: ContainerTable::new(journal),
            path,
            _dir: dir,
        }
    }

    /// What the store holds once the table's journal is written out.
    async fn stored(f: &Fixture) -> Vec<(String, Option<StopReason>, RecordState)> {
        f.table.journal_handle().close().await;
        let mut records: Vec<_> = StateStore::open(&f.path)
            .unwrap()
            .load()
            .unwrap()
            .into_iter()
            .map(|r| (r.container_id, r.stop, r.state))
            .collect();
        records.sort_by(|a, b| a.0.cmp(&b.0));
        records
    }

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
        let f = fixture();
        let table = &f.table;
        table.admit(cid(1, 1), R, "alice").unwrap();
        assert!(matches!(
            table.admit(cid(1, 1), R, "alice"),
            Err(LaunchError::AlreadyKnown(_))
        ));
        table.forget(cid(1, 1));
        table.admit(cid(1, 1), R, "alice").unwrap();
    }

    #[test]
    fn completions_are_reported_until_acknowledged() {
        let f = fixture();
        let table = &f.table;
        table.admit(cid(1, 1), R, "alice").unwrap();
        table.admit(cid(1, 2), R, "alice").unwrap();
        assert!(table.complete(cid(1, 1), 3, "exited".into()));
        // The first record of an exit wins.
        assert!(!table.complete(cid(1, 1), -105, "stopped".into()));
        let complete = proto::ContainerState::Complete as i32;
        let new = proto::ContainerState::New as i32;
        assert_eq!(
            reported(table),
            vec![
                (cid(1, 1).to_string(), complete, 3),
                (cid(1, 2).to_string(), new, 0)
            ]
        );
        // Acknowledging a container that is not complete changes nothing.
        table.acknowledge([cid(1, 1), cid(1, 2)]);
        assert_eq!(reported(table), vec![(cid(1, 2).to_string(), new, 0)]);
        // Still known to status queries until its application is over.
        assert_eq!(table.status(cid(1, 1)).unwrap().exit_status, 3);
        assert_eq!(table.allocated(), (R, 1));
    }

    #[test]
    fn the_first_stop_decides_the_status() {
        let f = fixture();
        let table = &f.table;
        table.admit(cid(1, 1), R, "alice").unwrap();
        assert!(matches!(
            table.request_stop(
                cid(1, 1),
                StopReason::status(exit_status::KILLED_BY_APPMASTER)
            ),
            StopTarget::Launching
        ));
        table.request_stop(
            cid(1, 1),
            StopReason::status(exit_status::KILLED_BY_RESOURCEMANAGER),
        );
        assert_eq!(
            table.stop_reason(cid(1, 1)),
            Some(StopReason::status(exit_status::KILLED_BY_APPMASTER))
        );
        assert!(matches!(
            table.request_stop(cid(9, 9), StopReason::status(-105)),
            StopTarget::Unknown
        ));
        table.complete(cid(1, 1), -105, String::new());
        assert!(matches!(
            table.request_stop(cid(1, 1), StopReason::status(-105)),
            StopTarget::Complete
        ));
    }

    #[test]
    fn a_finished_app_takes_no_new_containers_and_is_forgotten_once_acknowledged() {
        let f = fixture();
        let table = &f.table;
        table.admit(cid(1, 1), R, "alice").unwrap();
        table.admit(cid(1, 2), R, "alice").unwrap();
        table.admit(cid(2, 1), R, "alice").unwrap();
        table.complete(cid(1, 1), 0, String::new());
        table.acknowledge([cid(1, 1)]);
        assert_eq!(
            table.finish_app(cid(1, 1).application()),
            Some(vec![cid(1, 2)])
        );
        assert_eq!(table.finish_app(cid(1, 1).application()), None);
        assert!(table.status(cid(1, 1)).is_none());
        assert!(matches!(
            table.admit(cid(1, 3), R, "alice"),
            Err(LaunchError::ApplicationFinished(_))
        ));
        table.complete(
            cid(1, 2),
            exit_status::KILLED_AFTER_APP_COMPLETION,
            String::new(),
        );
        assert_eq!(reported(table).len(), 2);
        table.acknowledge([cid(1, 2)]);
        assert!(table.status(cid(1, 2)).is_none());
        assert_eq!(table.live(), vec![cid(2, 1)]);
    }

    #[tokio::test]
    async fn completions_acknowledgements_and_forgetting_are_journaled() {
        let f = fixture();
        let table = &f.table;
        for n in 1..=3 {
            table.admit(cid(1, n), R, "alice").unwrap();
        }
        // A launching container has no process to take back: nothing is kept of it.
        table.complete(cid(1, 1), 3, "exited".into());
        table.complete(cid(1, 2), 0, String::new());
        table.acknowledge([cid(1, 1), cid(1, 2)]);
        table.finish_app(cid(1, 1).application());
        table.restore(
            cid(2, 1),
            R,
            Some("alice".into()),
            Some(StopReason::status(-105)),
            Restored::Complete {
                exit_status: -105,
                diagnostics: "stopped".into(),
                acknowledged: false,
            },
        );
        assert_eq!(
            reported(table),
            vec![
                (cid(1, 3).to_string(), proto::ContainerState::New as i32, 0),
                (
                    cid(2, 1).to_string(),
                    proto::ContainerState::Complete as i32,
                    -105
                ),
            ]
        );
        assert_eq!(
            stored(&f).await,
            vec![(
                cid(2, 1).to_string(),
                Some(StopReason::status(-105)),
                RecordState::Complete {
                    exit_status: -105,
                    diagnostics: "stopped".into(),
                    acknowledged: false
                }
            )]
        );
    }

    #[tokio::test]
    async fn an_acknowledged_completion_is_kept_until_its_app_is_over() {
        let f = fixture();
        let table = &f.table;
        table.admit(cid(1, 1), R, "alice").unwrap();
        table.complete(cid(1, 1), 3, "exited".into());
        table.acknowledge([cid(1, 1)]);
        assert_eq!(
            stored(&f).await,
            vec![(
                cid(1, 1).to_string(),
                None,
                RecordState::Complete {
                    exit_status: 3,
                    diagnostics: "exited".into(),
                    acknowledged: true
                }
            )]
        );
    }
}
