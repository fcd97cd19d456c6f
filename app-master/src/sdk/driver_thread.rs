//! Runs an app's driver on its own thread, as Spark's AM runs the user class: the thread
//! starts the driver endpoint, fulfils the context promise with its URL, waits to be resumed,
//! then runs the user's driver function and shuts the endpoint (and so the executors) down.
//! Cluster mode, client mode and local mode all start the driver this way.

use std::panic::{AssertUnwindSafe, catch_unwind};

use tokio::runtime::Handle;
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::app::{App, AppError, DriverFn, panic_message};
use super::context::DriverContext;
use super::driver::{DriverConfig, DriverEndpoint};
use super::promise::{ContextPromise, DriverReady};

#[derive(Debug, thiserror::Error)]
pub enum DriverStartError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error("cannot start the driver thread: {0}")]
    Thread(std::io::Error),
}

/// The running driver thread; [`DriverThread::wait`] gives its outcome.
#[derive(Debug)]
pub struct DriverThread {
    outcome: oneshot::Receiver<Result<(), String>>,
}

impl DriverThread {
    /// A stand-in whose outcome arrives on `outcome`, for tests of the AM that need a driver
    /// behaving as no real one can (one that never creates its context).
    #[cfg(test)]
    pub(crate) fn from_outcome(outcome: oneshot::Receiver<Result<(), String>>) -> DriverThread {
        DriverThread { outcome }
    }

    /// The driver's outcome: `Ok` when the user's driver returned `Ok`, else what went wrong
    /// (its error, its panic message, an endpoint that would not start, or no resume).
    pub async fn wait(self) -> Result<(), String> {
        self.outcome
            .await
            .unwrap_or_else(|_| Err("the driver thread ended without an outcome".to_string()))
    }
}

/// Starts `app`'s driver on a new thread. `runtime` runs the driver endpoint; the thread itself
/// is not a runtime thread, so the user's driver may block freely.
pub fn spawn_driver(
    app: &App,
    config: DriverConfig,
    runtime: Handle,
    promise: ContextPromise,
) -> Result<DriverThread, DriverStartError> {
    app.check()?;
    let driver = app.driver_fn().cloned().ok_or_else(|| AppError::NoDriver {
        app: app.name().to_string(),
    })?;
    let tasks = app.tasks().clone();
    let app_name = app.name().to_string();
    let before_context = app.clone();
    let (outcome_tx, outcome) = oneshot::channel();
    std::thread::Builder::new()
        .name("driver".to_string())
        .spawn(move || {
            let span = tracing::info_span!("driver_thread", app = %app_name);
            let _entered = span.enter();
            let outcome = (|| {
                before_context.run_before_context(&config.args)?;
                let endpoint = runtime
                    .block_on(DriverEndpoint::start(config, tasks))
                    .map_err(|e| format!("cannot start the driver endpoint: {e}"))?;
                let ready = DriverReady {
                    driver_url: endpoint.url().to_string(),
                    context: endpoint.context(),
                    executor_target: endpoint.executor_target(),
                    executors: endpoint.executors(),
                };
                let ctx = endpoint.context();
                let outcome = match promise.fulfil(ready) {
                    Ok(()) => run_user_driver(&driver, &ctx),
                    Err(e) => Err(e.to_string()),
                };
                runtime.block_on(endpoint.shutdown());
                outcome
            })();
            match &outcome {
                Ok(()) => info!("driver finished"),
                Err(e) => warn!(error = %e, "driver failed"),
            }
            let _ = outcome_tx.send(outcome);
        })
        .map_err(DriverStartError::Thread)?;
    Ok(DriverThread { outcome })
}

/// Runs the user's driver; a panic becomes its error, carrying the panic message.
fn run_user_driver(driver: &DriverFn, ctx: &DriverContext) -> Result<(), String> {
    match catch_unwind(AssertUnwindSafe(|| driver(ctx))) {
        Ok(outcome) => outcome,
        Err(payload) => Err(format!(
            "the driver panicked: {}",
            panic_message(payload.as_ref())
        )),
    }
}
