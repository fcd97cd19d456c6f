//! WatchApplication streams: each gets the report at once, then one on every change of its
//! application, and ends after the final state (its sender is dropped).

use std::collections::HashMap;

use spindle_containers::ApplicationId;
use spindle_protocol as proto;
use tokio::sync::mpsc;
use tonic::Status;

pub type ReportSender = mpsc::UnboundedSender<Result<proto::ApplicationReport, Status>>;

#[derive(Default)]
pub struct Watchers {
    by_app: HashMap<ApplicationId, Vec<ReportSender>>,
}

impl Watchers {
    pub fn is_watched(&self, app: ApplicationId) -> bool {
        self.by_app.contains_key(&app)
    }

    /// Sends `report` to a new watcher, and keeps it unless the report is final.
    pub fn add(
        &mut self,
        app: ApplicationId,
        watcher: ReportSender,
        report: proto::ApplicationReport,
        is_final: bool,
    ) {
        if watcher.send(Ok(report)).is_ok() && !is_final {
            self.by_app.entry(app).or_default().push(watcher);
        }
    }

    /// Sends `report` to every watcher of `app`; after a final report they are let go.
    pub fn notify(&mut self, app: ApplicationId, report: proto::ApplicationReport, is_final: bool) {
        let Some(watchers) = self.by_app.get_mut(&app) else {
            return;
        };
        watchers.retain(|w| w.send(Ok(report.clone())).is_ok());
        if is_final || watchers.is_empty() {
            self.by_app.remove(&app);
        }
    }
}
