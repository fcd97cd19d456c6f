//! The ApplicationMaster protocol as rules: register, allocate (asks, cancels, releases, and the
//! news to deliver), and finish. Each call names its attempt; a call from an attempt that is over
//! is answered with the SHUTDOWN command rather than an error, so a late AM learns to exit.

use spindle_containers::exit_status::{ABORTED, KILLED_BY_APPMASTER};
use spindle_containers::{AttemptId, ContainerId, NodeId, Resource};

use super::Core;
use super::app::{
    AmCommand, App, AppState, Attempt, AttemptState, CompletedContainer, FinalStatus,
};
use super::container::ContainerState;
use super::effect::{Effect, Effects};
use super::error::CoreError;
use super::node::NodeIdx;
use super::normalize::normalize;
use super::requests::{Locality, RequestKey};

#[derive(Debug, Clone, PartialEq)]
pub struct RegisterCall {
    pub attempt: AttemptId,
    pub host: String,
    pub rpc_port: i32,
    pub tracking_url: String,
}

/// One ask or cancel as the AM sent it, before normalization.
#[derive(Debug, Clone, PartialEq)]
pub struct Ask {
    pub priority: i32,
    pub memory_mb: i64,
    pub vcores: i32,
    pub num_containers: i32,
    pub nodes: Vec<String>,
    pub relax_locality: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AllocateCall {
    pub attempt: AttemptId,
    pub asks: Vec<Ask>,
    pub cancels: Vec<Ask>,
    pub releases: Vec<ContainerId>,
    pub progress: f32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FinishCall {
    pub attempt: AttemptId,
    /// FinalStatus as its wire number: 1 SUCCEEDED, 2 FAILED, 3 KILLED.
    pub final_status: i32,
    pub diagnostics: String,
    pub tracking_url: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AllocatedContainer {
    pub id: ContainerId,
    pub node: NodeId,
    pub node_http_address: String,
    pub resource: Resource,
    pub priority: i32,
}

/// One Allocate answer's worth of news, plus the cluster's size and free capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocateNews {
    pub allocated: Vec<AllocatedContainer>,
    pub completed: Vec<CompletedContainer>,
    pub updated_nodes: Vec<NodeIdx>,
    pub command: Option<AmCommand>,
    pub num_cluster_nodes: u32,
    pub available: Resource,
}

impl Core {
    fn lookup_attempt(&self, id: AttemptId) -> Result<(&App, &Attempt), CoreError> {
        let app = self
            .apps
            .get(&id.application)
            .ok_or(CoreError::UnknownAttempt(id))?;
        let attempt = app.attempt(id).ok_or(CoreError::UnknownAttempt(id))?;
        Ok((app, attempt))
    }

    /// The AM of `attempt` says it is up. Registering again updates where it runs.
    pub fn on_register_am(
        &mut self,
        now: u64,
        call: RegisterCall,
    ) -> Result<Vec<Effect>, CoreError> {
        let id = call.attempt;
        let (app, attempt) = self.lookup_attempt(id)?;
        if attempt.state.is_over() || !app.is_current(id) {
            return Err(CoreError::AttemptOver {
                attempt: id,
                state: attempt.state,
                action: "register",
            });
        }
        if attempt.state == AttemptState::New {
            return Err(CoreError::NotLaunched(id));
        }
        let am_container = attempt.am_container;
        let mut fx = Effects::default();
        let Some(app) = self.apps.get_mut(&id.application) else {
            return Err(CoreError::UnknownAttempt(id));
        };
        if app.state == AppState::Accepted {
            app.state = AppState::Running;
            fx.changed(id.application);
            self.save_app(id.application, &mut fx);
        }
        if let Some(a) = self
            .apps
            .get_mut(&id.application)
            .and_then(|app| app.attempt_mut(id))
        {
            if a.resync {
                tracing::info!(app = %id.application, attempt = %id,
                    "application master registered again after the restart");
            }
            a.state = AttemptState::Running;
            a.host = call.host;
            a.rpc_port = call.rpc_port;
            a.tracking_url = call.tracking_url;
            a.last_heard_ms = now;
            a.resync = false;
        }
        self.save_attempt(id, &mut fx);
        // The AM may register before its launch result arrives: it evidently runs.
        if let Some(c) = am_container.and_then(|c| self.containers.get_mut(&c))
            && c.state == ContainerState::Allocated
        {
            c.state = ContainerState::Running;
        }
        tracing::info!(app = %id.application, attempt = %id, "application master registered");
        fx.changed(id.application);
        Ok(fx.into_vec())
    }

    /// Takes an Allocate call's asks, cancels and releases (all checked before any is applied)
    /// and schedules at once. Whether to answer now is `has_news`; the answer is `take_news`.
    pub fn on_allocate(&mut self, now: u64, call: AllocateCall) -> Result<Vec<Effect>, CoreError> {
        let id = call.attempt;
        // Malformed asks are refused whatever the attempt's state, so an AM learns of its
        // mistake even when its attempt is over.
        let asks = self.request_keys("asks", &call.asks)?;
        let cancels = self.request_keys("cancels", &call.cancels)?;
        let (app, attempt) = self.lookup_attempt(id)?;
        if attempt.state.is_over() || !app.is_current(id) {
            return Ok(Vec::new());
        }
        if attempt.state != AttemptState::Running {
            return Err(CoreError::NotRegistered {
                attempt: id,
                state: attempt.state,
            });
        }
        let order = app.order;
        for (i, container) in call.releases.iter().enumerate() {
            let field = || format!("release[{i}]");
            let is_am = match self.containers.get(container) {
                Some(c) => Some(c.is_am),
                None => self.awaiting.get(container).map(|r| r.is_am),
            };
            match is_am {
                Some(true) if container.attempt == id => {
                    return Err(CoreError::ReleaseOwnContainer {
                        field: field(),
                        container: *container,
                    });
                }
                Some(false) if container.attempt == id => {}
                _ => {
                    return Err(CoreError::ForeignContainer {
                        field: field(),
                        container: *container,
                        attempt: id,
                    });
                }
            }
        }

        let mut fx = Effects::default();
        for container in call.releases {
            self.release(now, container, &mut fx);
        }
        let Some(a) = self
            .apps
            .get_mut(&id.application)
            .and_then(|app| app.attempt_mut(id))
        else {
            return Err(CoreError::UnknownAttempt(id));
        };
        a.last_heard_ms = now;
        if a.resync {
            // Asks and cancels are dropped: after registering again the AM asks anew for all it
            // still wants. Releases are kept, since the AM does not send them again.
            self.schedule(now, &mut fx);
            return Ok(fx.into_vec());
        }
        a.progress = if call.progress.is_finite() {
            call.progress.clamp(0.0, 1.0)
        } else {
            0.0
        };
        for (key, n) in cancels {
            a.requests.cancel(&key, n);
        }
        let added = asks.iter().any(|(_, n)| *n > 0);
        for (key, n) in asks {
            a.requests.add(key, n, now);
        }
        if a.requests.outstanding() == 0 {
            self.queues.demand.remove(&order);
        } else if added {
            self.queues.queue_demand(order, id);
        }
        self.schedule(now, &mut fx);
        Ok(fx.into_vec())
    }

    /// The AM gives a container back: it is reported completed (-100, as YARN does) and its NM
    /// is told to stop it (-105).
    fn release(&mut self, now: u64, container: ContainerId, fx: &mut Effects) {
        const WHY: &str = "container released by the application master";
        if let Some(node) = self.containers.get(&container).map(|c| c.node) {
            let released = self.end_container(
                now,
                container,
                ContainerState::Released,
                ABORTED,
                WHY.into(),
                fx,
            );
            if released {
                fx.stop(&self.nodes.get(node).id, container, KILLED_BY_APPMASTER);
            }
        } else if let Some(node) = self.end_awaiting(now, container, ABORTED, WHY, fx) {
            fx.stop(&node, container, KILLED_BY_APPMASTER);
        }
    }

    fn request_keys(&self, field: &str, asks: &[Ask]) -> Result<Vec<(RequestKey, u32)>, CoreError> {
        asks.iter()
            .enumerate()
            .map(|(i, ask)| {
                if ask.num_containers < 0 {
                    return Err(CoreError::Negative {
                        field: format!("{field}[{i}].num_containers"),
                        value: i64::from(ask.num_containers),
                    });
                }
                let capability_field = format!("{field}[{i}].capability");
                let capability = normalize(
                    &self.config,
                    &capability_field,
                    &format!("{capability_field}: container request"),
                    ask.memory_mb,
                    ask.vcores,
                )?;
                let nodes = ask
                    .nodes
                    .iter()
                    .filter(|n| !n.is_empty())
                    .cloned()
                    .collect();
                let key = RequestKey {
                    priority: ask.priority,
                    capability,
                    locality: Locality::new(nodes, ask.relax_locality),
                };
                Ok((key, ask.num_containers as u32))
            })
            .collect()
    }

    /// Whether an Allocate of `attempt` should be answered now.
    pub fn has_news(&self, attempt: AttemptId) -> bool {
        match self.lookup_attempt(attempt) {
            Ok((app, a)) => {
                !a.news.is_empty() || a.resync || a.state.is_over() || !app.is_current(attempt)
            }
            Err(_) => false,
        }
    }

    /// Hands over everything `attempt` has not yet been told; each item exactly once. Answering
    /// counts as hearing from the AM: an open poll keeps its attempt alive.
    pub fn take_news(&mut self, now: u64, attempt: AttemptId) -> Option<AllocateNews> {
        let app = self.apps.get_mut(&attempt.application)?;
        let current = app.is_current(attempt);
        let a = app.attempt_mut(attempt)?;
        let news = std::mem::take(&mut a.news);
        let over = a.state.is_over() || !current;
        let resync = a.resync;
        if !over {
            a.last_heard_ms = a.last_heard_ms.max(now);
        }
        let allocated = news
            .allocated
            .iter()
            .filter_map(|id| self.containers.get(id))
            .map(|c| {
                let node = self.nodes.get(c.node);
                AllocatedContainer {
                    id: c.id,
                    node: node.id.clone(),
                    node_http_address: node.http_address.clone(),
                    resource: c.resource,
                    priority: c.priority,
                }
            })
            .collect();
        Some(AllocateNews {
            allocated,
            completed: news.completed,
            updated_nodes: news.updated_nodes.into_iter().collect(),
            command: if over {
                Some(AmCommand::Shutdown)
            } else if resync {
                Some(AmCommand::Resync)
            } else {
                news.command
            },
            num_cluster_nodes: self.nodes.schedulable_count() as u32,
            available: self.nodes.available(),
        })
    }

    /// The AM unregisters: the application is FINISHED with the final status it gives, and its
    /// other containers are stopped (-107). Unregistering twice is harmless.
    pub fn on_finish_am(&mut self, now: u64, call: FinishCall) -> Result<Vec<Effect>, CoreError> {
        let id = call.attempt;
        let final_status = match call.final_status {
            1 => FinalStatus::Succeeded,
            2 => FinalStatus::Failed,
            3 => FinalStatus::Killed,
            value => return Err(CoreError::BadFinalStatus { value }),
        };
        let (app, attempt) = self.lookup_attempt(id)?;
        if attempt.state == AttemptState::Finished {
            return Ok(Vec::new());
        }
        if attempt.state.is_over() || !app.is_current(id) || app.state.is_final() {
            return Err(CoreError::AttemptOver {
                attempt: id,
                state: attempt.state,
                action: "unregister",
            });
        }
        if attempt.state != AttemptState::Running {
            return Err(CoreError::NotRegistered {
                attempt: id,
                state: attempt.state,
            });
        }
        if let Some(a) = self
            .apps
            .get_mut(&id.application)
            .and_then(|app| app.attempt_mut(id))
        {
            if !call.tracking_url.is_empty() {
                a.tracking_url = call.tracking_url;
            }
            a.diagnostics = call.diagnostics.clone();
        }
        let mut fx = Effects::default();
        self.finish_app(
            now,
            id.application,
            AppState::Finished,
            final_status,
            call.diagnostics,
            spindle_containers::exit_status::KILLED_AFTER_APP_COMPLETION,
            &mut fx,
        );
        self.schedule(now, &mut fx);
        Ok(fx.into_vec())
    }
}

#[cfg(test)]
mod tests {
    use spindle_containers::exit_status::{
        ABORTED, KILLED_AFTER_APP_COMPLETION, KILLED_BY_APPMASTER,
    };
    use spindle_containers::{AttemptId, ContainerId};

    use crate::core::testkit::*;
    use crate::core::{AmCommand, AppState, CoreError, FinalStatus, FinishCall, RegisterCall};

    #[test]
    fn allocate_before_registering_is_refused() {
        let mut t = Harness::new();
        t.node("n1:1", 4096);
        let (app, _) = t.submit_app(512);
        let attempt = AttemptId::new(app, 1);
        let err = t
            .core
            .on_allocate(1, call(attempt, vec![ask(1, 512, 1)]))
            .unwrap_err();
        assert!(matches!(err, CoreError::NotRegistered { .. }), "{err}");
    }

    #[test]
    fn unknown_attempts_are_not_found() {
        let mut t = Harness::new();
        t.node("n1:1", 4096);
        let attempt = t.running_app(512);
        let ghost = AttemptId::new(attempt.application, 2);
        assert_eq!(
            t.core.on_allocate(1, call(ghost, vec![])),
            Err(CoreError::UnknownAttempt(ghost))
        );
        let register = RegisterCall {
            attempt: ghost,
            host: String::new(),
            rpc_port: 0,
            tracking_url: String::new(),
        };
        assert_eq!(
            t.core.on_register_am(1, register),
            Err(CoreError::UnknownAttempt(ghost))
        );
    }

    #[test]
    fn a_bad_ask_changes_nothing() {
        let mut t = Harness::new();
        t.node("n1:1", 8192);
        let attempt = t.running_app(512);
        let err = t
            .core
            .on_allocate(1, call(attempt, vec![ask(1, 1024, 2), ask(1, 100_000, 1)]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "asks[1].capability: container request memory_mb=100000 exceeds the maximum \
             allocation of 8192 MB"
        );
        let err = t
            .core
            .on_allocate(1, call(attempt, vec![ask(1, 1024, -2)]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "asks[0].num_containers=-2 must not be negative"
        );
        let err = t
            .core
            .on_allocate(1, call(attempt, vec![ask(1, 0, 1)]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "asks[0].capability.memory_mb=0 must be at least 1"
        );
        assert!(!t.core.has_news(attempt));
        assert_eq!(t.core.app(attempt.application).unwrap().live_containers, 1);
    }

    #[test]
    fn releasing_a_foreign_container_is_refused() {
        let mut t = Harness::new();
        t.node("n1:1", 8192);
        let mine = t.running_app(512);
        let theirs = t.running_app(512);
        let their_am = t.am_container(theirs.application);
        let mut c = call(mine, vec![]);
        c.releases = vec![their_am];
        let err = t.core.on_allocate(1, c).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("release[0]={their_am} does not belong to application attempt {mine}")
        );
        let mut c = call(mine, vec![]);
        c.releases = vec![ContainerId::new(mine, 0, 77)];
        assert!(t.core.on_allocate(1, c).is_err(), "never allocated");
    }

    #[test]
    fn asks_are_increments_and_cancels_withdraw_the_outstanding_ones() {
        let mut t = Harness::new();
        t.node("n1:1", 4096);
        let attempt = t.running_app(1024);
        assert_eq!(t.ask(attempt, 1, 1024, 5).len(), 3, "what fits");
        assert_eq!(t.outstanding(attempt), 2);
        let mut c = call(attempt, vec![]);
        c.cancels = vec![ask(1, 1024, 5)];
        t.core.on_allocate(2, c).unwrap();
        assert_eq!(t.outstanding(attempt), 0);
    }

    #[test]
    fn released_containers_free_capacity_and_are_reported_once() {
        let mut t = Harness::new();
        t.node("n1:1", 3072);
        let attempt = t.running_app(1024);
        let got = t.ask(attempt, 1, 1024, 2);
        assert!(t.ask(attempt, 1, 1024, 1).is_empty(), "the node is full");
        let mut c = call(attempt, vec![]);
        c.releases = vec![got[0].id];
        let fx = t.core.on_allocate(3, c).unwrap();
        assert_eq!(
            stops(&fx),
            vec![("n1:1".to_string(), got[0].id, KILLED_BY_APPMASTER)]
        );
        let news = t.news(attempt);
        assert_eq!(news.completed.len(), 1);
        assert_eq!(news.completed[0].exit_status, ABORTED);
        assert_eq!(
            news.allocated.len(),
            1,
            "the waiting ask took the freed room"
        );
        assert!(
            t.news(attempt).completed.is_empty(),
            "delivered exactly once"
        );
    }

    #[test]
    fn finishing_ends_the_application_with_the_am_s_final_status() {
        let mut t = Harness::new();
        t.node("n1:1", 8192);
        let attempt = t.running_app(1024);
        let workers = t.ask(attempt, 1, 1024, 2);
        let finish = |status: i32| FinishCall {
            attempt,
            final_status: status,
            diagnostics: "pi is roughly 3.14".into(),
            tracking_url: String::new(),
        };
        let err = t.core.on_finish_am(5, finish(0)).unwrap_err();
        assert!(
            err.to_string().starts_with("final_status=0 is not allowed"),
            "{err}"
        );
        let fx = t.core.on_finish_am(5, finish(2)).unwrap();
        let a = t.core.app(attempt.application).unwrap();
        assert_eq!(
            (a.state, a.final_status),
            (AppState::Finished, FinalStatus::Failed)
        );
        assert_eq!(a.diagnostics, "pi is roughly 3.14");
        let stopped = stops(&fx);
        assert_eq!(
            stopped.len(),
            2,
            "the workers, not the AM: it exits by itself"
        );
        assert!(stopped.iter().all(|(_, id, exit)| {
            *exit == KILLED_AFTER_APP_COMPLETION && workers.iter().any(|w| w.id == *id)
        }));
        assert_eq!(t.core.on_finish_am(6, finish(1)), Ok(vec![]), "idempotent");
        assert_eq!(
            t.core.take_news(7, attempt).unwrap().command,
            Some(AmCommand::Shutdown)
        );
    }

    #[test]
    fn an_over_attempt_is_told_to_shut_down_on_every_call() {
        let mut t = Harness::new();
        t.node("n1:1", 8192);
        let attempt = t.running_app(1024);
        t.core.kill(1, attempt.application, "").unwrap();
        for now in [2, 3] {
            assert_eq!(
                t.core
                    .on_allocate(now, call(attempt, vec![ask(1, 1024, 1)])),
                Ok(vec![])
            );
            assert!(t.core.has_news(attempt));
            let news = t.core.take_news(now, attempt).unwrap();
            assert_eq!(news.command, Some(AmCommand::Shutdown));
            assert!(news.allocated.is_empty());
        }
        assert_eq!(
            t.core.app(attempt.application).unwrap().state,
            AppState::Killed
        );
    }
}
