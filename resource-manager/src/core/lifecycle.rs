//! How applications and attempts come and go: submission, kill, AM launch results, attempt
//! failure and retry, and the end of an application. (How their containers end is in
//! `container_end`.)

use spindle_containers::exit_status::{
    self, KILLED_AFTER_APP_COMPLETION, KILLED_BY_RESOURCEMANAGER,
};
use spindle_containers::{ApplicationId, AttemptId, ContainerId};

use super::Core;
use super::app::{AmCommand, App, AppState, Attempt, AttemptState, FinalStatus, Submission};
use super::container::ContainerState;
use super::effect::{Effect, Effects};
use super::error::CoreError;
use super::normalize::normalize;

impl Core {
    /// Accepts an application: checks everything first (the id was handed out and not yet used,
    /// the AM resource is within limits, the number of attempts allowed), then queues its first
    /// attempt. Returns the attempt id for an unmanaged application (its submitter is the AM).
    pub fn submit(
        &mut self,
        now: u64,
        s: Submission,
    ) -> Result<(Option<AttemptId>, Vec<Effect>), CoreError> {
        let issued = s.id.cluster_timestamp == self.config.cluster_timestamp
            && s.id.sequence >= 1
            && s.id.sequence <= self.last_app_seq;
        if !issued {
            return Err(CoreError::NotIssued(s.id));
        }
        if self.apps.contains_key(&s.id) {
            return Err(CoreError::AlreadySubmitted(s.id));
        }
        let am_resource = normalize(
            &self.config,
            "am_resource",
            "am_resource",
            s.am_memory_mb,
            s.am_vcores,
        )?;
        let max_attempts = match s.max_attempts {
            n if n < 0 => {
                return Err(CoreError::Negative {
                    field: "max_attempts".into(),
                    value: i64::from(n),
                });
            }
            0 => self.config.default_max_attempts,
            n if n as u32 > self.config.max_attempts_limit => {
                return Err(CoreError::TooManyAttempts {
                    value: n,
                    limit: self.config.max_attempts_limit,
                });
            }
            n => n as u32,
        };
        let or = |value: String, default: &str| {
            if value.is_empty() {
                default.to_string()
            } else {
                value
            }
        };
        let order = self.next_order;
        self.next_order += 1;
        let app = App {
            id: s.id,
            name: or(s.name, "N/A"),
            queue: or(s.queue, "default"),
            user: or(s.user, "unknown"),
            application_type: or(s.application_type, "SPINDLE"),
            tags: s.tags,
            state: AppState::Accepted,
            final_status: FinalStatus::Undefined,
            diagnostics: String::new(),
            submit_ms: now,
            finish_ms: None,
            am_resource,
            am_launch: s.am_launch,
            // An unmanaged AM is its submitter: there is nothing for the RM to retry.
            max_attempts: if s.unmanaged { 1 } else { max_attempts },
            unmanaged: s.unmanaged,
            attempts: Vec::new(),
            containers: Vec::new(),
            allocated: spindle_containers::Resource::ZERO,
            live_containers: 0,
            order,
        };
        tracing::info!(app = %app.id, name = %app.name, queue = %app.queue, user = %app.user,
            am_resource = %app.am_resource, "application accepted");
        self.apps.insert(s.id, app);
        self.active.insert(s.id);
        let mut fx = Effects::default();
        self.save_app(s.id, &mut fx);
        let attempt = self.start_attempt(now, s.id, &mut fx);
        self.schedule(now, &mut fx);
        let unmanaged_attempt = s.unmanaged.then_some(attempt).flatten();
        Ok((unmanaged_attempt, fx.into_vec()))
    }

    /// Kills an application: its containers are stopped at once (-106) and it ends KILLED.
    /// Killing an application that is already over changes nothing.
    pub fn kill(
        &mut self,
        now: u64,
        id: ApplicationId,
        diagnostics: &str,
    ) -> Result<Vec<Effect>, CoreError> {
        let app = self
            .apps
            .get(&id)
            .ok_or(CoreError::UnknownApplication(id))?;
        let mut fx = Effects::default();
        if !app.state.is_final() {
            let diagnostics = if diagnostics.is_empty() {
                "application killed by user".to_string()
            } else {
                format!("application killed by user: {diagnostics}")
            };
            self.finish_app(
                now,
                id,
                AppState::Killed,
                FinalStatus::Killed,
                diagnostics,
                KILLED_BY_RESOURCEMANAGER,
                &mut fx,
            );
            self.schedule(now, &mut fx);
        }
        Ok(fx.into_vec())
    }

    /// The NM started the AM container.
    pub fn on_am_launched(&mut self, now: u64, container: ContainerId) -> Vec<Effect> {
        let mut fx = Effects::default();
        let attempt = container.attempt;
        let Some(app) = self.apps.get_mut(&attempt.application) else {
            return Vec::new();
        };
        let Some(a) = app.attempt_mut(attempt) else {
            return Vec::new();
        };
        if a.state == AttemptState::Allocated && a.am_container == Some(container) {
            a.state = AttemptState::Launched;
            a.last_heard_ms = now;
            fx.changed(app.id);
            tracing::info!(app = %app.id, %attempt, %container, "AM container launched");
            if let Some(c) = self.containers.get_mut(&container)
                && c.state == ContainerState::Allocated
            {
                c.state = ContainerState::Running;
            }
            self.save_attempt(attempt, &mut fx);
        }
        fx.into_vec()
    }

    /// The NM could not start the AM container: the attempt has failed.
    pub fn on_am_launch_failed(
        &mut self,
        now: u64,
        container: ContainerId,
        message: &str,
    ) -> Vec<Effect> {
        let mut fx = Effects::default();
        let Some(node) = self.containers.get(&container).map(|c| c.node) else {
            return Vec::new();
        };
        let diagnostics = format!(
            "could not be launched on node {}: {message}",
            self.nodes.get(node).id
        );
        self.end_container(
            now,
            container,
            ContainerState::Completed,
            exit_status::INVALID,
            diagnostics,
            &mut fx,
        );
        self.schedule(now, &mut fx);
        fx.into_vec()
    }

    /// Adds the next attempt of `app` and queues its AM container (none when unmanaged).
    pub(crate) fn start_attempt(
        &mut self,
        now: u64,
        app: ApplicationId,
        fx: &mut Effects,
    ) -> Option<AttemptId> {
        let app = self.apps.get_mut(&app)?;
        let id = AttemptId::new(app.id, app.attempts.len() as u32 + 1);
        let mut attempt = Attempt::new(id, now);
        if app.unmanaged {
            attempt.state = AttemptState::Launched;
        } else {
            self.queues.queue_am(app.order, id);
        }
        app.attempts.push(attempt);
        fx.changed(app.id);
        tracing::info!(app = %app.id, attempt = %id, "attempt started");
        self.save_attempt(id, fx);
        Some(id)
    }

    /// The current attempt `attempt` failed: its containers are stopped, and the application
    /// gets another attempt if it has any left, else it FAILS.
    pub(crate) fn fail_attempt(
        &mut self,
        now: u64,
        attempt: AttemptId,
        diagnostics: String,
        fx: &mut Effects,
    ) {
        let Some(app) = self.apps.get_mut(&attempt.application) else {
            return;
        };
        if !app.is_current(attempt) || app.state.is_final() {
            return;
        }
        let Some(a) = app.attempt_mut(attempt) else {
            return;
        };
        if a.state.is_over() {
            return;
        }
        tracing::warn!(app = %attempt.application, %attempt, %diagnostics, "attempt failed");
        Self::close_attempt(a, AttemptState::Failed, &diagnostics, now, fx);
        let order = app.order;
        let tried = app.attempts.len() as u32;
        let max_attempts = app.max_attempts;
        self.queues.remove(order);
        self.save_attempt(attempt, fx);
        let why = format!("its application attempt {attempt} failed");
        for id in self.live_containers_of(attempt.application, Some(attempt)) {
            self.stop_container(now, id, KILLED_BY_RESOURCEMANAGER, why.clone(), fx);
        }
        self.drop_awaiting(
            attempt.application,
            Some(attempt),
            KILLED_BY_RESOURCEMANAGER,
            fx,
        );
        fx.changed(attempt.application);
        if tried < max_attempts {
            if let Some(app) = self.apps.get_mut(&attempt.application) {
                app.state = AppState::Accepted;
                app.diagnostics = format!(
                    "attempt {attempt} failed: {diagnostics}; starting attempt {} of {max_attempts}",
                    tried + 1
                );
            }
            self.save_app(attempt.application, fx);
            self.start_attempt(now, attempt.application, fx);
        } else {
            let diagnostics = format!(
                "application {} failed {tried} time(s) (max attempts {max_attempts}); \
                 the last attempt {attempt} failed: {diagnostics}",
                attempt.application
            );
            self.finish_app(
                now,
                attempt.application,
                AppState::Failed,
                FinalStatus::Failed,
                diagnostics,
                KILLED_AFTER_APP_COMPLETION,
                fx,
            );
        }
    }

    /// Puts `app` in its final state, ends its current attempt, and stops its left-over
    /// containers with `leftover_exit`. An AM that unregistered (FINISHED) gets a grace period
    /// to exit by itself before its container is stopped.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish_app(
        &mut self,
        now: u64,
        id: ApplicationId,
        state: AppState,
        final_status: FinalStatus,
        diagnostics: String,
        leftover_exit: i32,
        fx: &mut Effects,
    ) {
        debug_assert!(state.is_final());
        let grace_until = now + self.config.am_exit_grace_ms;
        let Some(app) = self.apps.get_mut(&id) else {
            return;
        };
        tracing::info!(app = %id, %state, %final_status, %diagnostics, "application ended");
        app.state = state;
        app.final_status = final_status;
        app.diagnostics = diagnostics.clone();
        app.finish_ms = Some(now);
        let order = app.order;
        let mut closed = None;
        if let Some(a) = app.current_attempt_mut()
            && !a.state.is_over()
        {
            let attempt_state = match state {
                AppState::Killed => AttemptState::Killed,
                AppState::Failed => AttemptState::Failed,
                _ => AttemptState::Finished,
            };
            Self::close_attempt(a, attempt_state, &diagnostics, now, fx);
            closed = Some(a.id);
        }
        self.active.remove(&id);
        self.completed.insert((now, id));
        self.queues.remove(order);
        fx.changed(id);
        self.save_app(id, fx);
        if let Some(attempt) = closed {
            self.save_attempt(attempt, fx);
        }
        for container in self.live_containers_of(id, None) {
            let is_am = self.containers.get(&container).is_some_and(|c| c.is_am);
            if is_am && state == AppState::Finished {
                self.am_grace.insert((grace_until, container));
            } else {
                let why = format!("its application ended {state}");
                self.stop_container(now, container, leftover_exit, why, fx);
            }
        }
        self.drop_awaiting(id, None, leftover_exit, fx);
        self.enforce_retention(fx);
    }

    /// Marks an attempt over and tells its AM to shut down, should it still be polling.
    pub(crate) fn close_attempt(
        a: &mut Attempt,
        state: AttemptState,
        diagnostics: &str,
        now: u64,
        fx: &mut Effects,
    ) {
        a.state = state;
        if a.diagnostics.is_empty() {
            a.diagnostics = diagnostics.to_string();
        }
        a.finish_ms = Some(now);
        a.requests.clear();
        a.news.command = Some(AmCommand::Shutdown);
        fx.wake(a.id);
    }
}

#[cfg(test)]
mod tests {
    use spindle_containers::ApplicationId;
    use spindle_containers::exit_status::{ABORTED, INVALID, KILLED_BY_RESOURCEMANAGER};

    use crate::core::testkit::*;
    use crate::core::{AppState, AttemptState, CoreError, Effect, FinalStatus};

    #[test]
    fn submit_refuses_ids_not_handed_out_or_already_used() {
        let mut t = Harness::new();
        let stranger = ApplicationId::new(t.core.config().cluster_timestamp, 99);
        assert_eq!(
            t.core.submit(0, t.submission(stranger, 512)),
            Err(CoreError::NotIssued(stranger))
        );
        let other_rm = ApplicationId::new(7, 1);
        assert!(matches!(
            t.core.submit(0, t.submission(other_rm, 512)),
            Err(CoreError::NotIssued(_))
        ));
        let (app, _) = t.submit_app(512);
        assert_eq!(
            t.core.submit(0, t.submission(app, 512)),
            Err(CoreError::AlreadySubmitted(app))
        );
    }

    #[test]
    fn submit_checks_limits_before_changing_anything() {
        let mut t = Harness::new();
        let id = t.new_application();
        let mut s = t.submission(id, 100_000);
        let err = t.core.submit(0, s.clone()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "am_resource memory_mb=100000 exceeds the maximum allocation of 8192 MB"
        );
        s.am_memory_mb = 512;
        s.max_attempts = 11;
        let err = t.core.submit(0, s.clone()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "max_attempts=11 exceeds the limit of 10 attempts per application"
        );
        s.max_attempts = -1;
        assert!(t.core.submit(0, s.clone()).is_err());
        assert!(t.core.app(id).is_none(), "nothing was recorded");
        s.max_attempts = 0;
        t.core.submit(0, s).unwrap();
        assert_eq!(t.core.app(id).unwrap().max_attempts, 2);
    }

    #[test]
    fn a_failed_launch_fails_the_attempt_and_starts_another() {
        let mut t = Harness::new();
        t.node("n1:1", 4096);
        let (app, _) = t.submit_app(512);
        let first = t.am_container(app);
        let fx = t.core.on_am_launch_failed(1, first, "connection refused");
        let second = launched_am(&fx).expect("second attempt's AM is launched").0;
        assert_eq!(second.attempt.attempt, 2);
        let a = t.core.app(app).unwrap();
        assert_eq!(a.state, AppState::Accepted);
        assert_eq!(a.attempts[0].state, AttemptState::Failed);
        assert!(a.attempts[0].diagnostics.contains("connection refused"));
        assert_eq!(t.core.container(first).unwrap().exit_status, Some(INVALID));
        // The second attempt fails too: no attempts left.
        t.core.on_am_launch_failed(2, second, "connection refused");
        let a = t.core.app(app).unwrap();
        assert_eq!(
            (a.state, a.final_status),
            (AppState::Failed, FinalStatus::Failed)
        );
        assert!(
            a.diagnostics.contains("failed 2 time(s)"),
            "{}",
            a.diagnostics
        );
        assert_eq!(t.core.node(t.idx("n1:1")).used.memory_mb, 0);
    }

    #[test]
    fn the_am_container_exiting_before_unregistering_fails_the_attempt() {
        let mut t = Harness::new();
        t.node("n1:1", 8192);
        let attempt = t.running_app(1024);
        let workers = t.ask(attempt, 1, 1024, 2);
        let am = t.am_container(attempt.application);
        let fx = t.complete(am, 1, "");
        let a = t.core.app(attempt.application).unwrap();
        assert_eq!(a.attempts[0].state, AttemptState::Failed);
        assert!(a.attempts[0].diagnostics.contains("exit status 1"));
        // Its other containers are stopped, and the next attempt's AM is launched.
        let stopped = stops(&fx);
        assert_eq!(stopped.len(), 2);
        assert!(
            stopped
                .iter()
                .all(|(_, _, exit)| *exit == KILLED_BY_RESOURCEMANAGER)
        );
        assert!(
            workers
                .iter()
                .all(|w| !t.core.container(w.id).unwrap().is_live())
        );
        assert_eq!(launched_am(&fx).unwrap().0.attempt.attempt, 2);
    }

    #[test]
    fn kill_stops_every_container_at_once_and_ends_killed() {
        let mut t = Harness::new();
        t.node("n1:1", 8192);
        let attempt = t.running_app(1024);
        t.ask(attempt, 1, 1024, 2);
        let fx = t.core.kill(5, attempt.application, "").unwrap();
        let stopped = stops(&fx);
        assert_eq!(stopped.len(), 3, "the AM's container and both workers");
        assert!(
            stopped
                .iter()
                .all(|(_, _, exit)| *exit == KILLED_BY_RESOURCEMANAGER)
        );
        assert!(fx.contains(&Effect::WakeAllocate(attempt)));
        let a = t.core.app(attempt.application).unwrap();
        assert_eq!(
            (a.state, a.final_status),
            (AppState::Killed, FinalStatus::Killed)
        );
        assert_eq!(a.attempts[0].state, AttemptState::Killed);
        assert_eq!((a.live_containers, a.allocated.memory_mb), (0, 0));
        assert_eq!(t.core.kill(6, attempt.application, ""), Ok(vec![]));
        let unknown = ApplicationId::new(1, 999);
        assert_eq!(
            t.core.kill(6, unknown, ""),
            Err(CoreError::UnknownApplication(unknown))
        );
    }

    #[test]
    fn the_last_attempt_failing_fails_the_application() {
        let mut t = Harness::new();
        t.node("n1:1", 8192);
        let id = t.new_application();
        let mut s = t.submission(id, 512);
        s.max_attempts = 1;
        let (_, fx) = t.core.submit(0, s).unwrap();
        let am = launched_am(&fx).unwrap().0;
        t.core.on_am_launched(1, am);
        t.complete(am, ABORTED, "node went away");
        let a = t.core.app(id).unwrap();
        assert_eq!(
            (a.state, a.final_status),
            (AppState::Failed, FinalStatus::Failed)
        );
        assert_eq!(a.attempts.len(), 1);
    }

    #[test]
    fn an_unmanaged_application_has_an_attempt_but_no_am_container() {
        let mut t = Harness::new();
        t.node("n1:1", 4096);
        let id = t.new_application();
        let mut s = t.submission(id, 512);
        s.unmanaged = true;
        s.max_attempts = 5;
        let (attempt, fx) = t.core.submit(1, s).unwrap();
        let attempt = attempt.expect("the submitter is told its attempt");
        assert!(launched_am(&fx).is_none());
        let a = t.core.app(id).unwrap();
        assert_eq!((a.max_attempts, a.live_containers), (1, 0));
        assert_eq!(a.attempts[0].state, AttemptState::Launched);
        let register = crate::core::RegisterCall {
            attempt,
            host: "laptop".into(),
            rpc_port: 0,
            tracking_url: String::new(),
        };
        t.core.on_register_am(2, register).unwrap();
        assert_eq!(t.ask(attempt, 1, 1024, 2).len(), 2);
        // Silent past the AM expiry: with no attempts to retry, the application fails.
        let expiry = t.core.config().am_liveness_expiry_ms;
        t.heartbeat_at(expiry + 100, "n1:1", vec![]).unwrap();
        let fx = t.core.on_tick(expiry + 100);
        assert_eq!(stops(&fx).len(), 2);
        let a = t.core.app(id).unwrap();
        assert_eq!(
            (a.state, a.final_status),
            (AppState::Failed, FinalStatus::Failed)
        );
    }
}
