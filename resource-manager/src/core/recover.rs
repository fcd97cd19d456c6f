//! Recovery after an RM restart, work-preserving as YARN's: `Core::recover` rebuilds the
//! applications and attempts from the records of the state store, and keeps the containers that
//! were live as *awaiting* their nodes. When a node registers again, the awaiting containers it
//! reports are re-attached to their attempts and count against its capacity again; the rest are
//! aborted (-100), as are those of a node that does not come back within the NM expiry. A
//! recovered attempt whose AM may be running is answered RESYNC until its AM registers again.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use spindle_containers::exit_status::{ABORTED, KILLED_AFTER_APP_COMPLETION};
use spindle_containers::{ApplicationId, AttemptId, ContainerId, NodeId};

use super::Core;
use super::CoreConfig;
use super::app::{App, Attempt, AttemptState, CompletedContainer};
use super::container::{Container, ContainerState};
use super::effect::{Effect, Effects};
use super::node::NodeIdx;
use super::record::{ContainerRecord, Image, Record};
use super::tracker::ReportedContainer;

/// Recovered containers whose nodes have not registered since the restart.
#[derive(Debug, Default)]
pub(crate) struct Awaiting {
    records: BTreeMap<ContainerId, ContainerRecord>,
    by_node: HashMap<NodeId, BTreeSet<ContainerId>>,
    /// When the nodes that have not registered again count as lost.
    until_ms: u64,
}

impl Awaiting {
    fn insert(&mut self, r: ContainerRecord) {
        self.by_node.entry(r.node.clone()).or_default().insert(r.id);
        self.records.insert(r.id, r);
    }

    pub fn get(&self, id: &ContainerId) -> Option<&ContainerRecord> {
        self.records.get(id)
    }

    fn remove(&mut self, id: &ContainerId) -> Option<ContainerRecord> {
        let r = self.records.remove(id)?;
        if let Some(ids) = self.by_node.get_mut(&r.node) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_node.remove(&r.node);
            }
        }
        Some(r)
    }

    fn take_node(&mut self, node: &NodeId) -> Vec<ContainerRecord> {
        let ids = self.by_node.remove(node).unwrap_or_default();
        ids.iter()
            .filter_map(|id| self.records.remove(id))
            .collect()
    }

    /// Awaiting containers of `app` (of one attempt only, if given).
    fn of(&self, app: ApplicationId, attempt: Option<AttemptId>) -> Vec<ContainerId> {
        self.records
            .keys()
            .filter(|id| id.application() == app && attempt.is_none_or(|a| id.attempt == a))
            .copied()
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ContainerRecord> {
        self.records.values()
    }
}

impl Core {
    /// Rebuilds a core from the records of a state store (any sequence: they are folded into an
    /// image first) and starts a new epoch. `config.cluster_timestamp` is used only when the
    /// records hold none (a first start). The effects begin with the start's own record, and
    /// must be persisted before the RM serves.
    pub fn recover(
        config: CoreConfig,
        now: u64,
        records: impl IntoIterator<Item = Record>,
    ) -> (Core, Vec<Effect>) {
        let image = Image::from_records(records);
        let mut core = Core::new(config);
        let mut fx = Effects::default();
        let (cluster_timestamp, epoch) = match image.cluster {
            Some((ts, epoch)) => (ts, epoch.saturating_add(1)),
            None => (core.config.cluster_timestamp, 0),
        };
        core.config.cluster_timestamp = cluster_timestamp;
        core.epoch = epoch;
        core.last_app_seq = image.last_app_seq;
        fx.persist(Record::Cluster {
            cluster_timestamp,
            epoch,
        });
        core.awaiting.until_ms = now.saturating_add(core.config.nm_liveness_expiry_ms);

        let Image {
            apps,
            attempts,
            containers,
            ..
        } = image;
        for (id, r) in apps {
            core.next_order = core.next_order.max(r.order.saturating_add(1));
            core.apps.insert(id, App::from_record(r));
        }
        let mut orphans = BTreeSet::new();
        for (id, r) in attempts {
            match core.apps.get_mut(&id.application) {
                // Attempts come in id order, so each is the next of its application.
                Some(app) if id.attempt as usize == app.attempts.len() + 1 => {
                    app.attempts.push(Attempt::from_record(r, now));
                }
                Some(_) => {
                    tracing::warn!(attempt = %id, "ignoring an attempt recorded out of order")
                }
                None => {
                    orphans.insert(id.application);
                }
            }
        }
        for r in containers.into_values() {
            if core.apps.contains_key(&r.id.application()) {
                core.recover_container(r, &mut fx);
            } else {
                orphans.insert(r.id.application());
            }
        }
        for app in orphans {
            tracing::warn!(%app, "forgetting records of an application that was not recorded");
            fx.persist(Record::AppRemoved(app));
        }
        let ids: Vec<ApplicationId> = core.apps.keys().copied().collect();
        for id in ids {
            core.recover_app(now, id, &mut fx);
        }
        core.enforce_retention(&mut fx);
        core.schedule(now, &mut fx);
        tracing::info!(
            cluster_timestamp,
            epoch,
            applications = core.apps.len(),
            active = core.active.len(),
            awaiting_containers = core.awaiting.records.len(),
            "resource manager state recovered"
        );
        (core, fx.into_vec())
    }

    /// Keeps a recorded container as awaiting its node, if its attempt may still use it;
    /// otherwise forgets it and tells its node to stop it.
    fn recover_container(&mut self, r: ContainerRecord, fx: &mut Effects) {
        let attempt = r.id.attempt;
        let Some(app) = self.apps.get_mut(&attempt.application) else {
            return;
        };
        let current = app.is_current(attempt) && !app.state.is_final();
        let live_attempt = app
            .attempt_mut(attempt)
            .filter(|a| current && !a.state.is_over());
        if let Some(a) = live_attempt {
            // Ids of the new epoch cannot repeat old ones anyway; going on from the highest
            // number just keeps them readable.
            a.next_container = a.next_container.max(r.id.id.saturating_add(1));
            self.awaiting.insert(r);
        } else {
            fx.persist(Record::ContainerEnded(r.id));
            fx.stop(&r.node, r.id, KILLED_AFTER_APP_COMPLETION);
        }
    }

    /// Puts a recovered application back to work: a final one joins the retention order; an
    /// active one gets its AM container queued, or waits for its AM to resync.
    fn recover_app(&mut self, now: u64, id: ApplicationId, fx: &mut Effects) {
        let Some(app) = self.apps.get_mut(&id) else {
            return;
        };
        if app.state.is_final() {
            self.completed
                .insert((app.finish_ms.unwrap_or(app.submit_ms), id));
            return;
        }
        self.active.insert(id);
        let order = app.order;
        let unmanaged = app.unmanaged;
        let Some(a) = app.current_attempt_mut().filter(|a| !a.state.is_over()) else {
            tracing::info!(app = %id, "recovered without a live attempt: starting one");
            self.start_attempt(now, id, fx);
            return;
        };
        let attempt = a.id;
        let am_recorded = a
            .am_container
            .is_some_and(|c| self.awaiting.get(&c).is_some());
        if a.state == AttemptState::New {
            self.queues.queue_am(order, attempt);
        } else if unmanaged || am_recorded {
            a.resync = true;
            tracing::info!(app = %id, %attempt, "recovered; waiting for its AM to resync");
        } else {
            let why = "its AM container was not recorded before the RM restarted".into();
            self.fail_attempt(now, attempt, why, fx);
        }
    }

    /// A node registered after the restart: its awaiting containers are attached again, and
    /// those it does not report are aborted. (Reported completions are then applied as usual.)
    pub(crate) fn reattach(
        &mut self,
        now: u64,
        idx: NodeIdx,
        reports: &[ReportedContainer],
        fx: &mut Effects,
    ) {
        let node = self.nodes.get(idx).id.clone();
        let records = self.awaiting.take_node(&node);
        if records.is_empty() {
            return;
        }
        let reported: HashSet<ContainerId> = reports.iter().map(|r| r.id).collect();
        let mut gone = Vec::new();
        for r in records {
            let attempt = r.id.attempt;
            let Some(app) = self.apps.get_mut(&attempt.application) else {
                continue;
            };
            app.containers.push(r.id);
            app.allocated += r.resource;
            app.live_containers += 1;
            if r.is_am
                && let Some(a) = app.attempt_mut(attempt)
                && a.state == AttemptState::Allocated
            {
                a.state = AttemptState::Launched;
                self.save_attempt(attempt, fx);
            }
            self.nodes.charge(idx, r.id, r.resource);
            self.containers.insert(
                r.id,
                Container {
                    id: r.id,
                    node: idx,
                    resource: r.resource,
                    priority: r.priority,
                    is_am: r.is_am,
                    state: ContainerState::Running,
                    exit_status: None,
                    diagnostics: String::new(),
                    allocated_ms: r.allocated_ms,
                    finished_ms: None,
                },
            );
            if !reported.contains(&r.id) {
                gone.push(r.id);
            }
        }
        tracing::info!(%node, gone = gone.len(), "containers re-attached after the restart");
        let why = format!("node {node} registered again after the RM restarted without it");
        self.abort_containers(now, gone, &why, fx);
    }

    /// Ends an awaiting container: forgets it, and tells its attempt (an AM's own container
    /// fails the attempt). Returns its node, for a stop.
    pub(crate) fn end_awaiting(
        &mut self,
        now: u64,
        id: ContainerId,
        exit_status: i32,
        why: &str,
        fx: &mut Effects,
    ) -> Option<NodeId> {
        let r = self.awaiting.remove(&id)?;
        fx.persist(Record::ContainerEnded(id));
        let attempt = id.attempt;
        let live_attempt = self.apps.get_mut(&attempt.application).and_then(|app| {
            let current = app.is_current(attempt);
            app.attempt_mut(attempt)
                .filter(|a| current && !a.state.is_over())
        });
        match live_attempt {
            None => {}
            Some(_) if r.is_am => {
                let why = format!(
                    "AM container {id} ended before the application master unregistered: {why}"
                );
                self.fail_attempt(now, attempt, why, fx);
            }
            Some(a) => {
                a.news.completed.push(CompletedContainer {
                    id,
                    exit_status,
                    diagnostics: why.to_string(),
                });
                fx.wake(attempt);
            }
        }
        Some(r.node)
    }

    /// The RM ends the awaiting containers of an attempt or application that is over.
    pub(crate) fn drop_awaiting(
        &mut self,
        app: ApplicationId,
        attempt: Option<AttemptId>,
        exit_status: i32,
        fx: &mut Effects,
    ) {
        for id in self.awaiting.of(app, attempt) {
            if let Some(r) = self.awaiting.remove(&id) {
                fx.persist(Record::ContainerEnded(id));
                fx.stop(&r.node, id, exit_status);
            }
        }
    }

    /// Containers whose node did not register again within the NM expiry are aborted, as the
    /// containers of a lost node are.
    pub(crate) fn expire_awaiting(&mut self, now: u64, fx: &mut Effects) {
        if self.awaiting.records.is_empty() || now < self.awaiting.until_ms {
            return;
        }
        let mut ids: Vec<(bool, ContainerId)> =
            self.awaiting.iter().map(|r| (r.is_am, r.id)).collect();
        ids.sort();
        for (_, id) in ids {
            let node = self.awaiting.get(&id).map(|r| r.node.clone());
            if let Some(node) = node {
                let why = format!("node {node} did not register again after the RM restarted");
                self.end_awaiting(now, id, ABORTED, &why, fx);
            }
        }
    }

    /// Recovered containers still waiting for their nodes.
    pub fn awaiting(&self) -> impl Iterator<Item = &ContainerRecord> {
        self.awaiting.iter()
    }

    /// What the state store should hold now: the records emitted so far add up to this.
    pub fn image(&self) -> Image {
        let attached = self
            .containers
            .values()
            .filter(|c| c.is_live())
            .map(|c| ContainerRecord {
                id: c.id,
                node: self.nodes.get(c.node).id.clone(),
                resource: c.resource,
                priority: c.priority,
                is_am: c.is_am,
                allocated_ms: c.allocated_ms,
            });
        Image {
            cluster: Some((self.config.cluster_timestamp, self.epoch)),
            last_app_seq: self.last_app_seq,
            apps: self.apps.values().map(|a| (a.id, a.to_record())).collect(),
            attempts: self
                .apps
                .values()
                .flat_map(|a| &a.attempts)
                .map(|a| (a.id, a.to_record()))
                .collect(),
            containers: attached
                .chain(self.awaiting.iter().cloned())
                .map(|r| (r.id, r))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use spindle_containers::exit_status::{
        ABORTED, KILLED_AFTER_APP_COMPLETION, KILLED_BY_APPMASTER,
    };

    use crate::core::testkit::*;
    use crate::core::{AmCommand, AppState, AttemptState, Effect, FinalStatus, Record};

    #[test]
    fn finished_applications_survive_and_ids_continue_in_the_same_form() {
        let mut t = Harness::new();
        t.node("n1:1", 8192);
        let done = t.running_app(1024);
        t.finish(done, 2, "pi was 4").unwrap();
        let unused = t.new_application();
        let before = t.core.config().cluster_timestamp;

        let fx = t.restart();
        assert_eq!(
            fx.first(),
            Some(&Effect::Persist(Record::Cluster {
                cluster_timestamp: before,
                epoch: 1
            })),
            "the start is recorded first, with the first start's timestamp"
        );
        let app = t.core.app(done.application).unwrap();
        assert_eq!(
            (app.state, app.final_status, app.diagnostics.as_str()),
            (AppState::Finished, FinalStatus::Failed, "pi was 4")
        );
        assert_eq!(app.attempts[0].state, AttemptState::Finished);
        let next = t.new_application();
        assert_eq!(next.cluster_timestamp, before);
        assert_eq!(next.sequence, unused.sequence + 1, "no id handed out twice");
        assert_eq!(t.restart().len(), 1, "nothing else to record");
        assert_eq!(t.core.epoch(), 2, "one more per start");
    }

    #[test]
    fn reported_containers_are_reattached_and_the_am_resyncs_and_finishes() {
        let mut t = Harness::new();
        t.node("n1:1", 8192);
        let attempt = t.running_app(1024);
        let workers = t.ask(attempt, 1, 1024, 2);
        let am = t.am_container(attempt.application);
        t.heartbeat("n1:1", workers.iter().map(|w| running(w.id)).collect())
            .unwrap();

        t.restart();
        assert_eq!(t.core.awaiting().count(), 3);
        assert!(t.core.has_news(attempt), "its AM is to resync at once");
        let news = t.core.take_news(t.now, attempt).unwrap();
        assert_eq!(news.command, Some(AmCommand::Resync));
        // The node comes back running the AM and one worker; the other is gone.
        let fx = t.register_node("n1:1", 8192, vec![running(am), running(workers[0].id)]);
        assert!(woken(&fx, attempt));
        let node = t.core.node(t.idx("n1:1"));
        assert_eq!(
            node.used.memory_mb, 2048,
            "the two survivors hold capacity again"
        );
        let app = t.core.app(attempt.application).unwrap();
        assert_eq!((app.state, app.live_containers), (AppState::Running, 2));
        // Asks before registering again are dropped (the AM asks again once it has), but the
        // news goes out with the RESYNC.
        let news = t.allocate(attempt, vec![ask(1, 1024, 1)]);
        assert_eq!(news.command, Some(AmCommand::Resync));
        assert!(news.allocated.is_empty());
        assert_eq!(news.completed.len(), 1);
        assert_eq!(news.completed[0].id, workers[1].id);
        assert_eq!(news.completed[0].exit_status, ABORTED);
        t.register_am(attempt).unwrap();
        let news = t.allocate(attempt, vec![ask(1, 1024, 1)]);
        assert_eq!(news.command, None);
        assert_eq!(news.allocated.len(), 1);
        let new = news.allocated[0].id;
        assert_eq!(new.epoch, 1);
        assert!(new.to_string().starts_with("container_e1_"), "{new}");
        t.finish(attempt, 1, "").unwrap();
        let app = t.core.app(attempt.application).unwrap();
        assert_eq!(
            (app.state, app.final_status),
            (AppState::Finished, FinalStatus::Succeeded)
        );
        assert_eq!(app.attempts.len(), 1, "the same attempt, never restarted");
    }

    #[test]
    fn an_accepted_submission_gets_its_am_after_the_restart() {
        let mut t = Harness::new();
        let (app, fx) = t.submit_app(512);
        assert!(launched_am(&fx).is_none(), "no node yet");
        t.restart();
        let fx = t.node("n1:1", 4096);
        let (am, _) = launched_am(&fx).expect("the AM is launched once a node is there");
        assert_eq!(
            (am.application(), am.epoch, am.attempt.attempt),
            (app, 1, 1)
        );
    }

    #[test]
    fn an_am_whose_node_never_returns_fails_its_attempt_after_the_nm_expiry() {
        let mut t = Harness::new();
        t.node("gone:1", 4096);
        let attempt = t.running_app(1024);
        t.restart();
        t.node("other:1", 4096);
        let expiry = t.core.config().nm_liveness_expiry_ms;
        assert!(launched_am(&t.core.on_tick(t.now + 1)).is_none());
        t.heartbeat_at(t.now + expiry, "other:1", vec![]).unwrap();
        let fx = t.core.on_tick(t.now + expiry);
        let app = t.core.app(attempt.application).unwrap();
        assert_eq!(app.attempts[0].state, AttemptState::Failed);
        assert!(
            app.attempts[0]
                .diagnostics
                .contains("did not register again"),
            "{}",
            app.attempts[0].diagnostics
        );
        let (second, node) = launched_am(&fx).expect("a second attempt");
        assert_eq!((second.attempt.attempt, node.as_str()), (2, "other:1"));
        assert_eq!(t.core.awaiting().count(), 0);
    }

    #[test]
    fn an_exiting_am_of_a_finished_application_is_not_kept() {
        let mut t = Harness::new();
        t.node("n1:1", 4096);
        let attempt = t.running_app(1024);
        t.finish(attempt, 1, "").unwrap();
        let am = t.am_container(attempt.application);
        let fx = t.restart();
        assert!(fx.contains(&Effect::Persist(Record::ContainerEnded(am))));
        assert_eq!(
            stops(&fx),
            vec![("n1:1".to_string(), am, KILLED_AFTER_APP_COMPLETION)]
        );
        assert_eq!(t.core.awaiting().count(), 0);
        let out = t.heartbeat("n1:1", vec![running(am)]);
        assert!(out.is_err(), "the node must register first");
        t.register_node("n1:1", 4096, vec![running(am)]);
        let out = t.heartbeat("n1:1", vec![running(am)]).unwrap();
        assert_eq!(out.containers_to_cleanup, vec![am]);
    }

    #[test]
    fn a_release_sent_with_the_resync_is_kept() {
        let mut t = Harness::new();
        t.node("n1:1", 8192);
        let attempt = t.running_app(1024);
        let workers = t.ask(attempt, 1, 1024, 2);
        t.restart();
        let mut c = call(attempt, vec![ask(1, 1024, 5)]);
        c.releases = vec![workers[1].id];
        let fx = t.core.on_allocate(t.now, c).unwrap();
        assert!(fx.contains(&Effect::Persist(Record::ContainerEnded(workers[1].id))));
        assert_eq!(
            stops(&fx),
            vec![("n1:1".to_string(), workers[1].id, KILLED_BY_APPMASTER)]
        );
        let news = t.news(attempt);
        assert_eq!(news.command, Some(AmCommand::Resync));
        assert_eq!(news.completed.len(), 1);
        assert_eq!(
            t.outstanding(attempt),
            0,
            "asks wait for the AM to register again"
        );
        // The NM had not stopped it yet when it registered: it is told to.
        let am = t.am_container(attempt.application);
        let all = vec![running(am), running(workers[0].id), running(workers[1].id)];
        t.register_node("n1:1", 8192, all.clone());
        let out = t.heartbeat("n1:1", all).unwrap();
        assert_eq!(out.containers_to_cleanup, vec![workers[1].id]);
        assert_eq!(t.core.app(attempt.application).unwrap().live_containers, 2);
    }
}
