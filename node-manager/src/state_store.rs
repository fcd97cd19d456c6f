//! What the node manager remembers of its containers across its own restarts: one record per
//! container (id, app, resource, dirs, process id and start time, cgroup, stop asked, final
//! status) in an embedded `redb` file under the work dir. Containers run in their own sessions
//! and outlive a node manager that dies; these records are how the next one takes them back.
//!
//! The container table journals every change here through a channel; one thread writes them in
//! order, a batch per transaction, so no async task ever waits on a disk sync unless it asks
//! to (`Journal::synced`).

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use spindle_containers::cgroup::ContainerCgroup;
use spindle_containers::{ContainerId, Resource};
use tokio::sync::oneshot;

use crate::layout::Layout;

/// Container id → JSON of its `ContainerRecord`.
const CONTAINERS: TableDefinition<&str, &[u8]> = TableDefinition::new("containers");

#[derive(Debug, thiserror::Error)]
#[error("state store {}: {source}", path.display())]
pub struct StoreError {
    path: PathBuf,
    source: redb::Error,
}

/// Why a container was asked to stop: the status to record, and the diagnostics when the
/// stopper has more to say than who stopped it (the memory monitor does).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StopReason {
    pub exit_status: i32,
    pub diagnostics: Option<String>,
}

impl StopReason {
    pub fn status(exit_status: i32) -> StopReason {
        StopReason {
            exit_status,
            diagnostics: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RecordState {
    Running {
        /// The launch script's bash: the process group and session leader.
        pid: u32,
        /// From `/proc/<pid>/stat`, so a reused pid is not mistaken for the container.
        start_time: u64,
        cgroup: Option<ContainerCgroup>,
    },
    Complete {
        exit_status: i32,
        diagnostics: String,
        /// The RM has recorded it: it is not reported again.
        acknowledged: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContainerRecord {
    pub container_id: String,
    pub application_id: String,
    pub resource: Resource,
    /// The host user it runs as (absent in records of versions that did not keep it).
    #[serde(default)]
    pub user: Option<String>,
    pub working_dir: PathBuf,
    pub log_dir: PathBuf,
    pub stop: Option<StopReason>,
    #[serde(flatten)]
    pub state: RecordState,
}

enum Op {
    Put(String, Vec<u8>),
    Remove(String),
}

pub struct StateStore {
    path: PathBuf,
    db: redb::Database,
}

impl StateStore {
    /// Opens (or creates) the store at `path`; refused while another node manager has it open.
    pub fn open(path: &Path) -> Result<StateStore, StoreError> {
        let err = |source: redb::Error| StoreError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| err(e.into()))?;
        }
        let db = redb::Database::create(path).map_err(|e| err(e.into()))?;
        // The table exists from the start, so reading a fresh store finds it empty.
        let txn = db.begin_write().map_err(|e| err(e.into()))?;
        txn.open_table(CONTAINERS).map_err(|e| err(e.into()))?;
        txn.commit().map_err(|e| err(e.into()))?;
        Ok(StateStore {
            path: path.to_path_buf(),
            db,
        })
    }

    fn error(&self, source: impl Into<redb::Error>) -> StoreError {
        StoreError {
            path: self.path.clone(),
            source: source.into(),
        }
    }

    /// Every record; one that cannot be read back is logged and left out.
    pub fn load(&self) -> Result<Vec<ContainerRecord>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.error(e))?;
        let table = txn.open_table(CONTAINERS).map_err(|e| self.error(e))?;
        let mut records = Vec::new();
        for entry in table.iter().map_err(|e| self.error(e))? {
            let (key, value) = entry.map_err(|e| self.error(e))?;
            match serde_json::from_slice::<ContainerRecord>(value.value()) {
                Ok(record) => records.push(record),
                Err(e) => tracing::warn!(
                    container_id = key.value(),
                    "ignoring a container record that cannot be read: {e}"
                ),
            }
        }
        Ok(records)
    }

    fn apply(&self, ops: &[Op]) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        {
            let mut table = txn.open_table(CONTAINERS).map_err(|e| self.error(e))?;
            for op in ops {
                match op {
                    Op::Put(key, value) => {
                        table
                            .insert(key.as_str(), value.as_slice())
                            .map_err(|e| self.error(e))?;
                    }
                    Op::Remove(key) => {
                        table.remove(key.as_str()).map_err(|e| self.error(e))?;
                    }
                }
            }
        }
        txn.commit().map_err(|e| self.error(e))
    }
}

enum Message {
    Op(Op),
    /// Answered once every earlier message is durable.
    Sync(oneshot::Sender<()>),
    /// Like `Sync`, and the writer closes the store.
    Close(oneshot::Sender<()>),
}

/// The way into the store: ordered writes, carried out by the writer thread.
#[derive(Debug, Clone)]
pub struct Journal {
    layout: Layout,
    tx: mpsc::Sender<Message>,
}

impl Journal {
    /// Starts the writer thread, which owns `store` until `close`.
    pub fn start(store: StateStore, layout: Layout) -> std::io::Result<Journal> {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("nm-state-store".to_string())
            .spawn(move || {
                let closed = write_loop(&store, &rx);
                // Closed before answering: whoever waits may open the store next.
                drop(store);
                for ack in closed {
                    let _ = ack.send(());
                }
            })?;
        Ok(Journal { layout, tx })
    }

    fn send(&self, message: Message) {
        // After `close` the writer is gone: a change made during shutdown is not kept.
        let _ = self.tx.send(message);
    }

    /// Records `state` for container `id`.
    pub fn put(
        &self,
        id: ContainerId,
        resource: Resource,
        user: Option<&str>,
        stop: Option<&StopReason>,
        state: RecordState,
    ) {
        let record = ContainerRecord {
            container_id: id.to_string(),
            application_id: id.application().to_string(),
            resource,
            user: user.map(str::to_string),
            working_dir: self.layout.container_dir(id),
            log_dir: self.layout.log_dir(id),
            stop: stop.cloned(),
            state,
        };
        match serde_json::to_vec(&record) {
            Ok(value) => self.send(Message::Op(Op::Put(record.container_id, value))),
            Err(e) => {
                tracing::error!(container_id = %id, "cannot encode the container record: {e}")
            }
        }
    }

    pub fn remove(&self, id: ContainerId) {
        self.send(Message::Op(Op::Remove(id.to_string())));
    }

    /// Resolves once everything journaled before the call is on disk (or failed and logged).
    pub async fn synced(&self) {
        let (tx, rx) = oneshot::channel();
        self.send(Message::Sync(tx));
        let _ = rx.await;
    }

    /// Writes what is pending and closes the store (a new node manager may then open it).
    pub async fn close(&self) {
        let (tx, rx) = oneshot::channel();
        self.send(Message::Close(tx));
        let _ = rx.await;
    }
}

/// Drains what has arrived, writes it in one transaction, then answers the syncs; until the
/// store is to be closed (those waiting on that are returned) or no one can send any more.
fn write_loop(store: &StateStore, rx: &mpsc::Receiver<Message>) -> Vec<oneshot::Sender<()>> {
    while let Ok(first) = rx.recv() {
        let mut ops = Vec::new();
        let mut syncs = Vec::new();
        let mut closing = false;
        for message in std::iter::once(first).chain(rx.try_iter()) {
            match message {
                Message::Op(op) => ops.push(op),
                Message::Sync(ack) => syncs.push(ack),
                Message::Close(ack) => {
                    syncs.push(ack);
                    closing = true;
                    break;
                }
            }
        }
        if !ops.is_empty()
            && let Err(e) = store.apply(&ops)
        {
            tracing::error!("{e}: {} container changes are not kept", ops.len());
        }
        if closing {
            return syncs;
        }
        for ack in syncs {
            let _ = ack.send(());
        }
    }
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(n: u64) -> ContainerId {
        format!("container_1700000000000_0001_01_{n:06}")
            .parse()
            .unwrap()
    }

    fn running(pid: u32) -> RecordState {
        RecordState::Running {
            pid,
            start_time: 77,
            cgroup: None,
        }
    }

    #[tokio::test]
    async fn records_survive_a_reopen_in_the_order_they_were_made() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/containers.redb");
        let layout = Layout::new("/w");
        let journal = Journal::start(StateStore::open(&path).unwrap(), layout).unwrap();
        let r = Resource::new(512, 1);
        journal.put(cid(1), r, Some("alice"), None, running(10));
        journal.put(cid(2), r, None, None, running(20));
        let stop = StopReason::status(-105);
        journal.put(cid(1), r, Some("alice"), Some(&stop), running(10));
        journal.put(
            cid(1),
            r,
            Some("alice"),
            Some(&stop),
            RecordState::Complete {
                exit_status: -105,
                diagnostics: "stopped".into(),
                acknowledged: false,
            },
        );
        journal.put(cid(3), r, None, None, running(30));
        journal.remove(cid(3));
        journal.synced().await;
        // While open, no second node manager can use it.
        assert!(StateStore::open(&path).is_err());
        journal.close().await;

        let mut records = StateStore::open(&path).unwrap().load().unwrap();
        records.sort_by(|a, b| a.container_id.cmp(&b.container_id));
        assert_eq!(records.len(), 2);
        assert_eq!(
            records[0],
            ContainerRecord {
                container_id: cid(1).to_string(),
                application_id: "application_1700000000000_0001".into(),
                resource: r,
                user: Some("alice".into()),
                working_dir: layout_dir("appcache", 1),
                log_dir: layout_dir("logs", 1),
                stop: Some(stop),
                state: RecordState::Complete {
                    exit_status: -105,
                    diagnostics: "stopped".into(),
                    acknowledged: false
                },
            }
        );
        assert_eq!(records[1].state, running(20));
    }

    fn layout_dir(kind: &str, n: u64) -> PathBuf {
        PathBuf::from(format!(
            "/w/{kind}/application_1700000000000_0001/{}",
            cid(n)
        ))
    }

    #[test]
    fn a_record_of_a_version_that_kept_no_user_still_reads() {
        let old = r#"{"container_id":"container_1700000000000_0001_01_000001",
            "application_id":"application_1700000000000_0001",
            "resource":{"memory_mb":512,"vcores":1},
            "working_dir":"/w/a","log_dir":"/w/l","stop":null,
            "state":"running","pid":10,"start_time":77,"cgroup":null}"#;
        let record: ContainerRecord = serde_json::from_str(old).unwrap();
        assert_eq!((record.user, record.state), (None, running(10)));
    }

    #[test]
    fn an_unreadable_record_is_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(&dir.path().join("s.redb")).unwrap();
        store
            .apply(&[Op::Put("container_x".into(), b"not json".to_vec())])
            .unwrap();
        assert_eq!(store.load().unwrap(), vec![]);
    }

    #[test]
    fn a_store_that_cannot_be_created_names_its_path() {
        let err = StateStore::open(Path::new("/proc/no/such/containers.redb"))
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .starts_with("state store /proc/no/such/containers.redb: "),
            "{err}"
        );
    }
}
