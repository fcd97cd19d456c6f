//! `AmRmClient`: an application master's side of YARN's ApplicationMasterProtocol. It registers
//! the attempt, keeps the pending-request table (`requests`) so that asks go out as increments
//! and surplus containers are recognised, long-polls `Allocate`, and unregisters. It is `Clone`
//! and every method takes `&self`, so several tasks can share one.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use spindle_containers::{AttemptId, ContainerId, Resource, ResourceError};
use spindle_protocol as proto;
use tonic::transport::Channel;
use tracing::{info, warn};

use crate::am_env::AmEnv;
use crate::container::{Container, ContainerStatus};
use crate::endpoint::{self, AddressError};
use crate::requests::{ContainerRequest, Outgoing, PendingRequests};

pub use proto::{AmCommand, FinalStatus};

type Rpc = proto::application_master_client::ApplicationMasterClient<Channel>;

/// When the RM does not say how long it holds an `Allocate`, it still caps whatever we ask;
/// this keeps a long poll long without trusting a zero.
const DEFAULT_MAX_ALLOCATE_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, thiserror::Error)]
pub enum AmRmError {
    #[error("cannot reach the resource manager: {0}")]
    Address(#[from] AddressError),
    #[error("{call} for {attempt} failed: {code:?}: {message}")]
    Rpc {
        call: &'static str,
        attempt: AttemptId,
        code: tonic::Code,
        message: String,
    },
    #[error("the resource manager's answer to {call} is unusable: {reason}")]
    BadResponse { call: &'static str, reason: String },
    #[error("container request {0}")]
    BadCapability(#[from] ResourceError),
    #[error(
        "container request {field}={requested} exceeds the maximum allocation of {maximum} {unit}"
    )]
    AboveMaximum {
        field: &'static str,
        requested: u64,
        maximum: u64,
        unit: &'static str,
    },
    #[error("the resource manager did not confirm that {0} unregistered")]
    NotUnregistered(AttemptId),
}

impl AmRmError {
    /// The gRPC code of a failed call, if the RM answered one.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            AmRmError::Rpc { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// What the RM told this attempt when it registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    pub maximum_resource: Resource,
    pub minimum_resource: Resource,
    pub queue: String,
    /// The longest the RM holds an `Allocate` open: the natural wait for a long poll.
    pub max_allocate_wait: Duration,
    pub containers_from_previous_attempts: Vec<Container>,
}

/// One `Allocate` answer, with allocated containers sorted against the pending requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllocateResult {
    /// Containers that fill a pending request: launch them.
    pub allocated: Vec<Container>,
    /// Containers beyond every pending request (a cancel raced the allocation): release them.
    pub surplus: Vec<Container>,
    pub completed: Vec<ContainerStatus>,
    /// `Resync` has already been handled (registered again, asks re-sent); `Shutdown` means exit.
    pub command: AmCommand,
    pub updated_nodes: Vec<proto::NodeReport>,
    pub num_cluster_nodes: u32,
    /// Room left in the cluster for this application, if the RM said.
    pub available: Option<Resource>,
}

#[derive(Clone)]
pub struct AmRmClient {
    inner: Arc<Inner>,
}

struct Inner {
    attempt: AttemptId,
    rpc: Rpc,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    requests: PendingRequests,
    releases: BTreeSet<ContainerId>,
    /// What `register` sent, to register again on `Resync`.
    registered_as: Option<proto::RegisterApplicationMasterRequest>,
    maximum: Option<Resource>,
}

impl AmRmClient {
    /// A client for `attempt` talking to the RM at `rm_address`; connects on first use. Must be
    /// called inside a Tokio runtime.
    pub fn new(rm_address: &str, attempt: AttemptId) -> Result<AmRmClient, AmRmError> {
        let rpc = Rpc::new(endpoint::lazy_channel(rm_address)?);
        Ok(AmRmClient {
            inner: Arc::new(Inner {
                attempt,
                rpc,
                state: Mutex::new(State::default()),
            }),
        })
    }

    /// The client for the attempt and RM that the AM's container environment names.
    pub fn from_env(env: &AmEnv) -> Result<AmRmClient, AmRmError> {
        AmRmClient::new(&env.rm_address, env.attempt_id)
    }

    pub fn attempt_id(&self) -> AttemptId {
        self.inner.attempt
    }

    /// Registers the attempt: `host` and `rpc_port` say where the AM (or its driver) listens,
    /// `tracking_url` where users can follow it.
    #[tracing::instrument(skip(self), fields(attempt = %self.inner.attempt))]
    pub async fn register(
        &self,
        host: &str,
        rpc_port: u16,
        tracking_url: &str,
    ) -> Result<Registration, AmRmError> {
        let request = proto::RegisterApplicationMasterRequest {
            attempt_id: self.inner.attempt.to_string(),
            host: host.to_string(),
            rpc_port: i32::from(rpc_port),
            tracking_url: tracking_url.to_string(),
        };
        let registration = self.send_register(request.clone()).await?;
        let mut state = self.state();
        state.registered_as = Some(request);
        state.maximum = Some(registration.maximum_resource);
        info!(
            maximum = %registration.maximum_resource,
            queue = %registration.queue,
            "registered with the resource manager"
        );
        Ok(registration)
    }

    async fn send_register(
        &self,
        request: proto::RegisterApplicationMasterRequest,
    ) -> Result<Registration, AmRmError> {
        const CALL: &str = "RegisterApplicationMaster";
        let response = self
            .inner
            .rpc
            .clone()
            .register_application_master(request)
            .await
            .map_err(|status| self.rpc_error(CALL, status))?
            .into_inner();
        registration_from_proto(&response)
    }

    /// Wants one more container like `request`; the ask goes out with the next `allocate`.
    pub fn add_container_request(&self, request: &ContainerRequest) -> Result<(), AmRmError> {
        self.add_container_requests(request, 1)
    }

    /// Wants `count` more containers like `request`. A capability of zero or above the maximum
    /// allocation (known once registered) is refused here, naming both numbers.
    pub fn add_container_requests(
        &self,
        request: &ContainerRequest,
        count: u32,
    ) -> Result<(), AmRmError> {
        Resource::from_proto("capability", Some(&request.capability.to_proto()))?;
        let mut state = self.state();
        if let Some(maximum) = state.maximum {
            check_maximum(request.capability, maximum)?;
        }
        state.requests.add(request, count);
        Ok(())
    }

    /// Wants one container fewer of `request`'s priority and capability; returns whether one
    /// was still pending.
    pub fn remove_container_request(&self, request: &ContainerRequest) -> bool {
        self.remove_container_requests(request, 1) == 1
    }

    /// Wants up to `count` fewer; returns how many pending requests were withdrawn.
    pub fn remove_container_requests(&self, request: &ContainerRequest, count: u32) -> u32 {
        self.state().requests.remove(request, count)
    }

    /// How many containers of this priority and capability are still wanted.
    pub fn pending(&self, priority: i32, capability: Resource) -> u32 {
        self.state().requests.pending(priority, capability)
    }

    /// Gives a container back to the RM with the next `allocate` (it stops it if running).
    pub fn release(&self, container: ContainerId) {
        self.state().releases.insert(container);
    }

    /// Whether asks, cancels or releases are waiting for the next `allocate`. A caller holding
    /// a long poll open can issue a second `allocate` to send them: the RM then answers the
    /// older one at once, so no news is lost.
    pub fn has_outgoing(&self) -> bool {
        let state = self.state();
        state.requests.has_outgoing() || !state.releases.is_empty()
    }

    /// Sends queued asks, cancels and releases, and waits up to `wait` (capped by the RM) for
    /// news: new containers, completed ones, or a command. If the call fails, what it carried
    /// is queued again for the next one.
    #[tracing::instrument(skip(self), fields(attempt = %self.inner.attempt))]
    pub async fn allocate(
        &self,
        progress: f32,
        wait: Duration,
    ) -> Result<AllocateResult, AmRmError> {
        const CALL: &str = "Allocate";
        let (outgoing, releases) = {
            let mut state = self.state();
            (
                state.requests.take_outgoing(),
                std::mem::take(&mut state.releases),
            )
        };
        let (asks, cancels) = outgoing.to_proto();
        let request = proto::AllocateRequest {
            attempt_id: self.inner.attempt.to_string(),
            asks,
            cancels,
            release: releases.iter().map(ToString::to_string).collect(),
            progress: if progress.is_finite() {
                progress.clamp(0.0, 1.0)
            } else {
                0.0
            },
            wait_ms: u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
        };
        let response = match self.inner.rpc.clone().allocate(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                self.requeue(outgoing, releases);
                return Err(self.rpc_error(CALL, status));
            }
        };
        let result = allocate_result(&response, &mut self.state().requests);
        if result.command == AmCommand::Resync {
            self.resync().await?;
        }
        Ok(result)
    }

    /// Unregisters the attempt with its final status; the RM then ends the application.
    #[tracing::instrument(skip(self), fields(attempt = %self.inner.attempt))]
    pub async fn finish(
        &self,
        final_status: FinalStatus,
        diagnostics: &str,
        tracking_url: &str,
    ) -> Result<(), AmRmError> {
        const CALL: &str = "FinishApplicationMaster";
        let request = proto::FinishApplicationMasterRequest {
            attempt_id: self.inner.attempt.to_string(),
            final_status: final_status as i32,
            diagnostics: diagnostics.to_string(),
            tracking_url: tracking_url.to_string(),
        };
        let response = self
            .inner
            .rpc
            .clone()
            .finish_application_master(request)
            .await
            .map_err(|status| self.rpc_error(CALL, status))?
            .into_inner();
        if !response.unregistered {
            return Err(AmRmError::NotUnregistered(self.inner.attempt));
        }
        info!(final_status = final_status.as_str_name(), "unregistered");
        Ok(())
    }

    /// The RM lost this attempt (it restarted): register again as before and ask again for
    /// everything still pending, since its outstanding counts are gone.
    async fn resync(&self) -> Result<(), AmRmError> {
        let registered_as = self.state().registered_as.clone();
        warn!("the resource manager asked this attempt to resync");
        if let Some(request) = registered_as {
            let registration = self.send_register(request).await?;
            self.state().maximum = Some(registration.maximum_resource);
        }
        self.state().requests.resync();
        Ok(())
    }

    fn requeue(&self, outgoing: Outgoing, releases: BTreeSet<ContainerId>) {
        let mut state = self.state();
        state.requests.requeue(outgoing);
        state.releases.extend(releases);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is plain data updated in single steps, so a panic elsewhere cannot leave it
        // half-changed: recover it rather than poison every later call.
        self.inner
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn rpc_error(&self, call: &'static str, status: tonic::Status) -> AmRmError {
        AmRmError::Rpc {
            call,
            attempt: self.inner.attempt,
            code: status.code(),
            message: status.message().to_string(),
        }
    }
}

fn check_maximum(capability: Resource, maximum: Resource) -> Result<(), AmRmError> {
    if capability.memory_mb > maximum.memory_mb {
        return Err(AmRmError::AboveMaximum {
            field: "memory_mb",
            requested: capability.memory_mb,
            maximum: maximum.memory_mb,
            unit: "MB",
        });
    }
    if capability.vcores > maximum.vcores {
        return Err(AmRmError::AboveMaximum {
            field: "vcores",
            requested: u64::from(capability.vcores),
            maximum: u64::from(maximum.vcores),
            unit: "vcores",
        });
    }
    Ok(())
}

fn registration_from_proto(
    r: &proto::RegisterApplicationMasterResponse,
) -> Result<Registration, AmRmError> {
    let bad = |e: ResourceError| AmRmError::BadResponse {
        call: "RegisterApplicationMaster",
        reason: e.to_string(),
    };
    let containers_from_previous_attempts = r
        .containers_from_previous_attempts
        .iter()
        .filter_map(|c| {
            Container::from_proto(c)
                .inspect_err(|e| warn!("ignoring a container from a previous attempt: {e}"))
                .ok()
        })
        .collect();
    Ok(Registration {
        maximum_resource: Resource::from_proto("maximum_resource", r.maximum_resource.as_ref())
            .map_err(bad)?,
        minimum_resource: Resource::from_proto("minimum_resource", r.minimum_resource.as_ref())
            .map_err(bad)?,
        queue: r.queue.clone(),
        max_allocate_wait: match r.max_allocate_wait_ms {
            0 => DEFAULT_MAX_ALLOCATE_WAIT,
            ms => Duration::from_millis(u64::from(ms)),
        },
        containers_from_previous_attempts,
    })
}

/// Reads an `Allocate` answer and sorts its containers against the pending table. An entry the
/// RM garbled is logged and skipped: dropping the whole answer would lose the rest of its news,
/// which the RM delivers only once.
fn allocate_result(r: &proto::AllocateResponse, requests: &mut PendingRequests) -> AllocateResult {
    let mut result = AllocateResult {
        command: AmCommand::try_from(r.command).unwrap_or_else(|_| {
            warn!(
                command = r.command,
                "ignoring an unknown command from the resource manager"
            );
            AmCommand::None
        }),
        updated_nodes: r.updated_nodes.clone(),
        num_cluster_nodes: r.num_cluster_nodes,
        available: r
            .available
            .as_ref()
            .map(|a| Resource::new(a.memory_mb.max(0) as u64, a.vcores.max(0) as u32)),
        ..AllocateResult::default()
    };
    for c in &r.allocated {
        match Container::from_proto(c) {
            Ok(container) if requests.match_allocated(&container) => {
                result.allocated.push(container)
            }
            Ok(container) => result.surplus.push(container),
            Err(e) => warn!("ignoring an allocated container: {e}"),
        }
    }
    for s in &r.completed {
        match ContainerStatus::from_proto(s) {
            Ok(status) => result.completed.push(status),
            Err(e) => warn!("ignoring a completed container status: {e}"),
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire_container(id: u64, memory_mb: i64) -> proto::Container {
        proto::Container {
            container_id: format!("container_1700000000000_0001_01_{id:06}"),
            node_id: "n1:8041".into(),
            node_address: "n1:8041".into(),
            node_http_address: "n1:8042".into(),
            resource: Some(proto::Resource {
                memory_mb,
                vcores: 1,
            }),
            priority: 0,
            container_token: String::new(),
        }
    }

    #[test]
    fn sorts_allocations_into_wanted_and_surplus_and_skips_garbage() {
        let mut table = PendingRequests::new();
        table.add(&ContainerRequest::new(Resource::new(1024, 1), 0), 1);
        let mut garbled = wire_container(9, 1024);
        garbled.node_id = "no-port".into();
        let response = proto::AllocateResponse {
            allocated: vec![wire_container(2, 1024), wire_container(3, 1024), garbled],
            completed: vec![
                proto::ContainerStatus {
                    container_id: "container_1700000000000_0001_01_000001".into(),
                    state: proto::ContainerState::Complete as i32,
                    exit_status: 3,
                    diagnostics: String::new(),
                },
                proto::ContainerStatus {
                    container_id: "bogus".into(),
                    ..Default::default()
                },
            ],
            command: 42,
            ..Default::default()
        };
        let result = allocate_result(&response, &mut table);
        assert_eq!(result.allocated.len(), 1);
        assert_eq!(result.allocated[0].id.id, 2);
        assert_eq!(result.surplus.len(), 1);
        assert_eq!(result.surplus[0].id.id, 3);
        assert_eq!(result.completed.len(), 1);
        assert_eq!(result.completed[0].exit_status, 3);
        assert_eq!(result.command, AmCommand::None);
    }

    #[test]
    fn registration_needs_the_limits_and_never_waits_zero() {
        let mut response = proto::RegisterApplicationMasterResponse {
            maximum_resource: Some(proto::Resource {
                memory_mb: 8192,
                vcores: 32,
            }),
            minimum_resource: Some(proto::Resource {
                memory_mb: 1024,
                vcores: 1,
            }),
            ..Default::default()
        };
        let registration = registration_from_proto(&response).unwrap();
        assert_eq!(registration.max_allocate_wait, DEFAULT_MAX_ALLOCATE_WAIT);
        response.maximum_resource = None;
        let err = registration_from_proto(&response).unwrap_err().to_string();
        assert!(err.contains("maximum_resource is missing"), "{err}");
    }

    #[test]
    fn refuses_requests_above_the_maximum_naming_both_numbers() {
        let err = check_maximum(Resource::new(100_000, 1), Resource::new(8192, 32))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "container request memory_mb=100000 exceeds the maximum allocation of 8192 MB"
        );
        let err = check_maximum(Resource::new(1024, 64), Resource::new(8192, 32))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "container request vcores=64 exceeds the maximum allocation of 32 vcores"
        );
    }

    #[tokio::test]
    async fn refuses_an_empty_capability_before_asking() {
        let attempt: AttemptId = "appattempt_1700000000000_0001_000001".parse().unwrap();
        let client = AmRmClient::new("127.0.0.1:1", attempt).unwrap();
        let err = client
            .add_container_request(&ContainerRequest::new(Resource::new(0, 1), 0))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "container request capability.memory_mb=0 must be at least 1"
        );
        assert!(!client.has_outgoing());
    }

    #[tokio::test]
    async fn a_failed_allocate_keeps_what_it_carried() {
        let attempt: AttemptId = "appattempt_1700000000000_0001_000001".parse().unwrap();
        // Nothing listens on port 1: the call fails without an RM.
        let client = AmRmClient::new("127.0.0.1:1", attempt).unwrap();
        let request = ContainerRequest::new(Resource::new(1024, 1), 0);
        client.add_container_requests(&request, 2).unwrap();
        client.release("container_1700000000000_0001_01_000005".parse().unwrap());
        let err = client.allocate(0.5, Duration::ZERO).await.unwrap_err();
        assert_eq!(err.code(), Some(tonic::Code::Unavailable), "{err}");
        assert!(
            err.to_string()
                .contains("Allocate for appattempt_1700000000000_0001_000001")
        );
        assert!(client.has_outgoing());
        assert_eq!(client.pending(0, Resource::new(1024, 1)), 2);
    }
}
