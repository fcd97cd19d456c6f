//! The resource manager: the cluster's capacity, its applications, and who runs where.
//!
//! `ResourceManager::start` binds the gRPC port (and the web port, if configured) and serves
//! until `shutdown`. The rules live in [`core`], a plain value with no I/O; [`server`] is the
//! shell of services and the one task that owns the core.

pub mod config;
pub mod core;
mod server;
pub mod store;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use config::{Placement, RmConfig};
pub use server::STAGING_CHUNK_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum RmError {
    #[error("cannot bind the {what} address {addr}: {error}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot create the staging directory {}: {error}", path.display())]
    StateDir {
        path: PathBuf,
        error: std::io::Error,
    },
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

    /// The RM's start time in ms since the epoch; application ids carry it.
    pub fn cluster_timestamp(&self) -> u64 {
        self.serving.cluster_timestamp
    }

    /// Stops serving and waits until every task has ended.
    pub async fn shutdown(self) {
        let server::Serving {
            shutdown, tasks, ..
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
        tracing::info!("resource manager stopped");
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
    ] {
        if value.is_zero() {
            return bad(field, "must be longer than 0".into());
        }
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
    Ok(())
}
