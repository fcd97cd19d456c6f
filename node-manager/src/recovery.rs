//! Taking back what an earlier run of this node manager left on the same work dir: its
//! containers run in their own sessions, so a node manager that was killed left them running.
//! Each recorded container is found again: still running (re-attached, watched through a pidfd,
//! stoppable), ended meanwhile (its status read from its `exit_code` file), or complete before.
//! All of them are in the table before the node registers, so the RM hears of them there.
//! Container cgroups of this node that no record accounts for (a launch the earlier run did not
//! get to record) are killed and removed.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use spindle_containers::ContainerId;
use spindle_containers::process::{self, Adopted, Exit, Recorded};
use tracing::Instrument;

use crate::containers::Restored;
use crate::launch;
use crate::node::Node;
use crate::state_store::{ContainerRecord, RecordState};

/// What recovery found, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    pub running: usize,
    pub ended_meanwhile: usize,
    pub complete_before: usize,
}

/// Restores every record into the node's table; to be called before the node serves.
pub async fn recover(node: &Arc<Node>, records: Vec<ContainerRecord>) -> Recovered {
    let mut recovered = Recovered::default();
    let mut kept_cgroups: HashSet<PathBuf> = HashSet::new();
    for record in records {
        let id: ContainerId = match record.container_id.parse() {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!("ignoring a container record: {e}");
                continue;
            }
        };
        let span = tracing::info_span!("container", container_id = %id, app = %id.application());
        async {
            match recover_one(node, id, record, &mut kept_cgroups).await {
                Found::Running => recovered.running += 1,
                Found::EndedMeanwhile => recovered.ended_meanwhile += 1,
                Found::CompleteBefore => recovered.complete_before += 1,
            }
        }
        .instrument(span)
        .await;
    }
    if let Some(cgroups) = &node.cgroups {
        for (name, cgroup) in cgroups.children() {
            if !kept_cgroups.contains(&cgroup.path) {
                tracing::info!(cgroup = %name, "removing a container cgroup no record accounts for");
                cgroup.remove().await;
            }
        }
    }
    recovered
}

enum Found {
    Running,
    EndedMeanwhile,
    CompleteBefore,
}

async fn recover_one(
    node: &Arc<Node>,
    id: ContainerId,
    record: ContainerRecord,
    kept_cgroups: &mut HashSet<PathBuf>,
) -> Found {
    let ContainerRecord {
        resource,
        user,
        working_dir,
        stop,
        state,
        ..
    } = record;
    let (pid, start_time, cgroup) = match state {
        RecordState::Complete {
            exit_status,
            diagnostics,
            acknowledged,
        } => {
            let restored = Restored::Complete {
                exit_status,
                diagnostics,
                acknowledged,
            };
            node.containers.restore(id, resource, user, stop, restored);
            return Found::CompleteBefore;
        }
        RecordState::Running {
            pid,
            start_time,
            cgroup,
        } => (pid, start_time, cgroup),
    };
    // A path read back from disk is trusted only inside this node's cgroup: what is in it
    // gets killed.
    let cgroup = cgroup.filter(|c| node.cgroups.as_ref().is_some_and(|own| own.owns(c)));
    let recorded = Recorded {
        pid,
        start_time,
        working_dir,
        cgroup,
    };
    match process::adopt(recorded).await {
        Adopted::Running(process) => {
            if let Some(cgroup) = process.cgroup() {
                kept_cgroups.insert(cgroup.path.clone());
            }
            tracing::info!(
                pid,
                user = user.as_deref().unwrap_or("unknown"),
                "took back a running container"
            );
            node.containers
                .restore(id, resource, user, stop, Restored::Running(process.clone()));
            launch::watch(node, id, resource, process);
            Found::Running
        }
        Adopted::Ended(exit) => {
            // A stop asked before the restart is what ended it.
            let exit = match (&stop, exit) {
                (Some(_), Exit::Exited { .. } | Exit::OutOfMemory { .. }) => Exit::Stopped,
                (_, exit) => exit,
            };
            let (exit_status, diagnostics) =
                launch::outcome(node, id, resource, exit, stop.clone()).await;
            tracing::info!(
                exit_status,
                "the container ended while the node manager was down"
            );
            node.metrics.completed(exit_status);
            let restored = Restored::Complete {
                exit_status,
                diagnostics,
                acknowledged: false,
            };
            node.containers.restore(id, resource, user, stop, restored);
            Found::EndedMeanwhile
        }
    }
}
