//! The ResourceTracker protocol as rules: node registration (a restarted NM replaces its old
//! record) and heartbeats, which carry container statuses, never the scheduling path. The answer
//! tells the NM what to clean up: containers it runs that the RM no longer holds, and
//! applications that are over while their containers are still there.

use std::collections::{BTreeSet, HashSet};

use spindle_containers::exit_status;
use spindle_containers::{ApplicationId, ContainerId, NodeId};

use super::Core;
use super::container::ContainerState;
use super::effect::{Effect, Effects};
use super::error::CoreError;
use super::node::{NodeIdx, NodeInfo, NodeState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportedState {
    /// Started on the NM (localizing or running).
    Running,
    Complete,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReportedContainer {
    pub id: ContainerId,
    pub state: ReportedState,
    /// Meaningful when complete.
    pub exit_status: i32,
    pub diagnostics: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NodeHeartbeat {
    pub node: NodeId,
    pub containers: Vec<ReportedContainer>,
    pub healthy: bool,
    pub health_report: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeartbeatOutcome {
    pub effects: Vec<Effect>,
    /// Running on the node, but no longer held by the RM: stop them.
    pub containers_to_cleanup: Vec<ContainerId>,
    /// Over (or unknown), with containers still on the node.
    pub applications_to_cleanup: Vec<ApplicationId>,
    /// Completed containers the RM has recorded: the NM may forget them.
    pub acknowledged: Vec<ContainerId>,
}

impl Core {
    /// A node registers, or re-registers after its NM restarted: containers the old record held
    /// that the NM no longer runs are aborted, the rest are kept, and the capability is replaced.
    pub fn on_node_register(
        &mut self,
        now: u64,
        info: NodeInfo,
        containers: Vec<ReportedContainer>,
    ) -> Vec<Effect> {
        let mut fx = Effects::default();
        if let Some(idx) = self.nodes.lookup(&info.id) {
            let still_running: HashSet<ContainerId> = containers
                .iter()
                .filter(|c| c.state == ReportedState::Running)
                .map(|c| c.id)
                .collect();
            let gone: Vec<ContainerId> = self
                .nodes
                .get(idx)
                .live
                .iter()
                .filter(|c| !still_running.contains(c))
                .copied()
                .collect();
            self.notify_node_change(idx, &mut fx);
            let why = format!("node {} restarted and no longer runs it", info.id);
            self.abort_containers(now, gone, &why, &mut fx);
        }
        tracing::info!(node = %info.id, hostname = %info.hostname, capability = %info.capability,
            "node registered");
        let idx = self.nodes.register(info, now);
        self.reattach(now, idx, &containers, &mut fx);
        let mut outcome = HeartbeatOutcome::default();
        self.apply_reports(now, idx, containers, &mut outcome, &mut fx);
        self.schedule(now, &mut fx);
        fx.into_vec()
    }

    /// A heartbeat from a registered node. An unknown or LOST node must register (again).
    /// A node is marked UNHEALTHY only when it says so and says why (`health_report`).
    pub fn on_node_heartbeat(
        &mut self,
        now: u64,
        hb: NodeHeartbeat,
    ) -> Result<HeartbeatOutcome, CoreError> {
        let idx = self
            .nodes
            .lookup(&hb.node)
            .filter(|idx| self.nodes.get(*idx).state != NodeState::Lost)
            .ok_or_else(|| CoreError::UnknownNode(hb.node.clone()))?;
        let mut fx = Effects::default();
        self.nodes.heard_from(idx, now);
        let state = self.nodes.get(idx).state;
        let unhealthy = !hb.healthy && !hb.health_report.is_empty();
        if unhealthy && state == NodeState::Running {
            tracing::warn!(node = %hb.node, report = %hb.health_report, "node unhealthy");
            self.nodes
                .set_state(idx, NodeState::Unhealthy, &hb.health_report);
            self.notify_node_change(idx, &mut fx);
        } else if !unhealthy && state == NodeState::Unhealthy {
            tracing::info!(node = %hb.node, "node healthy again");
            self.nodes.set_state(idx, NodeState::Running, "");
            self.notify_node_change(idx, &mut fx);
        }
        let mut outcome = HeartbeatOutcome::default();
        self.apply_reports(now, idx, hb.containers, &mut outcome, &mut fx);
        self.schedule(now, &mut fx);
        // A finished application whose AM container just exited may now be forgotten.
        self.enforce_retention(&mut fx);
        outcome.effects = fx.into_vec();
        Ok(outcome)
    }

    fn apply_reports(
        &mut self,
        now: u64,
        idx: NodeIdx,
        reports: Vec<ReportedContainer>,
        outcome: &mut HeartbeatOutcome,
        fx: &mut Effects,
    ) {
        let mut apps_to_cleanup = BTreeSet::new();
        for r in reports {
            let held = self
                .containers
                .get(&r.id)
                .filter(|c| c.is_live() && c.node == idx)
                .map(|c| c.state);
            match (r.state, held) {
                (ReportedState::Complete, held) => {
                    outcome.acknowledged.push(r.id);
                    if held.is_some() {
                        let diagnostics = if r.diagnostics.is_empty() {
                            format!(
                                "container exited with {}",
                                exit_status::describe(r.exit_status)
                            )
                        } else {
                            r.diagnostics
                        };
                        self.end_container(
                            now,
                            r.id,
                            ContainerState::Completed,
                            r.exit_status,
                            diagnostics,
                            fx,
                        );
                    }
                }
                (ReportedState::Running, Some(ContainerState::Allocated)) => {
                    if let Some(c) = self.containers.get_mut(&r.id) {
                        c.state = ContainerState::Running;
                        self.unstarted.remove(&(c.allocated_ms, r.id));
                    }
                }
                (ReportedState::Running, Some(_)) => {}
                (ReportedState::Running, None) => {
                    outcome.containers_to_cleanup.push(r.id);
                    let app = r.id.application();
                    // An AM that unregistered is given its grace to exit by itself: cleaning
                    // its app up now would SIGTERM it (-107) while it is shutting down.
                    let am_exiting = self.am_grace.iter().any(|(_, c)| c.application() == app);
                    if !am_exiting && self.apps.get(&app).is_none_or(|a| a.state.is_final()) {
                        apps_to_cleanup.insert(app);
                    }
                }
            }
        }
        outcome.applications_to_cleanup = apps_to_cleanup.into_iter().collect();
    }

    /// Tells the attempts with containers on node `idx` that its state changed.
    pub(crate) fn notify_node_change(&mut self, idx: NodeIdx, fx: &mut Effects) {
        let attempts: BTreeSet<_> = self.nodes.get(idx).live.iter().map(|c| c.attempt).collect();
        for attempt in attempts {
            let Some(app) = self.apps.get_mut(&attempt.application) else {
                continue;
            };
            let current = app.is_current(attempt);
            if let Some(a) = app.attempt_mut(attempt)
                && current
                && !a.state.is_over()
            {
                a.news.updated_nodes.insert(idx);
                fx.wake(attempt);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use spindle_containers::exit_status::ABORTED;

    use crate::core::am::FinishCall;
    use crate::core::testkit::*;
    use crate::core::{AttemptState, ContainerState, CoreError, NodeState};

    #[test]
    fn completions_reach_the_am_and_free_capacity_at_once() {
        let mut t = Harness::new();
        t.node("n1:1", 3072);
        let attempt = t.running_app(1024);
        let got = t.ask(attempt, 1, 1024, 2);
        assert!(t.ask(attempt, 1, 1024, 1).is_empty());
        let fx = t.complete(got[0].id, 0, "");
        assert!(woken(&fx, attempt));
        let news = t.news(attempt);
        assert_eq!(news.completed.len(), 1);
        assert_eq!(news.completed[0].exit_status, 0);
        assert_eq!(
            news.allocated.len(),
            1,
            "the waiting ask got the freed room"
        );
    }

    #[test]
    fn running_reports_start_containers_and_unknown_ones_are_cleaned_up() {
        let mut t = Harness::new();
        t.node("n1:1", 8192);
        let attempt = t.running_app(1024);
        let got = t.ask(attempt, 1, 1024, 1);
        let out = t.heartbeat("n1:1", vec![running(got[0].id)]).unwrap();
        assert!(out.containers_to_cleanup.is_empty());
        assert_eq!(
            t.core.container(got[0].id).unwrap().state,
            ContainerState::Running
        );

        t.core.kill(3, attempt.application, "").unwrap();
        let out = t.heartbeat("n1:1", vec![running(got[0].id)]).unwrap();
        assert_eq!(out.containers_to_cleanup, vec![got[0].id]);
        assert_eq!(out.applications_to_cleanup, vec![attempt.application]);
        let out = t
            .heartbeat("n1:1", vec![completed(got[0].id, -106)])
            .unwrap();
        assert_eq!(out.acknowledged, vec![got[0].id]);
    }

    #[test]
    fn an_app_whose_am_is_exiting_is_not_cleaned_up_under_it() {
        let mut t = Harness::new();
        t.node("n1:1", 8192);
        let attempt = t.running_app(1024);
        let worker = t.ask(attempt, 1, 1024, 1)[0].id;
        let am = t.am_container(attempt.application);
        let finish = FinishCall {
            attempt,
            final_status: 1,
            diagnostics: String::new(),
            tracking_url: String::new(),
        };
        t.core.on_finish_am(5, finish).unwrap();
        // The worker the finish stopped still runs for a moment; the AM is still exiting.
        let out = t
            .heartbeat("n1:1", vec![running(am), running(worker)])
            .unwrap();
        assert_eq!(out.containers_to_cleanup, vec![worker]);
        assert!(out.applications_to_cleanup.is_empty(), "{out:?}");
        // Once the AM has exited, a straggler gets its app cleaned up.
        t.heartbeat("n1:1", vec![completed(am, 0)]).unwrap();
        let out = t.heartbeat("n1:1", vec![running(worker)]).unwrap();
        assert_eq!(out.applications_to_cleanup, vec![attempt.application]);
    }

    #[test]
    fn unknown_nodes_must_register() {
        let mut t = Harness::new();
        let err = t.heartbeat("ghost:1", vec![]).unwrap_err();
        assert!(matches!(err, CoreError::UnknownNode(_)));
    }

    #[test]
    fn a_restarted_node_replaces_its_record_and_aborts_what_it_lost() {
        let mut t = Harness::new();
        t.node("n1:1", 8192);
        let attempt = t.running_app(1024);
        let got = t.ask(attempt, 1, 1024, 2);
        let kept = got[0].id;
        let fx = t
            .core
            .on_node_register(10, info("n1:1", 4096), vec![running(kept)]);
        assert!(woken(&fx, attempt));
        let n = t.core.node(t.idx("n1:1"));
        assert_eq!(n.capability.memory_mb, 4096);
        // The AM's container is gone too, so the attempt failed and a new AM was placed.
        assert_eq!(
            t.core.container(got[1].id).unwrap().exit_status,
            Some(ABORTED)
        );
        let a = t.core.app(attempt.application).unwrap();
        assert_eq!(a.attempts[0].state, AttemptState::Failed);
        assert_eq!(a.attempts.len(), 2);
    }

    #[test]
    fn an_unhealthy_node_gets_no_new_containers() {
        let mut t = Harness::new();
        t.node("n1:1", 8192);
        let attempt = t.running_app(1024);
        let mut hb = heartbeat("n1:1", vec![]);
        hb.healthy = false;
        hb.health_report = "disk full".into();
        t.core.on_node_heartbeat(5, hb).unwrap();
        assert_eq!(t.core.node(t.idx("n1:1")).state, NodeState::Unhealthy);
        assert!(t.ask(attempt, 1, 1024, 1).is_empty());
        t.heartbeat("n1:1", vec![]).unwrap();
        assert_eq!(
            t.news(attempt).allocated.len(),
            1,
            "served when healthy again"
        );
    }
}
