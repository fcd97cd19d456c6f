//! The state store as the server uses it. At start, `open` loads the store, recovers the core
//! and the key book from it and records the new start (and any key made), all before anything
//! is served. Then the core task writes each batch of records and key changes through
//! `Persister`, on a blocking thread, and answers the calls of the batch only once the write is
//! done.

use std::path::PathBuf;

use spindle_security::Secret;
use tokio::sync::oneshot;

use crate::RmError;
use crate::config::RmConfig;
use crate::core::{Core, CoreConfig, Effect, Record};
use crate::store::{EmbeddedStore, KeyChange, StateStore, StoreError};

use super::clock::Clock;
use super::keys::{KeyBook, KeySettings, os_random};

/// The store's file in the state directory.
pub const STORE_FILE: &str = "rm-state.redb";

/// The store, with a sender that is dropped only when the store is: whoever waits on its
/// receiver learns that the store is closed (so that another RM may open it).
struct Held {
    store: Box<dyn StateStore>,
    _closed: oneshot::Sender<()>,
}

pub struct Persister {
    held: Option<Held>,
}

impl Persister {
    /// Writes the key changes, then `records` in one transaction; returns once both are
    /// durable (keys first: a token signed with a new key may leave with the records' answers).
    pub async fn write(
        &mut self,
        records: Vec<Record>,
        keys: Vec<KeyChange>,
    ) -> Result<(), StoreError> {
        let mut held = self.held.take().ok_or(StoreError::Closed)?;
        let written = tokio::task::spawn_blocking(move || {
            let mut result = Ok(());
            if !keys.is_empty() {
                result = held.store.write_keys(&keys);
            }
            if result.is_ok() && !records.is_empty() {
                result = held.store.write(&records);
            }
            (held, result)
        })
        .await;
        match written {
            Ok((held, result)) => {
                self.held = Some(held);
                result
            }
            Err(e) => Err(StoreError::Io {
                operation: "write",
                error: e.to_string(),
            }),
        }
    }
}

/// What `open` hands to the server.
pub struct Recovered {
    pub core: Core,
    pub persister: Persister,
    /// Resolves when the store is closed.
    pub closed: oneshot::Receiver<()>,
    /// What recovery asks for besides records (those are written already).
    pub effects: Vec<Effect>,
    /// The keys, brought up to date and written.
    pub keys: KeyBook,
}

/// Opens the store under the state directory, recovers the core and the keys from it, and
/// records this start (its epoch, and keys made or rolled while the RM was down) before
/// returning.
pub async fn open(config: &RmConfig, clock: &Clock, daemon: Secret) -> Result<Recovered, RmError> {
    let dir = config.state_dir.clone();
    let core_config = CoreConfig::new(config, clock.start_ms());
    let settings = KeySettings::new(config);
    let now = clock.now_ms();
    let opened = tokio::task::spawn_blocking(move || {
        let (mut store, core, effects) = recover(dir, core_config, now)?;
        let mut keys = KeyBook::recover(settings, daemon, store.load_keys()?);
        let changes = keys
            .advance(now, &mut os_random)
            .map_err(|e| RmError::Keys(format!("reading the kernel's random source: {e}")))?;
        store.write_keys(&changes)?;
        Ok::<_, RmError>((store, core, effects, keys))
    })
    .await;
    let (store, core, effects, keys) = opened.map_err(|e| StoreError::Io {
        operation: "recovery",
        error: e.to_string(),
    })??;
    let (closed_tx, closed) = oneshot::channel();
    Ok(Recovered {
        core,
        persister: Persister {
            held: Some(Held {
                store,
                _closed: closed_tx,
            }),
        },
        closed,
        effects,
        keys,
    })
}

type Opened = (Box<dyn StateStore>, Core, Vec<Effect>);

fn recover(dir: PathBuf, config: CoreConfig, now: u64) -> Result<Opened, RmError> {
    std::fs::create_dir_all(&dir).map_err(|error| RmError::StateDir {
        path: dir.clone(),
        error,
    })?;
    let mut store = EmbeddedStore::open(&dir.join(STORE_FILE))?;
    let records = store.load()?;
    let (core, effects) = Core::recover(config, now, records);
    let mut records = Vec::new();
    let mut rest = Vec::new();
    for effect in effects {
        match effect {
            Effect::Persist(record) => records.push(record),
            other => rest.push(other),
        }
    }
    store.write(&records)?;
    Ok((Box::new(store), core, rest))
}
