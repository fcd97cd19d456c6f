//! Liveness, driven by `on_tick(now)`: a node silent past the NM expiry is LOST (its containers
//! abort with -100 and their AMs are told), an AM silent past the AM expiry fails its attempt,
//! an allocated container nobody started is taken back, and an AM that unregistered but does not
//! exit is stopped after its grace period. After an RM restart, containers whose nodes do not
//! register again within the NM expiry are aborted.

use spindle_containers::exit_status::{ABORTED, KILLED_AFTER_APP_COMPLETION};
use spindle_containers::{AttemptId, ContainerId};

use super::Core;
use super::app::AttemptState;
use super::effect::{Effect, Effects};
use super::node::{NodeIdx, NodeState};

impl Core {
    pub fn on_tick(&mut self, now: u64) -> Vec<Effect> {
        let mut fx = Effects::default();
        self.expire_nodes(now, &mut fx);
        self.expire_ams(now, &mut fx);
        self.expire_allocations(now, &mut fx);
        self.end_am_grace(now, &mut fx);
        self.expire_awaiting(now, &mut fx);
        self.schedule(now, &mut fx);
        self.enforce_retention(&mut fx);
        fx.into_vec()
    }

    fn expire_nodes(&mut self, now: u64, fx: &mut Effects) {
        let expiry = self.config.nm_liveness_expiry_ms;
        let expired: Vec<NodeIdx> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.state != NodeState::Lost)
            .filter(|(_, n)| now.saturating_sub(n.last_heartbeat_ms) > expiry)
            .map(|(idx, _)| idx)
            .collect();
        for idx in expired {
            let node = self.nodes.get(idx);
            let silent = now.saturating_sub(node.last_heartbeat_ms);
            let why = format!("node {} lost: no heartbeat for {silent} ms", node.id);
            tracing::warn!(node = %node.id, silent_ms = silent, "node lost");
            let live: Vec<ContainerId> = node.live.iter().copied().collect();
            self.notify_node_change(idx, fx);
            self.nodes.set_state(idx, NodeState::Lost, &why);
            self.abort_containers(now, live, &why, fx);
        }
    }

    fn expire_ams(&mut self, now: u64, fx: &mut Effects) {
        let expiry = self.config.am_liveness_expiry_ms;
        let expired: Vec<(AttemptId, u64)> = self
            .active
            .iter()
            .filter_map(|id| self.apps.get(id)?.current_attempt())
            .filter(|a| matches!(a.state, AttemptState::Launched | AttemptState::Running))
            .filter(|a| now.saturating_sub(a.last_heard_ms) > expiry)
            .map(|a| (a.id, now.saturating_sub(a.last_heard_ms)))
            .collect();
        for (attempt, silent) in expired {
            let why = format!(
                "application master of attempt {attempt} timed out: not heard from for {silent} ms \
                 (expiry {expiry} ms)"
            );
            self.fail_attempt(now, attempt, why, fx);
        }
    }

    fn expire_allocations(&mut self, now: u64, fx: &mut Effects) {
        let expiry = self.config.allocation_expiry_ms();
        let expired: Vec<(u64, ContainerId)> = self
            .unstarted
            .iter()
            .take_while(|(at, _)| now.saturating_sub(*at) > expiry)
            .copied()
            .collect();
        for (at, id) in expired {
            let why = format!(
                "container allocated at {at} was never started: taken back after {expiry} ms"
            );
            self.stop_container(now, id, ABORTED, why, fx);
        }
    }

    fn end_am_grace(&mut self, now: u64, fx: &mut Effects) {
        let overdue: Vec<ContainerId> = self
            .am_grace
            .iter()
            .take_while(|(until, _)| *until <= now)
            .map(|(_, id)| *id)
            .collect();
        for id in overdue {
            let why = "the application master unregistered but did not exit".to_string();
            self.stop_container(now, id, KILLED_AFTER_APP_COMPLETION, why, fx);
        }
    }
}

#[cfg(test)]
mod tests {
    use spindle_containers::exit_status::{ABORTED, KILLED_AFTER_APP_COMPLETION};

    use crate::core::testkit::*;
    use crate::core::{AppState, AttemptState, ContainerState, FinishCall, NodeState};

    #[test]
    fn a_silent_node_is_lost_and_its_containers_abort() {
        let mut t = Harness::new();
        t.node("a:1", 8192);
        t.node("b:1", 2048);
        let attempt = t.running_app(1024); // on a
        let got = t.ask(attempt, 1, 1024, 3);
        let on_b: Vec<_> = got.iter().filter(|c| c.node.as_str() == "b:1").collect();
        assert_eq!(on_b.len(), 0, "spread keeps a ahead while it has more room");
        let expiry = t.core.config().nm_liveness_expiry_ms;
        t.heartbeat_at(expiry, "a:1", vec![]).unwrap();
        let fx = t.core.on_tick(expiry + 10);
        assert_eq!(t.core.node(t.idx("b:1")).state, NodeState::Lost);
        assert!(!woken(&fx, attempt), "nothing of the attempt was on b");
        // Now lose a, where the AM and the workers run.
        let fx = t.core.on_tick(2 * expiry + 20);
        assert_eq!(t.core.node(t.idx("a:1")).state, NodeState::Lost);
        assert!(woken(&fx, attempt));
        for c in &got {
            let c = t.core.container(c.id).unwrap();
            assert_eq!(
                (c.state, c.exit_status),
                (ContainerState::Completed, Some(ABORTED))
            );
        }
        let a = t.core.app(attempt.application).unwrap();
        assert_eq!(a.attempts[0].state, AttemptState::Failed);
        assert!(
            a.attempts[0].diagnostics.contains("lost"),
            "{}",
            a.attempts[0].diagnostics
        );
        assert!(
            t.heartbeat("a:1", vec![]).is_err(),
            "a lost node must register again"
        );
    }

    #[test]
    fn a_silent_am_fails_its_attempt_but_an_answered_poll_keeps_it_alive() {
        let mut t = Harness::new();
        t.node("a:1", 8192);
        let attempt = t.running_app(1024);
        let expiry = t.core.config().am_liveness_expiry_ms;
        let t0 = t.core.app(attempt.application).unwrap().attempts[0].last_heard_ms;
        t.core.take_news(t0 + expiry, attempt);
        t.heartbeat_at(t0 + expiry + 1, "a:1", vec![]).unwrap();
        t.core.on_tick(t0 + expiry + 1);
        assert_eq!(
            t.core.app(attempt.application).unwrap().attempts[0].state,
            AttemptState::Running
        );
        t.heartbeat_at(t0 + 2 * expiry + 1, "a:1", vec![]).unwrap();
        let fx = t.core.on_tick(t0 + 2 * expiry + 1);
        let a = t.core.app(attempt.application).unwrap();
        assert_eq!(a.attempts[0].state, AttemptState::Failed);
        assert!(a.attempts[0].diagnostics.contains("timed out"));
        assert_eq!(stops(&fx).len(), 1, "the hung AM's container is stopped");
        assert_eq!(
            a.state,
            AppState::Accepted,
            "a second attempt is on its way"
        );
    }

    #[test]
    fn an_allocation_nobody_starts_is_taken_back() {
        let mut t = Harness::new();
        t.node("a:1", 8192);
        let attempt = t.running_app(1024);
        let got = t.ask(attempt, 1, 1024, 1);
        let expiry = t.core.config().allocation_expiry_ms();
        let at = t.core.container(got[0].id).unwrap().allocated_ms;
        // Keep the node and the AM alive meanwhile.
        t.heartbeat_at(at + expiry + 1, "a:1", vec![]).unwrap();
        t.core.take_news(at + expiry + 1, attempt);
        t.core.on_tick(at + expiry + 1);
        let c = t.core.container(got[0].id).unwrap();
        assert_eq!(
            (c.state, c.exit_status),
            (ContainerState::Completed, Some(ABORTED))
        );
        assert_eq!(t.news(attempt).completed.len(), 1);
    }

    #[test]
    fn an_am_that_does_not_exit_after_unregistering_is_stopped_after_the_grace() {
        let mut t = Harness::new();
        t.node("a:1", 8192);
        let attempt = t.running_app(1024);
        let am = t.am_container(attempt.application);
        let finish = FinishCall {
            attempt,
            final_status: 1,
            diagnostics: String::new(),
            tracking_url: String::new(),
        };
        t.core.on_finish_am(100, finish).unwrap();
        assert!(t.core.container(am).unwrap().is_live());
        let grace = t.core.config().am_exit_grace_ms;
        assert!(stops(&t.core.on_tick(100 + grace - 1)).is_empty());
        let fx = t.core.on_tick(100 + grace);
        assert_eq!(
            stops(&fx),
            vec![("a:1".to_string(), am, KILLED_AFTER_APP_COMPLETION)]
        );
        let a = t.core.app(attempt.application).unwrap();
        assert_eq!(a.state, AppState::Finished);
        assert_eq!(a.live_containers, 0);
    }
}
