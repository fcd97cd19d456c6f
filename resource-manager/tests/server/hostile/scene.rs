//! The scene the refused calls are thrown at: an RM with one node, a running application, a
//! finished one (its AM's logs aggregated), an id handed out but never submitted, and one
//! staged file; and the snapshot of everything a refused call must leave as it was.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use spindle_protocol as proto;

use crate::common::*;

pub(super) struct Scene {
    pub(super) rm: Rm,
    /// Held so that the node keeps serving.
    _nm: FakeNm,
    pub(super) ids: Ids,
    /// The name of the RM's threads.
    pub(super) threads: String,
}

/// What the strategies need to know about the scene.
#[derive(Debug, Clone)]
pub(super) struct Ids {
    pub(super) ts: u64,
    /// Handed out, never submitted: a right submission of it would be accepted.
    pub(super) fresh: String,
    pub(super) running_app: String,
    pub(super) running_attempt: String,
    /// The AM container of the running attempt.
    pub(super) own_am: String,
    pub(super) finished_app: String,
    pub(super) finished_attempt: String,
    /// A container of the finished application (its AM's), with aggregated logs.
    pub(super) foreign: String,
    pub(super) node: String,
    pub(super) staged_sha: String,
    pub(super) staged: Vec<u8>,
}

impl Scene {
    pub(super) async fn build(threads: String) -> Scene {
        let mut rm = Rm::start().await;
        let mut nm = FakeNm::register(&rm, 8192).await;

        let done_app = rm.submit(512).await;
        let done_am = nm.started().await.container_id;
        let finished_attempt = attempt_of(&done_am);
        rm.register_am(&finished_attempt).await;
        rm.finish(&finished_attempt, proto::FinalStatus::Succeeded, "")
            .await;
        // Its AM exits, so nothing about it changes later (no grace period running out).
        nm.heartbeat(vec![completed(&done_am, 0)]).await;
        assert_eq!(
            rm.report(&done_app).await.state,
            proto::ApplicationState::Finished as i32
        );

        let running_app = rm.submit(512).await;
        let own_am = nm.started().await.container_id;
        let running_attempt = attempt_of(&own_am);
        rm.register_am(&running_attempt).await;
        nm.heartbeat(vec![running(&own_am)]).await;

        let fresh = rm.new_app().await;
        let staged = b"a staged file".to_vec();
        let staged_sha = hex::encode(Sha256::digest(&staged));
        rm.staging
            .upload(tokio_stream::iter(vec![proto::FileChunk {
                sha256: staged_sha.clone(),
                size: staged.len() as u64,
                data: staged.clone(),
            }]))
            .await
            .expect("the upload is stored");

        // The finished application's AM container logs, aggregated.
        rm.log_uploads
            .upload_logs(tokio_stream::iter(vec![
                proto::LogUploadChunk {
                    container_id: done_am.clone(),
                    file: "stdout".into(),
                    data: b"aggregated".to_vec(),
                    node_id: nm.node_id.clone(),
                    end: false,
                },
                proto::LogUploadChunk {
                    end: true,
                    ..Default::default()
                },
            ]))
            .await
            .expect("the logs are stored");

        let ts = rm.rm.as_ref().unwrap().cluster_timestamp();
        let ids = Ids {
            ts,
            fresh,
            running_app,
            running_attempt,
            own_am,
            finished_app: done_app,
            finished_attempt,
            foreign: done_am,
            node: nm.node_id.clone(),
            staged_sha,
            staged,
        };
        Scene {
            rm,
            _nm: nm,
            ids,
            threads,
        }
    }

    /// Everything a refused request must leave as it was.
    pub(super) async fn snapshot(&self) -> Snapshot {
        let mut client = self.rm.client.clone();
        let apps = client
            .list_applications(proto::ListApplicationsRequest::default())
            .await
            .expect("ListApplications")
            .into_inner()
            .applications;
        let nodes = client
            .list_nodes(proto::ListNodesRequest {})
            .await
            .expect("ListNodes")
            .into_inner()
            .nodes;
        let state = self.rm.state_dir();
        Snapshot {
            apps,
            nodes,
            staged: files_under(&state.join("staging")),
            logs: files_under(&state.join("app-logs")),
        }
    }
}

#[derive(Debug, PartialEq)]
pub(super) struct Snapshot {
    pub(super) apps: Vec<proto::ApplicationReport>,
    pub(super) nodes: Vec<proto::NodeReport>,
    /// The staging store: file name → content, temporary uploads included.
    pub(super) staged: BTreeMap<String, Vec<u8>>,
    /// The log store, likewise (its paths relative to it).
    pub(super) logs: BTreeMap<String, Vec<u8>>,
}

/// Every file under `dir`, by its path relative to `dir`, with its content.
fn files_under(dir: &std::path::Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap_or(&path);
                let bytes = std::fs::read(&path).unwrap_or_default();
                files.insert(relative.to_string_lossy().into_owned(), bytes);
            }
        }
    }
    files
}
