//! A container as the RM records it: where it runs, what it holds, and its one state. The record
//! outlives the container so that reports can list every container an application held.

use std::fmt;

use spindle_containers::{ContainerId, Resource};

use super::node::NodeIdx;

/// Every container is in exactly one of these. `Allocated` and `Running` hold capacity on their
/// node; `Completed` and `Released` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Handed to the application; its NM has not yet said it runs.
    Allocated,
    Running,
    Completed,
    /// Given back by its AM (or its app ended) before the NM said it completed.
    Released,
}

impl fmt::Display for ContainerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ContainerState::Allocated => "ALLOCATED",
            ContainerState::Running => "RUNNING",
            ContainerState::Completed => "COMPLETED",
            ContainerState::Released => "RELEASED",
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Container {
    pub id: ContainerId,
    pub node: NodeIdx,
    pub resource: Resource,
    pub priority: i32,
    /// The attempt's ApplicationMaster runs in it.
    pub is_am: bool,
    pub state: ContainerState,
    /// Set once final: the process's exit code or one of YARN's negative statuses.
    pub exit_status: Option<i32>,
    pub diagnostics: String,
    pub allocated_ms: u64,
    pub finished_ms: Option<u64>,
}

impl Container {
    /// Whether it still holds capacity on its node.
    pub fn is_live(&self) -> bool {
        matches!(
            self.state,
            ContainerState::Allocated | ContainerState::Running
        )
    }
}
