//! The driver endpoint: a tonic `Driver` server that executors open one session each with,
//! and the single task that owns the [`TaskScheduler`] and carries out its effects. Sessions
//! and the driver's context talk to that task only through one event channel, so the
//! scheduler's state has exactly one owner and every change is a reaction to an event.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use spindle_protocol::driver_server::{Driver, DriverServer};
use spindle_protocol::{
    DriverMessage, ExecutorMessage, ExecutorTarget, RegisterExecutor, RegisterExecutorFailed,
    RegisteredExecutor, Shutdown, StatusUpdate, driver_message, executor_message, status_update,
};
use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, debug, info, info_span, warn};

use super::app::TaskRegistry;
use super::context::{DriverContext, JobError};
use super::scheduler::{DEFAULT_MAX_TASK_FAILURES, Effect, ExecutorInfo, JobId, TaskScheduler};

/// How long a stopping endpoint lets executors close their sessions after being told to shut
/// down, before it drops them. Only a hang guard: well-behaved executors close at once.
const SESSION_CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Where and how the driver endpoint serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverConfig {
    /// The host to bind (port 0: the OS picks one) and, unless `advertise_host` is set, to put
    /// in the driver URL executors get.
    pub host: String,
    /// The host executors dial, when it differs from the bound one (Spark's
    /// `spark.driver.host` next to `spark.driver.bindAddress`): a driver bound on `0.0.0.0`
    /// advertises a name the cluster's nodes can reach.
    pub advertise_host: Option<String>,
    /// Spark's `spark.task.maxFailures`: failures of one task that fail its job.
    pub max_task_failures: u32,
    /// The application this driver belongs to; when set, executors of another app are refused.
    pub app_id: Option<String>,
    /// The program's own arguments, which the driver reads through [`DriverContext::args`].
    pub args: Vec<String>,
}

impl Default for DriverConfig {
    fn default() -> DriverConfig {
        DriverConfig {
            host: "127.0.0.1".to_string(),
            advertise_host: None,
            max_task_failures: DEFAULT_MAX_TASK_FAILURES,
            app_id: None,
            args: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("max_task_failures=0: it must be at least 1 (1 means no retries)")]
    NoTaskAttempts,
    #[error("driver host must not be empty")]
    EmptyHost,
    #[error("driver advertise_host must not be empty when set")]
    EmptyAdvertiseHost,
    #[error("cannot bind the driver endpoint on host {host:?} (any port): {source}")]
    Bind {
        host: String,
        source: std::io::Error,
    },
}

/// What reaches the scheduler task: from executor sessions, from the driver's context, and
/// from the endpoint itself.
pub(crate) enum Event {
    Register {
        session: u64,
        info: ExecutorInfo,
        app_id: String,
        outbox: Outbox,
    },
    Status {
        session: u64,
        update: StatusUpdate,
    },
    SessionEnded {
        session: u64,
    },
    /// The executor's container ended, as the RM told the AM (Spark's `RemoveExecutor`).
    ContainerEnded {
        executor_id: String,
        diagnostics: String,
    },
    SubmitJob {
        task_name: String,
        inputs: Vec<Vec<u8>>,
        reply: JobReply,
    },
    /// Send Shutdown to every executor and accept no more work; answers when done.
    ShutdownExecutors {
        done: oneshot::Sender<()>,
    },
    /// As `ShutdownExecutors`, then the scheduler task ends.
    Stop,
}

/// Where a job's outcome goes: the `DriverContext::run` call waiting for it.
type JobReply = oneshot::Sender<Result<Vec<Vec<u8>>, JobError>>;

/// The driver's half of one executor session. Unbounded so that the scheduler task never
/// waits on a slow executor; what it holds is bounded by the executor's cores.
type Outbox = mpsc::UnboundedSender<Result<DriverMessage, Status>>;

/// A running driver endpoint. Dropping it stops the server without telling executors to shut
/// down; [`DriverEndpoint::shutdown`] is the orderly way.
pub struct DriverEndpoint {
    url: String,
    local_addr: SocketAddr,
    events: mpsc::UnboundedSender<Event>,
    executors: watch::Receiver<Vec<ExecutorInfo>>,
    executor_target: watch::Sender<Option<u32>>,
    tasks: TaskRegistry,
    args: Vec<String>,
    runtime: Handle,
    scheduler_task: JoinHandle<()>,
    server_task: JoinHandle<Result<(), tonic::transport::Error>>,
    stop_server: oneshot::Sender<()>,
    drop_sessions: watch::Sender<bool>,
    /// Set once the executors have been told to shut down: sessions that never registered
    /// (a client-mode AM watching the driver) are told Shutdown and end then, rather than
    /// holding the server's graceful stop open.
    stopping: watch::Sender<bool>,
}

impl DriverEndpoint {
    /// Binds an ephemeral port on `config.host` and starts serving; returns at once. `tasks`
    /// is the program's registry, so a job naming an unknown task fails before it is sent.
    pub async fn start(
        config: DriverConfig,
        tasks: TaskRegistry,
    ) -> Result<DriverEndpoint, DriverError> {
        if config.max_task_failures == 0 {
            return Err(DriverError::NoTaskAttempts);
        }
        if config.host.is_empty() {
            return Err(DriverError::EmptyHost);
        }
        if config.advertise_host.as_deref() == Some("") {
            return Err(DriverError::EmptyAdvertiseHost);
        }
        let listener = TcpListener::bind((config.host.as_str(), 0))
            .await
            .map_err(|source| DriverError::Bind {
                host: config.host.clone(),
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| DriverError::Bind {
            host: config.host.clone(),
            source,
        })?;
        let advertised = config.advertise_host.as_deref().unwrap_or(&config.host);
        let url = driver_url(advertised, local_addr.port());
        let span = info_span!("driver", app_id = config.app_id.as_deref().unwrap_or(""), %url);

        let (events, event_rx) = mpsc::unbounded_channel();
        let (executors_tx, executors) = watch::channel(Vec::new());
        let (executor_target, _) = watch::channel(None);
        let (drop_sessions, drop_sessions_rx) = watch::channel(false);
        let (stopping, stopping_rx) = watch::channel(false);
        let scheduler_loop = SchedulerLoop {
            core: TaskScheduler::new(config.max_task_failures),
            app_id: config.app_id.clone(),
            sessions: HashMap::new(),
            session_of: HashMap::new(),
            forgotten: HashMap::new(),
            jobs: HashMap::new(),
            executors: executors_tx,
            accepting: true,
        };
        let scheduler_task = tokio::spawn(scheduler_loop.run(event_rx).instrument(span.clone()));

        let service = DriverService {
            events: events.clone(),
            next_session: Arc::new(AtomicU64::new(0)),
            drop_sessions: drop_sessions_rx,
            stopping: stopping_rx,
            executor_target: executor_target.subscribe(),
        };
        let (stop_server, stop_rx) = oneshot::channel::<()>();
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        let server = tonic::transport::Server::builder()
            .add_service(DriverServer::new(service))
            .serve_with_incoming_shutdown(incoming, async {
                let _ = stop_rx.await;
            });
        let server_task = tokio::spawn(server.instrument(span.clone()));
        span.in_scope(|| info!("driver endpoint listening"));

        Ok(DriverEndpoint {
            url,
            local_addr,
            events,
            executors,
            executor_target,
            tasks,
            args: config.args,
            runtime: Handle::current(),
            scheduler_task,
            server_task,
            stop_server,
            drop_sessions,
            stopping,
        })
    }

    /// `http://HOST:PORT`: what executors get as `--driver-url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The registered executors, updated on every registration and loss.
    pub fn executors(&self) -> watch::Receiver<Vec<ExecutorInfo>> {
        self.executors.clone()
    }

    /// The total number of executors the driver asked for (`None` until it asks): what the
    /// AM's allocator reads to grow or shrink the executor set.
    pub fn executor_target(&self) -> watch::Receiver<Option<u32>> {
        self.executor_target.subscribe()
    }

    /// The user-facing handle that submits jobs to this endpoint.
    pub fn context(&self) -> DriverContext {
        DriverContext::new(
            self.url.clone(),
            self.events.clone(),
            self.executors.clone(),
            self.executor_target.clone(),
            self.tasks.clone(),
            self.args.clone(),
            self.runtime.clone(),
        )
    }

    /// Tells every executor to shut down, stops serving, and waits until its tasks have ended.
    /// Jobs still running fail with [`JobError::DriverStopped`].
    pub async fn shutdown(self) {
        let _ = self.events.send(Event::Stop);
        if let Err(e) = self.scheduler_task.await {
            warn!(error = %e, "driver scheduler task ended abnormally");
        }
        self.stopping.send_replace(true);
        let _ = self.stop_server.send(());
        let mut server_task = self.server_task;
        let finished = tokio::time::timeout(SESSION_CLOSE_GRACE, &mut server_task).await;
        let outcome = match finished {
            Ok(outcome) => outcome,
            Err(_) => {
                warn!(
                    grace = ?SESSION_CLOSE_GRACE,
                    "executors kept their sessions open after shutdown; dropping them"
                );
                let _ = self.drop_sessions.send(true);
                server_task.await
            }
        };
        match outcome {
            Ok(Ok(())) => debug!("driver endpoint stopped"),
            Ok(Err(e)) => warn!(error = %e, "driver endpoint server failed"),
            Err(e) => warn!(error = %e, "driver endpoint server task ended abnormally"),
        }
    }
}

/// `http://HOST:PORT`, with an IPv6 literal in brackets.
fn driver_url(host: &str, port: u16) -> String {
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => format!("http://[{v6}]:{port}"),
        _ => format!("http://{host}:{port}"),
    }
}

struct Session {
    executor_id: String,
    outbox: Outbox,
}

/// The one owner of the scheduler: turns events into calls on the core and its effects into
/// messages.
struct SchedulerLoop {
    core: TaskScheduler,
    app_id: Option<String>,
    sessions: HashMap<u64, Session>,
    session_of: HashMap<String, u64>,
    /// Sessions of executors whose containers ended while their sessions stayed open: no
    /// longer used, told to shut down with the others.
    forgotten: HashMap<u64, Session>,
    jobs: HashMap<JobId, JobReply>,
    executors: watch::Sender<Vec<ExecutorInfo>>,
    /// False once shutdown began: no new executors, no new jobs.
    accepting: bool,
}

impl SchedulerLoop {
    async fn run(mut self, mut events: mpsc::UnboundedReceiver<Event>) {
        while let Some(event) = events.recv().await {
            match event {
                Event::Register {
                    session,
                    info,
                    app_id,
                    outbox,
                } => self.on_register(session, info, app_id, outbox),
                Event::Status { session, update } => self.on_status(session, update),
                Event::SessionEnded { session } => self.on_session_ended(session),
                Event::ContainerEnded {
                    executor_id,
                    diagnostics,
                } => self.on_container_ended(executor_id, diagnostics),
                Event::SubmitJob {
                    task_name,
                    inputs,
                    reply,
                } => self.on_submit(task_name, inputs, reply),
                Event::ShutdownExecutors { done } => {
                    self.shutdown_executors();
                    let _ = done.send(());
                }
                Event::Stop => {
                    self.shutdown_executors();
                    return;
                }
            }
        }
    }

    fn on_register(&mut self, session: u64, info: ExecutorInfo, app_id: String, outbox: Outbox) {
        let executor_id = info.executor_id.clone();
        let refusal = if !self.accepting {
            Some("the driver is shutting down".to_string())
        } else {
            self.app_id.as_deref().filter(|a| *a != app_id).map(|expected| {
                format!(
                    "executor {executor_id:?} belongs to app_id={app_id:?}, this driver serves {expected:?}"
                )
            })
        };
        let outcome = match refusal {
            Some(reason) => Err(reason),
            None => self
                .core
                .register_executor(info.clone())
                .map_err(|e| e.to_string()),
        };
        match outcome {
            Ok(effects) => {
                info!(
                    executor_id = %info.executor_id,
                    hostname = %info.hostname,
                    cores = info.cores,
                    container_id = info.container_id.as_deref().unwrap_or(""),
                    "registered executor"
                );
                let _ = outbox.send(Ok(message(driver_message::Message::Registered(
                    RegisteredExecutor {},
                ))));
                self.sessions.insert(
                    session,
                    Session {
                        executor_id: executor_id.clone(),
                        outbox,
                    },
                );
                self.session_of.insert(executor_id, session);
                self.publish_executors();
                self.perform(effects);
            }
            Err(reason) => {
                warn!(executor_id = %executor_id, %reason, "refused executor registration");
                // Dropping the outbox afterwards ends the refused session's stream.
                let _ = outbox.send(Ok(message(driver_message::Message::RegisterFailed(
                    RegisterExecutorFailed { message: reason },
                ))));
            }
        }
    }

    fn on_status(&mut self, session: u64, update: StatusUpdate) {
        let Some(executor_id) = self.sessions.get(&session).map(|s| s.executor_id.clone()) else {
            return;
        };
        let result = match update.result {
            Some(status_update::Result::Output(output)) => Ok(output),
            Some(status_update::Result::Error(error)) => Err(error),
            None => Err("the executor sent a status update with neither output nor error".into()),
        };
        if let Err(e) = &result {
            warn!(executor_id = %executor_id, task_id = update.task_id, error = %e, "task failed");
        }
        match self
            .core
            .status_update(&executor_id, update.task_id, result)
        {
            Ok(effects) => self.perform(effects),
            Err(stale) => warn!(%stale, "ignored status update"),
        }
    }

    fn on_session_ended(&mut self, session: u64) {
        self.forgotten.remove(&session);
        let Some(ended) = self.sessions.remove(&session) else {
            return;
        };
        self.session_of.remove(&ended.executor_id);
        if self.accepting {
            warn!(
                executor_id = %ended.executor_id,
                running = self.core.running_on(&ended.executor_id),
                "lost executor: its session ended; re-running its tasks elsewhere"
            );
        }
        let effects = self.core.executor_lost(&ended.executor_id);
        self.publish_executors();
        self.perform(effects);
    }

    /// The RM says the executor's container is over, while its session may still be open: a
    /// lost node's containers end with -100 whether their processes died with it, live on
    /// without their node manager, or are cut off behind a partition that no session notices.
    /// As Spark's driver on `RemoveExecutor`, its tasks run again elsewhere and it gets no more.
    /// Its session is kept, not closed: what it still sends is ignored, and a process that
    /// lives on is its node manager's to stop once the node is back (the RM has it killed).
    fn on_container_ended(&mut self, executor_id: String, diagnostics: String) {
        let Some(session) = self.session_of.remove(&executor_id) else {
            return;
        };
        let Some(removed) = self.sessions.remove(&session) else {
            return;
        };
        if self.accepting {
            warn!(
                executor_id = %executor_id,
                running = self.core.running_on(&executor_id),
                %diagnostics,
                "lost executor: its container ended; re-running its tasks elsewhere"
            );
        }
        self.forgotten.insert(session, removed);
        let effects = self.core.executor_lost(&executor_id);
        self.publish_executors();
        self.perform(effects);
    }

    fn on_submit(&mut self, task_name: String, inputs: Vec<Vec<u8>>, reply: JobReply) {
        if !self.accepting {
            let _ = reply.send(Err(JobError::DriverStopped { task_name }));
            return;
        }
        let tasks = inputs.len();
        let (job, effects) = self.core.submit_job(task_name.clone(), inputs);
        info!(job, task_name = %task_name, tasks, "submitted job");
        self.jobs.insert(job, reply);
        self.perform(effects);
    }

    fn perform(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Launch {
                    executor_id,
                    launch,
                } => {
                    let outbox = self
                        .session_of
                        .get(&executor_id)
                        .and_then(|session| self.sessions.get(session))
                        .map(|s| &s.outbox);
                    debug!(
                        executor_id = %executor_id,
                        task_id = launch.task_id,
                        attempt = launch.attempt,
                        "launching task"
                    );
                    // A closed outbox means the session is ending; its SessionEnded event
                    // follows and re-queues the task.
                    if let Some(outbox) = outbox {
                        let _ =
                            outbox.send(Ok(message(driver_message::Message::LaunchTask(launch))));
                    }
                }
                Effect::JobFinished { job, outcome } => {
                    match &outcome {
                        Ok(_) => info!(job, "job finished"),
                        Err(failure) => warn!(job, %failure, "job failed"),
                    }
                    if let Some(reply) = self.jobs.remove(&job) {
                        let _ = reply.send(outcome.map_err(JobError::from));
                    }
                }
            }
        }
    }

    fn shutdown_executors(&mut self) {
        if self.accepting {
            info!(executors = self.sessions.len(), "shutting down executors");
        }
        self.accepting = false;
        for (_, session) in self.sessions.drain().chain(self.forgotten.drain()) {
            let _ = session
                .outbox
                .send(Ok(message(driver_message::Message::Shutdown(Shutdown {}))));
        }
        self.session_of.clear();
        // Callers still waiting learn that their jobs will not finish.
        self.jobs.clear();
    }

    fn publish_executors(&self) {
        self.executors.send_replace(self.core.executors());
    }
}

fn message(message: driver_message::Message) -> DriverMessage {
    DriverMessage {
        message: Some(message),
    }
}

/// The gRPC face of the endpoint: reads each session and forwards it as events.
struct DriverService {
    events: mpsc::UnboundedSender<Event>,
    next_session: Arc<AtomicU64>,
    drop_sessions: watch::Receiver<bool>,
    stopping: watch::Receiver<bool>,
    executor_target: watch::Receiver<Option<u32>>,
}

#[tonic::async_trait]
impl Driver for DriverService {
    type SessionStream = UnboundedReceiverStream<Result<DriverMessage, Status>>;

    async fn session(
        &self,
        request: Request<Streaming<ExecutorMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let session = self.next_session.fetch_add(1, Ordering::Relaxed);
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let (outbox, outbound) = mpsc::unbounded_channel();
        let reader = SessionReader {
            session,
            inbound: request.into_inner(),
            events: self.events.clone(),
            drop_sessions: self.drop_sessions.clone(),
            stopping: self.stopping.clone(),
            executor_target: self.executor_target.clone(),
        };
        tokio::spawn(
            reader
                .run(outbox)
                .instrument(info_span!("session", session, %peer)),
        );
        Ok(Response::new(UnboundedReceiverStream::new(outbound)))
    }
}

/// Reads one executor's messages until its stream ends, then reports the session ended.
struct SessionReader {
    session: u64,
    inbound: Streaming<ExecutorMessage>,
    events: mpsc::UnboundedSender<Event>,
    drop_sessions: watch::Receiver<bool>,
    stopping: watch::Receiver<bool>,
    executor_target: watch::Receiver<Option<u32>>,
}

impl SessionReader {
    async fn run(mut self, outbox: Outbox) {
        let first = self.first_message(&outbox).await;
        let registered = match first {
            Some(executor_message::Message::Register(register)) => {
                let (info, app_id) = executor_info(register);
                self.events
                    .send(Event::Register {
                        session: self.session,
                        info,
                        app_id,
                        outbox,
                    })
                    .is_ok()
            }
            Some(executor_message::Message::Status(_)) => {
                let _ = outbox.send(Err(Status::invalid_argument(
                    "the first message of a session must be RegisterExecutor, got StatusUpdate",
                )));
                false
            }
            None => false,
        };
        if !registered {
            return;
        }
        while let Some(next) = self.next().await {
            match next {
                executor_message::Message::Status(update) => {
                    let event = Event::Status {
                        session: self.session,
                        update,
                    };
                    if self.events.send(event).is_err() {
                        return;
                    }
                }
                executor_message::Message::Register(again) => warn!(
                    executor_id = %again.executor_id,
                    "ignored a second RegisterExecutor on a registered session"
                ),
            }
        }
        let _ = self.events.send(Event::SessionEnded {
            session: self.session,
        });
    }

    /// Waits for the session's first message. Until it comes, the session may be a client-mode
    /// AM watching the driver, which never registers: it is sent the executor target (the one
    /// already requested, then every change) as Spark's driver sends `RequestExecutors` to its
    /// AM, and when the endpoint stops, Shutdown then the end of its stream: that message,
    /// which no dying process sends, is how the AM tells an orderly stop from a lost driver.
    /// An executor that opens its session may see a target too before its registration
    /// arrives; executors ignore it.
    async fn first_message(&mut self, outbox: &Outbox) -> Option<executor_message::Message> {
        let mut stopping = self.stopping.clone();
        let mut target = self.executor_target.clone();
        let mut sent = None;
        let mut send_target = |total: Option<u32>| {
            if let Some(total) = total.filter(|total| sent != Some(*total)) {
                debug!(total, "sending the executor target to a watching session");
                sent = Some(total);
                let target = driver_message::Message::ExecutorTarget(ExecutorTarget { total });
                let _ = outbox.send(Ok(message(target)));
            }
        };
        send_target(*target.borrow_and_update());
        loop {
            tokio::select! {
                first = self.next() => return first,
                Ok(_) = stopping.wait_for(|stopping| *stopping) => {
                    let _ = outbox.send(Ok(message(driver_message::Message::Shutdown(Shutdown {}))));
                    return None;
                }
                // An error means the endpoint is gone; `stopping` or the stream ends then.
                Ok(()) = target.changed() => send_target(*target.borrow_and_update()),
            }
        }
    }

    /// The next message with a body; `None` when the stream ended, failed, or the endpoint
    /// is dropping sessions.
    async fn next(&mut self) -> Option<executor_message::Message> {
        loop {
            let received = tokio::select! {
                received = self.inbound.message() => received,
                Ok(_) = self.drop_sessions.wait_for(|drop| *drop) => return None,
            };
            match received {
                Ok(Some(ExecutorMessage {
                    message: Some(message),
                })) => return Some(message),
                Ok(Some(ExecutorMessage { message: None })) => {
                    warn!("ignored an empty executor message")
                }
                Ok(None) => return None,
                Err(status) => {
                    debug!(%status, "executor session failed");
                    return None;
                }
            }
        }
    }
}

fn executor_info(register: RegisterExecutor) -> (ExecutorInfo, String) {
    let info = ExecutorInfo {
        executor_id: register.executor_id,
        hostname: register.hostname,
        cores: register.cores,
        container_id: Some(register.container_id).filter(|c| !c.is_empty()),
    };
    (info, register.app_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_urls_bracket_ipv6_literals() {
        assert_eq!(driver_url("127.0.0.1", 7077), "http://127.0.0.1:7077");
        assert_eq!(driver_url("::1", 7077), "http://[::1]:7077");
        assert_eq!(driver_url("node-3", 80), "http://node-3:80");
    }
}
