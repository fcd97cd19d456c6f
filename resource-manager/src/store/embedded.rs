//! `EmbeddedStore`: the state store as one `redb` file. Each write is one transaction, committed
//! durably (fsync) before `write` returns. Keys are the ids' numbers (so an application's
//! attempts and containers sit together and can be removed as a range), values are JSON (so a
//! record can gain fields, and a store can be read by eye). The keys that sign tokens have a
//! table per family, by key id.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use spindle_containers::{ApplicationId, AttemptId, ContainerId};

use super::{KeyChange, KeyFamily, StateStore, StoreError, StoredKey};
use crate::core::Record;

/// Bumped when the layout changes in a way an older RM cannot read. Format 2 added the key
/// tables; a format 1 store is upgraded when it is opened (its tables are created, empty).
const FORMAT: u64 = 2;
/// The formats this RM opens (upgrading them to `FORMAT`).
const READABLE: [u64; 2] = [1, FORMAT];

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const APPS: TableDefinition<AppKey, &[u8]> = TableDefinition::new("applications");
const ATTEMPTS: TableDefinition<AttemptKey, &[u8]> = TableDefinition::new("attempts");
const CONTAINERS: TableDefinition<ContainerKey, &[u8]> = TableDefinition::new("containers");
const MASTER_KEYS_NAME: &str = "master_keys";
const NODE_KEY_SEEDS_NAME: &str = "node_key_seeds";
const MASTER_KEYS: TableDefinition<u32, &[u8]> = TableDefinition::new(MASTER_KEYS_NAME);
const NODE_KEY_SEEDS: TableDefinition<u32, &[u8]> = TableDefinition::new(NODE_KEY_SEEDS_NAME);

/// The table of a family of keys, and its name.
fn key_table(family: KeyFamily) -> (TableDefinition<'static, u32, &'static [u8]>, &'static str) {
    match family {
        KeyFamily::Master => (MASTER_KEYS, MASTER_KEYS_NAME),
        KeyFamily::Node => (NODE_KEY_SEEDS, NODE_KEY_SEEDS_NAME),
    }
}

/// (cluster timestamp, sequence)
type AppKey = (u64, u32);
/// (cluster timestamp, sequence, attempt)
type AttemptKey = (u64, u32, u32);
/// (cluster timestamp, sequence, attempt, epoch, id)
type ContainerKey = (u64, u32, u32, u32, u64);

const FORMAT_KEY: &str = "format";
const CLUSTER_TIMESTAMP_KEY: &str = "cluster_timestamp";
const EPOCH_KEY: &str = "epoch";
const LAST_APP_SEQ_KEY: &str = "last_app_seq";

fn app_key(id: ApplicationId) -> AppKey {
    (id.cluster_timestamp, id.sequence)
}

fn attempt_key(id: AttemptId) -> AttemptKey {
    let (ts, seq) = app_key(id.application);
    (ts, seq, id.attempt)
}

fn container_key(id: ContainerId) -> ContainerKey {
    let (ts, seq, attempt) = attempt_key(id.attempt);
    (ts, seq, attempt, id.epoch, id.id)
}

fn io(operation: &'static str) -> impl Fn(redb::Error) -> StoreError {
    move |error| StoreError::Io {
        operation,
        error: error.to_string(),
    }
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Io {
        operation: "encoding",
        error: e.to_string(),
    })
}

fn decode<T: serde::de::DeserializeOwned>(
    table: &'static str,
    key: impl std::fmt::Debug,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        table,
        key: format!("{key:?}"),
        error: e.to_string(),
    })
}

pub struct EmbeddedStore {
    db: Database,
}

impl EmbeddedStore {
    /// Opens the store at `path`, creating it (and its tables) if it does not exist. Fails if
    /// another process (or another RM in this one) has it open.
    pub fn open(path: &Path) -> Result<EmbeddedStore, StoreError> {
        let open_error = |error: String| StoreError::Open {
            path: path.display().to_string(),
            error,
        };
        let db = Database::create(path).map_err(|e| open_error(e.to_string()))?;
        let store = EmbeddedStore { db };
        let found = store.init().map_err(|e| open_error(e.to_string()))?;
        if !READABLE.contains(&found) {
            return Err(StoreError::Format {
                path: path.display().to_string(),
                found,
                supported: FORMAT,
            });
        }
        Ok(store)
    }

    /// Creates the tables a read expects, records the format of a new store and upgrades a
    /// readable older one; returns the format the store had (nothing is changed in a store of
    /// a format this RM cannot read).
    fn init(&self) -> Result<u64, redb::Error> {
        let txn = self.db.begin_write()?;
        let found = {
            let mut meta = txn.open_table(META)?;
            let found = meta.get(FORMAT_KEY)?.map(|v| v.value());
            match found {
                Some(format) if !READABLE.contains(&format) => return Ok(format),
                Some(format) if format == FORMAT => format,
                found => {
                    meta.insert(FORMAT_KEY, FORMAT)?;
                    found.unwrap_or(FORMAT)
                }
            }
        };
        txn.open_table(APPS)?;
        txn.open_table(ATTEMPTS)?;
        txn.open_table(CONTAINERS)?;
        txn.open_table(MASTER_KEYS)?;
        txn.open_table(NODE_KEY_SEEDS)?;
        txn.commit()?;
        Ok(found)
    }

    fn apply(txn: &redb::WriteTransaction, record: &Record) -> Result<(), StoreError> {
        let failed = io("write");
        let put_meta = |key: &str, value: u64| -> Result<(), redb::Error> {
            txn.open_table(META)?.insert(key, value)?;
            Ok(())
        };
        match record {
            Record::Cluster {
                cluster_timestamp,
                epoch,
            } => {
                put_meta(CLUSTER_TIMESTAMP_KEY, *cluster_timestamp).map_err(&failed)?;
                put_meta(EPOCH_KEY, u64::from(*epoch)).map_err(&failed)?;
            }
            Record::AppSequence(seq) => {
                put_meta(LAST_APP_SEQ_KEY, u64::from(*seq)).map_err(&failed)?;
            }
            Record::App(app) => {
                let value = encode(app)?;
                let insert = || -> Result<(), redb::Error> {
                    txn.open_table(APPS)?
                        .insert(app_key(app.id), value.as_slice())?;
                    Ok(())
                };
                insert().map_err(&failed)?;
            }
            Record::Attempt(attempt) => {
                let value = encode(attempt)?;
                let insert = || -> Result<(), redb::Error> {
                    txn.open_table(ATTEMPTS)?
                        .insert(attempt_key(attempt.id), value.as_slice())?;
                    Ok(())
                };
                insert().map_err(&failed)?;
            }
            Record::Container(container) => {
                let value = encode(container)?;
                let insert = || -> Result<(), redb::Error> {
                    txn.open_table(CONTAINERS)?
                        .insert(container_key(container.id), value.as_slice())?;
                    Ok(())
                };
                insert().map_err(&failed)?;
            }
            Record::ContainerEnded(id) => {
                let remove = || -> Result<(), redb::Error> {
                    txn.open_table(CONTAINERS)?.remove(container_key(*id))?;
                    Ok(())
                };
                remove().map_err(&failed)?;
            }
            Record::AppRemoved(id) => {
                let (ts, seq) = app_key(*id);
                let remove = || -> Result<(), redb::Error> {
                    txn.open_table(APPS)?.remove((ts, seq))?;
                    txn.open_table(ATTEMPTS)?
                        .retain_in((ts, seq, 0)..=(ts, seq, u32::MAX), |_, _| false)?;
                    txn.open_table(CONTAINERS)?.retain_in(
                        (ts, seq, 0, 0, 0)..=(ts, seq, u32::MAX, u32::MAX, u64::MAX),
                        |_, _| false,
                    )?;
                    Ok(())
                };
                remove().map_err(&failed)?;
            }
        }
        Ok(())
    }
}

impl StateStore for EmbeddedStore {
    fn load(&self) -> Result<Vec<Record>, StoreError> {
        let failed = io("read");
        let txn = self.db.begin_read().map_err(|e| failed(e.into()))?;
        let meta = txn.open_table(META).map_err(|e| failed(e.into()))?;
        let get = |key: &str| -> Result<Option<u64>, StoreError> {
            Ok(meta
                .get(key)
                .map_err(|e| failed(e.into()))?
                .map(|v| v.value()))
        };
        let mut records = Vec::new();
        if let (Some(cluster_timestamp), Some(epoch)) =
            (get(CLUSTER_TIMESTAMP_KEY)?, get(EPOCH_KEY)?)
        {
            records.push(Record::Cluster {
                cluster_timestamp,
                epoch: u32::try_from(epoch).unwrap_or(u32::MAX),
            });
        }
        if let Some(seq) = get(LAST_APP_SEQ_KEY)? {
            records.push(Record::AppSequence(u32::try_from(seq).unwrap_or(u32::MAX)));
        }
        let apps = txn.open_table(APPS).map_err(|e| failed(e.into()))?;
        for entry in apps.iter().map_err(|e| failed(e.into()))? {
            let (key, value) = entry.map_err(|e| failed(e.into()))?;
            records.push(Record::App(decode(
                "applications",
                key.value(),
                value.value(),
            )?));
        }
        let attempts = txn.open_table(ATTEMPTS).map_err(|e| failed(e.into()))?;
        for entry in attempts.iter().map_err(|e| failed(e.into()))? {
            let (key, value) = entry.map_err(|e| failed(e.into()))?;
            records.push(Record::Attempt(decode(
                "attempts",
                key.value(),
                value.value(),
            )?));
        }
        let containers = txn.open_table(CONTAINERS).map_err(|e| failed(e.into()))?;
        for entry in containers.iter().map_err(|e| failed(e.into()))? {
            let (key, value) = entry.map_err(|e| failed(e.into()))?;
            records.push(Record::Container(decode(
                "containers",
                key.value(),
                value.value(),
            )?));
        }
        Ok(records)
    }

    fn write(&mut self, records: &[Record]) -> Result<(), StoreError> {
        let failed = io("write");
        let txn = self.db.begin_write().map_err(|e| failed(e.into()))?;
        for record in records {
            // On error the transaction is dropped, which aborts it: nothing is applied.
            Self::apply(&txn, record)?;
        }
        txn.commit().map_err(|e| failed(e.into()))
    }

    fn load_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        let failed = io("read");
        let txn = self.db.begin_read().map_err(|e| failed(e.into()))?;
        let mut keys = Vec::new();
        for family in [KeyFamily::Master, KeyFamily::Node] {
            let (definition, name) = key_table(family);
            let table = txn.open_table(definition).map_err(|e| failed(e.into()))?;
            for entry in table.iter().map_err(|e| failed(e.into()))? {
                let (id, value) = entry.map_err(|e| failed(e.into()))?;
                let mut key: StoredKey = decode(name, id.value(), value.value())?;
                // The table says what the key is, whatever its value claims.
                key.family = family;
                key.id = id.value();
                keys.push(key);
            }
        }
        Ok(keys)
    }

    fn write_keys(&mut self, changes: &[KeyChange]) -> Result<(), StoreError> {
        let failed = io("write");
        let txn = self.db.begin_write().map_err(|e| failed(e.into()))?;
        for change in changes {
            let applied = match change {
                KeyChange::Put(key) => {
                    let value = encode(key)?;
                    let insert = || -> Result<(), redb::Error> {
                        txn.open_table(key_table(key.family).0)?
                            .insert(key.id, value.as_slice())?;
                        Ok(())
                    };
                    insert()
                }
                KeyChange::Remove { family, id } => {
                    let remove = || -> Result<(), redb::Error> {
                        txn.open_table(key_table(*family).0)?.remove(*id)?;
                        Ok(())
                    };
                    remove()
                }
            };
            // On error the transaction is dropped, which aborts it: nothing is applied.
            applied.map_err(&failed)?;
        }
        txn.commit().map_err(|e| failed(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use spindle_containers::{LaunchContext, Resource};

    use super::*;
    use crate::core::{
        AppRecord, AppState, AttemptRecord, AttemptState, ContainerRecord, FinalStatus, Image,
    };

    const TS: u64 = 1_700_000_000_000;

    fn app(seq: u32, state: AppState) -> AppRecord {
        AppRecord {
            id: ApplicationId::new(TS, seq),
            name: format!("app {seq}"),
            queue: "default".into(),
            user: "tester".into(),
            application_type: "SPINDLE".into(),
            tags: vec!["nightly".into()],
            submit_ms: 10,
            order: u64::from(seq),
            am_resource: Resource::new(1024, 1),
            am_launch: LaunchContext {
                command: vec!["./am".into(), "it's".into()],
                ..Default::default()
            },
            max_attempts: 2,
            unmanaged: false,
            state,
            final_status: FinalStatus::Undefined,
            diagnostics: String::new(),
            finish_ms: None,
        }
    }

    fn attempt(seq: u32, n: u32) -> AttemptRecord {
        AttemptRecord {
            id: AttemptId::new(ApplicationId::new(TS, seq), n),
            state: AttemptState::Running,
            am_container: None,
            host: "h".into(),
            rpc_port: 1,
            tracking_url: String::new(),
            diagnostics: String::new(),
            start_ms: 11,
            finish_ms: None,
        }
    }

    fn container(seq: u32, epoch: u32, n: u64) -> ContainerRecord {
        ContainerRecord {
            id: ContainerId::new(AttemptId::new(ApplicationId::new(TS, seq), 1), epoch, n),
            node: "n1:8041".parse().unwrap(),
            resource: Resource::new(2048, 2),
            priority: 1,
            is_am: n == 1,
            allocated_ms: 12,
        }
    }

    #[test]
    fn what_is_written_is_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rm-state.redb");
        let mut written = Image::default();
        {
            let mut store = EmbeddedStore::open(&path).unwrap();
            assert!(store.load().unwrap().is_empty(), "a new store is empty");
            let mut finished = app(1, AppState::Finished);
            finished.final_status = FinalStatus::Succeeded;
            finished.diagnostics = "done".into();
            let batches = vec![
                vec![
                    Record::Cluster {
                        cluster_timestamp: TS,
                        epoch: 0,
                    },
                    Record::AppSequence(3),
                ],
                vec![
                    Record::App(app(1, AppState::Running)),
                    Record::Attempt(attempt(1, 1)),
                    Record::Container(container(1, 0, 1)),
                    Record::Container(container(1, 0, 2)),
                    Record::App(app(2, AppState::Accepted)),
                    Record::Attempt(attempt(2, 1)),
                    Record::Attempt(attempt(2, 2)),
                    Record::Container(container(2, 0, 1)),
                    Record::App(app(3, AppState::Accepted)),
                ],
                vec![
                    Record::ContainerEnded(container(1, 0, 2).id),
                    Record::App(finished),
                    Record::AppRemoved(ApplicationId::new(TS, 2)),
                    Record::Container(container(3, 1, 5)),
                    Record::Cluster {
                        cluster_timestamp: TS,
                        epoch: 1,
                    },
                ],
            ];
            for batch in batches {
                store.write(&batch).unwrap();
                batch.into_iter().for_each(|r| written.apply(r));
            }
        }
        let store = EmbeddedStore::open(&path).unwrap();
        let read = Image::from_records(store.load().unwrap());
        assert_eq!(read, written);
        assert_eq!(
            read.apps.len(),
            2,
            "application 2 is gone, with its attempts and container"
        );
        assert_eq!(read.attempts.len(), 1);
        assert_eq!(read.containers.len(), 2);
        assert_eq!(read.apps[&ApplicationId::new(TS, 1)].diagnostics, "done");
        assert_eq!(read.cluster, Some((TS, 1)));
    }

    #[test]
    fn a_store_is_used_by_one_resource_manager_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rm-state.redb");
        let _first = EmbeddedStore::open(&path).unwrap();
        let err = EmbeddedStore::open(&path).err().expect("already open");
        assert!(
            err.to_string().starts_with("cannot open the state store"),
            "{err}"
        );
    }

    #[test]
    fn an_unreadable_entry_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rm-state.redb");
        {
            let store = EmbeddedStore::open(&path).unwrap();
            let txn = store.db.begin_write().unwrap();
            txn.open_table(APPS)
                .unwrap()
                .insert((TS, 7), b"{not json".as_slice())
                .unwrap();
            txn.commit().unwrap();
        }
        let err = EmbeddedStore::open(&path).unwrap().load().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("state store entry applications/(1700000000000, 7) is unreadable"),
            "{err}"
        );
    }

    fn stored_key(family: KeyFamily, id: u32, fill: u8) -> StoredKey {
        StoredKey {
            family,
            id,
            material: [fill; crate::store::KEY_MATERIAL_BYTES],
            created_ms: 100 * u64::from(id),
            active_from_ms: 100 * u64::from(id) + 5,
            retired_ms: None,
        }
    }

    #[test]
    fn keys_are_kept_per_family_and_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rm-state.redb");
        let mut retired = stored_key(KeyFamily::Master, 1, 1);
        retired.retired_ms = Some(250);
        {
            let mut store = EmbeddedStore::open(&path).unwrap();
            assert!(store.load_keys().unwrap().is_empty());
            store
                .write_keys(&[
                    KeyChange::Put(stored_key(KeyFamily::Master, 1, 1)),
                    KeyChange::Put(stored_key(KeyFamily::Node, 1, 2)),
                    KeyChange::Put(stored_key(KeyFamily::Node, 2, 3)),
                ])
                .unwrap();
            store
                .write_keys(&[
                    KeyChange::Put(stored_key(KeyFamily::Master, 2, 4)),
                    KeyChange::Put(retired.clone()),
                    KeyChange::Remove {
                        family: KeyFamily::Node,
                        id: 1,
                    },
                ])
                .unwrap();
        }
        let store = EmbeddedStore::open(&path).unwrap();
        assert_eq!(
            store.load_keys().unwrap(),
            vec![
                retired,
                stored_key(KeyFamily::Master, 2, 4),
                stored_key(KeyFamily::Node, 2, 3),
            ]
        );
        assert!(store.load().unwrap().is_empty(), "keys are not records");
    }

    #[test]
    fn a_format_1_store_is_upgraded_and_keeps_its_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rm-state.redb");
        {
            // A store as the RM of format 1 left it: no key tables.
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(META).unwrap().insert(FORMAT_KEY, 1).unwrap();
            txn.open_table(APPS)
                .unwrap()
                .insert(
                    app_key(ApplicationId::new(TS, 1)),
                    encode(&app(1, AppState::Accepted)).unwrap().as_slice(),
                )
                .unwrap();
            txn.open_table(ATTEMPTS).unwrap();
            txn.open_table(CONTAINERS).unwrap();
            txn.commit().unwrap();
        }
        let mut store = EmbeddedStore::open(&path).unwrap();
        assert_eq!(store.load().unwrap().len(), 1);
        assert!(store.load_keys().unwrap().is_empty());
        store
            .write_keys(&[KeyChange::Put(stored_key(KeyFamily::Master, 1, 1))])
            .unwrap();
        let txn = store.db.begin_read().unwrap();
        let format = txn.open_table(META).unwrap().get(FORMAT_KEY).unwrap();
        assert_eq!(format.map(|v| v.value()), Some(FORMAT));
    }

    #[test]
    fn a_store_of_another_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rm-state.redb");
        {
            let store = EmbeddedStore::open(&path).unwrap();
            let txn = store.db.begin_write().unwrap();
            txn.open_table(META)
                .unwrap()
                .insert(FORMAT_KEY, 99)
                .unwrap();
            txn.commit().unwrap();
        }
        let err = EmbeddedStore::open(&path).err().expect("format 99");
        assert!(
            err.to_string()
                .ends_with("has format 99; this resource manager reads format 2"),
            "{err}"
        );
    }
}
