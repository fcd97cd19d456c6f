//! The shared vocabulary of Spindle (ids, resources, launch contexts, exit statuses) and the
//! process layer that turns a launch context into a real, watched, killable process group.

pub mod cgroup;
pub mod exit_status;
pub mod exposition;
pub mod ids;
pub mod launch_context;
pub mod launch_script;
pub mod localize;
pub mod memory;
pub mod no_follow;
pub mod proc_stat;
pub mod process;
pub mod resource;
pub mod run_as;
pub mod units;

pub use ids::{ApplicationId, AttemptId, ContainerId, IdError, NodeId};
pub use launch_context::{LaunchContext, LaunchContextError, LocalResource};
pub use resource::{Resource, ResourceError};
pub use run_as::RunAs;
