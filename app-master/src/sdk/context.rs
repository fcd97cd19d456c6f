//! The driver's context: the handle a user's driver function gets, Spark's `SparkContext` cut
//! down to what Spindle schedules. Its methods block the calling thread (the driver runs on its
//! own thread, as in Spark); `run_async` serves drivers written as async code.

use std::fmt;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};

use super::app::TaskRegistry;
use super::driver::Event;
use super::scheduler::{ExecutorInfo, TaskFailure};

/// Why a job did not return its outputs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobError {
    #[error(transparent)]
    TaskFailed(#[from] TaskFailure),
    #[error("no task named '{task_name}' is registered; registered tasks: {registered}")]
    UnknownTask {
        task_name: String,
        registered: String,
    },
    #[error("could not encode input #{index} of task '{task_name}': {error}")]
    EncodeInput {
        task_name: String,
        index: usize,
        error: String,
    },
    #[error("could not decode output #{index} of task '{task_name}': {error}")]
    DecodeOutput {
        task_name: String,
        index: usize,
        error: String,
    },
    #[error("the driver stopped before the job of task '{task_name}' finished")]
    DriverStopped { task_name: String },
}

/// Too few executors registered in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    #[error("only {registered} of {wanted} executors registered within {waited:?}")]
    Timeout {
        wanted: usize,
        registered: usize,
        waited: Duration,
    },
    #[error("the driver stopped while waiting for {wanted} executors")]
    DriverStopped { wanted: usize },
}

/// The driver's handle on its executors: run jobs, see and size the executor set, shut down.
/// Cloning gives another handle on the same driver.
#[derive(Clone)]
pub struct DriverContext {
    driver_url: String,
    events: mpsc::UnboundedSender<Event>,
    executors: watch::Receiver<Vec<ExecutorInfo>>,
    executor_target: watch::Sender<Option<u32>>,
    tasks: TaskRegistry,
    args: Vec<String>,
    runtime: Handle,
}

impl DriverContext {
    pub(crate) fn new(
        driver_url: String,
        events: mpsc::UnboundedSender<Event>,
        executors: watch::Receiver<Vec<ExecutorInfo>>,
        executor_target: watch::Sender<Option<u32>>,
        tasks: TaskRegistry,
        args: Vec<String>,
        runtime: Handle,
    ) -> DriverContext {
        DriverContext {
            driver_url,
            events,
            executors,
            executor_target,
            tasks,
            args,
            runtime,
        }
    }

    /// The URL executors connect to.
    pub fn driver_url(&self) -> &str {
        &self.driver_url
    }

    /// The program's own arguments (without the program name), as the user gave them to
    /// `spindle submit -- PROGRAM ARGS...`.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Runs the task `task_name` once per input across the executors and returns the outputs
    /// in input order. Blocks; call it from the driver's thread, not from async code (use
    /// [`DriverContext::run_async`] there).
    pub fn run<I, O>(&self, task_name: &str, inputs: Vec<I>) -> Result<Vec<O>, JobError>
    where
        I: Serialize,
        O: DeserializeOwned,
    {
        self.runtime.block_on(self.run_async(task_name, inputs))
    }

    /// [`DriverContext::run`] for async drivers.
    pub async fn run_async<I, O>(&self, task_name: &str, inputs: Vec<I>) -> Result<Vec<O>, JobError>
    where
        I: Serialize,
        O: DeserializeOwned,
    {
        if !self.tasks.contains(task_name) {
            return Err(JobError::UnknownTask {
                task_name: task_name.to_string(),
                registered: self.tasks.describe_names(),
            });
        }
        let encoded = inputs
            .iter()
            .enumerate()
            .map(|(index, input)| {
                serde_json::to_vec(input).map_err(|e| JobError::EncodeInput {
                    task_name: task_name.to_string(),
                    index,
                    error: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let stopped = || JobError::DriverStopped {
            task_name: task_name.to_string(),
        };
        let (reply, outcome) = oneshot::channel();
        self.events
            .send(Event::SubmitJob {
                task_name: task_name.to_string(),
                inputs: encoded,
                reply,
            })
            .map_err(|_| stopped())?;
        let outputs = outcome.await.map_err(|_| stopped())??;
        outputs
            .iter()
            .enumerate()
            .map(|(index, output)| {
                serde_json::from_slice(output).map_err(|e| JobError::DecodeOutput {
                    task_name: task_name.to_string(),
                    index,
                    error: e.to_string(),
                })
            })
            .collect()
    }

    /// The executors registered now, in registration order.
    pub fn executors(&self) -> Vec<ExecutorInfo> {
        self.executors.borrow().clone()
    }

    /// Asks for `total` executors in all (Spark's `requestTotalExecutors`); the AM's allocator
    /// reads the latest request and grows or shrinks the executor set towards it.
    pub fn request_total_executors(&self, total: u32) {
        self.executor_target.send_replace(Some(total));
    }

    /// Blocks until at least `wanted` executors are registered, or `timeout` passes.
    pub fn wait_for_executors(&self, wanted: usize, timeout: Duration) -> Result<(), WaitError> {
        self.runtime
            .block_on(self.wait_for_executors_async(wanted, timeout))
    }

    /// [`DriverContext::wait_for_executors`] for async drivers.
    pub async fn wait_for_executors_async(
        &self,
        wanted: usize,
        timeout: Duration,
    ) -> Result<(), WaitError> {
        let mut executors = self.executors.clone();
        let enough = executors.wait_for(|registered| registered.len() >= wanted);
        match tokio::time::timeout(timeout, enough).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(WaitError::DriverStopped { wanted }),
            Err(_) => Err(WaitError::Timeout {
                wanted,
                registered: self.executors.borrow().len(),
                waited: timeout,
            }),
        }
    }

    /// Sends Shutdown to every executor and stops accepting work; jobs still running fail with
    /// [`JobError::DriverStopped`]. Blocks until the executors have been told.
    pub fn shutdown(&self) {
        self.runtime.block_on(self.shutdown_async())
    }

    /// Tells the driver that executor `executor_id`'s container has ended, as the RM reported
    /// it to the AM: its tasks run again elsewhere.
    pub(crate) fn executor_container_ended(&self, executor_id: &str, diagnostics: String) {
        let _ = self.events.send(Event::ContainerEnded {
            executor_id: executor_id.to_string(),
            diagnostics,
        });
    }

    /// [`DriverContext::shutdown`] for async drivers.
    pub async fn shutdown_async(&self) {
        let (done, told) = oneshot::channel();
        if self.events.send(Event::ShutdownExecutors { done }).is_ok() {
            let _ = told.await;
        }
    }
}

impl fmt::Debug for DriverContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriverContext")
            .field("driver_url", &self.driver_url)
            .field("args", &self.args)
            .field("executors", &self.executors.borrow().len())
            .finish()
    }
}
