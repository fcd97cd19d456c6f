//! The one task that owns the `Core`. It takes commands in order, feeds them to the core with
//! the time, and carries out the effects: AM launches and container stops on NMs, answers to
//! Allocate long polls, reports to watchers. A ticker drives liveness (`on_tick`), and each open
//! poll's deadline wakes the loop to answer it.

use std::time::Duration;

use spindle_containers::AttemptId;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::info_span;

use super::clock::Clock;
use super::handle::{Command, CoreHandle};
use super::nm_client::{AmLaunch, NmClients};
use super::polls::{AllocateReply, Polls};
use super::reports;
use super::watchers::Watchers;
use crate::config::RmConfig;
use crate::core::{Core, CoreConfig, CoreError, Effect};

/// Commands queued before senders wait: deep enough for bursts of heartbeats and polls.
const COMMAND_QUEUE: usize = 4096;

struct CoreTask {
    core: Core,
    clock: Clock,
    max_allocate_wait: Duration,
    polls: Polls,
    watchers: Watchers,
    nm: NmClients,
}

/// Liveness is checked four times per the shorter expiry, but never more often than every
/// 100 ms nor less often than every second (an AM's exit grace is counted in seconds).
fn tick_interval(config: &RmConfig) -> Duration {
    let shorter = config.nm_liveness_expiry.min(config.am_liveness_expiry);
    (shorter / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
}

/// Starts the core task; it runs until `shutdown` turns true.
pub fn spawn(
    config: &RmConfig,
    clock: Clock,
    shutdown: watch::Receiver<bool>,
) -> (CoreHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let task = CoreTask {
        core: Core::new(CoreConfig::new(config, clock.start_ms())),
        clock,
        max_allocate_wait: config.max_allocate_wait(),
        polls: Polls::default(),
        watchers: Watchers::default(),
        nm: NmClients::new(tx.clone()),
    };
    let join = tokio::spawn(task.run(rx, shutdown, tick_interval(config)));
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
        loop {
            let deadline = self.polls.next_deadline();
            tokio::select! {
                biased;
                _ = shutdown.wait_for(|stop| *stop) => break,
                command = commands.recv() => match command {
                    Some(command) => self.handle(command),
                    None => break,
                },
                _ = ticker.tick() => {
                    let effects = self.core.on_tick(self.clock.now_ms());
                    self.carry_out(effects);
                }
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)),
                    if deadline.is_some() => self.expire_polls(),
            }
        }
        tracing::info!(open_polls = self.polls.len(), "core task stopped");
    }

    fn handle(&mut self, command: Command) {
        let now = self.clock.now_ms();
        match command {
            Command::NewApplication(reply) => {
                let (id, effects) = self.core.new_application();
                self.carry_out(effects);
                let _ = reply.send(Ok(id));
            }
            Command::Submit(submission, reply) => {
                let _span = info_span!("submit", app = %submission.id).entered();
                let result = self.core.submit(now, submission);
                let _ = reply.send(result.map(|(attempt, effects)| {
                    self.carry_out(effects);
                    attempt
                }));
            }
            Command::Kill(app, diagnostics, reply) => {
                let _span = info_span!("kill", %app).entered();
                let result = self.core.kill(now, app, &diagnostics);
                let _ = reply.send(result.map(|effects| self.carry_out(effects)));
            }
            Command::Watch(app, watcher, reply) => {
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
            Command::RegisterNode(info, containers, reply) => {
                let _span = info_span!("register_node", node = %info.id).entered();
                let effects = self.core.on_node_register(now, info, containers);
                self.carry_out(effects);
                let _ = reply.send(Ok(()));
            }
            Command::Heartbeat(heartbeat, reply) => {
                let _span = info_span!("heartbeat", node = %heartbeat.node).entered();
                let result = self.core.on_node_heartbeat(now, heartbeat);
                let _ = reply.send(result.map(|mut outcome| {
                    self.carry_out(std::mem::take(&mut outcome.effects));
                    outcome
                }));
            }
            Command::RegisterAm(call, reply) => {
                let attempt = call.attempt;
                let _span = info_span!("register_am", %attempt).entered();
                let result = self.core.on_register_am(now, call).map(|effects| {
                    self.carry_out(effects);
                    self.core
                        .app(attempt.application)
                        .map(|a| a.queue.clone())
                        .unwrap_or_default()
                });
                let _ = reply.send(result);
            }
            Command::Allocate { call, wait, reply } => {
                let attempt = call.attempt;
                let _span = info_span!("allocate", %attempt).entered();
                self.allocate(now, attempt, call, wait, reply);
            }
            Command::FinishAm(call, reply) => {
                let _span = info_span!("finish_am", attempt = %call.attempt).entered();
                let result = self.core.on_finish_am(now, call);
                let _ = reply.send(result.map(|effects| self.carry_out(effects)));
            }
            Command::AmLaunched { container, result } => {
                let _span = info_span!("am_launched", %container).entered();
                let effects = match result {
                    Ok(()) => self.core.on_am_launched(now, container),
                    Err(message) => self.core.on_am_launch_failed(now, container, &message),
                };
                self.carry_out(effects);
            }
            Command::Read(read) => read(&self.core, now),
        }
    }

    fn allocate(
        &mut self,
        now: u64,
        attempt: AttemptId,
        call: crate::core::AllocateCall,
        wait: Duration,
        reply: AllocateReply,
    ) {
        let effects = match self.core.on_allocate(now, call) {
            Ok(effects) => effects,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        // The older poll is answered empty before the effects run, so that the news goes to
        // the newer poll: the AM that sent it is the one still listening.
        if let Some(older) = self.polls.take(attempt) {
            let _ = older.send(Ok(reports::empty_allocate_response(&self.core)));
        }
        self.carry_out(effects);
        let wait = wait.min(self.max_allocate_wait);
        if wait.is_zero() || self.core.has_news(attempt) {
            self.answer(attempt, reply);
        } else {
            self.polls.hold(attempt, reply, Instant::now() + wait);
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
            Some(news) => Ok(reports::allocate_response(&self.core, news)),
            None => Err(CoreError::UnknownAttempt(attempt)),
        };
        let _ = reply.send(response);
    }

    fn expire_polls(&mut self) {
        for (attempt, reply) in self.polls.expired(Instant::now()) {
            self.answer(attempt, reply);
        }
    }

    fn carry_out(&mut self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Persist(_) => {}
                Effect::LaunchAm {
                    container,
                    node,
                    resource,
                    launch,
                    user,
                } => self.nm.launch_am(AmLaunch {
                    container,
                    node,
                    resource,
                    launch,
                    user,
                }),
                Effect::StopContainers {
                    node,
                    containers,
                    exit_status,
                } => self.nm.stop(node, containers, exit_status),
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
