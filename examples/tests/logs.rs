//! Container logs through the `spindle` binary, with the RM and node managers as separate
//! processes: `spindle logs --follow` shows what running containers write while they run and
//! ends with the application; once an application is over its logs are aggregated to the RM, so
//! `spindle logs` still prints them after every node manager that ran it was killed.

mod support;

use std::collections::BTreeSet;

use support::{
    COMMAND, Cluster, Running, TempDir, app_id_of, kill_node_manager, spindle, wait_until,
};

const NODE_MEMORY_MB: u64 = 1024;

/// The distinct containers named after `prefix` on the lines of `text`.
fn containers_after<'a>(text: &'a str, prefix: &str) -> BTreeSet<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .collect()
}

#[test]
fn logs_outlive_the_node_managers_that_ran_the_containers() {
    let mut cluster = Cluster::start(2, NODE_MEMORY_MB);
    let submit = cluster.submit_shell(
        &["--name", "aggregated"],
        &[
            "--num-containers",
            "3",
            "--container-memory",
            "256",
            "--shell-command",
            "echo hello from $CONTAINER_ID; echo complaint from $CONTAINER_ID >&2",
        ],
    );
    assert!(submit.ok(), "{submit}");
    let app = app_id_of(&submit);

    // Each node uploads the app's logs to the RM, then deletes its own copy.
    let local_logs: Vec<_> = cluster
        .work_dirs
        .iter()
        .map(|w| w.join("logs").join(&app))
        .collect();
    wait_until(COMMAND, "every node to aggregate the app's logs", || {
        local_logs.iter().all(|dir| !dir.exists())
    });
    kill_node_manager(&mut cluster, 0);
    kill_node_manager(&mut cluster, 1);

    let logs = cluster.spindle("logs", &[&app]);
    assert!(logs.ok(), "{logs}");
    let greeted = containers_after(&logs.stdout, "hello from ");
    assert_eq!(greeted.len(), 3, "three containers' stdout:\n{logs}");
    for container in &greeted {
        for file in ["stdout", "stderr"] {
            let header = format!("==> {container} on node ");
            assert!(
                logs.stdout.lines().any(|l| l.starts_with(&header)
                    && l.ends_with(&format!(" (aggregated): {file} <=="))),
                "no aggregated {file} header for {container}:\n{logs}"
            );
        }
    }
    assert_eq!(
        containers_after(&logs.stdout, "complaint from "),
        greeted,
        "{logs}"
    );

    let one = *greeted.iter().next().unwrap();
    let only = cluster.spindle("logs", &[&app, "--container", one, "--file", "stderr"]);
    assert!(only.ok(), "{only}");
    assert_eq!(only.stdout.matches("==> ").count(), 1, "{only}");
    assert!(
        only.stdout.contains(&format!("complaint from {one}")),
        "{only}"
    );
    assert!(!only.stdout.contains("hello from"), "{only}");

    let none = cluster.spindle("logs", &[&app, "--file", "nope"]);
    assert_eq!(none.code, Some(1), "{none}");
    assert!(
        none.stderr
            .contains(&format!("no logs found for application {app} (file nope)")),
        "{none}"
    );
    let bad = cluster.spindle("logs", &[&app, "--file", "../stdout"]);
    assert_eq!(bad.code, Some(2), "{bad}");
}

#[test]
fn follow_shows_running_containers_output_and_ends_with_the_app() {
    let cluster = Cluster::start(2, NODE_MEMORY_MB);
    let gate = TempDir::new("gate");
    let go = gate.path().join("go");
    let command = format!(
        "echo started $CONTAINER_ID; while [ ! -e {} ]; do sleep 0.05; done; \
         echo finished $CONTAINER_ID",
        go.display()
    );
    let submit = cluster.submit_shell(
        &["--name", "followed", "--no-wait"],
        &[
            "--num-containers",
            "2",
            "--container-memory",
            "256",
            "--shell-command",
            &command,
        ],
    );
    assert!(submit.ok(), "{submit}");
    let app = app_id_of(&submit);

    let mut follow = spindle();
    follow.args(["logs", "--rm", &cluster.rm_addr, &app, "--follow"]);
    let follower = Running::start(follow, "spindle logs --follow");
    // Both containers wait for the gate: what the follower shows now, it showed while they ran.
    wait_until(
        COMMAND,
        "the follower to show both containers running",
        || containers_after(&follower.stdout_so_far(), "started ").len() == 2,
    );
    std::fs::write(&go, "").unwrap();
    let followed = follower.wait();
    assert!(followed.ok(), "{followed}");
    let started = containers_after(&followed.stdout, "started ");
    assert_eq!(
        containers_after(&followed.stdout, "finished "),
        started,
        "{followed}"
    );
    for container in &started {
        assert!(
            followed
                .stdout
                .lines()
                .any(|l| l.starts_with(&format!("==> {container} on node "))
                    && l.ends_with(": stdout <==")),
            "no stdout header for {container}:\n{followed}"
        );
    }
}
