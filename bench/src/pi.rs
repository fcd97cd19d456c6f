//! The `pi` scenario: the Pi example end to end, as a user runs it. One embedded `LocalCluster`
//! (an RM and its NMs in this process, containers as real processes) is started once; then the
//! Pi example is submitted `--runs` times in cluster mode, as `spindle submit` does it (the
//! client library's `submit`, `SPINDLE_ROLE=am` and the Spark settings in
//! `SPINDLE_APP_CONFIG`), each followed through `WatchApplication` to FINISHED.
//!
//! Where each phase's end comes from:
//! - submitted, finished: this process's clock, when `submit` returned and when the watch
//!   pushed the final report;
//! - AM registered: when the watch pushed the first RUNNING report (the RM moves the app to
//!   RUNNING when its AM registers);
//! - executors registered, result: the driver's own `Timing:` line in the AM's stdout (read
//!   through the NMs' log API), whose instants are on the AM's clock. They are placed on this
//!   process's clock by the one instant both clocks know: the AM registers right after its
//!   driver's context exists, so registration ≈ the AM's `context` instant. This places them
//!   late by the registration call and the watch's push, a few ms at most.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use spindle_app_master::am::app_config::{APP_CONFIG_ENV, ROLE_AM, ROLE_ENV};
use spindle_client::cmd::app_flags::SparkArgs;
use spindle_client::{LocalCluster, PreparedSubmission, RmClient, Submission};
use spindle_containers::{ApplicationId, ContainerId};
use spindle_protocol::{ApplicationReport, ApplicationState, FinalStatus};

use crate::am_timing::{self, DriverTiming};
use crate::cpu::CpuTimes;
use crate::report::{Report, RunFigures};
use crate::{pi_program, stats};

/// A hang guard for the cluster to be idle between runs; it takes milliseconds.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often set-up looks at the nodes (the RM pushes no news of a node's containers).
const IDLE_CHECK: Duration = Duration::from_millis(5);

#[derive(clap::Args, Debug, Clone)]
pub struct PiArgs {
    /// Node managers in the local cluster.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub nodes: u32,
    /// Virtual cores of each node.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub node_vcores: u32,
    /// Memory of each node, in MB.
    #[arg(long, default_value_t = 2048, value_parser = clap::value_parser!(u64).range(1..))]
    pub node_memory_mb: u64,
    /// Executors the application keeps (512 MB each).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub executors: u32,
    /// Points Pi throws, in 8 tasks.
    #[arg(long, default_value_t = 800_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub samples: u64,
    /// The Pi example to submit [default: `pi` next to this program, built with cargo in the
    /// same profile when it is missing or older than this program].
    #[arg(long, value_name = "PATH")]
    pub program: Option<PathBuf>,
}

pub async fn run(args: &PiArgs, program: &Path, runs: u32) -> anyhow::Result<Report> {
    let mut report = Report::new("pi");
    report.setup("nodes", args.nodes);
    report.setup("node_vcores", args.node_vcores);
    report.setup("node_memory_mb", args.node_memory_mb);
    report.setup("executors", args.executors);
    report.setup("samples", args.samples);
    report.setup("deploy_mode", "cluster");
    report.setup("program", program.display().to_string());
    report.setup("program_mb", pi_program::size_mb(program)?);

    let prepared = submission(args, program)
        .prepare()
        .context("preparing the submission")?;
    let nodes = usize::try_from(args.nodes).context("--nodes")?;
    let cluster = LocalCluster::start(nodes, args.node_vcores, args.node_memory_mb)
        .await
        .context("starting the local cluster")?;
    let outcome = run_all(&cluster, &prepared, args.executors, runs, &mut report).await;
    // Stopping the NMs reaps the last containers; the CPU they used is counted only then.
    let cpu_before_shutdown = CpuTimes::of("self");
    cluster.shutdown().await;
    let started_cpu = outcome?;
    let cpu = CpuTimes::of("self")?.since(started_cpu);
    let in_process = cpu_before_shutdown?.since(started_cpu).own;
    let per_run = |d: Duration| stats::ms(d) / f64::from(runs);
    report.summary("cluster_cpu_ms_per_run", per_run(in_process));
    report.summary("containers_cpu_ms_per_run", per_run(cpu.children));
    Ok(report)
}

/// The runs, one after another, each on an idle cluster; returns the CPU times before the
/// first.
async fn run_all(
    cluster: &LocalCluster,
    prepared: &PreparedSubmission,
    executors: u32,
    runs: u32,
    report: &mut Report,
) -> anyhow::Result<CpuTimes> {
    let mut rm = cluster
        .client()
        .await
        .context("connecting to the local RM")?;
    let started_cpu = CpuTimes::of("self")?;
    let mut totals = Vec::new();
    for run in 1..=runs {
        let figures = run_once(&mut rm, prepared, executors)
            .await
            .with_context(|| format!("pi run {run}"))?;
        wait_until_idle(&mut rm)
            .await
            .with_context(|| format!("after pi run {run}"))?;
        totals.push(figures.total);
        report.add_run(figures.into_run());
    }
    let totals_ms: Vec<f64> = totals.iter().copied().map(stats::ms).collect();
    if let Some(p50) = stats::median(&totals_ms) {
        report.summary("p50_ms", p50);
    }
    if let Some(p95) = stats::percentile(&totals, 95.0) {
        report.summary("p95_ms", stats::ms(p95));
    }
    if let Some(min) = totals.iter().min() {
        report.summary("min_ms", stats::ms(*min));
    }
    Ok(started_cpu)
}

/// `pi SAMPLES` as the AM, with only the number of executors given (Pi's and the AM's
/// defaults fill the rest, as for `spindle submit --num-executors N`).
fn submission(args: &PiArgs, program: &Path) -> Submission {
    let mut submission = Submission::new(
        program.to_string_lossy().into_owned(),
        vec![args.samples.to_string()],
    );
    submission.name = Some("pi-bench".to_string());
    let spark = SparkArgs {
        num_executors: Some(args.executors),
        ..SparkArgs::default()
    };
    submission
        .env
        .insert(ROLE_ENV.to_string(), ROLE_AM.to_string());
    submission
        .env
        .insert(APP_CONFIG_ENV.to_string(), spark.given_config_json());
    submission
}

/// One run's instants, each since the submission began.
struct RunTimes {
    submitted: Duration,
    am_registered: Duration,
    driver: DriverTiming,
    total: Duration,
}

impl RunTimes {
    /// A driver instant placed on this process's clock (see the module's note).
    fn on_bench_clock(&self, driver_instant: Duration) -> Duration {
        self.am_registered + driver_instant.saturating_sub(self.driver.context)
    }

    fn into_run(self) -> RunFigures {
        vec![
            ("total_ms", stats::ms(self.total)),
            ("to_submitted_ms", stats::ms(self.submitted)),
            ("to_am_registered_ms", stats::ms(self.am_registered)),
            (
                "to_executors_registered_ms",
                stats::ms(self.on_bench_clock(self.driver.executors_registered)),
            ),
            (
                "to_result_ms",
                stats::ms(self.on_bench_clock(self.driver.result)),
            ),
            ("am_context_ms", stats::ms(self.driver.context)),
        ]
    }
}

async fn run_once(
    rm: &mut RmClient,
    prepared: &PreparedSubmission,
    executors: u32,
) -> anyhow::Result<RunTimes> {
    let started = Instant::now();
    let id = spindle_client::submit(rm, prepared)
        .await
        .context("submitting Pi")?;
    let submitted = started.elapsed();
    let mut am_registered = None;
    let last = spindle_client::follow(rm, id, |report| {
        if am_registered.is_none() && report.state() == ApplicationState::Running {
            am_registered = Some(started.elapsed());
        }
    })
    .await
    .with_context(|| format!("following {id}"))?;
    let total = started.elapsed();
    check_succeeded(id, &last)?;
    let Some(am_registered) = am_registered else {
        bail!("{id} finished without a report showing it RUNNING");
    };

    let stdout = am_stdout(rm, id, &last).await?;
    let driver = am_timing::parse(&stdout)?;
    if driver.executors != executors {
        bail!(
            "{id}'s driver waited for {} executors, not the {executors} asked for",
            driver.executors
        );
    }
    Ok(RunTimes {
        submitted,
        am_registered,
        driver,
        total,
    })
}

/// FINISHED with SUCCEEDED, in one attempt: anything else is not a run to time.
fn check_succeeded(id: ApplicationId, report: &ApplicationReport) -> anyhow::Result<()> {
    if report.state() != ApplicationState::Finished
        || report.final_status() != FinalStatus::Succeeded
    {
        bail!(
            "{id} ended {:?} with final status {:?}: {}",
            report.state(),
            report.final_status(),
            report.diagnostics
        );
    }
    if report.attempts.len() != 1 {
        bail!(
            "{id} took {} attempts; a run must take one",
            report.attempts.len()
        );
    }
    Ok(())
}

/// The AM container's logs (stdout and stderr, under headers), read from its NM.
async fn am_stdout(
    rm: &mut RmClient,
    id: ApplicationId,
    report: &ApplicationReport,
) -> anyhow::Result<String> {
    let am = report
        .attempts
        .first()
        .map(|attempt| attempt.am_container_id.as_str())
        .unwrap_or_default();
    let am: ContainerId = am
        .parse()
        .with_context(|| format!("{id}'s attempt names its AM container {am:?}"))?;
    let mut logs = Vec::new();
    let outcome = spindle_client::logs::write_logs(rm, id, Some(am), &mut logs)
        .await
        .with_context(|| format!("reading {am}'s logs"))?;
    if let Some(problem) = outcome.problems.first() {
        bail!("reading {am}'s logs: {problem}");
    }
    String::from_utf8(logs).with_context(|| format!("{am}'s logs are not UTF-8"))
}

/// Waits until no node holds a container, so that a run neither waits for the last one's
/// leftovers nor has its CPU counted in the next. Never timed.
async fn wait_until_idle(rm: &mut RmClient) -> anyhow::Result<()> {
    let deadline = Instant::now() + IDLE_TIMEOUT;
    loop {
        let nodes = rm.list_nodes().await.context("ListNodes")?;
        let busy: u32 = nodes.iter().map(|node| node.num_containers).sum();
        if busy == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{busy} containers were still running {IDLE_TIMEOUT:?} after the application");
        }
        tokio::time::sleep(IDLE_CHECK).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_instants_are_placed_from_the_am_registration() {
        let times = RunTimes {
            submitted: Duration::from_millis(20),
            am_registered: Duration::from_millis(100),
            driver: DriverTiming {
                context: Duration::from_millis(30),
                executors: 4,
                executors_registered: Duration::from_millis(230),
                result: Duration::from_millis(250),
            },
            total: Duration::from_millis(400),
        };
        let figures = times.into_run();
        let get = |name: &str| figures.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        assert_eq!(get("to_am_registered_ms"), Some(100.0));
        assert_eq!(get("to_executors_registered_ms"), Some(300.0));
        assert_eq!(get("to_result_ms"), Some(320.0));
        assert_eq!(get("total_ms"), Some(400.0));
        assert_eq!(get("am_context_ms"), Some(30.0));
    }

    #[test]
    fn the_am_gets_its_role_and_only_the_executors_setting() {
        let args = PiArgs {
            nodes: 2,
            node_vcores: 2,
            node_memory_mb: 2048,
            executors: 4,
            samples: 1000,
            program: None,
        };
        let submission = submission(&args, Path::new("/x/pi"));
        assert_eq!(submission.program, "/x/pi");
        assert_eq!(submission.args, ["1000"]);
        assert_eq!(submission.env[ROLE_ENV], ROLE_AM);
        assert_eq!(submission.env[APP_CONFIG_ENV], r#"{"num_executors":4}"#);
    }
}
