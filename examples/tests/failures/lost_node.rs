//! A host that dies: its node manager and every process of its containers SIGKILLed while
//! distributed-shell runs containers on both nodes. The RM marks the node LOST after the NM
//! expiry and reports its containers to the AM as exit -100 (ABORTED, "node … lost").
//!
//! Distributed-shell does not replace lost containers, so its application fails and says which
//! containers the lost node took with it. An SDK application does: the allocator asks for a
//! replacement executor, the driver runs the lost task again, and the application SUCCEEDS.

use std::fs;
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

/// The node manager (index into `cluster.nms`) that started process `pid`.
fn node_of(cluster: &Cluster, pid: &str) -> usize {
    let env = fs::read(format!("/proc/{pid}/environ")).expect("the process's environment");
    let address = env
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(b"NM_ADDRESS="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("NM_ADDRESS in its environment");
    cluster
        .node_ids
        .iter()
        .position(|id| *id == address)
        .unwrap_or_else(|| panic!("{address} is not a node of the cluster"))
}

#[test]
fn a_lost_node_s_executor_is_replaced_and_the_lost_task_runs_again() {
    let _turn = take_turn();
    // Three nodes of 1024 MB: the 512 MB AM takes one, spread placement puts the two 512 MB
    // executors on the other two, so the node lost below never holds the AM.
    let mut cluster = Cluster::start_with_rm_flags(3, 1024, SHORT_EXPIRIES);
    // Client mode: the driver runs here, in the submitting process. `flaky hold` makes the
    // task of input 3 write its executor's pid and wait for the release file.
    let hold = TempDir::new("lost-node-hold");
    let running_file = hold.path().join("running");
    let mut submit = spindle();
    submit.args([
        "submit",
        "--rm",
        &cluster.rm_addr,
        "--deploy-mode",
        "client",
        "--num-executors",
        "2",
        "--",
        flaky(),
        "hold",
        hold.path().to_str().unwrap(),
    ]);
    let driver = Running::start(submit, "flaky hold");
    wait_until(COMMAND, "a task to hold", || running_file.exists());
    let first_pid = fs::read_to_string(&running_file).expect("pid");
    let first_pid = first_pid.trim().to_string();
    let victim = node_of(&cluster, &first_pid);
    let apps = cluster.spindle("apps", &[]);
    let app = apps
        .stdout
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .next()
                .filter(|w| w.starts_with("application_"))
        })
        .unwrap_or_else(|| panic!("no application listed:\n{apps}"))
        .to_string();
    let am_node = attempts(&cluster, &app)[0].node.clone();
    assert_ne!(
        cluster.node_ids[victim], am_node,
        "the executor shares the AM's node"
    );

    let killed_at = Instant::now();
    cluster.kill_node(victim);
    assert!(!alive(first_pid.parse().expect("a pid")));
    // The task may now finish wherever it runs again.
    fs::write(hold.path().join("release"), b"").expect("release");

    let ((), lost_at) = wait_for(Duration::from_secs(60), "the node to be LOST", || {
        (cluster.node_state(victim).as_deref() == Some("LOST")).then_some(())
    });
    let held = driver.wait();
    measured(
        "lost node (SDK): SIGKILL to LOST (NM expiry 2 s)",
        lost_at - killed_at,
    );
    measured(
        "lost node (SDK): SIGKILL to the job done, task re-run on a replacement",
        killed_at.elapsed(),
    );
    assert!(held.ok(), "{held}");
    assert!(held.stdout.contains("sum = 28"), "{held}");
    let again = fs::read_to_string(&running_file).expect("pid");
    assert_ne!(again.trim(), first_pid, "the lost task ran again elsewhere");
    let end_line = held
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("executors at the end: "))
        .unwrap_or_else(|| panic!("{held}"));
    let ids: Vec<u32> = end_line
        .split_whitespace()
        .map(|id| id.parse().expect("numeric executor ids"))
        .collect();
    assert_eq!(ids.len(), 2, "{held}");
    assert!(
        ids.iter().any(|id| *id > 2),
        "a replacement registered: {held}"
    );

    let status = cluster.spindle("status", &[&app]);
    assert_eq!(
        status_field(&status.stdout, "Final-State"),
        "SUCCEEDED",
        "{status}"
    );
    wait_until(
        Duration::from_secs(20),
        "the app's processes to end",
        || processes_of(&app, &cluster.work_dirs).is_empty(),
    );
}
