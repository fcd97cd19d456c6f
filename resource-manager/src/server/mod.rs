//! The shell around the core: the secrets and the keys that sign tokens, the state store, the
//! gRPC services (ApplicationClient, ApplicationMaster, ResourceTracker, StagingStore, LogStore)
//! on one port, each behind its guard, the optional web port (served by `crate::web`), and the
//! core task they all talk to. `serve` recovers the state, binds, spawns, and hands back what
//! `ResourceManager` needs to stop them.

pub(crate) mod acl;
mod am_service;
mod client_service;
mod clock;
pub(crate) mod convert;
mod core_task;
mod guards;
pub(crate) mod handle;
mod keys;
mod log_access;
mod log_store;
mod nm_client;
mod persist;
mod polls;
mod reports;
mod secrets;
mod staging;
mod status;
mod tokens;
mod tracker_service;
mod watchers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use spindle_protocol::application_client_server::ApplicationClientServer;
use spindle_protocol::application_master_server::ApplicationMasterServer;
use spindle_protocol::log_store_server::LogStoreServer;
use spindle_protocol::resource_tracker_server::ResourceTrackerServer;
use spindle_protocol::staging_store_server::StagingStoreServer;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;

use crate::web;
use crate::{RmConfig, RmError};

pub use persist::STORE_FILE;
pub use staging::CHUNK_BYTES as STAGING_CHUNK_BYTES;

/// The running servers and the switch that stops them.
pub(crate) struct Serving {
    pub rpc_addr: SocketAddr,
    pub web_addr: Option<SocketAddr>,
    pub cluster_timestamp: u64,
    pub client_secret_file: PathBuf,
    pub daemon_secret_file: PathBuf,
    pub shutdown: watch::Sender<bool>,
    pub tasks: Vec<JoinHandle<()>>,
    /// Resolves once the state store is closed (after the core task ended).
    pub store_closed: oneshot::Receiver<()>,
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<(TcpListener, SocketAddr), RmError> {
    let bind_error = |error: std::io::Error| RmError::Bind { what, addr, error };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    Ok((listener, bound))
}

pub(crate) async fn serve(config: RmConfig) -> Result<Serving, RmError> {
    let staging_dir = config.state_dir.join("staging");
    let staging =
        staging::StagingService::open(staging_dir.clone()).map_err(|error| RmError::StateDir {
            path: staging_dir,
            error,
        })?;
    let logs_dir = config.state_dir.join("app-logs");
    let logs =
        log_store::LogStoreService::open(logs_dir.clone()).map_err(|error| RmError::StateDir {
            path: logs_dir,
            error,
        })?;
    // Before the store is opened: a secret file that must be refused stops the start cleanly.
    let secrets = secrets::Secrets::load(&config)?;
    let rm_user = spindle_security::current_user();
    let acl = Arc::new(acl::Acl::new(&config, &rm_user));
    let clock = clock::Clock::start();
    let recovered = persist::open(&config, &clock, secrets.daemon.clone()).await?;
    let cluster_timestamp = recovered.core.config().cluster_timestamp;
    let keys = recovered
        .keys
        .snapshot(clock.now_ms())
        .map(tokens::KeysHandle::new)
        .ok_or_else(|| RmError::Keys("the state store holds no key to sign with".into()))?;
    let (rpc_listener, rpc_addr) = bind("gRPC", config.bind).await?;
    let web_listener = match config.web_bind {
        Some(addr) => Some(bind("web", addr).await?),
        None => None,
    };

    let (shutdown, stop) = watch::channel(false);
    let start = core_task::Start {
        core: recovered.core,
        store: recovered.persister,
        effects: recovered.effects,
        clock,
        keys: recovered.keys,
        published: keys.clone(),
        user: rm_user,
    };
    let (core, core_join) = core_task::spawn(&config, start, shutdown.clone());
    let (min, max) = (config.minimum_allocation, config.maximum_allocation);

    let client =
        client_service::ClientService::new(core.clone(), min, max, keys.clone(), acl.clone());
    let am = am_service::AmService::new(
        core.clone(),
        min,
        max,
        config.max_allocate_wait(),
        keys.clone(),
    );
    let tracker = tracker_service::TrackerService::new(
        core.clone(),
        config.effective_heartbeat_interval(),
        cluster_timestamp,
        keys.clone(),
    );
    let logs = log_access::GuardedLogStore::new(logs, core.clone(), acl.clone());
    let either = guards::client_or_daemon(&secrets.client, &secrets.daemon);
    let daemon = guards::daemon_only(&secrets.daemon);
    let incoming = TcpListenerStream::new(rpc_listener).map(|stream| {
        let stream = stream?;
        // Long polls and heartbeats are small messages: do not let Nagle hold them back.
        stream.set_nodelay(true)?;
        Ok::<_, std::io::Error>(stream)
    });
    let mut rpc_stop = stop.clone();
    let rpc = tonic::transport::Server::builder()
        .add_service(ApplicationClientServer::with_interceptor(
            client,
            either.clone(),
        ))
        .add_service(ApplicationMasterServer::with_interceptor(
            am,
            guards::AmGuard::new(keys),
        ))
        .add_service(ResourceTrackerServer::with_interceptor(tracker, daemon))
        .add_service(StagingStoreServer::with_interceptor(
            staging,
            either.clone(),
        ))
        .add_service(LogStoreServer::with_interceptor(logs, either))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = rpc_stop.wait_for(|stop| *stop).await;
        });
    let mut tasks = vec![core_join];
    tasks.push(tokio::spawn(async move {
        if let Err(e) = rpc.await {
            tracing::error!(error = %e, "gRPC server failed");
        }
    }));

    let mut web_addr = None;
    if let Some((listener, addr)) = web_listener {
        web_addr = Some(addr);
        let router = web::router(web::WebState {
            core,
            cluster_id: cluster_timestamp,
            started_on: clock.start_ms(),
            minimum: min,
            maximum: max,
            secret: Arc::new(secrets.client.clone()),
            acl,
            anonymous_reads: config.anonymous_reads,
        });
        let mut web_stop = stop;
        tasks.push(tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = web_stop.wait_for(|stop| *stop).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "web server failed");
            }
        }));
    }
    tracing::info!(%rpc_addr, web_addr = ?web_addr, cluster_timestamp,
        client_secret_file = %secrets.client_file.display(),
        daemon_secret_file = %secrets.daemon_file.display(),
        "resource manager started");
    Ok(Serving {
        rpc_addr,
        web_addr,
        cluster_timestamp,
        client_secret_file: secrets.client_file,
        daemon_secret_file: secrets.daemon_file,
        shutdown,
        tasks,
        store_closed: recovered.closed,
    })
}

/// How long `shutdown` lets open connections finish before it cuts them: a hang guard only.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
