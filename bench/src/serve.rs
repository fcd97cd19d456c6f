//! The hidden daemon roles of this binary: `serve-rm` runs a `ResourceManager`, `serve-nm` a
//! `NodeManager`, each through the same start API the `spindle` commands use. Each prints
//! `ready <address>` on stdout once it serves and shuts down cleanly when stdin closes (see
//! `daemon`, the other side).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use spindle_containers::Resource;
use spindle_node_manager::{NmConfig, NodeManager};
use spindle_resource_manager::{ResourceManager, RmConfig};

use crate::daemon::READY;

#[derive(clap::Args, Debug, Clone)]
pub struct ServeRmArgs {
    #[arg(long)]
    pub bind: SocketAddr,
    #[arg(long)]
    pub state_dir: PathBuf,
    /// The minimum allocation's memory; requests are rounded up to a multiple of it.
    #[arg(long, default_value_t = 1024)]
    pub min_memory_mb: u64,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ServeNmArgs {
    #[arg(long)]
    pub rm: String,
    /// The cluster's daemon secret (the RM generates it in its state dir).
    #[arg(long)]
    pub daemon_secret_file: PathBuf,
    #[arg(long)]
    pub bind: SocketAddr,
    #[arg(long)]
    pub work_dir: PathBuf,
    #[arg(long)]
    pub memory_mb: u64,
    #[arg(long)]
    pub vcores: u32,
}

pub async fn resource_manager(args: ServeRmArgs) -> anyhow::Result<()> {
    let config = RmConfig {
        bind: args.bind,
        web_bind: None,
        state_dir: args.state_dir,
        minimum_allocation: Resource::new(args.min_memory_mb, 1),
        ..RmConfig::default()
    };
    let rm = ResourceManager::start(config)
        .await
        .context("starting the resource manager")?;
    announce(&rm.rpc_addr().to_string())?;
    until_stdin_closes().await;
    rm.shutdown().await;
    Ok(())
}

pub async fn node_manager(args: ServeNmArgs) -> anyhow::Result<()> {
    let config = NmConfig {
        rm: args.rm,
        bind: args.bind,
        work_dir: args.work_dir,
        memory_mb: Some(args.memory_mb),
        vcores: Some(args.vcores),
        hostname: Some("bench-nm".into()),
        daemon_secret_file: Some(args.daemon_secret_file),
        ..NmConfig::default()
    };
    let nm = NodeManager::start(config)
        .await
        .context("starting the node manager")?;
    announce(nm.node_id().as_str())?;
    until_stdin_closes().await;
    nm.shutdown().await;
    Ok(())
}

fn announce(address: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{READY} {address}")?;
    stdout
        .flush()
        .context("telling the bench where this daemon serves")
}

/// Returns when the bench closes this process's stdin (or goes away, which closes it too).
async fn until_stdin_closes() {
    // Reading stdin blocks; a blocking thread does it so the runtime's workers stay free.
    let reader = tokio::task::spawn_blocking(|| {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 64];
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    });
    let _ = reader.await;
}
