//! `spindle local-cluster`: the embedded cluster (an RM and N node managers in this process,
//! on loopback, temporary dirs) run in the foreground as a development cluster. It prints the
//! `export` lines of its secrets and where it listens, like the daemons, and runs until SIGINT
//! or SIGTERM, then stops every container and removes its dirs.

use std::process::ExitCode;

use anyhow::Context as _;
use spindle_security::SecretKind;

use super::args;
use super::daemons::{StopSignals, announce, announce_exports};
use crate::config::SpindleConfig;
use crate::local_cluster::LocalCluster;

#[derive(Debug, clap::Args)]
pub struct LocalClusterArgs {
    /// How many node managers.
    #[arg(long, default_value_t = 2, value_name = "N", value_parser = nodes)]
    pub nodes: usize,
    /// Virtual cores of each node.
    #[arg(long, default_value = "2", value_name = "N", value_parser = args::vcores)]
    pub vcores: u32,
    /// Memory of each node: 2048, 2g.
    #[arg(long, default_value = "2048", value_name = "MB", value_parser = args::memory_mb)]
    pub memory_mb: u64,
}

fn nodes(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "invalid number of nodes {s:?}: expected a whole number of at least 1"
        )),
    }
}

pub async fn run(args: LocalClusterArgs, _config: SpindleConfig) -> anyhow::Result<ExitCode> {
    let mut stop = StopSignals::install()?;
    let cluster = LocalCluster::start(args.nodes, args.vcores, args.memory_mb)
        .await
        .context("starting the local cluster")?;
    announce_exports(&[
        (SecretKind::Client, cluster.client_secret_file()),
        (SecretKind::Daemon, cluster.daemon_secret_file()),
    ]);
    let web = cluster
        .web_addr()
        .map_or_else(|| "none".to_string(), |a| a.to_string());
    let mut lines = vec![
        ("rpc-address", cluster.rm_addr().to_string()),
        ("web-address", web),
    ];
    lines.extend(
        cluster
            .node_ids()
            .into_iter()
            .map(|id| ("node-id", id.to_string())),
    );
    lines.push(("master", format!("spindle://{}", cluster.rm_addr())));
    announce(&lines);
    let signal = stop.recv().await;
    tracing::info!(%signal, "stopping the local cluster");
    cluster.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
