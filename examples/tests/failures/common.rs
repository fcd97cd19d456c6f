//! What the failure stories share: taking turns, printing measured figures, reading
//! `spindle status` attempt lines, and finding the processes of one application on one node.

use std::fs;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::support::{Cluster, node_processes};

/// One failure story at a time (see the crate's doc).
pub fn take_turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Prints a measured figure in the form the docs table quotes.
pub fn measured(what: &str, took: Duration) {
    println!("MEASURED {what}: {} ms", took.as_millis());
}

/// Waits (hang guard `guard`) until `found` returns something, checking every few ms; returns
/// it and when it was first seen.
pub fn wait_for<T>(
    guard: Duration,
    what: &str,
    mut found: impl FnMut() -> Option<T>,
) -> (T, Instant) {
    let deadline = Instant::now() + guard;
    loop {
        if let Some(value) = found() {
            return (value, Instant::now());
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One `Attempt : …` line of `spindle status`.
#[derive(Debug, Clone)]
pub struct AttemptLine {
    pub id: String,
    pub state: String,
    pub am_container: String,
    pub node: String,
    pub diagnostics: String,
}

/// The attempts `spindle status APP` lists, in order.
pub fn attempts(cluster: &Cluster, app: &str) -> Vec<AttemptLine> {
    let status = cluster.spindle("status", &[app]);
    assert!(status.ok(), "{status}");
    attempt_lines(&status.stdout)
}

pub fn attempt_lines(status: &str) -> Vec<AttemptLine> {
    status
        .lines()
        .filter(|l| l.starts_with("Attempt : "))
        .map(|line| {
            let field = |key: &str| {
                line.split(" | ")
                    .find_map(|part| part.strip_prefix(&format!("{key} : ")))
                    .unwrap_or_default()
                    .to_string()
            };
            AttemptLine {
                id: field("Attempt"),
                state: field("State"),
                am_container: field("AM-Container"),
                node: field("Node"),
                diagnostics: field("Diagnostics"),
            }
        })
        .collect()
}

/// The value of `Key : value` in `spindle status` output.
pub fn status_field(status: &str, key: &str) -> String {
    let prefix = format!("{key} : ");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_default()
        .to_string()
}

/// The AM container of attempt `attempt` (1, 2, …) of `app`, as the RM names the first
/// container of a fresh attempt in epoch 0.
pub fn am_container(app: &str, attempt: u32) -> String {
    format!(
        "container_{}_{attempt:02}_000001",
        app.trim_start_matches("application_")
    )
}

/// How many `sleep` processes of `app` run on node `index` of `cluster`.
pub fn sleeping_on(cluster: &Cluster, index: usize, app: &str) -> usize {
    let needle = format!("APPLICATION_ID={app}");
    node_processes(&cluster.node_ids[index], &cluster.work_dirs[index])
        .into_iter()
        .filter(|pid| {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            let env = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            comm.trim() == "sleep" && env.split(|b| *b == 0).any(|v| v == needle.as_bytes())
        })
        .count()
}

/// Live processes of attempt `attempt` of `app`: those whose `CONTAINER_ID` names one of the
/// attempt's containers (in any epoch).
pub fn attempt_processes(app: &str, attempt: u32) -> Vec<u32> {
    let app_part = format!("{}_{attempt:02}_", app.trim_start_matches("application_"));
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let env = fs::read(entry.path().join("environ")).unwrap_or_default();
        let ours = env.split(|b| *b == 0).any(|var| {
            std::str::from_utf8(var)
                .ok()
                .and_then(|v| v.strip_prefix("CONTAINER_ID=container_"))
                .is_some_and(|id| {
                    // `e<epoch>_` comes first in ids handed out after a restart.
                    let id = match id.split_once('_') {
                        Some((epoch, rest)) if epoch.starts_with('e') => rest,
                        _ => id,
                    };
                    id.starts_with(&app_part)
                })
        });
        if ours && crate::support::alive(pid) {
            pids.push(pid);
        }
    }
    pids
}

/// The process of `program` (its command name) in attempt `attempt`'s AM container, once it
/// runs.
pub fn am_process(app: &str, attempt: u32, program: &str) -> u32 {
    let container = am_container(app, attempt);
    let (pid, _) = wait_for(
        Duration::from_secs(120),
        &format!("{program} in {container}"),
        || {
            crate::support::container_processes(&container, program)
                .first()
                .copied()
        },
    );
    pid
}
