//! The containers the RM hands to this AM and the statuses reported for them, checked once as
//! they come off the wire so the rest of the AM works with typed ids.

use spindle_containers::{ContainerId, IdError, NodeId, Resource, ResourceError, exit_status};
use spindle_protocol as proto;

pub use proto::ContainerState;

/// A container allocated to this attempt: where it is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: ContainerId,
    pub node_id: NodeId,
    /// Where the node's ContainerManager listens (`host:port`): the NM to start it on.
    pub node_address: String,
    /// Where the node serves container logs over HTTP.
    pub node_http_address: String,
    pub resource: Resource,
    pub priority: i32,
    /// The RM's signed permission to start exactly this container on its node, which the AM
    /// hands to the NM with the start (`StartContainerRequest.container_token`).
    pub token: String,
}

/// What became of a container, as the RM or an NM reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub id: ContainerId,
    pub state: ContainerState,
    /// The process's exit code, or one of YARN's negative statuses; meaningful when complete.
    pub exit_status: i32,
    pub diagnostics: String,
}

/// A container or status from the wire that does not hold together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error(transparent)]
    Id(#[from] IdError),
    #[error("container {container}: {source}")]
    Resource {
        container: String,
        source: ResourceError,
    },
    #[error("container {container}: node_address is empty")]
    NoNodeAddress { container: String },
}

impl Container {
    pub fn from_proto(c: &proto::Container) -> Result<Container, WireError> {
        let id: ContainerId = c.container_id.parse()?;
        let node_id: NodeId = c.node_id.parse()?;
        let resource = Resource::from_proto("resource", c.resource.as_ref()).map_err(|source| {
            WireError::Resource {
                container: c.container_id.clone(),
                source,
            }
        })?;
        // An RM that leaves the address out still named the node by it.
        let node_address = if c.node_address.is_empty() {
            node_id.to_string()
        } else {
            c.node_address.clone()
        };
        Ok(Container {
            id,
            node_id,
            node_address,
            node_http_address: c.node_http_address.clone(),
            resource,
            priority: c.priority,
            token: c.container_token.clone(),
        })
    }
}

impl ContainerStatus {
    pub fn from_proto(s: &proto::ContainerStatus) -> Result<ContainerStatus, WireError> {
        Ok(ContainerStatus {
            id: s.container_id.parse()?,
            state: ContainerState::try_from(s.state).unwrap_or(ContainerState::Unspecified),
            exit_status: s.exit_status,
            diagnostics: s.diagnostics.clone(),
        })
    }

    pub fn succeeded(&self) -> bool {
        self.exit_status == exit_status::SUCCESS
    }

    /// `exit status 3`, or `exit status -104 (KILLED_EXCEEDED_PMEM)`, with the diagnostics if any.
    pub fn describe(&self) -> String {
        let status = exit_status::describe(self.exit_status);
        match self.diagnostics.trim() {
            "" => status,
            diagnostics => format!("{status}: {diagnostics}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire() -> proto::Container {
        proto::Container {
            container_id: "container_1700000000000_0001_01_000002".into(),
            node_id: "10.0.0.5:8041".into(),
            node_address: String::new(),
            node_http_address: "10.0.0.5:8042".into(),
            resource: Some(proto::Resource {
                memory_mb: 1024,
                vcores: 1,
            }),
            priority: 3,
            container_token: String::new(),
        }
    }

    #[test]
    fn reads_a_container_and_defaults_its_address_to_the_node_id() {
        let c = Container::from_proto(&wire()).unwrap();
        assert_eq!(c.node_address, "10.0.0.5:8041");
        assert_eq!(c.resource, Resource::new(1024, 1));
        assert_eq!(c.priority, 3);
    }

    #[test]
    fn rejects_bad_ids_and_resources_naming_them() {
        let mut bad = wire();
        bad.container_id = "container_x".into();
        let err = Container::from_proto(&bad).unwrap_err().to_string();
        assert!(err.contains("container_x"), "{err}");
        let mut bad = wire();
        bad.resource = None;
        let err = Container::from_proto(&bad).unwrap_err().to_string();
        assert!(
            err.contains("container_1700000000000_0001_01_000002"),
            "{err}"
        );
        assert!(err.contains("resource is missing"), "{err}");
    }

    #[test]
    fn describes_statuses_with_yarn_names() {
        let status = ContainerStatus {
            id: wire().container_id.parse().unwrap(),
            state: ContainerState::Complete,
            exit_status: exit_status::KILLED_EXCEEDED_PMEM,
            diagnostics: "used 900 MB of 512 MB".into(),
        };
        assert_eq!(
            status.describe(),
            "exit status -104 (KILLED_EXCEEDED_PMEM): used 900 MB of 512 MB"
        );
        assert!(!status.succeeded());
    }
}
