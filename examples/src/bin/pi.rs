//! Spark's SparkPi on Spindle: estimates π by throwing SAMPLES random points at the unit
//! square, in 8 tasks across the executors, and counting those inside the quarter circle.
//!
//! ```text
//! pi [LAUNCHER FLAGS] [SAMPLES]        # SAMPLES defaults to 800 000
//! ```
//!
//! Without flags it starts an embedded two-node cluster and runs 4 executors as real
//! processes; `--master local[4]` keeps everything in this process; `--master
//! spindle://HOST:PORT` uses a running cluster (`--deploy-mode cluster` runs the driver in the
//! AM). It prints the estimate, where the tasks ran, and how long each step took.

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use spindle_client::sdk::{App, DriverContext};

const DEFAULT_SAMPLES: u64 = 800_000;
/// SparkPi's default number of slices.
const TASKS: u64 = 8;
/// Pi's own default; `--num-executors` overrides it.
const EXECUTORS: u32 = 4;
/// A hang guard: executors normally register within a second.
const EXECUTOR_WAIT: Duration = Duration::from_secs(120);

/// One task's share of the samples.
#[derive(Debug, Serialize, Deserialize)]
struct Slice {
    index: u64,
    samples: u64,
}

/// What a task counted, and where it ran.
#[derive(Debug, Serialize, Deserialize)]
struct Counted {
    inside: u64,
    samples: u64,
    /// The executor's process.
    pid: u32,
    /// The node manager that started the executor (`NM_ADDRESS`), or `local`.
    node: String,
}

/// splitmix64: small, fast, and good enough for a Monte Carlo demo; seeded per task so that a
/// retried task counts exactly what the first attempt would have.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    fn coordinate(&mut self) -> f64 {
        // The top 53 bits make an exact double in [0, 1).
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        2.0 * unit - 1.0
    }
}

fn sample(slice: Slice) -> Result<Counted, String> {
    let mut rng = SplitMix64(slice.index.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ 0x5EED);
    let inside = (0..slice.samples)
        .filter(|_| {
            let (x, y) = (rng.coordinate(), rng.coordinate());
            x * x + y * y <= 1.0
        })
        .count() as u64;
    Ok(Counted {
        inside,
        samples: slice.samples,
        pid: std::process::id(),
        node: std::env::var("NM_ADDRESS").unwrap_or_else(|_| "local".to_string()),
    })
}

/// SAMPLES split into [`TASKS`] slices as even as can be.
fn slices(samples: u64) -> Vec<Slice> {
    (0..TASKS)
        .map(|index| Slice {
            index,
            samples: samples / TASKS + u64::from(index < samples % TASKS),
        })
        .filter(|slice| slice.samples > 0)
        .collect()
}

fn samples_arg(args: &[String]) -> Result<u64, String> {
    match args {
        [] => Ok(DEFAULT_SAMPLES),
        [samples] => samples
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("SAMPLES={samples:?}: expected a whole number of at least 1")),
        more => Err(format!(
            "expected at most one argument, SAMPLES; got {}: {more:?}",
            more.len()
        )),
    }
}

fn driver(ctx: &DriverContext) -> Result<(), String> {
    let samples = samples_arg(ctx.args())?;
    let settings = spindle_client::launch_settings();
    let since_start = |now: Instant| {
        settings.map_or(Duration::ZERO, |s| now.saturating_duration_since(s.started))
    };
    let context_at = since_start(Instant::now());
    let executors = settings.map_or(1, |s| s.num_executors as usize);
    ctx.wait_for_executors(executors, EXECUTOR_WAIT)
        .map_err(|e| e.to_string())?;
    let executors_at = since_start(Instant::now());

    let counted: Vec<Counted> = ctx
        .run("sample", slices(samples))
        .map_err(|e| e.to_string())?;
    let result_at = since_start(Instant::now());
    let inside: u64 = counted.iter().map(|c| c.inside).sum();
    let total: u64 = counted.iter().map(|c| c.samples).sum();
    println!("Pi is roughly {}", 4.0 * inside as f64 / total as f64);
    println!("{}", placement(&counted));
    println!(
        "Timing: context {} ms, {executors} executor(s) registered {} ms, result {} ms \
         (since the program started)",
        context_at.as_millis(),
        executors_at.as_millis(),
        result_at.as_millis()
    );
    Ok(())
}

/// `8 tasks ran in 4 executor processes on 2 nodes: …`, or in this very process.
fn placement(counted: &[Counted]) -> String {
    let processes: BTreeSet<(&str, u32)> =
        counted.iter().map(|c| (c.node.as_str(), c.pid)).collect();
    let nodes: BTreeSet<&str> = counted.iter().map(|c| c.node.as_str()).collect();
    let here = std::process::id();
    if processes
        .iter()
        .all(|(node, pid)| *node == "local" && *pid == here)
    {
        return format!(
            "{} tasks ran in this process (pid {here}), no executor processes",
            counted.len()
        );
    }
    format!(
        "{} tasks ran in {} executor processes on {} nodes: {}",
        counted.len(),
        processes.len(),
        nodes.len(),
        nodes.into_iter().collect::<Vec<_>>().join(" ")
    )
}

fn app() -> App {
    App::new("pi").task("sample", sample).driver(driver)
}

fn main() -> ExitCode {
    spindle_client::Launcher::new(app())
        .num_executors(EXECUTORS)
        .run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_every_sample_once() {
        for samples in [1, 7, 8, 9, 800_000, 800_003] {
            let parts = slices(samples);
            assert_eq!(parts.iter().map(|s| s.samples).sum::<u64>(), samples);
            assert!(parts.len() as u64 <= TASKS);
            let sizes: BTreeSet<u64> = parts.iter().map(|s| s.samples).collect();
            assert!(sizes.len() <= 2, "as even as can be: {sizes:?}");
        }
    }

    #[test]
    fn a_task_counts_the_same_every_time_and_near_pi() {
        let first = sample(Slice {
            index: 3,
            samples: 100_000,
        })
        .unwrap();
        let again = sample(Slice {
            index: 3,
            samples: 100_000,
        })
        .unwrap();
        assert_eq!(first.inside, again.inside);
        let other = sample(Slice {
            index: 4,
            samples: 100_000,
        })
        .unwrap();
        assert_ne!(first.inside, other.inside, "tasks draw different points");
        let pi = 4.0 * first.inside as f64 / 100_000.0;
        assert!((pi - std::f64::consts::PI).abs() < 0.03, "{pi}");
    }

    #[test]
    fn the_argument_is_a_positive_count() {
        assert_eq!(samples_arg(&[]), Ok(DEFAULT_SAMPLES));
        assert_eq!(samples_arg(&["1000".to_string()]), Ok(1000));
        for bad in ["0", "-3", "many"] {
            let err = samples_arg(&[bad.to_string()]).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(samples_arg(&["1".into(), "2".into()]).is_err());
    }

    #[test]
    fn placement_tells_processes_and_nodes() {
        let at = |node: &str, pid| Counted {
            inside: 0,
            samples: 0,
            pid,
            node: node.to_string(),
        };
        let spread = [at("n1:1", 10), at("n2:1", 11), at("n1:1", 10)];
        assert_eq!(
            placement(&spread),
            "3 tasks ran in 2 executor processes on 2 nodes: n1:1 n2:1"
        );
        let here = [at("local", std::process::id())];
        assert!(placement(&here).contains("ran in this process"));
    }
}
