//! The application SDK's cluster-independent half: how a program declares its tasks and driver
//! ([`App`]), the driver endpoint and its task scheduler, the executor backend, local mode, and
//! the context promise through which the cluster-mode AM learns that its driver is ready.

pub mod app;
pub mod context;
pub mod driver;
pub mod driver_thread;
pub mod executor;
pub mod local;
pub mod promise;
pub mod scheduler;

#[cfg(test)]
mod tests;

pub use app::{App, AppError, DriverFn, TaskRegistry};
pub use context::{DriverContext, JobError, WaitError};
pub use driver::{DriverConfig, DriverEndpoint, DriverError};
pub use driver_thread::{DriverStartError, DriverThread, spawn_driver};
pub use executor::{ExecutorArgs, ExecutorError, UsageError, executor_main, run_executor};
pub use local::{LocalMaster, LocalMasterError, run_local, run_local_with_args};
pub use promise::{
    ContextPromise, ContextWaiter, DriverReady, PromiseError, ResumeDriver, context_promise,
};
pub use scheduler::{DEFAULT_MAX_TASK_FAILURES, ExecutorInfo, TaskFailure};
