//! The executor role, Spark's `CoarseGrainedExecutorBackend`: started as
//! `<program> executor --driver-url URL --executor-id N --hostname H --cores C --app-id ID`,
//! it connects to the driver, registers, runs up to C tasks at once on blocking threads,
//! answers each with its output or error, and exits when the driver says Shutdown or goes away.

use std::sync::Arc;
use std::time::Duration;

use spindle_protocol::driver_client::DriverClient;
use spindle_protocol::{
    DriverMessage, ExecutorMessage, LaunchTask, RegisterExecutor, StatusUpdate, driver_message,
    executor_message, status_update,
};
use tokio::sync::{Semaphore, mpsc};
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};
use tracing::{Instrument, debug, info, info_span, warn};

use super::app::{App, TaskRegistry};

pub const USAGE: &str = "usage: <program> executor --driver-url URL --executor-id ID \
     --hostname HOST --cores N --app-id APP_ID";

/// Exit code for bad or missing arguments (as clap and most Unix tools use).
pub const EXIT_USAGE: i32 = 2;
/// Exit code for an executor that could not reach, register with, or keep its driver.
pub const EXIT_FAILURE: i32 = 1;

/// Connection attempts before giving up on a driver that is still binding its port.
const CONNECT_ATTEMPTS: u32 = 10;
const FIRST_CONNECT_BACKOFF: Duration = Duration::from_millis(50);
const MAX_CONNECT_BACKOFF: Duration = Duration::from_secs(1);

/// The executor's command line, Spark's CoarseGrainedExecutorBackend arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorArgs {
    pub driver_url: String,
    pub executor_id: String,
    pub hostname: String,
    pub cores: u32,
    pub app_id: String,
    /// The container the executor runs in (from `CONTAINER_ID`), reported to the driver.
    pub container_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsageError {
    #[error("unrecognized argument {0:?}")]
    Unrecognized(String),
    #[error("option {0} needs a value")]
    MissingValue(&'static str),
    #[error("option {0} is given more than once")]
    Repeated(&'static str),
    #[error("missing required option {0}")]
    Missing(&'static str),
    #[error("option {0} must not be empty")]
    Empty(&'static str),
    #[error("--cores {0:?}: expected a whole number of at least 1")]
    BadCores(String),
    #[error("--driver-url {0:?}: expected http://HOST:PORT")]
    BadDriverUrl(String),
}

const OPTIONS: [&str; 5] = [
    "--driver-url",
    "--executor-id",
    "--hostname",
    "--cores",
    "--app-id",
];

impl ExecutorArgs {
    /// Parses the arguments that follow the `executor` role word. Accepts `--opt value` and
    /// `--opt=value`; every option is required exactly once.
    pub fn parse<I, S>(args: I) -> Result<ExecutorArgs, UsageError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut values: [Option<String>; 5] = Default::default();
        let mut args = args.into_iter().map(|a| a.as_ref().to_string());
        while let Some(arg) = args.next() {
            let (name, inline) = match arg.split_once('=') {
                Some((name, value)) => (name.to_string(), Some(value.to_string())),
                None => (arg.clone(), None),
            };
            let Some(slot) = OPTIONS.iter().position(|o| *o == name) else {
                return Err(UsageError::Unrecognized(arg));
            };
            let option = OPTIONS[slot];
            let value = match inline {
                Some(value) => value,
                None => args.next().ok_or(UsageError::MissingValue(option))?,
            };
            if values[slot].is_some() {
                return Err(UsageError::Repeated(option));
            }
            if value.is_empty() {
                return Err(UsageError::Empty(option));
            }
            values[slot] = Some(value);
        }
        let mut take = |slot: usize| {
            values[slot]
                .take()
                .ok_or(UsageError::Missing(OPTIONS[slot]))
        };
        let driver_url = take(0)?;
        let executor_id = take(1)?;
        let hostname = take(2)?;
        let cores_text = take(3)?;
        let app_id = take(4)?;
        let cores = cores_text
            .parse::<u32>()
            .ok()
            .filter(|c| *c >= 1)
            .ok_or(UsageError::BadCores(cores_text))?;
        let is_http = driver_url.starts_with("http://") || driver_url.starts_with("https://");
        if !is_http || Endpoint::from_shared(driver_url.clone()).is_err() {
            return Err(UsageError::BadDriverUrl(driver_url));
        }
        Ok(ExecutorArgs {
            driver_url,
            executor_id,
            hostname,
            cores,
            app_id,
            container_id: None,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    #[error("{0}\n{USAGE}")]
    Usage(#[from] UsageError),
    #[error("cannot start the executor's runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot connect to the driver at {url} after {attempts} attempts: {reason}")]
    Connect {
        url: String,
        attempts: u32,
        reason: String,
    },
    #[error("the driver at {url} refused executor {executor_id:?}: {reason}")]
    Refused {
        url: String,
        executor_id: String,
        reason: String,
    },
    #[error("lost the driver at {url}: {reason}")]
    DriverLost { url: String, reason: String },
}

impl ExecutorError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecutorError::Usage(_) => EXIT_USAGE,
            _ => EXIT_FAILURE,
        }
    }
}

/// The executor role's entry point for a program's `main`: parses `args` (those after the
/// `executor` word), prints the usage to stderr if they are wrong, and runs the executor on
/// its own runtime until the driver lets it go. The caller exits with
/// [`ExecutorError::exit_code`] on error.
pub fn executor_main<I, S>(app: &App, args: I) -> Result<(), ExecutorError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut parsed = match ExecutorArgs::parse(args) {
        Ok(parsed) => parsed,
        Err(usage) => {
            eprintln!("executor: {usage}\n{USAGE}");
            return Err(usage.into());
        }
    };
    parsed.container_id = std::env::var("CONTAINER_ID").ok().filter(|c| !c.is_empty());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(ExecutorError::Runtime)?;
    let outcome = runtime.block_on(run_executor(app.tasks().clone(), parsed));
    // Tasks still running on blocking threads must not hold the process open.
    runtime.shutdown_background();
    outcome
}

/// Connects, registers, and serves tasks until Shutdown (Ok) or the driver is gone (Err).
pub async fn run_executor(tasks: TaskRegistry, args: ExecutorArgs) -> Result<(), ExecutorError> {
    let span = info_span!(
        "executor",
        app_id = %args.app_id,
        executor_id = %args.executor_id,
        container_id = args.container_id.as_deref().unwrap_or(""),
    );
    async move {
        let channel = connect(&args.driver_url).await?;
        let (outbox, outbound) = mpsc::unbounded_channel();
        let register = RegisterExecutor {
            executor_id: args.executor_id.clone(),
            hostname: args.hostname.clone(),
            cores: args.cores,
            container_id: args.container_id.clone().unwrap_or_default(),
            app_id: args.app_id.clone(),
        };
        // Queued before the call so that it is the session's first message.
        let _ = outbox.send(ExecutorMessage {
            message: Some(executor_message::Message::Register(register)),
        });
        let lost = |reason: String| ExecutorError::DriverLost {
            url: args.driver_url.clone(),
            reason,
        };
        let mut inbound = DriverClient::new(channel)
            .session(tokio_stream::wrappers::UnboundedReceiverStream::new(
                outbound,
            ))
            .await
            .map_err(|status| lost(format!("cannot open a session: {status}")))?
            .into_inner();
        await_registration(&mut inbound, &args).await?;
        info!(cores = args.cores, "registered with the driver");
        serve(tasks, args.cores, inbound, outbox)
            .await
            .map_err(lost)
    }
    .instrument(span)
    .await
}

/// Connects to the driver, retrying briefly in case it is still binding its port.
async fn connect(url: &str) -> Result<Channel, ExecutorError> {
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|_| UsageError::BadDriverUrl(url.to_string()))?
        .tcp_nodelay(true);
    let mut backoff = FIRST_CONNECT_BACKOFF;
    let mut attempt = 1;
    loop {
        match endpoint.connect().await {
            Ok(channel) => return Ok(channel),
            Err(e) if attempt >= CONNECT_ATTEMPTS => {
                return Err(ExecutorError::Connect {
                    url: url.to_string(),
                    attempts: attempt,
                    reason: e.to_string(),
                });
            }
            Err(e) => {
                debug!(attempt, error = %e, ?backoff, "driver not reachable yet; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_CONNECT_BACKOFF);
                attempt += 1;
            }
        }
    }
}

async fn await_registration(
    inbound: &mut Streaming<DriverMessage>,
    args: &ExecutorArgs,
) -> Result<(), ExecutorError> {
    let lost = |reason: String| ExecutorError::DriverLost {
        url: args.driver_url.clone(),
        reason,
    };
    loop {
        return match inbound.message().await {
            Ok(Some(DriverMessage {
                message: Some(driver_message::Message::Registered(_)),
            })) => Ok(()),
            Ok(Some(DriverMessage {
                message: Some(driver_message::Message::RegisterFailed(failed)),
            })) => Err(ExecutorError::Refused {
                url: args.driver_url.clone(),
                executor_id: args.executor_id.clone(),
                reason: failed.message,
            }),
            // Meant for a client-mode AM watching the driver: the driver sends it to every
            // session that has not registered yet, which this one briefly is.
            Ok(Some(DriverMessage {
                message: Some(driver_message::Message::ExecutorTarget(_)),
            })) => continue,
            Ok(Some(other)) => Err(lost(format!(
                "expected RegisteredExecutor as the driver's first message, got {other:?}"
            ))),
            Ok(None) => Err(lost("the session ended before registration".into())),
            Err(status) => Err(lost(format!("registration failed: {status}"))),
        };
    }
}

/// Runs launched tasks until Shutdown (Ok) or the session ends (Err with the reason). Task
/// results come back through one channel so that only this loop holds the session's sender:
/// when it returns, the session closes even if tasks are still running.
async fn serve(
    tasks: TaskRegistry,
    cores: u32,
    mut inbound: Streaming<DriverMessage>,
    outbox: mpsc::UnboundedSender<ExecutorMessage>,
) -> Result<(), String> {
    let slots = Arc::new(Semaphore::new(cores as usize));
    let (results_tx, mut results) = mpsc::unbounded_channel::<StatusUpdate>();
    loop {
        tokio::select! {
            received = inbound.message() => match received {
                Ok(Some(DriverMessage { message: Some(message) })) => match message {
                    driver_message::Message::LaunchTask(launch) => {
                        let span = info_span!(
                            "task",
                            task_id = launch.task_id,
                            task_name = %launch.task_name,
                            attempt = launch.attempt,
                        );
                        let run = run_task(tasks.clone(), launch, slots.clone(), results_tx.clone());
                        tokio::spawn(run.instrument(span));
                    }
                    driver_message::Message::Shutdown(_) => {
                        info!("the driver asked this executor to shut down");
                        return Ok(());
                    }
                    other => warn!(message = ?other, "ignored an unexpected driver message"),
                },
                Ok(Some(DriverMessage { message: None })) => {
                    warn!("ignored an empty driver message")
                }
                Ok(None) => return Err("the driver closed the session".into()),
                Err(status) => return Err(format!("the session failed: {status}")),
            },
            Some(update) = results.recv() => {
                let message = ExecutorMessage {
                    message: Some(executor_message::Message::Status(update)),
                };
                if outbox.send(message).is_err() {
                    return Err("the session's outbound stream closed".into());
                }
            }
        }
    }
}

/// Waits for a free core, runs the task on a blocking thread, and reports its outcome.
async fn run_task(
    tasks: TaskRegistry,
    launch: LaunchTask,
    slots: Arc<Semaphore>,
    results: mpsc::UnboundedSender<StatusUpdate>,
) {
    let Ok(_core) = slots.acquire_owned().await else {
        return;
    };
    let task_id = launch.task_id;
    debug!("running task");
    let ran =
        tokio::task::spawn_blocking(move || tasks.run(&launch.task_name, &launch.input)).await;
    let result = match ran {
        Ok(Ok(output)) => status_update::Result::Output(output),
        Ok(Err(error)) => {
            warn!(%error, "task failed");
            status_update::Result::Error(error)
        }
        Err(join) => status_update::Result::Error(format!("task_id={task_id} did not run: {join}")),
    };
    let _ = results.send(StatusUpdate {
        task_id,
        result: Some(result),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: [&str; 10] = [
        "--driver-url",
        "http://127.0.0.1:4040",
        "--executor-id",
        "3",
        "--hostname",
        "node-1",
        "--cores",
        "2",
        "--app-id",
        "application_1700000000000_0001",
    ];

    fn with(replace: &str, value: &str) -> Vec<String> {
        let mut args: Vec<String> = GOOD.iter().map(|s| s.to_string()).collect();
        let at = args.iter().position(|a| a == replace).unwrap();
        args[at + 1] = value.to_string();
        args
    }

    #[test]
    fn parses_spark_style_arguments() {
        let args = ExecutorArgs::parse(GOOD).unwrap();
        assert_eq!(
            args,
            ExecutorArgs {
                driver_url: "http://127.0.0.1:4040".into(),
                executor_id: "3".into(),
                hostname: "node-1".into(),
                cores: 2,
                app_id: "application_1700000000000_0001".into(),
                container_id: None,
            }
        );
    }

    #[test]
    fn accepts_equals_form() {
        let args = ExecutorArgs::parse([
            "--driver-url=http://h:1",
            "--executor-id=1",
            "--hostname=h",
            "--cores=1",
            "--app-id=a",
        ])
        .unwrap();
        assert_eq!(args.driver_url, "http://h:1");
        assert_eq!(args.cores, 1);
    }

    #[test]
    fn reports_the_first_missing_option() {
        let err = ExecutorArgs::parse(&GOOD[..8]).unwrap_err();
        assert_eq!(err, UsageError::Missing("--app-id"));
        assert_eq!(
            ExecutorArgs::parse(Vec::<String>::new()).unwrap_err(),
            UsageError::Missing("--driver-url")
        );
    }

    #[test]
    fn rejects_bad_values() {
        assert_eq!(
            ExecutorArgs::parse(with("--cores", "0")).unwrap_err(),
            UsageError::BadCores("0".into())
        );
        assert_eq!(
            ExecutorArgs::parse(with("--cores", "two")).unwrap_err(),
            UsageError::BadCores("two".into())
        );
        assert_eq!(
            ExecutorArgs::parse(with("--driver-url", "127.0.0.1:4040")).unwrap_err(),
            UsageError::BadDriverUrl("127.0.0.1:4040".into())
        );
        assert_eq!(
            ExecutorArgs::parse(with("--hostname", "")).unwrap_err(),
            UsageError::Empty("--hostname")
        );
    }

    #[test]
    fn rejects_unknown_repeated_and_valueless_options() {
        let mut unknown: Vec<&str> = GOOD.to_vec();
        unknown.push("--worker-url");
        assert_eq!(
            ExecutorArgs::parse(&unknown).unwrap_err(),
            UsageError::Unrecognized("--worker-url".into())
        );
        let mut repeated: Vec<&str> = GOOD.to_vec();
        repeated.extend(["--cores", "4"]);
        assert_eq!(
            ExecutorArgs::parse(&repeated).unwrap_err(),
            UsageError::Repeated("--cores")
        );
        assert_eq!(
            ExecutorArgs::parse(["--driver-url"]).unwrap_err(),
            UsageError::MissingValue("--driver-url")
        );
    }

    #[test]
    fn usage_errors_exit_2_and_carry_the_usage() {
        let app = App::new("t").driver(|_| Ok(()));
        let err = executor_main(&app, ["--bogus"]).unwrap_err();
        assert_eq!(err.exit_code(), EXIT_USAGE);
        let text = err.to_string();
        assert!(text.contains("unrecognized argument \"--bogus\""), "{text}");
        assert!(text.contains(USAGE), "{text}");
    }
}
