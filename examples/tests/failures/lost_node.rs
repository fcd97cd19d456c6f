//! A host that dies: its node manager and every process of its containers SIGKILLed while
//! distributed-shell runs containers on both nodes. The RM marks the node LOST after the NM
//! expiry and reports its containers to the AM as exit -100 (ABORTED, "node … lost").
//!
//! Distributed-shell does not replace lost containers, so the application fails and says which
//! containers the lost node took with it. (When the Pi example lands, its version of this story
//! belongs here too: the SDK's allocator asks for replacements, the driver re-runs the lost
//! tasks, and the application SUCCEEDS.)

use std::time::{Duration, Instant};

use crate::common::*;
use crate::support::*;

const SHORT_EXPIRIES: &[&str] = &["--nm-liveness-expiry", "2s", "--am-liveness-expiry", "5s"];

#[test]
fn a_lost_node_is_marked_lost_and_its_containers_abort_with_minus_100() {
    let _turn = take_turn();
    let mut cluster = Cluster::start_with_rm_flags(2, 1024, SHORT_EXPIRIES);
    // Four 256 MB containers next to a 512 MB AM: spread placement puts some on each node.
    // They sleep long enough to outlive the node; the survivors' end ends the application.
    let submit = cluster.spawn_shell(
        &["--name", "lost-node"],
        &[
            "--num-containers",
            "4",
            "--container-memory",
            "256",
            "--shell-command",
            "sleep 20",
        ],
    );
    let app = submit.first_line();
    wait_until(
        Duration::from_secs(120),
        "sleeping containers on both nodes",
        || {
            sleeping_on(&cluster, 0, &app) + sleeping_on(&cluster, 1, &app) == 4
                && sleeping_on(&cluster, 0, &app) > 0
                && sleeping_on(&cluster, 1, &app) > 0
        },
    );
    let am_node = attempts(&cluster, &app)[0].node.clone();
    let victim = if cluster.node_ids[0] == am_node { 1 } else { 0 };
    let victim_id = cluster.node_ids[victim].clone();
    let lost_containers = sleeping_on(&cluster, victim, &app);

    let killed_at = Instant::now();
    let killed = cluster.kill_node(victim);
    assert!(killed >= lost_containers, "killed {killed} processes");

    let ((), lost_at) = wait_for(Duration::from_secs(60), "the node to be LOST", || {
        (cluster.node_state(victim).as_deref() == Some("LOST")).then_some(())
    });
    measured(
        "lost node: SIGKILL to LOST (NM expiry 2 s)",
        lost_at - killed_at,
    );
    assert_eq!(cluster.node_state(1 - victim).as_deref(), Some("RUNNING"));

    // The AM hears of each lost container; distributed-shell logs every completion it gets.
    let am = am_container(&app, 1);
    let (aborted, told_at) = wait_for(Duration::from_secs(60), "the AM to hear", || {
        let logs = cluster.spindle("logs", &[&app, "--container", &am]);
        let aborted: Vec<String> = logs
            .stdout
            .lines()
            .filter(|l| l.contains("exit status -100 (ABORTED)"))
            .map(str::to_string)
            .collect();
        (aborted.len() == lost_containers).then_some(aborted)
    });
    measured(
        "lost node: SIGKILL to the AM told (-100)",
        told_at - killed_at,
    );
    for line in &aborted {
        assert!(line.contains(&format!("on node {victim_id}")), "{line}");
        assert!(line.contains(&format!("node {victim_id} lost")), "{line}");
    }

    let run = submit.wait();
    assert_eq!(run.code, Some(1), "{run}");
    assert!(run.stderr.contains("exit status -100 (ABORTED)"), "{run}");
    let status = cluster.spindle("status", &[&app]);
    assert_eq!(
        status_field(&status.stdout, "Final-State"),
        "FAILED",
        "{status}"
    );
    assert!(
        status_field(&status.stdout, "Diagnostics").contains(&format!("node {victim_id} lost")),
        "{status}"
    );
    // Nothing of the application outlives it on the node that survived.
    wait_until(
        Duration::from_secs(20),
        "the app's processes to end",
        || processes_of(&app, &cluster.work_dirs).is_empty(),
    );
    let nodes = cluster.spindle("nodes", &[]);
    let lost_row = nodes
        .stdout
        .lines()
        .find(|l| l.starts_with(&victim_id))
        .unwrap_or_else(|| panic!("the lost node is still listed:\n{nodes}"));
    assert!(lost_row.contains("LOST"), "{lost_row}");
}
