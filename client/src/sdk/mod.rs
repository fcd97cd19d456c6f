//! The application SDK as one API: what a Spark-shaped program's `main` needs. An [`App`]
//! names its tasks and its driver; [`run`] (or a [`Launcher`] with the program's own defaults)
//! plays the role the process was started for — launcher, application master or executor —
//! and the driver gets the same [`DriverContext`] in every mode.
//!
//! The launcher's masters, as in Spark: `local[N]` runs everything in this process;
//! `local-cluster[N,C,M]` (the default) starts an embedded cluster of real processes;
//! `spindle://HOST:PORT` uses a running resource manager. `--deploy-mode client` (the
//! default) keeps the driver in this process; `cluster` runs it inside the AM.

pub mod client_mode;
pub mod driver_host;
pub mod launch;
pub mod launcher;
pub mod options;
pub mod settings;

pub use launcher::{Launcher, Role, run};
pub use options::{DEFAULT_MASTER, LaunchArgs, LaunchPlan};
pub use settings::{LaunchSettings, launch_settings};

pub use spindle_app_master::am::app_config::{AppConfig, DeployMode};
/// The SDK's building blocks beneath [`run`] (driver endpoint, executor backend, context
/// promise, local mode), for programs that assemble the roles themselves.
pub use spindle_app_master::sdk as parts;
pub use spindle_app_master::sdk::{
    App, AppError, DriverContext, ExecutorInfo, JobError, LocalMaster, TaskFailure, TaskRegistry,
    WaitError,
};
