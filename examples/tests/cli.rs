//! End to end through the `spindle` binary, as a user would: a resource manager and two node
//! managers run as separate processes on loopback, and distributed-shell is submitted as the
//! application master, launching real containers.

mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use support::{Cluster, app_id_of, processes_of, run, wait_until};

/// Two nodes of 1024 MB: with the default 512 MB AM on one, six 256 MB containers fit at once.
const NODE_MEMORY_MB: u64 = 1024;

#[test]
fn a_shell_command_runs_in_four_containers_and_their_logs_show_each() {
    let cluster = Cluster::start(2, NODE_MEMORY_MB);

    let nodes = cluster.spindle("nodes", &[]);
    assert!(nodes.ok(), "{nodes}");
    for id in &cluster.node_ids {
        let line = nodes
            .stdout
            .lines()
            .find(|l| l.starts_with(id.as_str()))
            .unwrap_or_else(|| panic!("node {id} not listed:\n{nodes}"));
        assert!(line.contains("RUNNING"), "{line}");
        assert!(line.contains(&format!("/{NODE_MEMORY_MB} MB")), "{line}");
        assert!(line.contains("/4"), "{line}");
    }

    let submit = cluster.submit_shell(
        &["--name", "hello"],
        &[
            "--num-containers",
            "4",
            "--container-memory",
            "256",
            "--shell-command",
            "echo hello from $CONTAINER_ID",
        ],
    );
    assert!(submit.ok(), "{submit}");
    let app = app_id_of(&submit);
    assert!(submit.stderr.contains("FINISHED"), "{submit}");

    let logs = cluster.spindle("logs", &[&app]);
    assert!(logs.ok(), "{logs}");
    let greeted: BTreeSet<&str> = logs
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("hello from "))
        .collect();
    assert_eq!(greeted.len(), 4, "four different containers:\n{logs}");
    for container in &greeted {
        assert!(container.starts_with("container_"), "{container}");
        let header = format!("==> {container} on node ");
        assert!(
            logs.stdout
                .lines()
                .any(|l| l.starts_with(&header) && l.ends_with(": stdout <==")),
            "no stdout header for {container}:\n{logs}"
        );
    }

    let one = greeted.iter().next().unwrap();
    let only = cluster.spindle("logs", &[&app, "--container", one]);
    assert!(only.ok(), "{only}");
    assert!(only.stdout.contains(&format!("hello from {one}")), "{only}");
    assert_eq!(only.stdout.matches("hello from ").count(), 1, "{only}");

    let unknown = format!("container_{}_01_000999", &app["application_".len()..]);
    let none = cluster.spindle("logs", &[&app, "--container", &unknown]);
    assert_eq!(none.code, Some(1), "{none}");
    assert!(
        none.stderr
            .contains(&format!("no logs found for container {unknown}")),
        "{none}"
    );
    let foreign = cluster.spindle("logs", &[&app, "--container", "container_1_0001_01_000001"]);
    assert_eq!(foreign.code, Some(1), "{foreign}");
    assert!(
        foreign.stderr.contains("does not belong to application"),
        "{foreign}"
    );

    let apps = cluster.spindle("apps", &[]);
    assert!(apps.ok(), "{apps}");
    let row = apps
        .stdout
        .lines()
        .find(|l| l.starts_with(&app))
        .unwrap_or_else(|| panic!("{app} not listed:\n{apps}"));
    assert!(
        row.contains("FINISHED") && row.contains("SUCCEEDED"),
        "{row}"
    );
    assert!(row.contains("hello"), "{row}");

    let finished = cluster.spindle("apps", &["--state", "finished", "--json"]);
    assert!(finished.ok(), "{finished}");
    assert!(
        finished.stdout.contains(&format!("\"id\": \"{app}\"")),
        "{finished}"
    );
    let running = cluster.spindle("apps", &["--state", "RUNNING"]);
    assert!(!running.stdout.contains(&app), "{running}");
}

#[test]
fn a_command_that_exits_3_fails_the_app_and_says_where() {
    let cluster = Cluster::start(2, NODE_MEMORY_MB);
    let submit = cluster.submit_shell(
        &[],
        &[
            "--num-containers",
            "1",
            "--container-memory",
            "256",
            "--shell-command",
            "exit 3",
        ],
    );
    assert_eq!(submit.code, Some(1), "{submit}");
    let app = app_id_of(&submit);
    assert!(submit.stderr.contains("exit status 3"), "{submit}");

    let status = cluster.spindle("status", &[&app]);
    assert!(status.ok(), "{status}");
    let lines: Vec<&str> = status.stdout.lines().collect();
    assert!(lines.contains(&"Final-State : FAILED"), "{status}");
    assert!(
        lines.contains(&format!("Application-Id : {app}").as_str()),
        "{status}"
    );
    let diagnostics = lines
        .iter()
        .find(|l| l.starts_with("Diagnostics : "))
        .unwrap_or_else(|| panic!("no diagnostics:\n{status}"));
    assert!(diagnostics.contains("exit status 3"), "{status}");
    let container_prefix = format!("container_{}", &app["application_".len()..]);
    assert!(
        status.stdout.contains(&container_prefix),
        "diagnostics name the container:\n{status}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("Attempt : appattempt_")),
        "{status}"
    );
}

#[test]
fn killing_an_app_stops_every_container_process_at_once() {
    let cluster = Cluster::start(2, NODE_MEMORY_MB);
    let submit = cluster.submit_shell(
        &["--no-wait"],
        &[
            "--num-containers",
            "3",
            "--container-memory",
            "256",
            "--shell-command",
            "sleep 600",
        ],
    );
    assert!(submit.ok(), "{submit}");
    let app = app_id_of(&submit);
    wait_until(
        Duration::from_secs(120),
        "three sleeping containers",
        || {
            processes_of(&app, &cluster.work_dirs)
                .iter()
                .filter(|(_, comm)| comm == "sleep")
                .count()
                >= 3
        },
    );

    let started = Instant::now();
    let kill = cluster.spindle("kill", &[&app]);
    let killed_after = started.elapsed();
    assert!(kill.ok(), "{kill}");
    assert!(kill.stdout.contains("KILLED"), "{kill}");
    assert!(
        killed_after < Duration::from_secs(2),
        "KILLED after {killed_after:?}"
    );

    // The kill ends the process groups with SIGTERM, then SIGKILL after 250 ms; allow the
    // guard far more, and insist that nothing of the app survives.
    wait_until(
        Duration::from_secs(20),
        "the app's processes to end",
        || processes_of(&app, &cluster.work_dirs).is_empty(),
    );
    let status = cluster.spindle("status", &[&app]);
    assert!(status.stdout.contains("State : KILLED"), "{status}");

    let again = cluster.spindle("kill", &[&app]);
    assert!(again.ok(), "{again}");
    assert!(again.stdout.contains("already ended"), "{again}");
}

#[test]
fn more_containers_than_the_cluster_holds_all_run_in_turn() {
    let cluster = Cluster::start(2, NODE_MEMORY_MB);
    // 10 × 256 MB next to a 512 MB AM on 2 × 1024 MB: at most 6 at once, the rest wait.
    let submit = cluster.submit_shell(
        &[],
        &[
            "--num-containers",
            "10",
            "--container-memory",
            "256",
            "--shell-command",
            "echo ran $CONTAINER_ID",
        ],
    );
    assert!(submit.ok(), "{submit}");
    let app = app_id_of(&submit);
    let logs = cluster.spindle("logs", &[&app]);
    let ran: BTreeSet<&str> = logs
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ran "))
        .collect();
    assert_eq!(ran.len(), 10, "{logs}");
}

#[test]
fn bad_input_gets_clear_errors_and_submits_nothing() {
    let cluster = Cluster::start(1, NODE_MEMORY_MB);
    let shell = ["--shell-command", "true"];

    let too_big = cluster.submit_shell(&["--am-memory", "100g"], &shell);
    assert_eq!(too_big.code, Some(1), "{too_big}");
    assert!(
        too_big
            .stderr
            .contains("memory_mb=102400 exceeds the maximum allocation of 8192 MB"),
        "{too_big}"
    );

    for (value, quoted) in [("0", "\"0\""), ("-5", "\"-5\"")] {
        let bad = cluster.submit_shell(&["--am-memory", value], &shell);
        assert_eq!(bad.code, Some(2), "{bad}");
        assert!(bad.stderr.contains(quoted), "{bad}");
    }
    let zero_cores = cluster.submit_shell(&["--am-cores", "0"], &shell);
    assert_eq!(zero_cores.code, Some(2), "{zero_cores}");
    assert!(zero_cores.stderr.contains("at least 1"), "{zero_cores}");

    let missing = cluster.spindle("submit", &["--", "/nonexistent/program"]);
    assert_eq!(missing.code, Some(1), "{missing}");
    assert!(
        missing
            .stderr
            .contains("\"/nonexistent/program\" not found"),
        "{missing}"
    );
    let not_in_path = cluster.spindle("submit", &["--", "no-such-program-in-path"]);
    assert_eq!(not_in_path.code, Some(1), "{not_in_path}");
    assert!(not_in_path.stderr.contains("PATH"), "{not_in_path}");

    let unknown = cluster.spindle("status", &["application_1_9999"]);
    assert_eq!(unknown.code, Some(1), "{unknown}");
    assert!(unknown.stderr.contains("application_1_9999"), "{unknown}");
    let unknown_kill = cluster.spindle("kill", &["application_1_9999"]);
    assert_eq!(unknown_kill.code, Some(1), "{unknown_kill}");

    let malformed = cluster.spindle("status", &["application_x"]);
    assert_eq!(malformed.code, Some(2), "{malformed}");
    assert!(
        malformed
            .stderr
            .contains("malformed application id \"application_x\""),
        "{malformed}"
    );
    let malformed_container = cluster.spindle("logs", &["application_1_0001", "--container", "c1"]);
    assert_eq!(malformed_container.code, Some(2), "{malformed_container}");
    assert!(
        malformed_container
            .stderr
            .contains("malformed container id")
    );

    // None of the refusals left an application behind.
    let apps = cluster.spindle("apps", &[]);
    assert!(apps.ok(), "{apps}");
    assert!(
        apps.stdout.starts_with("Total number of applications: 0"),
        "{apps}"
    );
}

#[test]
fn an_rm_that_is_not_running_is_reported_at_once() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let addr = format!("127.0.0.1:{port}");
    let master = format!("spindle://{addr}");
    for command in [
        vec!["nodes", "--rm", &addr],
        vec!["apps", "--rm", &addr],
        vec!["status", "--rm", &addr, "application_1_0001"],
        vec!["submit", "--master", &master, "--", "/bin/true"],
    ] {
        let failed = run(&command);
        assert_eq!(failed.code, Some(1), "{failed}");
        assert!(
            failed
                .stderr
                .contains(&format!("cannot reach the resource manager at {addr}: ")),
            "{failed}"
        );
        // Refused connections fail at once; the 3 s connect timeout bounds the rest.
        assert!(failed.elapsed < Duration::from_secs(30), "{failed}");
    }
}
