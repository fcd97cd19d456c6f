//! The FIFO scheduler. It runs after every event that adds demand or frees capacity, so a
//! request is served the moment it can be, never on the next heartbeat. Applications are served
//! in submission order, AM containers before all others; an application whose request fits
//! nowhere does not block the ones behind it (YARN's FIFO scheduler does not reserve either).
//! Containers are fitted by memory only, as YARN's default resource calculator does.

use std::collections::BTreeMap;

use spindle_containers::{AttemptId, ContainerId, Resource};

use super::Core;
use super::app::AttemptState;
use super::container::{Container, ContainerState};
use super::effect::{Effect, Effects};
use super::node::NodeIdx;
use super::record::{ContainerRecord, Record};
use super::requests::RequestKey;

/// YARN gives the AM container priority 0.
pub const AM_PRIORITY: i32 = 0;

/// The most containers one pass hands out. An ask for millions of containers on a cluster
/// with room for them is served a slice per event (each answer brings the AM's next poll, and
/// the ticker runs every second), so the core task never stops answering for long.
pub const MAX_ALLOCATIONS_PER_PASS: u32 = 1000;

#[derive(Debug, Default)]
pub(crate) struct Queues {
    /// Attempts waiting for their AM container, by their application's submission order.
    pub ams: BTreeMap<u64, AttemptId>,
    /// Attempts with outstanding container requests, by submission order.
    pub demand: BTreeMap<u64, AttemptId>,
    /// Whether demand was added since the scheduler last looked.
    grew: bool,
}

impl Queues {
    pub fn queue_am(&mut self, order: u64, attempt: AttemptId) {
        self.ams.insert(order, attempt);
        self.grew = true;
    }

    /// Called whenever an attempt adds asks, even if it was queued already.
    pub fn queue_demand(&mut self, order: u64, attempt: AttemptId) {
        self.demand.insert(order, attempt);
        self.grew = true;
    }

    pub fn remove(&mut self, order: u64) {
        self.ams.remove(&order);
        self.demand.remove(&order);
    }

    /// Whether the scheduler will look at the queues again at the next event (a pass ran out
    /// of its budget, or demand came since the last one).
    pub fn will_look_again(&self) -> bool {
        self.grew
    }
}

impl Core {
    /// Serves what can be served. Runs at the end of every event, but does work only when demand
    /// or capacity grew since it last ran: a heartbeat that freed nothing costs nothing here,
    /// however many requests wait.
    pub(crate) fn schedule(&mut self, now: u64, fx: &mut Effects) {
        let demand_grew = std::mem::take(&mut self.queues.grew);
        let capacity_grew = self.nodes.take_capacity_grew();
        if !(demand_grew || capacity_grew) || self.nodes.schedulable_count() == 0 {
            return;
        }
        let mut budget = MAX_ALLOCATIONS_PER_PASS;
        self.schedule_ams(now, &mut budget, fx);
        self.schedule_containers(now, &mut budget, fx);
        if budget == 0 {
            // Demand may be left that fits: look again at the next event.
            self.queues.grew = true;
        }
    }

    fn schedule_ams(&mut self, now: u64, budget: &mut u32, fx: &mut Effects) {
        let waiting: Vec<(u64, AttemptId)> =
            self.queues.ams.iter().map(|(o, a)| (*o, *a)).collect();
        for (order, attempt) in waiting {
            if *budget == 0 {
                return;
            }
            let Some(app) = self.apps.get(&attempt.application) else {
                self.queues.ams.remove(&order);
                continue;
            };
            let resource = app.am_resource;
            let asked_ms = app.attempt(attempt).map_or(now, |a| a.start_ms);
            let Some(node) = self.nodes.pick(resource.memory_mb, self.config.placement) else {
                continue;
            };
            self.queues.ams.remove(&order);
            let Some(container) =
                self.allocate_container(now, attempt, node, resource, AM_PRIORITY, true, fx)
            else {
                continue;
            };
            *budget -= 1;
            self.metrics
                .am_allocation_latency
                .observe(now.saturating_sub(asked_ms), 1);
            let Some(app) = self.apps.get(&attempt.application) else {
                continue;
            };
            tracing::info!(app = %app.id, attempt = %attempt, %container,
                node = %self.nodes.get(node).id, "AM container allocated");
            fx.launch(Effect::LaunchAm {
                container,
                node: self.nodes.get(node).id.clone(),
                resource,
                launch: app.am_launch.clone(),
                user: app.user.clone(),
            });
            fx.changed(app.id);
        }
    }

    fn schedule_containers(&mut self, now: u64, budget: &mut u32, fx: &mut Effects) {
        let waiting: Vec<(u64, AttemptId)> =
            self.queues.demand.iter().map(|(o, a)| (*o, *a)).collect();
        for (order, attempt) in waiting {
            if *budget == 0 {
                return;
            }
            let Some(max_free) = self.nodes.max_free_memory_mb() else {
                return;
            };
            // The requests are taken out while containers are handed out, so the node table
            // and the container records can change beside them.
            let requests = self
                .apps
                .get_mut(&attempt.application)
                .and_then(|app| app.attempt_mut(attempt))
                .map(|a| std::mem::take(&mut a.requests));
            let Some(mut requests) = requests else {
                self.queues.demand.remove(&order);
                continue;
            };
            let mut served: Vec<(RequestKey, u32)> = Vec::new();
            for (key, count) in requests.groups() {
                let n = self.serve_group(now, attempt, key, count.min(*budget), max_free, fx);
                *budget -= n;
                if n > 0 {
                    served.push((key.clone(), n));
                    fx.wake(attempt);
                }
            }
            for (key, n) in served {
                for (asked_ms, count) in requests.take(&key, n) {
                    self.metrics
                        .allocation_latency
                        .observe(now.saturating_sub(asked_ms), u64::from(count));
                }
            }
            let done = requests.outstanding() == 0;
            if let Some(a) = self
                .apps
                .get_mut(&attempt.application)
                .and_then(|app| app.attempt_mut(attempt))
            {
                a.requests = requests;
            }
            if done {
                self.queues.demand.remove(&order);
            }
        }
    }

    /// Allocates up to `count` containers of one request group; returns how many it did.
    fn serve_group(
        &mut self,
        now: u64,
        attempt: AttemptId,
        key: &RequestKey,
        count: u32,
        max_free: u64,
        fx: &mut Effects,
    ) -> u32 {
        let need = key.capability.memory_mb;
        let placement = self.config.placement;
        let preferred: Vec<NodeIdx> = key
            .locality
            .nodes
            .iter()
            .flat_map(|name| self.nodes.resolve(name))
            .collect();
        if preferred.is_empty() && (need > max_free || !key.locality.relax) {
            return 0;
        }
        let mut n = 0;
        while n < count {
            let node = self
                .nodes
                .pick_among(need, placement, &preferred)
                .or_else(|| {
                    key.locality
                        .relax
                        .then(|| self.nodes.pick(need, placement))
                        .flatten()
                });
            let Some(node) = node else { break };
            if self
                .allocate_container(now, attempt, node, key.capability, key.priority, false, fx)
                .is_none()
            {
                break;
            }
            n += 1;
        }
        n
    }

    /// Records a new container of `attempt` on `node` and charges it to the node and the app.
    #[allow(clippy::too_many_arguments)]
    fn allocate_container(
        &mut self,
        now: u64,
        attempt: AttemptId,
        node: NodeIdx,
        resource: Resource,
        priority: i32,
        is_am: bool,
        fx: &mut Effects,
    ) -> Option<ContainerId> {
        let epoch = self.epoch;
        let app = self.apps.get_mut(&attempt.application)?;
        let a = app.attempt_mut(attempt)?;
        let id = a.next_container_id(epoch);
        if is_am {
            a.am_container = Some(id);
            a.state = AttemptState::Allocated;
        } else {
            a.news.allocated.push(id);
            self.unstarted.insert((now, id));
        }
        if is_am {
            self.metrics.am_containers_allocated += 1;
        } else {
            self.metrics.containers_allocated += 1;
        }
        app.containers.push(id);
        app.allocated += resource;
        app.live_containers += 1;
        self.nodes.charge(node, id, resource);
        self.containers.insert(
            id,
            Container {
                id,
                node,
                resource,
                priority,
                is_am,
                state: ContainerState::Allocated,
                exit_status: None,
                diagnostics: String::new(),
                allocated_ms: now,
                finished_ms: None,
            },
        );
        fx.persist(Record::Container(ContainerRecord {
            id,
            node: self.nodes.get(node).id.clone(),
            resource,
            priority,
            is_am,
            allocated_ms: now,
        }));
        if is_am {
            self.save_attempt(attempt, fx);
        }
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Placement;
    use crate::core::testkit::*;

    #[test]
    fn the_am_container_is_allocated_at_once_on_submission() {
        let mut t = Harness::new();
        t.node("n1:1", 4096);
        let (app, fx) = t.submit_app(512);
        let launch = launched_am(&fx).expect("the AM container is launched");
        assert_eq!(launch.1.as_str(), "n1:1");
        assert_eq!(launch.0, t.am_container(app));
        assert_eq!(t.core.node(t.idx("n1:1")).used.memory_mb, 1024);
    }

    #[test]
    fn a_request_is_served_as_soon_as_a_node_registers() {
        let mut t = Harness::new();
        let (app, fx) = t.submit_app(512);
        assert!(launched_am(&fx).is_none(), "no node yet");
        let fx = t.node("n1:1", 4096);
        assert_eq!(launched_am(&fx).map(|l| l.0), Some(t.am_container(app)));
    }

    #[test]
    fn a_huge_ask_on_a_huge_node_is_served_a_slice_per_event() {
        use super::MAX_ALLOCATIONS_PER_PASS;
        let mut t = Harness::new();
        for id in ["huge:1", "huge:2", "huge:3"] {
            t.node(id, u64::MAX / 2);
        }
        let attempt = t.running_app(512);
        let first = t.ask(attempt, 1, 1024, i32::MAX);
        assert_eq!(first.len(), MAX_ALLOCATIONS_PER_PASS as usize);
        // The AM's next poll is the next event: the next slice.
        let second = t.allocate(attempt, vec![]);
        assert_eq!(second.allocated.len(), MAX_ALLOCATIONS_PER_PASS as usize);
        assert_eq!(
            t.outstanding(attempt),
            i32::MAX as u64 - 2 * u64::from(MAX_ALLOCATIONS_PER_PASS)
        );
        // Three nodes of half of u64::MAX each: the free total saturates instead of overflowing.
        assert_eq!(second.available.memory_mb, u64::MAX);
    }

    #[test]
    fn spread_places_containers_on_the_node_with_most_free_memory() {
        let mut t = Harness::new();
        t.node("big:1", 8192);
        t.node("small:1", 4096);
        let attempt = t.running_app(1024);
        let got = t.ask(attempt, 1, 1024, 4);
        let nodes = t.nodes_of(&got);
        // The AM went to big (8192 → 7168 free); spread then alternates as free memory evens out.
        assert_eq!(
            nodes,
            ["big:1", "big:1", "big:1", "small:1"].map(String::from)
        );
    }

    #[test]
    fn pack_fills_the_tightest_node_first() {
        let mut t = Harness::with(|c| c.placement = Placement::Pack);
        t.node("big:1", 8192);
        t.node("small:1", 4096);
        let attempt = t.running_app(1024);
        let got = t.ask(attempt, 1, 1024, 4);
        assert_eq!(
            t.nodes_of(&got),
            ["small:1", "small:1", "small:1", "big:1"].map(String::from)
        );
    }

    #[test]
    fn fifo_serves_the_earlier_application_first_but_a_misfit_does_not_block() {
        let mut t = Harness::new();
        t.node("n1:1", 4096);
        let first = t.running_app(1024);
        let second = t.running_app(1024);
        assert!(
            t.ask(first, 1, 4096, 1).is_empty(),
            "too big for what is left"
        );
        assert_eq!(t.ask(second, 1, 1024, 5).len(), 2, "the rest of the node");
        assert_eq!(t.core.app(second.application).unwrap().live_containers, 3);
    }

    #[test]
    fn lower_priority_numbers_are_served_first() {
        let mut t = Harness::new();
        t.node("n1:1", 3072);
        let attempt = t.running_app(1024);
        let allocate = |p: i32, n: i32| ask(p, 1024, n);
        let news = t.allocate(attempt, vec![allocate(5, 1), allocate(2, 1)]);
        let priorities: Vec<i32> = news.allocated.iter().map(|c| c.priority).collect();
        assert_eq!(priorities, vec![2, 5]);
    }

    #[test]
    fn strict_locality_waits_for_its_node_and_relaxed_goes_elsewhere() {
        let mut t = Harness::new();
        t.node("a:1", 2048);
        t.node("b:1", 8192);
        let attempt = t.running_app(1024); // lands on b
        let mut strict = ask(1, 2048, 1);
        strict.nodes = vec!["c".into()];
        strict.relax_locality = false;
        assert!(t.allocate(attempt, vec![strict]).allocated.is_empty());
        let fx = t.node("c:7", 4096);
        assert!(
            woken(&fx, attempt),
            "the waiting request is served by the new node"
        );
        let news = t.news(attempt);
        assert_eq!(t.nodes_of(&news.allocated), ["c:7".to_string()]);

        let mut relaxed = ask(1, 1024, 1);
        relaxed.nodes = vec!["nowhere".into()];
        relaxed.relax_locality = true;
        assert_eq!(t.allocate(attempt, vec![relaxed]).allocated.len(), 1);
    }

    #[test]
    fn allocation_latency_runs_from_the_ask_to_the_allocation_in_core_time() {
        let mut t = Harness::new();
        t.node("n1:1", 3072);
        let attempt = t.running_app(1024);
        let metrics = t.core.metrics().clone();
        assert_eq!(metrics.am_containers_allocated, 1);
        assert_eq!(metrics.am_allocation_latency.count(), 1);

        let got = t.ask(attempt, 1, 1024, 3);
        assert_eq!(got.len(), 2, "two fit at once, the third waits");
        let latency = &t.core.metrics().allocation_latency;
        assert_eq!((latency.count(), latency.sum_ms()), (2, 0));

        let asked_at = t.now - 1;
        let done = got[0].id;
        t.heartbeat_at(asked_at + 4_000, "n1:1", vec![completed(done, 0)])
            .unwrap();
        let m = t.core.metrics();
        assert_eq!(m.containers_allocated, 3);
        assert_eq!(m.containers_ended, 1);
        assert_eq!(m.allocation_latency.count(), 3);
        assert_eq!(m.allocation_latency.sum_ms(), 4_000);
        let within_2500: u64 = m
            .allocation_latency
            .cumulative()
            .find(|(bound, _)| *bound == 2_500)
            .map(|(_, n)| n)
            .unwrap();
        assert_eq!(within_2500, 2, "the third waited 4 s");
    }

    #[test]
    fn preferred_nodes_are_used_when_they_fit() {
        let mut t = Harness::new();
        t.node("a:1", 4096);
        t.node("b:1", 8192);
        let attempt = t.running_app(1024);
        let mut preferring = ask(1, 1024, 2);
        preferring.nodes = vec!["a:1".into()];
        let news = t.allocate(attempt, vec![preferring]);
        assert_eq!(
            t.nodes_of(&news.allocated),
            ["a:1", "a:1"].map(String::from)
        );
    }
}
