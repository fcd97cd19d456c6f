//! The resource manager: the cluster's capacity, its applications, and who runs where.
//!
//! `ResourceManager::start` recovers what an earlier run on the same state directory kept, binds
//! the gRPC port (and the web port, if configured) and serves until `shutdown`. The rules live in
//! [`core`], a plain value with no I/O; [`store`] keeps what must survive a restart; `server` is
//! the shell of services and the one task that owns the core; `web` is the HTTP port (REST API,
//! UI, metrics).

pub mod config;
pub mod core;
mod server;
pub mod store;
mod web;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use spindle_security::{SecretError, SecretKind};

pub use config::{ANYONE, Placement, QueueAcl, RmConfig};
pub use server::{STAGING_CHUNK_BYTES, STORE_FILE};

/// The client secret's file in the state directory, when none is configured.
pub const SECRET_FILE: &str = "client.secret";
/// The daemon secret's file in the state directory, when none is configured.
pub const DAEMON_SECRET_FILE: &str = "daemon.secret";

#[derive(Debug, thiserror::Error)]
pub enum RmError {
    #[error("cannot bind the {what} address {addr}: {error}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot create the state directory {}: {error}", path.display())]
    StateDir {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    StateStore(#[from] store::StoreError),
    #[error("cannot use the {kind}: {error}")]
    Secret {
        kind: SecretKind,
        error: SecretError,
    },
    #[error("cannot make the keys that sign tokens: {0}")]
    Keys(String),
    #[error("invalid resource manager configuration: {field} {problem}")]
    Config {
        field: &'static str,
        problem: String,
    },
}

/// A running resource manager.
pub struct ResourceManager {
    serving: server::Serving,
}

impl ResourceManager {
    /// Binds the gRPC (and web, if configured) ports, starts serving, returns at once.
    pub async fn start(config: RmConfig) -> Result<ResourceManager, RmError> {
        validate(&config)?;
        Ok(ResourceManager {
            serving: server::serve(config).await?,
        })
    }

    /// The bound gRPC address (port 0 resolved).
    pub fn rpc_addr(&self) -> SocketAddr {
        self.serving.rpc_addr
    }

    pub fn web_addr(&self) -> Option<SocketAddr> {
        self.serving.web_addr
    }

    /// The first start's time on this state directory, in ms since the epoch: application ids
    /// carry it, across restarts.
    pub fn cluster_timestamp(&self) -> u64 {
        self.serving.cluster_timestamp
    }

    /// The file of the client secret clients prove (configured, or generated in the state dir).
    pub fn client_secret_file(&self) -> &Path {
        &self.serving.client_secret_file
    }

    /// The file of the daemon secret NMs prove (configured, or generated in the state dir).
    pub fn daemon_secret_file(&self) -> &Path {
        &self.serving.daemon_secret_file
    }

    /// Stops serving and waits until every task has ended and the state store is closed.
    pub async fn shutdown(self) {
        let server::Serving {
            shutdown,
            tasks,
            store_closed,
            ..
        } = self.serving;
        let _ = shutdown.send(true);
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(server::SHUTDOWN_GRACE, task)
                .await
                .is_err()
            {
                tracing::warn!("a server task did not stop in time; aborting it");
                abort.abort();
            }
        }
        wait_closed(store_closed).await;
        tracing::info!("resource manager stopped");
    }

    /// Stops at once, as a crash would: every task is cut off where it is, no open call is
    /// answered, and nothing more is written (a store write under way completes or not, as one
    /// transaction). Returns once the state store is closed, so that a new resource manager can
    /// start on the same state directory: for tests of recovery.
    pub async fn abort(self) {
        let server::Serving {
            tasks,
            store_closed,
            ..
        } = self.serving;
        for task in &tasks {
            task.abort();
        }
        for task in tasks {
            let _ = task.await;
        }
        wait_closed(store_closed).await;
        tracing::warn!("resource manager aborted");
    }
}

async fn wait_closed(store_closed: tokio::sync::oneshot::Receiver<()>) {
    if tokio::time::timeout(server::SHUTDOWN_GRACE, store_closed)
        .await
        .is_err()
    {
        tracing::warn!("the state store did not close in time");
    }
}

/// Refuses settings the RM cannot work with, naming the field and what is allowed.
fn validate(c: &RmConfig) -> Result<(), RmError> {
    let bad = |field, problem: String| Err(RmError::Config { field, problem });
    let (min, max) = (c.minimum_allocation, c.maximum_allocation);
    if min.memory_mb == 0 || min.vcores == 0 {
        return bad(
            "minimum-allocation",
            format!("{min} must be at least 1 MB and 1 vcore"),
        );
    }
    if !min.fits_in(&max) {
        return bad(
            "maximum-allocation",
            format!("{max} is below the minimum allocation {min}"),
        );
    }
    for (field, value) in [
        ("nm-liveness-expiry", c.nm_liveness_expiry),
        ("am-liveness-expiry", c.am_liveness_expiry),
        ("nm-heartbeat-interval", c.nm_heartbeat_interval),
        ("key-roll-interval", c.key_roll_interval),
        ("container-token-expiry", c.container_token_expiry),
    ] {
        if value.is_zero() {
            return bad(field, "must be longer than 0".into());
        }
    }
    if c.state_dir.as_os_str().is_empty() {
        return bad("state-dir", "must name a directory".into());
    }
    if c.default_max_attempts == 0 || c.default_max_attempts > c.max_attempts_limit {
        return bad(
            "default-max-attempts",
            format!(
                "{} must be between 1 and max-attempts-limit ({})",
                c.default_max_attempts, c.max_attempts_limit
            ),
        );
    }
    for (i, admin) in c.admins.iter().enumerate() {
        if let Err(e) = spindle_security::validate_user(admin) {
            return bad("admins", format!("[{i}]: {e}"));
        }
    }
    for (queue, acl) in &c.queue_acls {
        if queue.is_empty() {
            return bad("queue-acls", "names a queue with an empty name".into());
        }
        for (i, user) in acl.submit.iter().enumerate() {
            if user != config::ANYONE
                && let Err(e) = spindle_security::validate_user(user)
            {
                return bad(
                    "queue-acls",
                    format!(
                        "{queue}.submit[{i}]: {e}, or \"{}\" for anyone",
                        config::ANYONE
                    ),
                );
            }
        }
    }
    Ok(())
}
