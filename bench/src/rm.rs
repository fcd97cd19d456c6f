//! The `rm` scenario: a real resource manager in its own process, loaded over gRPC on loopback
//! by simulated node managers (`sim_node`) and unmanaged application masters (`sim_am`) in this
//! one. Every run starts a fresh RM, registers the nodes and the AMs (not timed), then times the
//! AMs from their first ask until every container has run. The RM's peak resident memory is its
//! VmHWM at the end.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use spindle_app_master::FinalStatus;
use spindle_containers::Resource;
use spindle_security::SecretKind;
use tokio::task::JoinSet;

use crate::cpu::CpuTimes;
use crate::daemon::Daemon;
use crate::report::{Report, RunFigures};
use crate::sim_am::{AmOutcome, SimAm};
use crate::sim_node::SimNodes;
use crate::{stats, unmanaged};

#[derive(clap::Args, Debug, Clone)]
pub struct RmArgs {
    /// Simulated node managers.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub nodes: u32,
    /// Simulated (unmanaged) application masters sharing the containers.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub apps: u32,
    /// Containers to run, in total over all applications.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub containers: u32,
    /// Memory of each node, in MB.
    #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(u64).range(1..))]
    pub node_memory_mb: u64,
    /// Virtual cores of each node.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub node_vcores: u32,
    /// Memory of each container, in MB.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub container_memory_mb: u64,
}

pub async fn run(args: &RmArgs, runs: u32) -> anyhow::Result<Report> {
    // The AMs would wait forever for containers that fit nowhere.
    if args.container_memory_mb > args.node_memory_mb {
        bail!(
            "--container-memory-mb {} does not fit in --node-memory-mb {}",
            args.container_memory_mb,
            args.node_memory_mb
        );
    }
    let mut report = Report::new("rm");
    report.setup("nodes", args.nodes);
    report.setup("node_memory_mb", args.node_memory_mb);
    report.setup("apps", args.apps);
    report.setup("containers", args.containers);
    report.setup("container_memory_mb", args.container_memory_mb);
    for run in 1..=runs {
        let figures = run_once(args)
            .await
            .with_context(|| format!("rm run {run}"))?;
        report.add_run(figures);
    }
    Ok(report)
}

async fn run_once(args: &RmArgs) -> anyhow::Result<RunFigures> {
    let state_dir = tempfile::tempdir().context("creating the RM's state dir")?;
    let rm = Daemon::resource_manager(state_dir.path(), 1024).await?;
    let address = rm.address().to_string();
    let node_capability = Resource::new(args.node_memory_mb, args.node_vcores);
    let daemon = unmanaged::credentials(state_dir.path(), SecretKind::Daemon)?;
    let mut nodes = SimNodes::start(&address, &daemon, args.nodes, node_capability).await?;

    let mut applications = unmanaged::applications(&address, state_dir.path())?;
    let mut ams = Vec::new();
    for i in 0..args.apps {
        let (client, registration) =
            unmanaged::start_am(&address, &mut applications, &format!("rm-bench-{i}")).await?;
        let share = args.containers / args.apps + u32::from(i < args.containers % args.apps);
        ams.push(SimAm {
            client,
            share,
            long_poll: registration.max_allocate_wait,
        });
    }
    let clients: Vec<_> = ams.iter().map(|am| am.client.clone()).collect();

    let capability = Resource::new(args.container_memory_mb, 1);
    let (rm_before, bench_before) = (rm.cpu()?, CpuTimes::of("self")?);
    let started = Instant::now();
    let mut running = JoinSet::new();
    for am in ams {
        running.spawn(am.run(nodes.inboxes(), capability));
    }
    let mut outcomes: Vec<AmOutcome> = Vec::new();
    while !running.is_empty() {
        tokio::select! {
            joined = running.join_next() => {
                if let Some(joined) = joined {
                    outcomes.push(joined.context("a simulated AM's task failed")??);
                }
            }
            failure = nodes.first_failure() => return Err(failure),
        }
    }
    let elapsed = started.elapsed();
    let rm_cpu = rm.cpu()?.since(rm_before).own;
    let bench_cpu = CpuTimes::of("self")?.since(bench_before).own;

    for client in clients {
        client.finish(FinalStatus::Succeeded, "", "").await?;
    }
    let memory = rm.memory()?;
    nodes.stop().await?;
    rm.stop().await?;

    let latencies: Vec<Duration> = outcomes
        .iter()
        .flat_map(|o| o.latencies.iter().copied())
        .collect();
    let calls: u64 = outcomes.iter().map(|o| o.calls).sum();
    let p = |q| stats::percentile(&latencies, q).map_or(0.0, stats::ms);
    let per_container = |d: Duration| stats::ms(d) * 1000.0 / f64::from(args.containers);
    Ok(vec![
        (
            "allocations_per_s",
            stats::per_second(u64::from(args.containers), elapsed),
        ),
        ("allocate_rpc_p50_ms", p(50.0)),
        ("allocate_rpc_p99_ms", p(99.0)),
        ("rm_peak_rss_mb", memory.peak_rss_mb),
        ("elapsed_ms", stats::ms(elapsed)),
        ("allocate_calls", calls as f64),
        ("rm_cpu_us_per_container", per_container(rm_cpu)),
        ("bench_cpu_us_per_container", per_container(bench_cpu)),
    ])
}
