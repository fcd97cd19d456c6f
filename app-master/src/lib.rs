//! The application master's side of Spindle: the clients it speaks to the resource manager
//! (`AmRmClient`) and to node managers (`NmClient`) with, the `Allocator` that keeps a
//! target number of executors running on top of them, the SDK's driver and executor roles, and
//! the Spark-style AM role (`am`) that puts them together.

pub mod allocator;
pub mod am;
pub mod am_env;
pub mod amrm_client;
pub mod container;
pub mod endpoint;
pub mod nm_client;
pub mod requests;
pub mod sdk;
pub mod tokens;

pub use allocator::{Allocator, AllocatorConfig, AllocatorEvent, ExecutorId};
pub use am::{AppConfig, DeployMode, run_application_master};
pub use am_env::{AmEnv, AmEnvError};
pub use amrm_client::{
    AllocateResult, AmCommand, AmRmClient, AmRmError, FinalStatus, Registration,
};
pub use container::{Container, ContainerStatus};
pub use nm_client::{NmClient, NmError};
pub use requests::ContainerRequest;
pub use tokens::NmTokens;
