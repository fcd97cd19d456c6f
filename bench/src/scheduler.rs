//! The `scheduler` scenario: the RM's pure `Core`, with no network and no tasks, driven the way
//! the server drives it. Every application is an unmanaged AM that asks for its share of the
//! containers in `waves` equal asks, one per round. A round is what a busy cluster does between
//! two AM heartbeats: every AM makes one Allocate call (its next ask, and the news of what it got
//! and what completed), then every node that received containers reports them completed in one
//! heartbeat, which frees their capacity. Rounds go on until every container has run.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use spindle_containers::exit_status::SUCCESS;
use spindle_containers::{AttemptId, ContainerId, LaunchContext, NodeId, Resource};
use spindle_resource_manager::RmConfig;
use spindle_resource_manager::core::{
    AllocateCall, Ask, Core, CoreConfig, NodeHeartbeat, NodeInfo, RegisterCall, ReportedContainer,
    ReportedState, Submission,
};

use crate::cpu::CpuTimes;
use crate::report::{Report, RunFigures};
use crate::stats;

/// Any fixed value will do: the core only puts it into ids.
const CLUSTER_TIMESTAMP: u64 = 1_700_000_000_000;
/// The priority of every ask (any value above the AM's 0).
const PRIORITY: i32 = 1;

#[derive(clap::Args, Debug, Clone)]
pub struct SchedulerArgs {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..))]
    pub nodes: u32,
    /// Applications (unmanaged AMs) sharing the containers.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub apps: u32,
    /// Containers to run, in total over all applications.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub containers: u64,
    /// How many equal asks each application spreads its share over (one per round).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub waves: u32,
    /// Memory of each node, in MB.
    #[arg(long, default_value_t = 65536, value_parser = clap::value_parser!(u64).range(1..))]
    pub node_memory_mb: u64,
    /// Virtual cores of each node (recorded; the default calculator fits by memory).
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub node_vcores: u32,
    /// Memory of each container, in MB (normalized up to the RM's minimum allocation).
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    pub container_memory_mb: u64,
}

pub fn run(args: &SchedulerArgs, runs: u32) -> anyhow::Result<Report> {
    let mut report = Report::new("scheduler");
    report.setup("nodes", args.nodes);
    report.setup("node_memory_mb", args.node_memory_mb);
    report.setup("apps", args.apps);
    report.setup("containers", args.containers);
    report.setup("container_memory_mb", args.container_memory_mb);
    report.setup("waves", args.waves);
    for run in 1..=runs {
        let figures = run_once(args).with_context(|| format!("scheduler run {run}"))?;
        report.add_run(figures);
    }
    Ok(report)
}

/// One application as its AM sees it.
struct SimApp {
    attempt: AttemptId,
    /// Its part of `--containers`.
    share: u64,
    asked: u64,
}

struct Cluster {
    core: Core,
    /// The core's clock: a round is one millisecond (the core only records times here).
    now: u64,
    apps: Vec<SimApp>,
    wave: u64,
    container_memory_mb: u64,
}

fn run_once(args: &SchedulerArgs) -> anyhow::Result<RunFigures> {
    let mut cluster = Cluster::build(args)?;
    // The core runs on this thread alone: its CPU time does not depend on what else the
    // machine is doing, its wall time does.
    let cpu_before = CpuTimes::of("thread-self")?;
    let mut rounds = Vec::new();
    let mut completed: u64 = 0;
    while completed < args.containers {
        let started = Instant::now();
        let round = cluster.round()?;
        rounds.push(started.elapsed());
        completed += round.completed;
        if round.asked == 0 && round.allocated == 0 && round.completed == 0 {
            bail!(
                "no progress after {completed} of {} containers: a container of {} MB fits \
                 no node of {} MB",
                args.containers,
                args.container_memory_mb,
                args.node_memory_mb
            );
        }
    }
    let cpu = CpuTimes::of("thread-self")?.since(cpu_before).own;
    cluster.check_all_ended()?;
    let total: Duration = rounds.iter().sum();
    let round_p50 = stats::percentile(&rounds, 50.0).unwrap_or_default();
    Ok(vec![
        (
            "allocations_per_s",
            stats::per_second(args.containers, total),
        ),
        ("p50_ms", stats::ms(round_p50)),
        ("total_ms", stats::ms(total)),
        ("rounds", rounds.len() as f64),
        (
            "allocations_per_cpu_s",
            stats::per_second(args.containers, cpu),
        ),
    ])
}

/// What one round did.
struct Round {
    asked: u64,
    allocated: u64,
    completed: u64,
}

impl Cluster {
    /// Registers the nodes and the applications' AMs (not timed).
    fn build(args: &SchedulerArgs) -> anyhow::Result<Cluster> {
        let config = CoreConfig::new(&RmConfig::default(), CLUSTER_TIMESTAMP);
        let mut core = Core::new(config);
        let now = 1;
        for i in 0..args.nodes {
            let id = NodeId::new(format!("sim-{i:05}:8041"))?;
            let info = NodeInfo {
                hostname: id.host().to_string(),
                http_address: format!("{}:8042", id.host()),
                id,
                capability: Resource::new(args.node_memory_mb, args.node_vcores),
            };
            core.on_node_register(now, info, Vec::new());
        }
        let mut apps = Vec::new();
        for i in 0..u64::from(args.apps) {
            let (id, _) = core.new_application();
            let (attempt, _) = core.submit(now, submission(id))?;
            let attempt = attempt.context("the core returned no attempt for an unmanaged app")?;
            let register = RegisterCall {
                attempt,
                host: "bench".into(),
                rpc_port: 0,
                tracking_url: String::new(),
            };
            core.on_register_am(now, register)?;
            let apps_n = u64::from(args.apps);
            let share = args.containers / apps_n + u64::from(i < args.containers % apps_n);
            apps.push(SimApp {
                attempt,
                share,
                asked: 0,
            });
        }
        let largest = apps.iter().map(|a| a.share).max().unwrap_or(0);
        Ok(Cluster {
            core,
            now,
            apps,
            wave: largest.div_ceil(u64::from(args.waves)),
            container_memory_mb: args.container_memory_mb,
        })
    }

    /// Every AM allocates once, then every node that got containers reports them completed.
    fn round(&mut self) -> anyhow::Result<Round> {
        self.now += 1;
        let now = self.now;
        let mut round = Round {
            asked: 0,
            allocated: 0,
            completed: 0,
        };
        let mut placed: HashMap<NodeId, Vec<ContainerId>> = HashMap::new();
        for app in &mut self.apps {
            let n = self.wave.min(app.share - app.asked);
            app.asked += n;
            round.asked += n;
            let asks = if n == 0 {
                Vec::new()
            } else {
                vec![Ask {
                    priority: PRIORITY,
                    memory_mb: i64::try_from(self.container_memory_mb)?,
                    vcores: 1,
                    num_containers: i32::try_from(n)?,
                    nodes: Vec::new(),
                    relax_locality: true,
                }]
            };
            let call = AllocateCall {
                attempt: app.attempt,
                asks,
                cancels: Vec::new(),
                releases: Vec::new(),
                progress: app.asked as f32 / app.share.max(1) as f32,
            };
            self.core.on_allocate(now, call)?;
            let news = self
                .core
                .take_news(now, app.attempt)
                .with_context(|| format!("attempt {} vanished", app.attempt))?;
            if let Some(failed) = news.completed.iter().find(|c| c.exit_status != SUCCESS) {
                bail!(
                    "container {} ended with {}: {}",
                    failed.id,
                    failed.exit_status,
                    failed.diagnostics
                );
            }
            round.allocated += news.allocated.len() as u64;
            for c in news.allocated {
                placed.entry(c.node).or_default().push(c.id);
            }
        }
        for (node, containers) in placed {
            round.completed += containers.len() as u64;
            let heartbeat = NodeHeartbeat {
                node,
                containers: containers.into_iter().map(completed).collect(),
                healthy: true,
                health_report: String::new(),
            };
            self.core.on_node_heartbeat(now, heartbeat)?;
        }
        Ok(round)
    }

    /// The bench must have done what it says: every application's containers all ended.
    fn check_all_ended(&self) -> anyhow::Result<()> {
        for app in &self.apps {
            let live = self
                .core
                .app(app.attempt.application)
                .map_or(0, |a| a.live_containers);
            if live != 0 {
                bail!(
                    "application {} still holds {live} containers after the last round",
                    app.attempt.application
                );
            }
        }
        Ok(())
    }
}

fn submission(id: spindle_containers::ApplicationId) -> Submission {
    Submission {
        id,
        name: "scheduler-bench".into(),
        queue: String::new(),
        application_type: String::new(),
        tags: Vec::new(),
        user: "bench".into(),
        am_memory_mb: 1024,
        am_vcores: 1,
        am_launch: LaunchContext::default(),
        max_attempts: 0,
        unmanaged: true,
    }
}

fn completed(id: ContainerId) -> ReportedContainer {
    ReportedContainer {
        id,
        state: ReportedState::Complete,
        exit_status: SUCCESS,
        diagnostics: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: u32, apps: u32, containers: u64, waves: u32) -> SchedulerArgs {
        SchedulerArgs {
            nodes,
            apps,
            containers,
            waves,
            node_memory_mb: 4096,
            node_vcores: 4,
            container_memory_mb: 1024,
        }
    }

    #[test]
    fn every_container_runs_once_in_as_many_rounds_as_waves() {
        let figures = run_once(&args(3, 4, 50, 5)).unwrap();
        let get = |name| figures.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(get("rounds"), 5.0);
        assert!(get("allocations_per_s") > 0.0);
    }

    #[test]
    fn a_small_cluster_takes_more_rounds_than_waves() {
        // 2 nodes of 4 containers each: 40 containers cannot all run in 2 rounds.
        let figures = run_once(&args(2, 2, 40, 2)).unwrap();
        let rounds = figures.iter().find(|(n, _)| *n == "rounds").unwrap().1;
        assert_eq!(rounds, 5.0, "8 containers a round");
    }

    #[test]
    fn a_container_that_fits_nowhere_is_an_error_not_a_hang() {
        let mut a = args(1, 1, 1, 1);
        a.container_memory_mb = 8192;
        let err = run_once(&a).unwrap_err().to_string();
        assert!(err.contains("fits no node of 4096 MB"), "{err}");
    }
}
