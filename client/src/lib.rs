//! Spindle's client: submitting applications and following them, the application, node and log
//! commands, `spindle.yaml`, the embedded `LocalCluster`, the `spindle` binary's commands, and
//! the SDK's public face (`sdk`, `run`): the launcher role and role dispatch.

pub mod address;
pub mod cmd;
pub mod config;
pub mod credentials;
pub mod error;
pub mod local_cluster;
pub mod logs;
pub mod report;
pub mod rm_client;
pub mod sdk;
pub mod staging;
pub mod submit;
pub mod watch;

pub use address::Master;
pub use config::{ClientConfig, SpindleConfig};
pub use error::ClientError;
pub use local_cluster::{LocalCluster, LocalClusterError};
pub use rm_client::{NewApplication, RmClient};
pub use sdk::{Launcher, launch_settings, run};
pub use submit::{PreparedSubmission, Submission, submit, submit_as};
pub use watch::follow;
