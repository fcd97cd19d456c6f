//! An application master that dies or hangs. A SIGKILLed AM ends its container, which fails the
//! attempt: the RM stops the attempt's containers and starts the next attempt (default max
//! attempts 2), and the application SUCCEEDS if that one does. When every attempt's AM is
//! killed, the application FAILS and says why. An AM that hangs without exiting (SIGSTOP) is
//! caught by the AM liveness expiry, and its container is stopped on its node.

use std::time::{Duration, Instant};

use crate::common::*;
use crate::support::*;

const AM: &str = "distributed-shell";

/// Two 256 MB containers sleeping a few seconds: long enough to be caught running.
fn sleepers(seconds: &str) -> Vec<String> {
    [
        "--num-containers",
        "2",
        "--container-memory",
        "256",
        "--shell-command",
        &format!("sleep {seconds}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn spawn_sleepers(cluster: &Cluster, name: &str, seconds: &str) -> (Running, String) {
    let flags = sleepers(seconds);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let submit = cluster.spawn_shell(&["--name", name], &flags);
    let app = submit.first_line();
    (submit, app)
}

/// Waits until attempt `n` of `app` is listed in `state`; returns when it was first seen.
fn attempt_in_state(cluster: &Cluster, app: &str, n: usize, state: &str) -> Instant {
    let what = format!("attempt {n} of {app} to be {state}");
    wait_for(Duration::from_secs(120), &what, || {
        let all = attempts(cluster, app);
        (all.len() >= n && all[n - 1].state == state).then_some(())
    })
    .1
}

fn sleeping(cluster: &Cluster, app: &str) -> usize {
    (0..cluster.nms.len())
        .map(|i| sleeping_on(cluster, i, app))
        .sum()
}

#[test]
fn a_killed_am_is_replaced_by_attempt_2_and_the_app_succeeds() {
    let _turn = take_turn();
    let cluster = Cluster::start_with_rm_flags(2, 1024, CALM_RM_FLAGS);
    let (submit, app) = spawn_sleepers(&cluster, "dead-am", "4");
    wait_until(Duration::from_secs(120), "attempt 1's containers", || {
        sleeping(&cluster, &app) == 2
    });
    let am = am_process(&app, 1, AM);

    let killed_at = Instant::now();
    signal(am, "KILL");
    let failed_at = attempt_in_state(&cluster, &app, 1, "FAILED");
    let running_at = attempt_in_state(&cluster, &app, 2, "RUNNING");
    measured(
        "dead AM: SIGKILL to attempt 1 FAILED",
        failed_at - killed_at,
    );
    measured(
        "dead AM: SIGKILL to attempt 2 RUNNING",
        running_at - killed_at,
    );
    // The failed attempt's containers are stopped with it.
    wait_until(
        Duration::from_secs(20),
        "attempt 1's processes to end",
        || attempt_processes(&app, 1).is_empty(),
    );

    let run = submit.wait();
    assert!(run.ok(), "{run}");
    assert!(run.stderr.contains("FINISHED (SUCCEEDED)"), "{run}");
    let all = attempts(&cluster, &app);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all[0].id.ends_with("_000001") && all[1].id.ends_with("_000002"));
    assert_eq!(all[0].state, "FAILED");
    assert!(
        all[0].diagnostics.contains(&format!(
            "AM container {} ended with exit status 137",
            am_container(&app, 1)
        )),
        "{all:?}"
    );
    assert_eq!(all[1].state, "FINISHED");
    assert_eq!(all[1].am_container, am_container(&app, 2));
    assert_eq!(all[1].diagnostics, "N/A");
    wait_until(
        Duration::from_secs(20),
        "the app's processes to end",
        || processes_of(&app, &cluster.work_dirs).is_empty(),
    );
}

#[test]
fn an_app_whose_every_am_is_killed_fails_and_says_why() {
    let _turn = take_turn();
    let cluster = Cluster::start_with_rm_flags(2, 1024, CALM_RM_FLAGS);
    let (submit, app) = spawn_sleepers(&cluster, "every-am-dies", "60");
    signal(am_process(&app, 1, AM), "KILL");
    let last = am_process(&app, 2, AM);
    let killed_at = Instant::now();
    signal(last, "KILL");

    let run = submit.wait();
    measured(
        "every AM killed: last SIGKILL to the app FAILED (submit returns)",
        killed_at.elapsed(),
    );
    assert_eq!(run.code, Some(1), "{run}");
    let status = cluster.spindle("status", &[&app]);
    assert_eq!(status_field(&status.stdout, "State"), "FAILED", "{status}");
    assert_eq!(
        status_field(&status.stdout, "Final-State"),
        "FAILED",
        "{status}"
    );
    let why = status_field(&status.stdout, "Diagnostics");
    assert!(
        why.contains("failed 2 time(s) (max attempts 2)"),
        "{status}"
    );
    assert!(
        why.contains(&format!(
            "AM container {} ended with exit status 137",
            am_container(&app, 2)
        )),
        "{status}"
    );
    assert!(run.stderr.contains("failed 2 time(s)"), "{run}");
    let all = attempt_lines(&status.stdout);
    assert_eq!(all.len(), 2, "{status}");
    for (n, attempt) in all.iter().enumerate() {
        assert_eq!(attempt.state, "FAILED", "{status}");
        assert!(attempt.diagnostics.contains("exit status 137"), "{status}");
        assert_eq!(attempt.am_container, am_container(&app, n as u32 + 1));
    }
    wait_until(
        Duration::from_secs(20),
        "the app's processes to end",
        || processes_of(&app, &cluster.work_dirs).is_empty(),
    );
}

/// Continues a stopped process on drop, so a failing test leaves nothing frozen behind.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

#[test]
fn a_hung_am_is_expired_its_container_stopped_and_attempt_2_succeeds() {
    let _turn = take_turn();
    let cluster = Cluster::start_with_rm_flags(
        2,
        1024,
        &["--nm-liveness-expiry", "30s", "--am-liveness-expiry", "3s"],
    );
    let (submit, app) = spawn_sleepers(&cluster, "hung-am", "4");
    wait_until(Duration::from_secs(120), "attempt 1's containers", || {
        sleeping(&cluster, &app) == 2
    });
    let am = am_process(&app, 1, AM);

    let stopped_at = Instant::now();
    signal(am, "STOP");
    let _resume = Resume(am);
    let failed_at = attempt_in_state(&cluster, &app, 1, "FAILED");
    let running_at = attempt_in_state(&cluster, &app, 2, "RUNNING");
    measured(
        "hung AM: SIGSTOP to attempt 1 FAILED (AM expiry 3 s)",
        failed_at - stopped_at,
    );
    measured(
        "hung AM: SIGSTOP to attempt 2 RUNNING",
        running_at - stopped_at,
    );
    let all = attempts(&cluster, &app);
    assert!(
        all[0].diagnostics.contains("timed out: not heard from for"),
        "{all:?}"
    );
    // The node stops the expired AM's process group even though the AM cannot run: nobody
    // continues it here, and still nothing of attempt 1 is left.
    let (_, gone_at) = wait_for(
        Duration::from_secs(20),
        "the stopped AM to be killed",
        || attempt_processes(&app, 1).is_empty().then_some(()),
    );
    assert!(!alive(am));
    measured(
        "hung AM: SIGSTOP to its processes gone",
        gone_at - stopped_at,
    );

    let run = submit.wait();
    assert!(run.ok(), "{run}");
    let all = attempts(&cluster, &app);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[1].state, "FINISHED", "{all:?}");
    wait_until(
        Duration::from_secs(20),
        "the app's processes to end",
        || processes_of(&app, &cluster.work_dirs).is_empty(),
    );
}
