//! A test program for failure handling: a job of 8 tasks whose task for input 3 misbehaves in
//! the way the first argument says, so the tests can watch Spindle retry tasks and replace
//! executors with real processes.
//!
//! ```text
//! flaky [LAUNCHER FLAGS] always           # input 3 panics every time: the job fails
//! flaky [LAUNCHER FLAGS] once DIR         # input 3 panics the first time only (DIR/panicked
//!                                         # remembers it across executors): the job succeeds
//! flaky [LAUNCHER FLAGS] hold DIR         # input 3 writes its executor's pid to DIR/running
//!                                         # and waits for DIR/release to appear
//! flaky [LAUNCHER FLAGS] stuck            # the driver never creates its context: in cluster
//!                                         # mode the AM gives up after --am-wait-time (exit 13)
//! ```
//!
//! The driver waits for all its executors first, and in `hold` mode again after the job, so
//! an executor killed meanwhile must have been replaced. It prints the outputs' sum and the
//! ids of the executors registered at the end.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use spindle_client::sdk::{App, DriverContext};

/// The input that misbehaves.
const BAD_INPUT: u64 = 3;
/// Hang guards only.
const EXECUTOR_WAIT: Duration = Duration::from_secs(120);
const HOLD_LIMIT: Duration = Duration::from_secs(120);
/// How often a held task looks for the release file; this is a test program, and a file is
/// the one signal every executor process can see.
const HOLD_CHECK: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Serialize, Deserialize)]
enum Mode {
    Always,
    Once(PathBuf),
    Hold(PathBuf),
}

#[derive(Debug, Serialize, Deserialize)]
struct Input {
    value: u64,
    mode: Mode,
}

fn check(input: Input) -> Result<u64, String> {
    if input.value != BAD_INPUT {
        return Ok(input.value);
    }
    match &input.mode {
        Mode::Always => panic!("flaky: input {BAD_INPUT} always panics"),
        Mode::Once(dir) => {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(dir.join("panicked"))
            {
                Ok(_) => panic!("flaky: input {BAD_INPUT} panics this once"),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(input.value),
                Err(e) => Err(format!("cannot write {}: {e}", dir.display())),
            }
        }
        Mode::Hold(dir) => hold(dir).map(|()| input.value),
    }
}

/// Says which process holds the task, then waits for the test to release it.
fn hold(dir: &Path) -> Result<(), String> {
    let partial = dir.join(format!("running.{}", std::process::id()));
    fs::write(&partial, std::process::id().to_string())
        .and_then(|()| fs::rename(&partial, dir.join("running")))
        .map_err(|e| format!("cannot write {}: {e}", dir.display()))?;
    let deadline = Instant::now() + HOLD_LIMIT;
    while !dir.join("release").exists() {
        if Instant::now() > deadline {
            return Err(format!("nobody released the task within {HOLD_LIMIT:?}"));
        }
        std::thread::sleep(HOLD_CHECK);
    }
    Ok(())
}

fn mode(args: &[String]) -> Result<Mode, String> {
    match args {
        [mode] if mode == "always" => Ok(Mode::Always),
        [mode, dir] if mode == "once" => Ok(Mode::Once(dir.into())),
        [mode, dir] if mode == "hold" => Ok(Mode::Hold(dir.into())),
        other => Err(format!(
            "expected `always`, `once DIR` or `hold DIR`, got {other:?}"
        )),
    }
}

fn driver(ctx: &DriverContext) -> Result<(), String> {
    let mode = mode(ctx.args())?;
    let executors = spindle_client::launch_settings().map_or(1, |s| s.num_executors as usize);
    ctx.wait_for_executors(executors, EXECUTOR_WAIT)
        .map_err(|e| e.to_string())?;
    let inputs = (0..8)
        .map(|value| Input {
            value,
            mode: mode.clone(),
        })
        .collect();
    let outputs: Vec<u64> = ctx.run("check", inputs).map_err(|e| e.to_string())?;
    println!("sum = {}", outputs.iter().sum::<u64>());
    if let Mode::Hold(_) = mode {
        ctx.wait_for_executors(executors, EXECUTOR_WAIT)
            .map_err(|e| e.to_string())?;
    }
    let ids: Vec<String> = ctx.executors().into_iter().map(|e| e.executor_id).collect();
    println!("executors at the end: {}", ids.join(" "));
    Ok(())
}

/// In `stuck` mode, never returns: the work before the context that never ends.
fn before_context(args: &[String]) -> Result<(), String> {
    if args.first().is_some_and(|a| a == "stuck") {
        loop {
            std::thread::park();
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    spindle_client::run(
        App::new("flaky")
            .task("check", check)
            .before_context(before_context)
            .driver(driver),
    )
}
