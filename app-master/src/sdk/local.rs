//! Local mode (`local`, `local[N]`, `local[*]`, `local[N,F]`): the driver and one executor of
//! N task threads in one process, no daemons, no child processes. The executor talks to the
//! driver over loopback gRPC rather than through channels, so local mode runs exactly the
//! driver endpoint and executor backend the cluster runs: what works locally is what ships.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::runtime::Handle;
use tracing::{debug, warn};

use super::app::App;
use super::driver::DriverConfig;
use super::driver_thread::spawn_driver;
use super::executor::{ExecutorArgs, run_executor};
use super::promise::context_promise;

/// Spark's `MAX_LOCAL_TASK_FAILURES`: `local` and `local[N]` do not retry tasks.
pub const LOCAL_MAX_TASK_FAILURES: u32 = 1;

/// How long local mode waits for its own driver to create its context; only a hang guard.
const LOCAL_CONTEXT_WAIT: Duration = Duration::from_secs(100);

/// Spark names the in-process executor of local mode "driver"; so does Spindle.
const LOCAL_EXECUTOR_ID: &str = "driver";

/// A parsed local master URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalMaster {
    /// Task threads (`*`: the machine's available parallelism).
    pub threads: usize,
    /// Failures of one task that fail its job.
    pub max_failures: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "malformed local master URL {0:?}: expected local, local[N], local[*] or local[N,F] with N and F at least 1"
)]
pub struct LocalMasterError(pub String);

impl FromStr for LocalMaster {
    type Err = LocalMasterError;

    fn from_str(url: &str) -> Result<LocalMaster, LocalMasterError> {
        let malformed = || LocalMasterError(url.to_string());
        if url == "local" {
            return Ok(LocalMaster {
                threads: 1,
                max_failures: LOCAL_MAX_TASK_FAILURES,
            });
        }
        let inside = url
            .strip_prefix("local[")
            .and_then(|rest| rest.strip_suffix(']'))
            .ok_or_else(malformed)?;
        let (threads, failures) = match inside.split_once(',') {
            Some((threads, failures)) => (threads, Some(failures)),
            None => (inside, None),
        };
        let threads = match threads.trim() {
            "*" => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n
                .parse::<usize>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(malformed)?,
        };
        let max_failures = match failures {
            None => LOCAL_MAX_TASK_FAILURES,
            Some(f) => f
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|f| *f >= 1)
                .ok_or_else(malformed)?,
        };
        Ok(LocalMaster {
            threads,
            max_failures,
        })
    }
}

/// Runs `app` in local mode with `threads` task threads and `max_failures` failures allowed
/// per task. Blocks until the driver returns; call it from synchronous code (it makes its own
/// runtime).
pub fn run_local(app: &App, threads: usize, max_failures: u32) -> Result<(), String> {
    run_local_with_args(app, threads, max_failures, Vec::new())
}

/// [`run_local`], with the program arguments the driver reads through `DriverContext::args`.
pub fn run_local_with_args(
    app: &App,
    threads: usize,
    max_failures: u32,
    args: Vec<String>,
) -> Result<(), String> {
    if Handle::try_current().is_ok() {
        return Err(
            "run_local blocks and makes its own runtime; call it from synchronous code, \
                    not from inside an async runtime"
                .to_string(),
        );
    }
    if threads == 0 {
        return Err("local mode needs threads >= 1, got threads=0".to_string());
    }
    if max_failures == 0 {
        return Err(
            "local mode needs max_failures >= 1 (1 means no retries), got max_failures=0"
                .to_string(),
        );
    }
    let cores = u32::try_from(threads).map_err(|_| {
        format!(
            "local mode supports at most {} threads, got {threads}",
            u32::MAX
        )
    })?;
    app.check().map_err(|e| e.to_string())?;
    app.run_before_context(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("spindle-local")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the local runtime: {e}"))?;
    let app_id = format!(
        "local-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    );
    let config = DriverConfig {
        host: "127.0.0.1".to_string(),
        max_task_failures: max_failures,
        app_id: Some(app_id.clone()),
        args,
        ..DriverConfig::default()
    };
    let (promise, waiter) = context_promise();
    let driver =
        spawn_driver(app, config, runtime.handle().clone(), promise).map_err(|e| e.to_string())?;
    let tasks = app.tasks().clone();
    let outcome = runtime.block_on(async move {
        let (ready, resume) = match waiter.wait(LOCAL_CONTEXT_WAIT).await {
            Ok(pair) => pair,
            // The driver's own outcome says best why it produced no context.
            Err(e) => return driver.wait().await.and(Err(e.to_string())),
        };
        let args = ExecutorArgs {
            driver_url: ready.driver_url.clone(),
            executor_id: LOCAL_EXECUTOR_ID.to_string(),
            hostname: "localhost".to_string(),
            cores,
            app_id,
            container_id: None,
        };
        let mut executor = tokio::spawn(run_executor(tasks, args));
        let mut executors = ready.executors.clone();
        // The driver starts only once its executor is registered, so that an executor that
        // cannot start is an error rather than a job waiting forever.
        tokio::select! {
            _ = executors.wait_for(|registered| !registered.is_empty()) => resume.resume(),
            ended = &mut executor => {
                drop(resume);
                let _ = driver.wait().await;
                return Err(match ended {
                    Ok(Ok(())) => "the local executor ended before registering".to_string(),
                    Ok(Err(e)) => format!("the local executor did not start: {e}"),
                    Err(e) => format!("the local executor did not start: {e}"),
                });
            }
        }
        let outcome = driver.wait().await;
        // The driver's shutdown told the executor to stop; it ends on its own.
        match executor.await {
            Ok(Ok(())) => debug!("local executor stopped"),
            Ok(Err(e)) => warn!(error = %e, "local executor ended with an error"),
            Err(e) => warn!(error = %e, "local executor task failed"),
        }
        outcome
    });
    // Tasks of a failed job may still be running on blocking threads; do not wait for them.
    runtime.shutdown_background();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_local_master_urls() {
        let parse = |s: &str| s.parse::<LocalMaster>();
        assert_eq!(
            parse("local"),
            Ok(LocalMaster {
                threads: 1,
                max_failures: 1
            })
        );
        assert_eq!(
            parse("local[4]"),
            Ok(LocalMaster {
                threads: 4,
                max_failures: 1
            })
        );
        assert_eq!(
            parse("local[3,5]"),
            Ok(LocalMaster {
                threads: 3,
                max_failures: 5
            })
        );
        let star = parse("local[*]").unwrap();
        assert!(star.threads >= 1);
        assert_eq!(parse("local[*,2]").unwrap().max_failures, 2);
        for bad in [
            "local[]",
            "local[0]",
            "local[x]",
            "local[2,0]",
            "local[2",
            "locals",
            "local-cluster[2,1,1024]",
        ] {
            assert_eq!(parse(bad), Err(LocalMasterError(bad.to_string())), "{bad}");
        }
    }

    #[test]
    fn refuses_zero_threads_or_failures() {
        let app = App::new("t").driver(|_| Ok(()));
        assert!(run_local(&app, 0, 1).unwrap_err().contains("threads=0"));
        assert!(
            run_local(&app, 1, 0)
                .unwrap_err()
                .contains("max_failures=0")
        );
    }
}
