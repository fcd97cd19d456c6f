//! The executor set of a Spark-shaped AM: the `Allocator` started with the application's
//! executor shape, its events logged as they come, and reduced to the two that end the AM's
//! wait: the allocator gave up, or the RM shut the attempt down. A driver in the same process
//! hears of every executor whose container ended.

use spindle_containers::ApplicationId;
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::app_config::AppConfig;
use super::executor_launch::ExecutorLaunch;
use crate::allocator::{Allocator, AllocatorConfig, AllocatorEvent};
use crate::amrm_client::{AmRmClient, Registration};
use crate::nm_client::NmClient;
use crate::sdk::DriverContext;

/// Why the executor set can no longer serve the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecutorsEnd {
    /// The allocator stopped for good: finish FAILED with these diagnostics.
    GaveUp(String),
    /// The RM ended the attempt (AM_COMMAND_SHUTDOWN): exit without unregistering.
    Shutdown,
}

/// The running allocator and the events it reports.
pub struct Executors {
    allocator: Allocator,
    events: mpsc::UnboundedReceiver<AllocatorEvent>,
    app_id: ApplicationId,
    /// The driver, when it runs in this process (cluster mode).
    driver: Option<DriverContext>,
}

impl Executors {
    /// Starts keeping `config.num_executors` executors, launched with `launch`, on `client`
    /// (already registered with `registration`); their nodes are called with the NM tokens
    /// the RM hands `client`.
    pub fn start(
        client: AmRmClient,
        registration: &Registration,
        config: &AppConfig,
        launch: ExecutorLaunch,
    ) -> Executors {
        let mut allocator_config =
            AllocatorConfig::new(config.executor_resource(), config.num_executors);
        allocator_config.allocate_wait = registration.max_allocate_wait;
        let app_id = client.attempt_id().application();
        let nm = NmClient::new(client.nm_tokens());
        let (allocator, events) = Allocator::start(
            client,
            nm,
            allocator_config,
            move |executor_id, _container, host| launch.context(executor_id, host),
        );
        info!(
            executors = config.num_executors,
            memory_mb = config.executor_memory_mb,
            cores = config.executor_cores,
            "requesting executors"
        );
        Executors {
            allocator,
            events,
            app_id,
            driver: None,
        }
    }

    /// From now on, `driver` hears of every executor whose container ended, as Spark's
    /// allocator tells its driver: the RM's word is the only news of a lost node's executors
    /// whose processes live on or are cut off, so their sessions do not end.
    pub fn tell_driver(&mut self, driver: DriverContext) {
        self.driver = Some(driver);
    }

    /// Keeps `total` executors from now on (the driver's `request_total_executors`).
    pub fn set_target(&self, total: u32) {
        self.allocator.set_target(total);
    }

    /// Logs the allocator's events until one ends the executor set. Cancel-safe.
    pub async fn ended(&mut self) -> ExecutorsEnd {
        loop {
            let Some(event) = self.events.recv().await else {
                // The allocator reports before it stops; a silent end is a bug or a panic.
                return ExecutorsEnd::GaveUp(format!(
                    "the allocator of {} stopped without saying why",
                    self.app_id
                ));
            };
            match event {
                AllocatorEvent::ExecutorLaunched {
                    executor_id,
                    container,
                } => info!(
                    executor_id,
                    container_id = %container.id,
                    node = %container.node_id,
                    "launched executor"
                ),
                AllocatorEvent::ExecutorLaunchFailed {
                    executor_id,
                    container,
                    error,
                } => warn!(
                    executor_id,
                    container_id = %container.id,
                    node = %container.node_id,
                    %error,
                    "executor could not start"
                ),
                AllocatorEvent::ExecutorExited {
                    executor_id,
                    container,
                    status,
                    failure,
                } => {
                    let how = status.describe();
                    if let Some(driver) = &self.driver {
                        driver.executor_container_ended(&executor_id.to_string(), how.clone());
                    }
                    if failure {
                        warn!(executor_id, container_id = %container.id, %how, "executor failed");
                    } else {
                        info!(executor_id, container_id = %container.id, %how, "executor exited");
                    }
                }
                AllocatorEvent::GaveUp { diagnostics } => {
                    return ExecutorsEnd::GaveUp(diagnostics);
                }
                AllocatorEvent::Shutdown => return ExecutorsEnd::Shutdown,
            }
        }
    }

    /// Stops asking for and launching executors; those running are left to the driver's
    /// shutdown and the RM's clean-up when the application ends.
    pub async fn stop(self) {
        self.allocator.stop().await;
    }
}
