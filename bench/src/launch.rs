//! The `launch` scenario: one real node manager (its own process) launching `/bin/true` over and
//! over through its real start path, a real resource manager (its own process) beside it, and
//! this bench as the unmanaged AM that allocates the containers and starts each one with
//! `NmClient` as soon as it is allocated. The node offers room for exactly `--parallel`
//! containers, so the RM hands out at most that many at a time and the next ones as the
//! node's completions come in: each container makes the whole trip (allocate, start, run,
//! complete, heartbeat) that a real one does.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use spindle_app_master::{
    AllocateResult, AmCommand, AmRmClient, Container, ContainerRequest, FinalStatus, NmClient,
};
use spindle_containers::exit_status::SUCCESS;
use spindle_containers::{ContainerId, LaunchContext, Resource};
use spindle_protocol as proto;
use spindle_security::SecretKind;
use tokio::task::JoinSet;

use crate::cpu::CpuTimes;
use crate::daemon::Daemon;
use crate::report::{Report, RunFigures};
use crate::{stats, unmanaged};

/// A hang guard for the node's registration; it takes milliseconds.
const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(60);
/// How often set-up looks for the node (no notification exists for a node's arrival).
const REGISTRATION_CHECK: Duration = Duration::from_millis(10);

#[derive(clap::Args, Debug, Clone)]
pub struct LaunchArgs {
    /// Containers to launch, one after another as room frees up.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub containers: u32,
    /// Containers at a time: the node offers room for exactly this many.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub parallel: u32,
    /// Memory of each container, in MB (also the RM's minimum allocation).
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..))]
    pub container_memory_mb: u64,
    /// Where the daemons' directories go (a fresh temporary directory inside it); the node
    /// manager's work dir is among them, so its file system is part of what is measured.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    pub work_dir: PathBuf,
}

pub async fn run(args: &LaunchArgs, runs: u32) -> anyhow::Result<Report> {
    let mut report = Report::new("launch");
    report.setup("containers", args.containers);
    report.setup("parallel", args.parallel);
    report.setup("command", "/bin/true");
    report.setup("work_dir", args.work_dir.display().to_string());
    for run in 1..=runs {
        let figures = run_once(args)
            .await
            .with_context(|| format!("launch run {run}"))?;
        report.add_run(figures);
    }
    Ok(report)
}

async fn run_once(args: &LaunchArgs) -> anyhow::Result<RunFigures> {
    let dir = tempfile::tempdir_in(&args.work_dir)
        .with_context(|| format!("creating a directory in {}", args.work_dir.display()))?;
    let state_dir = dir.path().join("rm");
    let rm = Daemon::resource_manager(&state_dir, args.container_memory_mb).await?;
    let memory_mb = args.container_memory_mb * u64::from(args.parallel);
    let nm = Daemon::node_manager(
        rm.address(),
        &state_dir.join(SecretKind::Daemon.file_name()),
        &dir.path().join("nm"),
        memory_mb,
        args.parallel,
    )
    .await?;
    let mut applications = unmanaged::applications(rm.address(), &state_dir)?;
    wait_for_node(&mut applications, nm.address()).await?;
    let idle = nm.memory()?;

    let (am, registration) =
        unmanaged::start_am(rm.address(), &mut applications, "launch-bench").await?;
    let mut bench = Launcher {
        am: am.clone(),
        nm: NmClient::new(am.nm_tokens()),
        launch: LaunchContext {
            command: vec!["/bin/true".into()],
            ..LaunchContext::default()
        },
        starts: Vec::new(),
        completed: 0,
    };
    let capability = Resource::new(args.container_memory_mb, 1);
    let cpu_before = Cpu::now(&rm, &nm)?;
    let started = Instant::now();
    am.add_container_requests(&ContainerRequest::new(capability, 1), args.containers)?;
    bench
        .run(args.containers, registration.max_allocate_wait)
        .await?;
    let elapsed = started.elapsed();
    let cpu = Cpu::now(&rm, &nm)?.since(&cpu_before);

    am.finish(FinalStatus::Succeeded, "", "").await?;
    let peak = nm.memory()?;
    nm.stop().await?;
    rm.stop().await?;

    let p = |q| stats::percentile(&bench.starts, q).map_or(0.0, stats::ms);
    let per_launch = |d: Duration| stats::ms(d) / f64::from(args.containers);
    Ok(vec![
        (
            "launches_per_s",
            stats::per_second(u64::from(args.containers), elapsed),
        ),
        ("start_p50_ms", p(50.0)),
        ("start_p99_ms", p(99.0)),
        ("nm_idle_rss_mb", idle.rss_mb),
        ("nm_peak_rss_mb", peak.peak_rss_mb),
        ("elapsed_ms", stats::ms(elapsed)),
        ("nm_cpu_ms_per_launch", per_launch(cpu.nm.own)),
        ("containers_cpu_ms_per_launch", per_launch(cpu.nm.children)),
        ("rm_cpu_ms_per_launch", per_launch(cpu.rm.own)),
        ("bench_cpu_ms_per_launch", per_launch(cpu.bench.own)),
    ])
}

/// CPU time of every process taking part: the NM's children are the containers (bash, the
/// program, and what the launch script runs).
struct Cpu {
    rm: CpuTimes,
    nm: CpuTimes,
    bench: CpuTimes,
}

impl Cpu {
    fn now(rm: &Daemon, nm: &Daemon) -> anyhow::Result<Cpu> {
        Ok(Cpu {
            rm: rm.cpu()?,
            nm: nm.cpu()?,
            bench: CpuTimes::of("self")?,
        })
    }

    fn since(self, earlier: &Cpu) -> Cpu {
        Cpu {
            rm: self.rm.since(earlier.rm),
            nm: self.nm.since(earlier.nm),
            bench: self.bench.since(earlier.bench),
        }
    }
}

/// Waits until the RM lists the node as RUNNING. Set-up only, never timed.
async fn wait_for_node(
    applications: &mut unmanaged::Applications,
    node: &str,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + REGISTRATION_TIMEOUT;
    loop {
        let nodes = applications
            .list_nodes(proto::ListNodesRequest {})
            .await
            .context("ListNodes")?
            .into_inner()
            .nodes;
        let running = nodes
            .iter()
            .any(|n| n.node_id == node && n.state() == proto::NodeState::Running);
        if running {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("node {node} did not register within {REGISTRATION_TIMEOUT:?}");
        }
        tokio::time::sleep(REGISTRATION_CHECK).await;
    }
}

/// The bench's AM: starts containers as they are allocated and counts their completions.
struct Launcher {
    am: AmRmClient,
    nm: NmClient,
    launch: LaunchContext,
    /// How long each StartContainers call took.
    starts: Vec<Duration>,
    completed: u32,
}

type Started = (
    ContainerId,
    Result<(), spindle_app_master::NmError>,
    Duration,
);

impl Launcher {
    async fn run(&mut self, containers: u32, wait: Duration) -> anyhow::Result<()> {
        let mut starting: JoinSet<Started> = JoinSet::new();
        // The poll stays open while starts complete: dropping it could lose its news.
        let mut poll = Box::pin(next_answer(self.am.clone(), wait));
        while self.completed < containers {
            tokio::select! {
                answer = &mut poll => {
                    self.on_allocate(answer?, &mut starting)?;
                    poll = Box::pin(next_answer(self.am.clone(), wait));
                }
                Some(started) = starting.join_next() => {
                    let (id, outcome, took) = started.context("a start task failed")?;
                    outcome.with_context(|| format!("starting container {id}"))?;
                    self.starts.push(took);
                }
            }
        }
        while let Some(started) = starting.join_next().await {
            let (id, outcome, took) = started.context("a start task failed")?;
            outcome.with_context(|| format!("starting container {id}"))?;
            self.starts.push(took);
        }
        Ok(())
    }

    fn on_allocate(
        &mut self,
        answer: AllocateResult,
        starting: &mut JoinSet<Started>,
    ) -> anyhow::Result<()> {
        if answer.command == AmCommand::Shutdown {
            bail!("the RM shut the bench's attempt down");
        }
        if let Some(extra) = answer.surplus.first() {
            bail!("container {} was allocated beyond the asks", extra.id);
        }
        for container in answer.allocated {
            starting.spawn(start(self.nm.clone(), container, self.launch.clone()));
        }
        for status in answer.completed {
            if status.exit_status != SUCCESS {
                bail!(
                    "container {} ended with {}: {}",
                    status.id,
                    status.exit_status,
                    status.diagnostics
                );
            }
            self.completed += 1;
        }
        Ok(())
    }
}

async fn next_answer(am: AmRmClient, wait: Duration) -> anyhow::Result<AllocateResult> {
    am.allocate(0.0, wait).await.context("Allocate")
}

async fn start(nm: NmClient, container: Container, launch: LaunchContext) -> Started {
    let started = Instant::now();
    let outcome = nm.start_container(&container, &launch).await;
    (container.id, outcome, started.elapsed())
}
