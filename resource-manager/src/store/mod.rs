//! The state store: where the RM keeps what must survive its restart. The core emits records
//! (`Effect::Persist`); the server writes them here, a batch at a time, before it answers the
//! calls that caused them; at start it loads them back for `Core::recover`.
//!
//! `StateStore` is the seam for other kinds of store; the default, `EmbeddedStore`, is a `redb`
//! file under the RM's state directory. Each kind of record has its own table; the keys that
//! sign tokens (`keys`) have tables of their own beside them.

mod embedded;
mod keys;

pub use embedded::EmbeddedStore;
pub use keys::{KEY_MATERIAL_BYTES, KeyChange, KeyFamily, StoredKey};

use crate::core::Record;

/// Durable storage of the core's records. Calls block (disk I/O): the server makes them off its
/// async threads.
pub trait StateStore: Send + 'static {
    /// Everything stored, as records that `Core::recover` rebuilds the state from.
    fn load(&self) -> Result<Vec<Record>, StoreError>;

    /// Applies `records` in order, atomically and durably: once this returns `Ok`, all of them
    /// survive a crash of the process or the machine; if it fails, none was applied.
    fn write(&mut self, records: &[Record]) -> Result<(), StoreError>;

    /// Every key kept, of both families.
    fn load_keys(&self) -> Result<Vec<StoredKey>, StoreError>;

    /// Applies key changes, atomically and durably, as `write` does records.
    fn write_keys(&mut self, changes: &[KeyChange]) -> Result<(), StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the state store {path}: {error}")]
    Open { path: String, error: String },
    #[error(
        "the state store {path} has format {found}; this resource manager reads format {supported}"
    )]
    Format {
        path: String,
        found: u64,
        supported: u64,
    },
    #[error("state store {operation} failed: {error}")]
    Io {
        operation: &'static str,
        error: String,
    },
    #[error("state store entry {table}/{key} is unreadable: {error}")]
    Corrupt {
        table: &'static str,
        key: String,
        error: String,
    },
    #[error("the state store is closed: an earlier write did not come back")]
    Closed,
}
