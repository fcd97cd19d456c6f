//! Spindle's client: submitting applications and following them, the application, node and log
//! commands, `spindle.yaml`, the embedded `LocalCluster`, and the `spindle` binary's commands.

pub mod address;
pub mod cmd;
pub mod config;
pub mod error;
pub mod local_cluster;
pub mod logs;
pub mod report;
pub mod rm_client;
pub mod staging;
pub mod submit;
pub mod watch;

pub use address::Master;
pub use config::{ClientConfig, SpindleConfig};
pub use error::ClientError;
pub use local_cluster::{LocalCluster, LocalClusterError};
pub use rm_client::{NewApplication, RmClient};
pub use submit::{PreparedSubmission, Submission, submit};
pub use watch::follow;
