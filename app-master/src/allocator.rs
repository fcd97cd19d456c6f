//! The `Allocator`: keeps a target number of executors running for a Spark-style AM. It is a
//! task around `AmRmClient::allocate` long polls that feeds what the RM reports into
//! `AllocatorState` (where every decision is made) and carries out the answers: asks and
//! cancels, releases, and executor launches through a bounded pool of NM calls batched per node.

mod state;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{FuturesUnordered, StreamExt};
use spindle_containers::{ContainerId, LaunchContext, Resource};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{Instrument, info, info_span, warn};

use crate::amrm_client::{AllocateResult, AmCommand, AmRmClient, AmRmError};
use crate::container::Container;
use crate::nm_client::{NmClient, Outcomes};
use crate::requests::ContainerRequest;

pub use state::{Action, AllocatorEvent, AllocatorState, ExecutorId, is_executor_failure};

/// Builds an executor's launch context from its id, its container and the container's host.
pub type LaunchFn = dyn Fn(ExecutorId, &Container, &str) -> LaunchContext + Send + Sync;

/// Consecutive `Allocate` failures after which the allocator gives up (the RM is gone, not
/// restarting); between them it backs off from `FIRST_BACKOFF`, doubling up to `MAX_BACKOFF`.
const MAX_ALLOCATE_FAILURES: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq)]
pub struct AllocatorConfig {
    /// Each executor's container.
    pub resource: Resource,
    pub priority: i32,
    /// Preferred nodes; empty means anywhere.
    pub nodes: Vec<String>,
    pub relax_locality: bool,
    pub initial_target: u32,
    /// Overrides the failure limit of max(2 × target, 3).
    pub max_executor_failures: Option<u32>,
    /// NM calls in flight at once.
    pub max_launches_in_flight: usize,
    /// How long each `Allocate` waits for news; the RM caps it at its own limit.
    pub allocate_wait: Duration,
}

impl AllocatorConfig {
    pub fn new(resource: Resource, initial_target: u32) -> Self {
        AllocatorConfig {
            resource,
            priority: 1,
            nodes: Vec::new(),
            relax_locality: true,
            initial_target,
            max_executor_failures: None,
            max_launches_in_flight: 32,
            allocate_wait: Duration::from_secs(60),
        }
    }
}

enum Command {
    SetTarget(u32),
    SetProgress(f32),
}

/// The handle of a running allocator task; dropping it (or `stop`) ends the task.
pub struct Allocator {
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
}

impl Allocator {
    /// Starts the allocator on `client` (already registered) and returns it with the channel
    /// its events arrive on. `launch` builds each executor's launch context.
    pub fn start(
        client: AmRmClient,
        nm: NmClient,
        config: AllocatorConfig,
        launch: impl Fn(ExecutorId, &Container, &str) -> LaunchContext + Send + Sync + 'static,
    ) -> (Allocator, mpsc::UnboundedReceiver<AllocatorEvent>) {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (events, event_rx) = mpsc::unbounded_channel();
        let span = info_span!("allocator", attempt = %client.attempt_id());
        let request = ContainerRequest::new(config.resource, config.priority)
            .on_nodes(config.nodes.clone(), config.relax_locality);
        let state = AllocatorState::new(config.max_executor_failures);
        let driver = Loop {
            client,
            nm,
            request,
            launch: Arc::new(launch),
            pool: Arc::new(Semaphore::new(config.max_launches_in_flight.max(1))),
            launches: JoinSet::new(),
            events,
            state,
            progress: 0.0,
            wait: config.allocate_wait,
        };
        let task = tokio::spawn(
            driver
                .run(config.initial_target, command_rx)
                .instrument(span),
        );
        (Allocator { commands, task }, event_rx)
    }

    /// Changes how many executors to keep; running ones are not stopped when it drops.
    pub fn set_target(&self, target: u32) {
        // The task has ended only after giving up, which it has reported already.
        let _ = self.commands.send(Command::SetTarget(target));
    }

    /// The application's progress (0 to 1), reported to the RM with each `Allocate`.
    pub fn set_progress(&self, progress: f32) {
        let _ = self.commands.send(Command::SetProgress(progress));
    }

    /// Ends the task (and any NM calls in flight) and waits for it.
    pub async fn stop(self) {
        let Allocator { commands, task } = self;
        drop(commands);
        if let Err(e) = task.await
            && e.is_panic()
        {
            warn!("the allocator task panicked: {e}");
        }
    }
}

type Poll = Pin<Box<dyn Future<Output = Result<AllocateResult, AmRmError>> + Send>>;

struct Loop {
    client: AmRmClient,
    nm: NmClient,
    request: ContainerRequest,
    launch: Arc<LaunchFn>,
    pool: Arc<Semaphore>,
    launches: JoinSet<Outcomes<()>>,
    events: mpsc::UnboundedSender<AllocatorEvent>,
    state: AllocatorState,
    progress: f32,
    wait: Duration,
}

impl Loop {
    async fn run(mut self, initial_target: u32, mut commands: mpsc::UnboundedReceiver<Command>) {
        let actions = self.state.set_target(initial_target);
        self.apply(actions);
        // Usually one long poll is open. When there is something to tell the RM, a second one
        // carries it and the RM answers the first at once; dropping an open poll instead could
        // lose the news it was about to deliver.
        let mut polls: FuturesUnordered<Poll> = FuturesUnordered::new();
        let mut failures_in_a_row = 0u32;
        polls.push(self.poll(None));
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::SetTarget(n)) => {
                        info!(target = n, "executor target changed");
                        let actions = self.state.set_target(n);
                        self.apply(actions);
                    }
                    Some(Command::SetProgress(p)) => self.progress = p,
                    None => break,
                },
                Some(answer) = polls.next() => match answer {
                    Ok(result) => {
                        failures_in_a_row = 0;
                        if self.on_allocate(result) {
                            self.report(AllocatorEvent::Shutdown);
                            break;
                        }
                    }
                    Err(e) => {
                        failures_in_a_row += 1;
                        warn!(failures_in_a_row, "allocate failed: {e}");
                        if failures_in_a_row >= MAX_ALLOCATE_FAILURES {
                            let actions = self.state.give_up(format!(
                                "allocate failed {failures_in_a_row} times in a row; the last: {e}"
                            ));
                            self.apply(actions);
                        } else {
                            let backoff = FIRST_BACKOFF
                                .saturating_mul(1 << (failures_in_a_row - 1).min(16))
                                .min(MAX_BACKOFF);
                            polls.push(self.poll(Some(backoff)));
                        }
                    }
                },
                Some(done) = self.launches.join_next() => match done {
                    Ok(outcomes) => self.on_launched(outcomes),
                    Err(e) => warn!("a launcher task ended abnormally: {e}"),
                },
            }
            if self.state.gave_up() {
                break;
            }
            // While backing off, the delayed poll carries the changes too.
            let send_now = failures_in_a_row == 0 && polls.len() < 2 && self.client.has_outgoing();
            if polls.is_empty() || send_now {
                polls.push(self.poll(None));
            }
        }
    }

    /// One `Allocate`, after `delay` when backing off from a failure.
    fn poll(&self, delay: Option<Duration>) -> Poll {
        let client = self.client.clone();
        let (progress, wait) = (self.progress, self.wait);
        Box::pin(async move {
            if let Some(delay) = delay {
                tokio::time::sleep(delay).await;
            }
            client.allocate(progress, wait).await
        })
    }

    /// Feeds an answer to the state; true if the RM ended the attempt.
    fn on_allocate(&mut self, result: AllocateResult) -> bool {
        // Completions first, so the containers in the same answer can replace them.
        for status in &result.completed {
            let actions = self.state.on_completed(status);
            self.apply(actions);
        }
        if !result.allocated.is_empty() || !result.surplus.is_empty() {
            let actions = self.state.on_allocated(result.allocated, result.surplus);
            self.apply(actions);
        }
        result.command == AmCommand::Shutdown
    }

    fn on_launched(&mut self, outcomes: Outcomes<()>) {
        for (container, outcome) in outcomes {
            let actions = self
                .state
                .on_launched(container, outcome.map_err(|e| e.to_string()));
            self.apply(actions);
        }
    }

    fn apply(&mut self, actions: Vec<Action>) {
        let mut launches = Vec::new();
        for action in actions {
            match action {
                Action::Request(n) => {
                    if let Err(e) = self.client.add_container_requests(&self.request, n) {
                        // The executor resource itself is refused: no later ask can succeed.
                        let actions = self.state.give_up(e.to_string());
                        self.apply(actions);
                    }
                }
                Action::Cancel(n) => {
                    self.client.remove_container_requests(&self.request, n);
                }
                Action::Release(container) => self.client.release(container),
                Action::Launch {
                    executor_id,
                    container,
                } => {
                    let context = (self.launch)(executor_id, &container, container.node_id.host());
                    launches.push((container, context));
                }
                Action::Report(event) => self.report(event),
            }
        }
        self.spawn_launches(launches);
    }

    /// One task per node: each waits for a slot in the pool, then makes one batched call.
    fn spawn_launches(&mut self, launches: Vec<(Container, LaunchContext)>) {
        let mut by_node: std::collections::BTreeMap<String, Vec<(Container, LaunchContext)>> =
            Default::default();
        for (container, context) in launches {
            by_node
                .entry(container.node_address.clone())
                .or_default()
                .push((container, context));
        }
        for (node, batch) in by_node {
            let (nm, pool) = (self.nm.clone(), self.pool.clone());
            let ids: Vec<ContainerId> = batch.iter().map(|(c, _)| c.id).collect();
            let span = info_span!("launch", node = %node, containers = ?ids);
            self.launches.spawn(
                async move {
                    // The pool is never closed, so a permit always comes.
                    let _permit = pool.acquire_owned().await.ok();
                    nm.start_containers(batch).await
                }
                .instrument(span),
            );
        }
    }

    fn report(&self, event: AllocatorEvent) {
        // Nobody listening is no reason to stop keeping executors.
        let _ = self.events.send(event);
    }
}
