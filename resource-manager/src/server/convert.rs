//! Wire messages into the core's inputs: ids parsed, resources and launch contexts checked,
//! enums mapped. Everything from outside passes through here, and anything malformed becomes a
//! `CoreError` that names the field.

use spindle_containers::{
    ApplicationId, AttemptId, IdError, LaunchContext, LaunchContextError, NodeId, Resource,
};
use spindle_protocol as proto;

use super::status::shorten;
use crate::core::{
    AllocateCall, Ask, CoreError, FinishCall, NodeHeartbeat, NodeInfo, RegisterCall,
    ReportedContainer, ReportedState, Submission,
};

/// Parses the id in request field `field`, naming the field if it is malformed.
fn id<T>(field: impl Into<String>, value: &str) -> Result<T, CoreError>
where
    T: std::str::FromStr<Err = IdError>,
{
    value.parse().map_err(|mut error: IdError| {
        error.value = shorten(&error.value);
        CoreError::MalformedId {
            field: field.into(),
            error,
        }
    })
}

/// The launch context's error, quoting at most the start of the names it was given.
fn shorten_launch_error(error: LaunchContextError) -> LaunchContextError {
    use LaunchContextError::*;
    match error {
        BadResourceName(name) => BadResourceName(shorten(&name)),
        BadDigest { name, sha256 } => BadDigest {
            name: shorten(&name),
            sha256: shorten(&sha256),
        },
        BadEnvName(name) => BadEnvName(shorten(&name)),
        other => other,
    }
}

pub fn application_id(value: &str) -> Result<ApplicationId, CoreError> {
    id("application_id", value)
}

pub fn attempt_id(value: &str) -> Result<AttemptId, CoreError> {
    id("attempt_id", value)
}

pub fn node_id(value: &str) -> Result<NodeId, CoreError> {
    id("node_id", value)
}

/// The `states` filter of ListApplications: known states only.
pub fn app_states(states: &[i32]) -> Result<(), CoreError> {
    for (i, &state) in states.iter().enumerate() {
        match proto::ApplicationState::try_from(state) {
            Ok(proto::ApplicationState::Unspecified) | Err(_) => {
                return Err(CoreError::NotAllowed {
                    field: format!("states[{i}]"),
                    value: state.to_string(),
                    allowed: "an application state, NEW (1) to KILLED (8)",
                });
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

pub fn submission(
    req: proto::SubmitApplicationRequest,
    minimum: Resource,
) -> Result<Submission, CoreError> {
    let id = application_id(&req.application_id)?;
    let (am_memory_mb, am_vcores) = match (&req.am_resource, req.unmanaged) {
        (Some(r), _) => (r.memory_mb, r.vcores),
        // An unmanaged AM runs outside the cluster: it holds nothing, so any size will do.
        (None, true) => (minimum.memory_mb as i64, minimum.vcores as i32),
        (None, false) => {
            return Err(CoreError::Missing {
                field: "am_resource".into(),
            });
        }
    };
    let am_launch = match (&req.am_container, req.unmanaged) {
        (None, true) => LaunchContext::default(),
        (ctx, _) => LaunchContext::from_proto(ctx.as_ref()).map_err(|error| {
            CoreError::BadLaunchContext {
                field: "am_container".into(),
                error: shorten_launch_error(error),
            }
        })?,
    };
    // The launch script cannot carry a NUL byte: refused here rather than at every launch.
    if let Some(name) = am_launch
        .env
        .iter()
        .find(|(_, v)| v.contains('\0'))
        .map(|(k, _)| k)
    {
        return Err(CoreError::NotAllowed {
            field: format!("am_container.environment[{}]", shorten(name)),
            value: "a value with a NUL byte".into(),
            allowed: "text without NUL bytes, which no environment can carry",
        });
    }
    Ok(Submission {
        id,
        name: req.name,
        queue: req.queue,
        application_type: req.application_type,
        tags: req.tags,
        user: req.user,
        am_memory_mb,
        am_vcores,
        am_launch,
        max_attempts: req.max_attempts,
        unmanaged: req.unmanaged,
    })
}

pub fn register_call(
    req: proto::RegisterApplicationMasterRequest,
) -> Result<RegisterCall, CoreError> {
    if !(0..=i32::from(u16::MAX)).contains(&req.rpc_port) {
        return Err(CoreError::NotAllowed {
            field: "rpc_port".into(),
            value: req.rpc_port.to_string(),
            allowed: "a port from 0 (none) to 65535",
        });
    }
    Ok(RegisterCall {
        attempt: attempt_id(&req.attempt_id)?,
        host: req.host,
        rpc_port: req.rpc_port,
        tracking_url: req.tracking_url,
    })
}

fn asks(field: &str, requests: &[proto::ResourceRequest]) -> Result<Vec<Ask>, CoreError> {
    requests
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let capability = r.capability.ok_or_else(|| CoreError::Missing {
                field: format!("{field}[{i}].capability"),
            })?;
            Ok(Ask {
                priority: r.priority,
                memory_mb: capability.memory_mb,
                vcores: capability.vcores,
                num_containers: r.num_containers,
                nodes: r.nodes.clone(),
                relax_locality: r.relax_locality,
            })
        })
        .collect()
}

pub fn allocate_call(req: &proto::AllocateRequest) -> Result<AllocateCall, CoreError> {
    Ok(AllocateCall {
        attempt: attempt_id(&req.attempt_id)?,
        asks: asks("asks", &req.asks)?,
        cancels: asks("cancels", &req.cancels)?,
        releases: req
            .release
            .iter()
            .enumerate()
            .map(|(i, c)| id(format!("release[{i}]"), c))
            .collect::<Result<_, _>>()?,
        progress: req.progress,
    })
}

pub fn finish_call(req: proto::FinishApplicationMasterRequest) -> Result<FinishCall, CoreError> {
    Ok(FinishCall {
        attempt: attempt_id(&req.attempt_id)?,
        final_status: req.final_status,
        diagnostics: req.diagnostics,
        tracking_url: req.tracking_url,
    })
}

pub fn node_info(req: &proto::RegisterNodeRequest) -> Result<NodeInfo, CoreError> {
    Ok(NodeInfo {
        id: node_id(&req.node_id)?,
        hostname: req.hostname.clone(),
        http_address: req.http_address.clone(),
        capability: Resource::from_proto("capability", req.capability.as_ref())?,
    })
}

pub fn reported_containers(
    statuses: &[proto::ContainerStatus],
) -> Result<Vec<ReportedContainer>, CoreError> {
    statuses
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let state = match proto::ContainerState::try_from(s.state) {
                Ok(proto::ContainerState::New | proto::ContainerState::Running) => {
                    ReportedState::Running
                }
                Ok(proto::ContainerState::Complete) => ReportedState::Complete,
                _ => {
                    return Err(CoreError::NotAllowed {
                        field: format!("containers[{i}].state"),
                        value: s.state.to_string(),
                        allowed: "NEW (1), RUNNING (2) or COMPLETE (3)",
                    });
                }
            };
            Ok(ReportedContainer {
                id: id(format!("containers[{i}].container_id"), &s.container_id)?,
                state,
                exit_status: s.exit_status,
                diagnostics: s.diagnostics.clone(),
            })
        })
        .collect()
}

pub fn heartbeat(req: proto::NodeHeartbeatRequest) -> Result<NodeHeartbeat, CoreError> {
    Ok(NodeHeartbeat {
        node: node_id(&req.node_id)?,
        containers: reported_containers(&req.containers)?,
        healthy: req.healthy,
        health_report: req.health_report,
    })
}
