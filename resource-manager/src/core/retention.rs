//! The retention limit for finished applications (YARN's
//! `yarn.resourcemanager.max-completed-applications`): past it, the applications that finished
//! first are forgotten, in memory and in the state store. One whose AM container is still
//! exiting is kept until it has.

use spindle_containers::ApplicationId;

use super::Core;
use super::effect::Effects;
use super::record::Record;

impl Core {
    pub(crate) fn enforce_retention(&mut self, fx: &mut Effects) {
        let excess = self
            .completed
            .len()
            .saturating_sub(self.config.max_completed_applications);
        if excess == 0 {
            return;
        }
        let removable: Vec<(u64, ApplicationId)> = self
            .completed
            .iter()
            .filter(|(_, id)| self.apps.get(id).is_none_or(|a| a.live_containers == 0))
            .take(excess)
            .copied()
            .collect();
        for key in removable {
            self.completed.remove(&key);
            self.remove_app(key.1, fx);
        }
    }

    fn remove_app(&mut self, id: ApplicationId, fx: &mut Effects) {
        if let Some(app) = self.apps.remove(&id) {
            for container in &app.containers {
                self.containers.remove(container);
            }
        }
        tracing::debug!(app = %id, "finished application forgotten (retention limit)");
        fx.persist(Record::AppRemoved(id));
    }
}

#[cfg(test)]
mod tests {
    use crate::core::testkit::*;
    use crate::core::{AppState, Effect, FinishCall, Record};

    #[test]
    fn the_oldest_finished_applications_go_first_and_the_store_is_told() {
        let mut t = Harness::with(|c| c.max_completed_applications = 2);
        t.node("n1:1", 8192);
        let apps: Vec<_> = (0..4).map(|_| t.submit_app(512).0).collect();
        for (i, app) in apps[..2].iter().enumerate() {
            t.core.kill(10 + i as u64, *app, "").unwrap();
        }
        let fx = t.core.kill(20, apps[2], "").unwrap();
        assert!(fx.contains(&Effect::Persist(Record::AppRemoved(apps[0]))));
        assert!(
            t.core.app(apps[0]).is_none(),
            "the first to finish went first"
        );
        let kept: Vec<_> = t.core.apps().map(|a| a.id).collect();
        assert_eq!(kept, apps[1..].to_vec(), "two finished and the running one");
        assert!(
            t.core.image().apps.keys().eq(apps[1..].iter()),
            "the store forgets it too"
        );
    }

    #[test]
    fn an_application_whose_am_is_still_exiting_is_kept_until_it_has() {
        let mut t = Harness::with(|c| c.max_completed_applications = 0);
        t.node("n1:1", 8192);
        let attempt = t.running_app(1024);
        let finish = FinishCall {
            attempt,
            final_status: 1,
            diagnostics: String::new(),
            tracking_url: String::new(),
        };
        t.core.on_finish_am(100, finish).unwrap();
        let app = t.core.app(attempt.application).unwrap();
        assert_eq!(app.state, AppState::Finished, "its AM has 10 s to exit");
        let am = t.am_container(attempt.application);
        let fx = t.complete(am, 0, "");
        assert!(t.core.app(attempt.application).is_none());
        assert!(fx.contains(&Effect::Persist(Record::AppRemoved(attempt.application))));
    }
}
