//! The core's invariants, checked as a whole: tests run this after every event (and property
//! tests after thousands of random ones). Cheap enough for tests, too slow for every event in
//! production, so nothing calls it outside tests.

use std::collections::{BTreeSet, HashMap};

use spindle_containers::{ApplicationId, Resource};

use super::Core;
use super::container::ContainerState;

impl Core {
    /// Returns the first broken invariant, described.
    pub fn check_invariants(&self) -> Result<(), String> {
        self.nodes.check_index()?;
        self.check_nodes()?;
        let per_app = self.check_containers()?;
        self.check_apps(&per_app)?;
        self.check_awaiting()?;
        self.check_work_conserving()
    }

    /// A recovered container awaits its node only while its attempt may still use it.
    fn check_awaiting(&self) -> Result<(), String> {
        for r in self.awaiting.iter() {
            let attempt = r.id.attempt;
            let live = self.apps.get(&attempt.application).is_some_and(|app| {
                !app.state.is_final()
                    && app.is_current(attempt)
                    && app.attempt(attempt).is_some_and(|a| !a.state.is_over())
            });
            if !live || self.containers.contains_key(&r.id) {
                return Err(format!(
                    "{} awaits its node, but its attempt is over or it is attached",
                    r.id
                ));
            }
        }
        Ok(())
    }

    /// Nothing waits that could be placed now: every queued AM container and every request
    /// that may go anywhere is larger than the most free memory of any schedulable node.
    fn check_work_conserving(&self) -> Result<(), String> {
        let Some(max_free) = self.nodes.max_free_memory_mb() else {
            return Ok(());
        };
        for attempt in self.queues.ams.values() {
            let need = self.apps[&attempt.application].am_resource.memory_mb;
            if need <= max_free {
                return Err(format!(
                    "AM of {attempt} ({need} MB) waits though {max_free} MB are free"
                ));
            }
        }
        for attempt in self.queues.demand.values() {
            let Some(a) = self
                .apps
                .get(&attempt.application)
                .and_then(|app| app.attempt(*attempt))
            else {
                return Err(format!("queued attempt {attempt} unknown"));
            };
            for (key, _) in a.requests.groups().filter(|(k, _)| k.locality.relax) {
                if key.capability.memory_mb <= max_free {
                    return Err(format!(
                        "{key:?} of {attempt} waits though {max_free} MB are free"
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_nodes(&self) -> Result<(), String> {
        for (idx, node) in self.nodes.iter() {
            let mut used = Resource::ZERO;
            for id in &node.live {
                let c = self
                    .containers
                    .get(id)
                    .ok_or(format!("{id} on {} unknown", node.id))?;
                if !c.is_live() || c.node != idx {
                    return Err(format!(
                        "{id} is {} on another node, yet live on {}",
                        c.state, node.id
                    ));
                }
                used += c.resource;
            }
            if used != node.used {
                return Err(format!(
                    "node {} used {} but its containers hold {used}",
                    node.id, node.used
                ));
            }
            if node.used.memory_mb > node.capability.memory_mb {
                return Err(format!(
                    "node {} over-committed: {} of {}",
                    node.id, node.used, node.capability
                ));
            }
        }
        Ok(())
    }

    /// Checks each container against its node and app; returns each app's live (sum, count).
    fn check_containers(&self) -> Result<HashMap<ApplicationId, (Resource, u32)>, String> {
        let mut per_app: HashMap<ApplicationId, (Resource, u32)> = HashMap::new();
        let mut unstarted = BTreeSet::new();
        for (id, c) in &self.containers {
            let app = self
                .apps
                .get(&id.application())
                .ok_or(format!("{id} of no app"))?;
            if !app.containers.contains(id) {
                return Err(format!("{id} missing from its app's list"));
            }
            if c.is_live() != self.nodes.get(c.node).live.contains(id) {
                return Err(format!("{id} is {} but its node disagrees", c.state));
            }
            if c.is_live() != c.exit_status.is_none() {
                return Err(format!(
                    "{id} is {} with exit status {:?}",
                    c.state, c.exit_status
                ));
            }
            if c.is_live() {
                let e = per_app.entry(app.id).or_insert((Resource::ZERO, 0));
                e.0 += c.resource;
                e.1 += 1;
                if app.state.is_final() && !(c.is_am && self.am_grace.iter().any(|(_, g)| g == id))
                {
                    return Err(format!(
                        "{id} is live but its app {} is {}",
                        app.id, app.state
                    ));
                }
            }
            if c.state == ContainerState::Allocated && !c.is_am {
                unstarted.insert((c.allocated_ms, *id));
            }
        }
        if unstarted != self.unstarted {
            return Err(format!(
                "unstarted index {:?} should be {unstarted:?}",
                self.unstarted
            ));
        }
        Ok(per_app)
    }

    fn check_apps(&self, per_app: &HashMap<ApplicationId, (Resource, u32)>) -> Result<(), String> {
        for app in self.apps.values() {
            let (sum, count) = per_app.get(&app.id).copied().unwrap_or((Resource::ZERO, 0));
            if (sum, count) != (app.allocated, app.live_containers) {
                return Err(format!(
                    "app {} counts {} in {} containers, but holds {sum} in {count}",
                    app.id, app.allocated, app.live_containers
                ));
            }
            if app.state.is_final() == self.active.contains(&app.id) {
                return Err(format!(
                    "app {} is {} but active={}",
                    app.id,
                    app.state,
                    !app.state.is_final()
                ));
            }
            for (i, a) in app.attempts.iter().enumerate() {
                a.requests.check()?;
                let current = i + 1 == app.attempts.len();
                if !current && !a.state.is_over() {
                    return Err(format!("old attempt {} is still {}", a.id, a.state));
                }
                if a.state.is_over() && a.requests.outstanding() > 0 {
                    return Err(format!("attempt {} is {} with requests", a.id, a.state));
                }
                let queued = self.queues.demand.get(&app.order) == Some(&a.id);
                if current && queued != (a.requests.outstanding() > 0) {
                    return Err(format!(
                        "attempt {} queued={queued} with {} outstanding",
                        a.id,
                        a.requests.outstanding()
                    ));
                }
            }
        }
        Ok(())
    }
}
