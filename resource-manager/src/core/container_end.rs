//! How a container ends. Every path that ends one (its NM reports it completed, its node is
//! lost, its AM releases it, the RM stops it) goes through `end_container`, so capacity and
//! counters are returned in exactly one place, and the AM hears of it exactly once.

use spindle_containers::exit_status;
use spindle_containers::{ApplicationId, AttemptId, ContainerId};

use super::Core;
use super::app::CompletedContainer;
use super::container::ContainerState;
use super::effect::Effects;
use super::record::Record;

impl Core {
    /// Live containers of `app` (of one attempt only, if given).
    pub(crate) fn live_containers_of(
        &self,
        app: ApplicationId,
        attempt: Option<AttemptId>,
    ) -> Vec<ContainerId> {
        let Some(app) = self.apps.get(&app) else {
            return Vec::new();
        };
        app.containers
            .iter()
            .filter(|id| attempt.is_none_or(|a| id.attempt == a))
            .filter(|id| self.containers.get(id).is_some_and(|c| c.is_live()))
            .copied()
            .collect()
    }

    /// The RM ends a container by its own decision and tells its NM to stop it.
    pub(crate) fn stop_container(
        &mut self,
        now: u64,
        id: ContainerId,
        exit_status: i32,
        diagnostics: String,
        fx: &mut Effects,
    ) {
        let Some(node) = self.containers.get(&id).map(|c| c.node) else {
            return;
        };
        if self.end_container(
            now,
            id,
            ContainerState::Completed,
            exit_status,
            diagnostics,
            fx,
        ) {
            fx.stop(&self.nodes.get(node).id, id, exit_status);
        }
    }

    /// Aborts containers whose node went away (-100). The AMs' own containers go last, so that
    /// their attempts' other containers are recorded as aborted, not as stopped by the failure.
    pub(crate) fn abort_containers(
        &mut self,
        now: u64,
        mut ids: Vec<ContainerId>,
        why: &str,
        fx: &mut Effects,
    ) {
        ids.sort_by_key(|id| (self.containers.get(id).is_some_and(|c| c.is_am), *id));
        for id in ids {
            let state = ContainerState::Completed;
            self.end_container(now, id, state, exit_status::ABORTED, why.to_string(), fx);
        }
    }

    /// Ends a live container: records its exit, returns its capacity, tells its AM (unless the
    /// attempt is over), and fails the attempt when it was the AM's own container before the AM
    /// unregistered. Returns false (and changes nothing) when it was not live.
    pub(crate) fn end_container(
        &mut self,
        now: u64,
        id: ContainerId,
        state: ContainerState,
        exit_status: i32,
        diagnostics: String,
        fx: &mut Effects,
    ) -> bool {
        debug_assert!(matches!(
            state,
            ContainerState::Completed | ContainerState::Released
        ));
        let Some(c) = self.containers.get_mut(&id) else {
            return false;
        };
        if !c.is_live() {
            return false;
        }
        if c.state == ContainerState::Allocated {
            self.unstarted.remove(&(c.allocated_ms, id));
        }
        fx.persist(Record::ContainerEnded(id));
        self.metrics.containers_ended += 1;
        c.state = state;
        c.exit_status = Some(exit_status);
        c.diagnostics = diagnostics.clone();
        c.finished_ms = Some(now);
        let (node, resource, is_am) = (c.node, c.resource, c.is_am);
        self.nodes.credit(node, id, resource);
        if is_am {
            self.am_grace.retain(|(_, c)| *c != id);
        }
        let attempt = id.attempt;
        let Some(app) = self.apps.get_mut(&attempt.application) else {
            return true;
        };
        app.allocated -= resource;
        app.live_containers -= 1;
        let live_attempt =
            app.is_current(attempt) && app.attempt(attempt).is_some_and(|a| !a.state.is_over());
        tracing::debug!(app = %app.id, %attempt, container = %id, exit_status, %diagnostics,
            "container ended");
        if !live_attempt {
            fx.changed(app.id);
            return true;
        }
        if is_am {
            let mut why = format!(
                "AM container {id} ended with {} before the application master unregistered",
                exit_status::describe(exit_status)
            );
            if !diagnostics.is_empty() {
                why = format!("{why}: {diagnostics}");
            }
            self.fail_attempt(now, attempt, why, fx);
        } else if let Some(a) = app.attempt_mut(attempt) {
            a.news.completed.push(CompletedContainer {
                id,
                exit_status,
                diagnostics,
            });
            fx.wake(attempt);
        }
        true
    }
}
