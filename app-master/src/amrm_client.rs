//! `AmRmClient`: an application master's side of YARN's ApplicationMasterProtocol. It registers
//! the attempt, keeps the pending-request table (`requests`) so that asks go out as increments
//! and surplus containers are recognised, long-polls `Allocate`, and unregisters. It is `Clone`
//! and every method takes `&self`, so several tasks can share one.
//!
//! Every call carries the attempt's AM token (`x-spindle-am-token`), replaced by a fresh one
//! whenever the RM sends one, and the NM tokens the RM hands out are kept for the `NmClient`. A
//! call that cannot reach the RM (it is restarting, say) is tried again with capped back-off for
//! as long as the RM would wait for this AM before failing its attempt, so an AM rides out an
//! RM restart.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use spindle_containers::{AttemptId, ContainerId, Resource, ResourceError};
use spindle_protocol as proto;
use spindle_security::{AM_TOKEN_HEADER, CallCredentials, current_user};
use tokio::time::Instant;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tracing::{info, warn};

use crate::am_env::AmEnv;
use crate::container::{Container, ContainerStatus};
use crate::endpoint::{self, AddressError};
use crate::requests::{ContainerRequest, Outgoing, PendingRequests};
use crate::tokens::NmTokens;

pub use proto::{AmCommand, FinalStatus};

type Rpc = proto::application_master_client::ApplicationMasterClient<
    InterceptedService<Channel, CallCredentials>,
>;

/// When the RM does not say how long it holds an `Allocate`, it still caps whatever we ask;
/// this keeps a long poll long without trusting a zero.
const DEFAULT_MAX_ALLOCATE_WAIT: Duration = Duration::from_secs(60);
/// The RM holds an `Allocate` for at most a third of its AM liveness expiry, so the expiry is
/// (at least) three times the wait it announces.
const LIVENESS_PER_ALLOCATE_WAIT: u32 = 3;
/// Back-off between tries to reach an RM that does not answer.
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(2);

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
    credentials: CallCredentials,
    nm_tokens: NmTokens,
    state: Mutex<State>,
}

struct State {
    requests: PendingRequests,
    releases: BTreeSet<ContainerId>,
    /// What `register` sent, to register again on `Resync`.
    registered_as: Option<proto::RegisterApplicationMasterRequest>,
    maximum: Option<Resource>,
    /// When the RM last answered (or this client was made).
    last_answer: Instant,
    /// How long after `last_answer` calls keep trying to reach an RM that does not answer.
    unreachable_limit: Duration,
    /// Whether the limit was set by hand, so registration does not replace it.
    limit_fixed: bool,
}

impl AmRmClient {
    /// A client for `attempt` talking to the RM at `rm_address` with the attempt's AM token (an
    /// unmanaged AM has it from `SubmitApplicationResponse.am_token`); connects on first use.
    /// With an empty token the calls carry none, and the RM's refusal says so. Must be called
    /// inside a Tokio runtime.
    pub fn new(
        rm_address: &str,
        attempt: AttemptId,
        am_token: &str,
    ) -> Result<AmRmClient, AmRmError> {
        let credentials = if am_token.is_empty() {
            CallCredentials::user_only(current_user())
        } else {
            CallCredentials::with_token(AM_TOKEN_HEADER, am_token.to_string(), current_user())
        };
        AmRmClient::with_credentials(rm_address, attempt, credentials)
    }

    /// A client whose calls carry `credentials` (which should hold the attempt's AM token).
    pub fn with_credentials(
        rm_address: &str,
        attempt: AttemptId,
        credentials: CallCredentials,
    ) -> Result<AmRmClient, AmRmError> {
        let channel = endpoint::lazy_channel(rm_address)?;
        let rpc = proto::application_master_client::ApplicationMasterClient::with_interceptor(
            channel,
            credentials.clone(),
        );
        Ok(AmRmClient {
            inner: Arc::new(Inner {
                attempt,
                rpc,
                credentials,
                nm_tokens: NmTokens::new(),
                state: Mutex::new(State {
                    requests: PendingRequests::default(),
                    releases: BTreeSet::new(),
                    registered_as: None,
                    maximum: None,
                    last_answer: Instant::now(),
                    unreachable_limit: DEFAULT_MAX_ALLOCATE_WAIT * LIVENESS_PER_ALLOCATE_WAIT,
                    limit_fixed: false,
                }),
            }),
        })
    }

    /// The client for the attempt, RM and AM token that the AM's container environment names.
    pub fn from_env(env: &AmEnv) -> Result<AmRmClient, AmRmError> {
        AmRmClient::new(
            &env.rm_address,
            env.attempt_id,
            env.am_token.as_deref().unwrap_or_default(),
        )
    }

    pub fn attempt_id(&self) -> AttemptId {
        self.inner.attempt
    }

    /// The NM tokens the RM has handed this attempt, kept up to date by every answer: give
    /// them to the `NmClient` that starts this attempt's containers.
    pub fn nm_tokens(&self) -> NmTokens {
        self.inner.nm_tokens.clone()
    }

    /// How long after the RM's last answer a call keeps trying to reach an RM that does not
    /// answer (default: the RM's AM liveness expiry, as its registration answer implies it).
    /// Zero makes an unreachable RM an error at once.
    pub fn set_unreachable_limit(&self, limit: Duration) {
        let mut state = self.state();
        state.unreachable_limit = limit;
        state.limit_fixed = true;
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
        if !state.limit_fixed {
            state.unreachable_limit = registration.max_allocate_wait * LIVENESS_PER_ALLOCATE_WAIT;
        }
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
            .send_retried(CALL, request, |mut rpc, request| async move {
                rpc.register_application_master(request).await
            })
            .await?;
        self.inner.nm_tokens.update(&response.nm_tokens);
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
    /// news: new containers, completed ones, or a command. An RM that cannot be reached is
    /// tried again (see [`AmRmClient::set_unreachable_limit`]); if the call fails for good, what
    /// it carried is queued again for the next one.
    #[tracing::instrument(skip(self), fields(attempt = %self.inner.attempt))]
    pub async fn allocate(
        &self,
        progress: f32,
        wait: Duration,
    ) -> Result<AllocateResult, AmRmError> {
        const CALL: &str = "Allocate";
        let mut retry = Retry::default();
        let response = loop {
            // Built afresh on every try, so asks made while the RM was away go out too.
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
            match self.inner.rpc.clone().allocate(request).await {
                Ok(response) => break self.answered(CALL, &retry, response),
                Err(status) => {
                    self.requeue(outgoing, releases);
                    self.back_off(CALL, status, &mut retry).await?;
                }
            }
        };
        self.inner.nm_tokens.update(&response.nm_tokens);
        if !response.am_token.is_empty() {
            // The RM rolled its key or the token nears its end: every later call uses this one.
            info!("the resource manager issued a fresh AM token");
            self.inner
                .credentials
                .replace_token(response.am_token.clone());
        }
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
            .send_retried(CALL, request, |mut rpc, request| async move {
                rpc.finish_application_master(request).await
            })
            .await?;
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

    /// Sends `request` with `send` until the RM answers it, or `back_off` gives up on it.
    async fn send_retried<Req, T, Fut>(
        &self,
        call: &'static str,
        request: Req,
        send: impl Fn(Rpc, Req) -> Fut,
    ) -> Result<T, AmRmError>
    where
        Req: Clone,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let mut retry = Retry::default();
        loop {
            match send(self.inner.rpc.clone(), request.clone()).await {
                Ok(response) => return Ok(self.answered(call, &retry, response)),
                Err(status) => self.back_off(call, status, &mut retry).await?,
            }
        }
    }

    /// Notes that the RM answered `call` (after `retry`'s failures, if any).
    fn answered<T>(&self, call: &'static str, retry: &Retry, response: tonic::Response<T>) -> T {
        self.state().last_answer = Instant::now();
        if let Some(since) = retry.failing_since {
            info!(
                call,
                after = ?since.elapsed(),
                "reached the resource manager again"
            );
        }
        response.into_inner()
    }

    /// After `call` failed with `status`: an RM that cannot be reached is waited for (capped
    /// back-off) while the RM would still wait for this AM, and `Ok` says to try again;
    /// anything else, or an RM away too long, is the call's error.
    async fn back_off(
        &self,
        call: &'static str,
        status: tonic::Status,
        retry: &mut Retry,
    ) -> Result<(), AmRmError> {
        let left = {
            let state = self.state();
            state
                .unreachable_limit
                .saturating_sub(state.last_answer.elapsed())
        };
        if !is_unreachable(&status) || left.is_zero() {
            return Err(self.rpc_error(call, status));
        }
        if retry.failing_since.is_none() {
            warn!(
                call,
                trying_for = ?left,
                "cannot reach the resource manager ({}); trying again",
                status.message()
            );
            retry.failing_since = Some(Instant::now());
        }
        tokio::time::sleep(retry.next.min(left)).await;
        retry.next = (retry.next * 2).min(MAX_RETRY);
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

/// The tries of one call at an RM that does not answer.
struct Retry {
    next: Duration,
    failing_since: Option<Instant>,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            next: FIRST_RETRY,
            failing_since: None,
        }
    }
}

/// Whether a failed call never reached a working RM (refused connection, a connection cut under
/// an open call, an RM shutting down), as opposed to an answer from it.
fn is_unreachable(status: &tonic::Status) -> bool {
    match status.code() {
        tonic::Code::Unavailable => true,
        tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Internal => {
            let message = status.message().to_ascii_lowercase();
            [
                "transport",
                "connection",
                "h2 protocol error",
                "broken pipe",
                "reset",
            ]
            .iter()
            .any(|cut| message.contains(cut))
        }
        _ => false,
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
        let client = AmRmClient::new("127.0.0.1:1", attempt, "").unwrap();
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
        // Nothing listens on port 1, and the client does not wait for an RM to come: the call
        // fails at once.
        let client = AmRmClient::new("127.0.0.1:1", attempt, "t.0").unwrap();
        client.set_unreachable_limit(Duration::ZERO);
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

    #[tokio::test]
    async fn an_unreachable_rm_is_tried_again_until_the_limit() {
        let attempt: AttemptId = "appattempt_1700000000000_0001_000001".parse().unwrap();
        let client = AmRmClient::new("127.0.0.1:1", attempt, "t.0").unwrap();
        client.set_unreachable_limit(Duration::from_millis(400));
        let started = Instant::now();
        let err = client.allocate(0.0, Duration::ZERO).await.unwrap_err();
        assert_eq!(err.code(), Some(tonic::Code::Unavailable), "{err}");
        // It kept trying (three back-offs at least) and gave up near the limit, not long after.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(30), "hang guard: {took:?}");
    }

    #[test]
    fn only_a_missing_rm_is_unreachable() {
        for status in [
            tonic::Status::unavailable("tcp connect error"),
            tonic::Status::unknown("transport error"),
            tonic::Status::cancelled("h2 protocol error: connection reset"),
        ] {
            assert!(is_unreachable(&status), "{status:?}");
        }
        for status in [
            tonic::Status::unauthenticated("this call needs the AM token in its metadata"),
            tonic::Status::permission_denied("not your attempt"),
            tonic::Status::invalid_argument("memory_mb=100000"),
            tonic::Status::not_found("unknown attempt"),
        ] {
            assert!(!is_unreachable(&status), "{status:?}");
        }
    }
}
