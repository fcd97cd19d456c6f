//! Cluster mode, Spark's `runDriver`: the user's driver runs on a thread of the AM. The AM waits
//! for the driver's context (the promise) up to the AM wait time, registers with the RM at the
//! driver's address, starts the allocator, lets the driver go, and finishes with the driver's
//! outcome, or FAILED when the executors cannot be kept.

use std::pin::pin;
use std::time::Duration;

use tokio::runtime::Handle;
use tracing::{error, info, warn};

use super::executors::{Executors, ExecutorsEnd};
use super::{AmSetup, EXIT_CONTEXT_NOT_INITIALIZED, EXIT_FAILURE, fail_unstarted, unregister};
use crate::amrm_client::FinalStatus;
use crate::sdk::{
    App, ContextPromise, DriverConfig, DriverStartError, DriverThread, PromiseError,
    context_promise, spawn_driver,
};

/// How long the AM lets a driver it stopped (its jobs failed, its executors told to shut
/// down) wind down before exiting anyway; a hang guard, as user code may not notice.
const DRIVER_STOP_GRACE: Duration = Duration::from_secs(10);

/// Runs `app`'s driver in this AM and returns the process exit code.
pub(crate) async fn run_driver(app: &App, setup: AmSetup) -> i32 {
    let driver_config = DriverConfig {
        // Executors reach the driver at its node's address, as they reach the node itself.
        host: setup.env.nm_host.clone(),
        advertise_host: None,
        max_task_failures: setup.config.max_task_failures,
        app_id: Some(setup.env.application_id.to_string()),
        args: setup.args.clone(),
    };
    let runtime = Handle::current();
    run_driver_with(setup, |promise| {
        spawn_driver(app, driver_config, runtime, promise)
    })
    .await
}

/// What `driver did not initialize its context within …` says, on stderr, before exit 13.
pub fn context_timeout_message(waited: Duration) -> String {
    format!("driver did not initialize its context within {waited:?}")
}

/// How the AM stopped waiting on the driver once it was running.
enum End {
    Driver(Result<(), String>),
    Executors(ExecutorsEnd),
}

/// [`run_driver`] with the driver started by `start`.
async fn run_driver_with(
    setup: AmSetup,
    start: impl FnOnce(ContextPromise) -> Result<DriverThread, DriverStartError>,
) -> i32 {
    let AmSetup {
        env,
        client,
        config,
        program,
        args: _,
    } = setup;
    let (promise, waiter) = context_promise();
    let driver = match start(promise) {
        Ok(driver) => driver,
        Err(e) => {
            return fail_unstarted(&client, &env, &format!("cannot start the driver: {e}")).await;
        }
    };

    // As in Spark, a driver that never comes up fails the attempt without registering: the RM
    // sees the AM container fail and starts another attempt if any are left.
    let (ready, resume) = match waiter.wait(config.am_wait_time()).await {
        Ok(pair) => pair,
        Err(PromiseError::Timeout(waited)) => {
            let message = context_timeout_message(waited);
            error!("{message}");
            eprintln!("{message}");
            return EXIT_CONTEXT_NOT_INITIALIZED;
        }
        Err(_) => {
            let why = match driver.wait().await {
                Ok(()) => "it returned without an error".to_string(),
                Err(e) => e,
            };
            error!(%why, "the driver ended before initializing its context");
            eprintln!("the driver ended before initializing its context: {why}");
            return EXIT_FAILURE;
        }
    };
    let driver_url = ready.driver_url.clone();
    info!(%driver_url, "the driver's context is ready");

    let port = driver_port(&driver_url);
    let registration = match client.register(&env.nm_host, port, &driver_url).await {
        Ok(registration) => registration,
        Err(e) => {
            // Released unresumed, the driver shuts its endpoint down and ends.
            drop(resume);
            let _ = driver.wait().await;
            error!("cannot register with the resource manager: {e}");
            eprintln!("application master: cannot register with the resource manager: {e}");
            return EXIT_FAILURE;
        }
    };

    let launch = program.for_driver(&driver_url, config.executor_cores, env.application_id);
    let mut executors = Executors::start(client.clone(), &registration, &config, launch);
    executors.tell_driver(ready.context.clone());
    resume.resume();

    let mut target = ready.executor_target.clone();
    let mut following_target = true;
    let mut driver_done = pin!(driver.wait());
    let end = loop {
        tokio::select! {
            outcome = &mut driver_done => break End::Driver(outcome),
            end = executors.ended() => break End::Executors(end),
            changed = target.changed(), if following_target => match changed {
                Ok(()) => {
                    if let Some(total) = *target.borrow_and_update() {
                        info!(total, "the driver requested a new total of executors");
                        executors.set_target(total);
                    }
                }
                // The driver's endpoint is gone; its outcome follows.
                Err(_) => following_target = false,
            },
        }
    };
    executors.stop().await;

    match end {
        End::Driver(Ok(())) => unregister(&client, FinalStatus::Succeeded, "", &driver_url).await,
        End::Driver(Err(e)) => {
            let diagnostics = format!("the driver failed: {e}");
            unregister(&client, FinalStatus::Failed, &diagnostics, &driver_url).await
        }
        End::Executors(ExecutorsEnd::GaveUp(diagnostics)) => {
            // The user's thread cannot be interrupted as Spark interrupts it: fail its jobs
            // and release its executors, so that it returns, then report the real cause.
            ready.context.shutdown_async().await;
            let code = unregister(&client, FinalStatus::Failed, &diagnostics, &driver_url).await;
            wind_down(driver_done).await;
            code
        }
        End::Executors(ExecutorsEnd::Shutdown) => {
            warn!("the resource manager shut this attempt down; stopping the driver");
            ready.context.shutdown_async().await;
            wind_down(driver_done).await;
            EXIT_FAILURE
        }
    }
}

/// Lets a stopped driver return, for at most [`DRIVER_STOP_GRACE`].
async fn wind_down(driver_done: impl Future<Output = Result<(), String>>) {
    match tokio::time::timeout(DRIVER_STOP_GRACE, driver_done).await {
        Ok(outcome) => info!(?outcome, "the stopped driver returned"),
        Err(_) => warn!(
            grace = ?DRIVER_STOP_GRACE,
            "the driver did not return after being stopped; exiting without it"
        ),
    }
}

/// The port of the driver's own `http://HOST:PORT`, registered as the AM's RPC port.
fn driver_port(driver_url: &str) -> u16 {
    driver_url
        .rsplit_once(':')
        .and_then(|(_, port)| port.trim_end_matches('/').parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use spindle_containers::{AttemptId, LocalResource};
    use tokio::sync::oneshot;

    use super::*;
    use crate::am::app_config::AppConfig;
    use crate::am::executor_launch::ExecutorProgram;
    use crate::am_env::AmEnv;
    use crate::amrm_client::AmRmClient;

    fn setup(rm_address: &str, am_wait_time_ms: u64) -> AmSetup {
        let container = "container_1700000000000_0004_01_000001";
        let env = AmEnv::from_lookup(|name| {
            Some(match name {
                "CONTAINER_ID" => container.to_string(),
                "APPLICATION_ID" => "application_1700000000000_0004".to_string(),
                "SPINDLE_RM_ADDRESS" => rm_address.to_string(),
                "NM_HOST" => "127.0.0.1".to_string(),
                _ => return None,
            })
        })
        .unwrap();
        let attempt: AttemptId = env.attempt_id;
        let program = ExecutorProgram::find(
            &[LocalResource {
                name: "prog".into(),
                sha256: "cd".repeat(32),
                size: 1,
                executable: true,
            }],
            "./prog",
            |_| None,
        )
        .unwrap();
        AmSetup {
            client: AmRmClient::new(rm_address, attempt, "").unwrap(),
            env,
            config: AppConfig {
                am_wait_time_ms,
                ..AppConfig::default()
            },
            program,
            args: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_driver_that_never_creates_its_context_exits_13_without_registering() {
        // A listener stands in for the RM, to see that nothing reaches it.
        let rm = TcpListener::bind("127.0.0.1:0").unwrap();
        rm.set_nonblocking(true).unwrap();
        let rm_address = rm.local_addr().unwrap().to_string();
        let held = Arc::new(Mutex::new(None));
        let (_outcome_tx, outcome) = oneshot::channel();
        let start = {
            let held = held.clone();
            move |promise: ContextPromise| {
                // Kept, never fulfilled: the driver is "still starting".
                *held.lock().unwrap() = Some(promise);
                Ok(DriverThread::from_outcome(outcome))
            }
        };
        let code = tokio::time::timeout(
            Duration::from_secs(60),
            run_driver_with(setup(&rm_address, 50), start),
        )
        .await
        .expect("hang guard");
        assert_eq!(code, EXIT_CONTEXT_NOT_INITIALIZED);
        assert!(held.lock().unwrap().is_some());
        let accepted = rm.accept();
        assert!(
            matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the AM must not contact the RM: {accepted:?}"
        );
    }

    #[tokio::test]
    async fn a_driver_that_ends_first_fails_the_attempt_without_registering() {
        let rm = TcpListener::bind("127.0.0.1:0").unwrap();
        rm.set_nonblocking(true).unwrap();
        let rm_address = rm.local_addr().unwrap().to_string();
        let (outcome_tx, outcome) = oneshot::channel();
        let start = move |promise: ContextPromise| {
            drop(promise);
            let _ = outcome_tx.send(Err("cannot start the driver endpoint: bind".to_string()));
            Ok(DriverThread::from_outcome(outcome))
        };
        let code = run_driver_with(setup(&rm_address, 60_000), start).await;
        assert_eq!(code, EXIT_FAILURE);
        assert!(rm.accept().is_err());
    }

    #[test]
    fn says_how_long_it_waited() {
        assert_eq!(
            context_timeout_message(Duration::from_secs(100)),
            "driver did not initialize its context within 100s"
        );
        assert_eq!(
            context_timeout_message(Duration::from_millis(50)),
            "driver did not initialize its context within 50ms"
        );
    }

    #[test]
    fn registers_the_drivers_port() {
        assert_eq!(driver_port("http://10.0.0.1:41234"), 41234);
        assert_eq!(driver_port("http://[::1]:7077"), 7077);
        assert_eq!(driver_port("http://host"), 0);
    }
}
