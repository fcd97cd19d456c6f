//! The one task that owns the `Core`. It takes commands in order, feeds them to the core with
//! the time, and carries out the effects: writes to the state store, AM launches and container
//! stops on NMs, answers to Allocate long polls, reports to watchers. A ticker drives liveness
//! (`on_tick`), and each open poll's deadline wakes the loop to answer it.
//!
//! Commands are taken in batches: everything queued when the task gets to it. The records a
//! batch made are written to the store in one transaction, and only then does anything of the
//! batch leave the task (answers, reads, RPCs to NMs): nothing is seen that a crash could undo.
//! If the store cannot be written, the RM stops rather than go on with what it cannot keep.
//!
//! The task also owns the key book: a timer wakes it when keys are due to roll, activate or be
//! forgotten; the changes are written with the batch, and the new `Keys` are published to the
//! services only once they are durable. What it hands to NMs and AMs (the AM token in the AM's
//! environment, container and NM tokens) it signs with the published keys.

use std::collections::BTreeMap;
use std::time::Duration;

use spindle_containers::{ApplicationId, AttemptId, ContainerId};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::info_span;

use super::clock::Clock;
use super::handle::{Command, CoreHandle, Reader, Reply};
use super::keys::{KeyBook, os_random};
use super::nm_client::{AmLaunch, NmClients};
use super::persist::Persister;
use super::polls::{AllocateReply, Polls};
use super::reports;
use super::tokens::{Grant, Keys, KeysHandle};
use super::watchers::{ReportSender, Watchers};
use crate::config::RmConfig;
use crate::core::{AllocateCall, Core, CoreError, Effect, Record};
use crate::store::KeyChange;

/// The environment variable that hands an AM its AM token.
pub const AM_TOKEN_ENV: &str = "SPINDLE_AM_TOKEN";
/// After the random source failed, how long before keys are tried again (the old ones still
/// sign meanwhile).
const KEY_RETRY: Duration = Duration::from_secs(60);
/// The longest the key timer sleeps: it is set again on waking, so any bound will do, and this
/// one keeps `Instant` arithmetic far from overflowing.
const MAX_KEY_SLEEP: Duration = Duration::from_secs(3600);

/// Commands queued before senders wait: deep enough for bursts of heartbeats and polls.
const COMMAND_QUEUE: usize = 4096;
/// The most commands in one batch, so that a flood cannot hold answers back for long.
const MAX_BATCH: usize = 512;

/// What a batch does once its records are written.
enum Then {
    Effects(Vec<Effect>),
    /// An answer already computed.
    Send(Box<dyn FnOnce() + Send>),
    /// Answer an Allocate now if its attempt has news, else hold it open.
    Poll {
        attempt: AttemptId,
        wait: Duration,
        reply: AllocateReply,
    },
    Watch(ApplicationId, ReportSender, Reply<()>),
    Read(Reader),
    /// Keys that rolled: the services sign and check with them from now on.
    Publish(Box<Keys>),
}

#[derive(Default)]
struct Batch {
    records: Vec<Record>,
    keys: Vec<KeyChange>,
    then: Vec<Then>,
}

struct CoreTask {
    core: Core,
    clock: Clock,
    max_allocate_wait: Duration,
    polls: Polls,
    watchers: Watchers,
    nm: NmClients,
    store: Persister,
    batch: Batch,
    /// Stops the whole RM when the store fails.
    stop_rm: watch::Sender<bool>,
    keys: KeyBook,
    published: KeysHandle,
    /// Set when making a key failed: when to try again.
    key_retry_ms: Option<u64>,
}

/// Liveness is checked four times per the shorter expiry, but never more often than every
/// 100 ms nor less often than every second (an AM's exit grace is counted in seconds).
fn tick_interval(config: &RmConfig) -> Duration {
    let shorter = config.nm_liveness_expiry.min(config.am_liveness_expiry);
    (shorter / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// What the core task starts from.
pub struct Start {
    pub core: Core,
    pub store: Persister,
    /// Effects of the recovery still to carry out.
    pub effects: Vec<Effect>,
    pub clock: Clock,
    pub keys: KeyBook,
    /// Holds the keys `keys` is at now.
    pub published: KeysHandle,
    /// The RM's own OS user, which its calls to NMs name.
    pub user: String,
}

/// Starts the core task; it runs until `shutdown` turns true (or the store fails, which turns
/// it true for every task).
pub fn spawn(
    config: &RmConfig,
    start: Start,
    shutdown: watch::Sender<bool>,
) -> (CoreHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let mut task = CoreTask {
        core: start.core,
        clock: start.clock,
        max_allocate_wait: config.max_allocate_wait(),
        polls: Polls::default(),
        watchers: Watchers::default(),
        nm: NmClients::new(tx.clone(), start.user),
        store: start.store,
        batch: Batch::default(),
        stop_rm: shutdown.clone(),
        keys: start.keys,
        published: start.published,
        key_retry_ms: None,
    };
    task.effects(start.effects);
    let join = tokio::spawn(task.run(rx, shutdown.subscribe(), tick_interval(config)));
    (CoreHandle::new(tx), join)
}

impl CoreTask {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut shutdown: watch::Receiver<bool>,
        tick: Duration,
    ) {
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        while self.flush().await {
            let deadline = self.polls.next_deadline();
            let keys_due = self.keys_due();
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                command = commands.recv() => match command {
                    Some(command) => self.handle(command),
                    None => break,
                },
                _ = ticker.tick() => {
                    let effects = self.core.on_tick(self.clock.now_ms());
                    self.effects(effects);
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                    if deadline.is_some() => self.expire_polls(),
                _ = tokio::time::sleep_until(keys_due) => self.roll_keys(),
            }
            // Whatever queued up meanwhile joins the batch: one store write for all of it.
            for _ in 1..MAX_BATCH {
                match commands.try_recv() {
                    Ok(command) => self.handle(command),
                    Err(_) => break,
                }
            }
        }
        tracing::info!(open_polls = self.polls.len(), "core task stopped");
    }

    /// Writes the batch's records, then lets its answers and actions out. Returns false if the
    /// store failed: then the batch's callers get no answer (they see the RM stopping).
    async fn flush(&mut self) -> bool {
        let Batch {
            records,
            keys,
            then,
        } = std::mem::take(&mut self.batch);
        if !records.is_empty() || !keys.is_empty() {
            let count = records.len() + keys.len();
            if let Err(e) = self.store.write(records, keys).await {
                tracing::error!(error = %e, records = count,
                    "cannot write the state store; stopping the resource manager");
                let _ = self.stop_rm.send(true);
                return false;
            }
        }
        for then in then {
            self.then(then);
        }
        true
    }

    /// When the key book next has something to do.
    fn keys_due(&self) -> Instant {
        let now = self.clock.now_ms();
        let due = self
            .key_retry_ms
            .unwrap_or_else(|| self.keys.next_change_ms(now));
        Instant::now() + Duration::from_millis(due.saturating_sub(now)).min(MAX_KEY_SLEEP)
    }

    /// Rolls, activates and forgets keys as due; the new keys are published once written.
    fn roll_keys(&mut self) {
        let now = self.clock.now_ms();
        match self.keys.advance(now, &mut os_random) {
            Ok(changes) => {
                self.key_retry_ms = None;
                if changes.is_empty() {
                    return;
                }
                self.batch.keys.extend(changes);
                match self.keys.snapshot(now) {
                    Some(keys) => self.batch.then.push(Then::Publish(Box::new(keys))),
                    None => tracing::error!("the key book has no key to sign with"),
                }
            }
            Err(e) => {
                tracing::error!(error = %e,
                    "cannot make a new key; the current ones sign on, and it is tried again");
                self.key_retry_ms = Some(now + KEY_RETRY.as_millis() as u64);
            }
        }
    }

    /// Splits an event's effects: records go to the store, the rest waits for the write.
    fn effects(&mut self, effects: Vec<Effect>) {
        let mut rest = Vec::new();
        for effect in effects {
            match effect {
                Effect::Persist(record) => self.batch.records.push(record),
                other => rest.push(other),
            }
        }
        if !rest.is_empty() {
            self.batch.then.push(Then::Effects(rest));
        }
    }

    fn reply<T: Send + 'static>(&mut self, reply: Reply<T>, result: Result<T, CoreError>) {
        self.batch.then.push(Then::Send(Box::new(move || {
            let _ = reply.send(result);
        })));
    }

    fn handle(&mut self, command: Command) {
        let now = self.clock.now_ms();
        match command {
            Command::NewApplication(reply) => {
                let (id, effects) = self.core.new_application();
                self.effects(effects);
                self.reply(reply, Ok(id));
            }
            Command::Submit(submission, reply) => {
                let _span = info_span!("submit", app = %submission.id).entered();
                let result = self.core.submit(now, submission);
                let result = result.map(|(attempt, effects)| {
                    self.effects(effects);
                    attempt
                });
                self.reply(reply, result);
            }
            Command::Kill(app, diagnostics, reply) => {
                let _span = info_span!("kill", %app).entered();
                let result = self.core.kill(now, app, &diagnostics);
                let result = result.map(|effects| self.effects(effects));
                self.reply(reply, result);
            }
            Command::Watch(app, watcher, reply) => {
                self.batch.then.push(Then::Watch(app, watcher, reply));
            }
            Command::RegisterNode(info, containers, reply) => {
                let _span = info_span!("register_node", node = %info.id).entered();
                let effects = self.core.on_node_register(now, info, containers);
                self.effects(effects);
                self.reply(reply, Ok(()));
            }
            Command::Heartbeat(heartbeat, reply) => {
                let _span = info_span!("heartbeat", node = %heartbeat.node).entered();
                let result = self.core.on_node_heartbeat(now, heartbeat);
                let result = result.map(|mut outcome| {
                    self.effects(std::mem::take(&mut outcome.effects));
                    outcome
                });
                self.reply(reply, result);
            }
            Command::RegisterAm(call, reply) => {
                let attempt = call.attempt;
                let _span = info_span!("register_am", %attempt).entered();
                let result = self.core.on_register_am(now, call).map(|effects| {
                    self.effects(effects);
                    self.core
                        .app(attempt.application)
                        .map(|a| a.queue.clone())
                        .unwrap_or_default()
                });
                self.reply(reply, result);
            }
            Command::Allocate { call, wait, reply } => {
                let attempt = call.attempt;
                let _span = info_span!("allocate", %attempt).entered();
                self.allocate(now, call, wait, reply);
            }
            Command::FinishAm(call, reply) => {
                let _span = info_span!("finish_am", attempt = %call.attempt).entered();
                let result = self.core.on_finish_am(now, call);
                let result = result.map(|effects| self.effects(effects));
                self.reply(reply, result);
            }
            Command::AmLaunched { container, result } => {
                let _span = info_span!("am_launched", %container).entered();
                let effects = match result {
                    Ok(()) => self.core.on_am_launched(now, container),
                    Err(message) => self.core.on_am_launch_failed(now, container, &message),
                };
                self.effects(effects);
            }
            Command::Read(read) => self.batch.then.push(Then::Read(read)),
        }
    }

    fn allocate(&mut self, now: u64, call: AllocateCall, wait: Duration, reply: AllocateReply) {
        let attempt = call.attempt;
        let effects = match self.core.on_allocate(now, call) {
            Ok(effects) => effects,
            Err(e) => {
                self.batch.then.push(Then::Send(Box::new(move || {
                    let _ = reply.send(Err(e));
                })));
                return;
            }
        };
        // The older poll is answered empty before the effects run, so that the news goes to
        // the newer poll: the AM that sent it is the one still listening.
        if let Some(older) = self.polls.take(attempt) {
            self.answer_empty(older);
        }
        self.effects(effects);
        self.batch.then.push(Then::Poll {
            attempt,
            wait,
            reply,
        });
    }

    fn answer_empty(&mut self, poll: AllocateReply) {
        let empty = reports::empty_allocate_response(&self.core);
        self.batch.then.push(Then::Send(Box::new(move || {
            let _ = poll.send(Ok(empty));
        })));
    }

    /// Carries out one action of a written batch.
    fn then(&mut self, then: Then) {
        match then {
            Then::Effects(effects) => self.carry_out(effects),
            Then::Send(send) => send(),
            Then::Poll {
                attempt,
                wait,
                reply,
            } => {
                let wait = wait.min(self.max_allocate_wait);
                if wait.is_zero() || self.core.has_news(attempt) {
                    self.answer(attempt, reply);
                } else if let Some(older) = self.polls.hold(attempt, reply, Instant::now() + wait) {
                    // Two polls of one attempt in one batch: the later one listens.
                    let _ = older.send(Ok(reports::empty_allocate_response(&self.core)));
                }
            }
            Then::Watch(app, watcher, reply) => {
                let result = match self.core.app(app) {
                    Some(a) => {
                        let report = reports::app_report(&self.core, a);
                        self.watchers.add(app, watcher, report, a.state.is_final());
                        Ok(())
                    }
                    None => Err(CoreError::UnknownApplication(app)),
                };
                let _ = reply.send(result);
            }
            Then::Read(read) => read(&self.core, self.clock.now_ms()),
            Then::Publish(keys) => {
                tracing::info!(
                    master_key = keys.master_key_id(),
                    node_key = keys.node_key_id(),
                    node_keys_announced = keys.announced().len(),
                    "keys in use changed"
                );
                self.published.set(*keys);
            }
        }
    }

    /// Answers a poll with the attempt's news, unless its AM has given up on it: then the news
    /// stays for the next poll.
    fn answer(&mut self, attempt: AttemptId, reply: AllocateReply) {
        if reply.is_closed() {
            return;
        }
        let now = self.clock.now_ms();
        let response = match self.core.take_news(now, attempt) {
            Some(news) => {
                let keys = self.published.get();
                let app = attempt.application;
                let owner = self.core.app(app).map_or("", |a| a.user.as_str());
                let grant = Grant {
                    keys: &keys,
                    app,
                    owner,
                    now_ms: now,
                };
                Ok(reports::allocate_response(&self.core, news, &grant))
            }
            None => Err(CoreError::UnknownAttempt(attempt)),
        };
        let _ = reply.send(response);
    }

    /// Polls whose deadline came are answered with what there is (nothing new to write).
    fn expire_polls(&mut self) {
        for (attempt, reply) in self.polls.expired(Instant::now()) {
            self.answer(attempt, reply);
        }
    }

    fn carry_out(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Persist(record) => {
                    debug_assert!(false, "records are written before effects: {record:?}");
                }
                Effect::LaunchAm {
                    container,
                    node,
                    resource,
                    mut launch,
                    user,
                } => {
                    let keys = self.published.get();
                    let now = self.clock.now_ms();
                    launch.env.insert(
                        AM_TOKEN_ENV.to_string(),
                        keys.am_token(container.attempt, now),
                    );
                    self.nm.launch_am(AmLaunch {
                        container_token: keys
                            .container_token(container, &node, resource, &user, now),
                        nm_token: keys
                            .nm_token(container.application(), &node, &user, now)
                            .token,
                        container,
                        node,
                        resource,
                        launch,
                    });
                }
                Effect::StopContainers {
                    node,
                    containers,
                    exit_status,
                } => {
                    // An NM token speaks for one application: one call per application.
                    let keys = self.published.get();
                    let now = self.clock.now_ms();
                    let mut by_app: BTreeMap<ApplicationId, Vec<ContainerId>> = BTreeMap::new();
                    for container in containers {
                        by_app
                            .entry(container.application())
                            .or_default()
                            .push(container);
                    }
                    for (app, containers) in by_app {
                        let owner = self.core.app(app).map_or("", |a| a.user.as_str());
                        let token = keys.nm_token(app, &node, owner, now).token;
                        self.nm.stop(node.clone(), containers, exit_status, token);
                    }
                }
                Effect::WakeAllocate(attempt) => {
                    if let Some(reply) = self.polls.take(attempt) {
                        self.answer(attempt, reply);
                    }
                }
                Effect::AppChanged(app) => {
                    if !self.watchers.is_watched(app) {
                        continue;
                    }
                    if let Some(a) = self.core.app(app) {
                        let report = reports::app_report(&self.core, a);
                        self.watchers.notify(app, report, a.state.is_final());
                    }
                }
            }
        }
    }
}
