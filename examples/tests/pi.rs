//! The SDK end to end, as a user runs it: the real `pi` binary as its own launcher (local mode,
//! the embedded cluster, a `spindle local-cluster`), submitted with `spindle submit` in cluster
//! and client mode to an RM and two NMs running as separate processes, and the `flaky` test
//! program for task retries and a lost executor.

mod support;

use std::fs;
use std::process::Command;
use std::time::Duration;

use support::{
    Cluster, Daemon, Running, TempDir, app_id_of, flaky, pi, processes_of, program, run_command,
    wait_until,
};

/// Two nodes of 2048 MB hold a 512 MB AM and four 512 MB executors.
const NODE_MEMORY_MB: u64 = 2048;

/// The estimate `pi` printed, checked to be within 0.01 of π.
fn assert_pi(stdout: &str) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("Pi is roughly "))
        .unwrap_or_else(|| panic!("no estimate:\n{stdout}"));
    let estimate: f64 = line["Pi is roughly ".len()..]
        .trim()
        .parse()
        .expect("a number");
    assert!(
        (estimate - std::f64::consts::PI).abs() < 0.01,
        "estimate {estimate}"
    );
}

/// The application id in `… finished: …` or `error: application … ended …` on stderr.
fn app_id_in(stderr: &str) -> String {
    stderr
        .split(|c: char| c.is_whitespace() || c == ':' || c == '(' || c == ')')
        .find(|w| w.starts_with("application_"))
        .unwrap_or_else(|| panic!("no application id in:\n{stderr}"))
        .to_string()
}

/// The text of one log file in `spindle logs` output: the lines under its header.
fn log_section(logs: &str, container: &str, file: &str) -> String {
    let mut section = String::new();
    let mut inside = false;
    for line in logs.lines() {
        if line.starts_with("==> ") {
            inside = line.starts_with(&format!("==> {container} "))
                && line.ends_with(&format!(": {file} <=="));
            continue;
        }
        if inside {
            section.push_str(line);
            section.push('\n');
        }
    }
    section
}

/// The AM's container: the first of the first attempt.
fn am_container(app: &str) -> String {
    format!("container_{}_01_000001", &app["application_".len()..])
}

#[test]
fn pi_on_the_embedded_cluster_runs_four_executor_processes_on_both_nodes() {
    let pi_run = run_command(
        program(
            pi(),
            &[
                "--master",
                "local-cluster[2,2,2048]",
                "--num-executors",
                "4",
            ],
        ),
        "pi on local-cluster",
    );
    assert!(pi_run.ok(), "{pi_run}");
    assert_pi(&pi_run.stdout);
    assert!(
        pi_run
            .stdout
            .contains("8 tasks ran in 4 executor processes on 2 nodes: 127.0.0.1:"),
        "{pi_run}"
    );
    assert!(
        pi_run.stderr.contains("finished: FINISHED (SUCCEEDED)"),
        "{pi_run}"
    );
    assert!(pi_run.stdout.contains("Timing: context "), "{pi_run}");
}

#[test]
fn pi_in_local_mode_needs_no_daemon_and_no_other_process() {
    let running = Running::start(program(pi(), &["--master", "local[4]", "100000"]), "pi");
    let pid = running.pid();
    let local = running.wait();
    assert!(local.ok(), "{local}");
    assert_pi(&local.stdout);
    assert!(
        local
            .stdout
            .contains(&format!("8 tasks ran in this process (pid {pid})")),
        "{local}"
    );
    assert!(
        !local.stderr.contains("application_"),
        "no application: {local}"
    );
}

#[test]
fn pi_flags_are_checked_before_anything_runs() {
    let bad = run_command(program(pi(), &["--num-executor", "4"]), "pi");
    assert_eq!(bad.code, Some(2), "{bad}");
    assert!(bad.stderr.contains("--num-executor"), "{bad}");
    let local_cluster_mode = run_command(
        program(pi(), &["--master", "local[2]", "--deploy-mode", "cluster"]),
        "pi",
    );
    assert_eq!(local_cluster_mode.code, Some(2), "{local_cluster_mode}");
    let bad_samples = run_command(program(pi(), &["--master", "local", "many"]), "pi");
    assert_eq!(bad_samples.code, Some(1), "{bad_samples}");
    assert!(
        bad_samples.stderr.contains("SAMPLES=\"many\""),
        "{bad_samples}"
    );
}

#[test]
fn pi_on_a_cluster_of_processes_in_cluster_and_client_mode() {
    let cluster = Cluster::start(2, NODE_MEMORY_MB);
    let master = format!("spindle://{}", cluster.rm_addr);

    // Cluster mode: the driver runs in the AM, so its output is in the AM's logs.
    let submitted = cluster.submit(&["--num-executors", "4"], pi(), &["200000"]);
    assert!(submitted.ok(), "{submitted}");
    assert!(!submitted.stdout.contains("Pi is roughly"), "{submitted}");
    let app = app_id_of(&submitted);
    let logs = cluster.spindle("logs", &[&app]);
    assert!(logs.ok(), "{logs}");
    let am_stdout = log_section(&logs.stdout, &am_container(&app), "stdout");
    assert_pi(&am_stdout);
    assert!(
        am_stdout.contains("in 4 executor processes on 2 nodes"),
        "{am_stdout}"
    );

    // Client mode: the driver runs in the submitting process and prints here.
    let client = run_command(
        {
            let mut command = support::spindle();
            command.args([
                "submit",
                "--master",
                &master,
                "--deploy-mode",
                "client",
                "--num-executors",
                "4",
                "--",
                pi(),
                "200000",
            ]);
            command
        },
        "spindle submit --deploy-mode client",
    );
    assert!(client.ok(), "{client}");
    assert_pi(&client.stdout);
    assert!(
        client.stdout.contains("in 4 executor processes on 2 nodes"),
        "{client}"
    );
    let client_app = app_id_in(&client.stderr);
    assert_ne!(client_app, app);
    let am_logs = cluster.spindle(
        "logs",
        &[&client_app, "--container", &am_container(&client_app)],
    );
    let am_stderr = log_section(&am_logs.stdout, &am_container(&client_app), "stderr");
    assert!(
        am_stderr.contains("deploy_mode=\"client\"") && am_stderr.contains("watching the driver"),
        "the AM only launches executors:\n{am_logs}"
    );
    let am_stdout = log_section(&am_logs.stdout, &am_container(&client_app), "stdout");
    assert!(!am_stdout.contains("Pi is roughly"), "{am_logs}");
    let status = cluster.spindle("status", &[&client_app]);
    assert!(
        status.stdout.contains("Final-State : SUCCEEDED"),
        "{status}"
    );
    wait_until(
        Duration::from_secs(30),
        "every container of the client-mode app to end",
        || processes_of(&client_app, &cluster.work_dirs).is_empty(),
    );
}

#[test]
fn pi_launches_itself_in_cluster_mode_on_a_spindle_local_cluster() {
    let dir = TempDir::new("dev-cluster");
    let dev = Daemon::start(
        "local-cluster",
        &["local-cluster", "--nodes", "2", "--memory-mb", "2048"],
        dir.path(),
        "master",
    );
    let master = dev.get("master");
    assert_eq!(master, format!("spindle://{}", dev.get("rpc-address")));
    let launched = run_command(
        program(
            pi(),
            &["--master", &master, "--deploy-mode", "cluster", "100000"],
        ),
        "pi --deploy-mode cluster",
    );
    assert!(launched.ok(), "{launched}");
    assert!(!launched.stdout.contains("Pi is roughly"), "{launched}");
    let app = app_id_of(&launched);
    assert!(
        launched
            .stderr
            .contains(&format!("{app} finished: FINISHED (SUCCEEDED)")),
        "{launched}"
    );
    let logs = run_command(
        {
            let mut command = support::spindle();
            command.args(["logs", "--rm", &dev.get("rpc-address"), &app]);
            command
        },
        "spindle logs",
    );
    assert_pi(&log_section(&logs.stdout, &am_container(&app), "stdout"));
}

#[test]
fn task_failures_are_retried_and_lost_executors_replaced() {
    let cluster = Cluster::start(2, NODE_MEMORY_MB);

    // A task that always panics fails the job, and the application, with its message.
    let always = cluster.submit(
        &["--num-executors", "2", "--max-task-failures", "2"],
        flaky(),
        &["always"],
    );
    assert_eq!(always.code, Some(1), "{always}");
    assert!(
        always
            .stderr
            .contains("task 'check' panicked: flaky: input 3 always panics"),
        "{always}"
    );
    assert!(
        always
            .stderr
            .contains("input #3 failed 2 time(s) (max_task_failures=2)"),
        "{always}"
    );

    // A task that panics once is retried, and the job succeeds.
    let marks = TempDir::new("flaky-once");
    let once = cluster.submit(
        &["--num-executors", "2"],
        flaky(),
        &["once", marks.path().to_str().unwrap()],
    );
    assert!(once.ok(), "{once}");
    assert!(marks.path().join("panicked").exists(), "it did panic once");
    let app = app_id_of(&once);
    let logs = cluster.spindle("logs", &[&app, "--container", &am_container(&app)]);
    assert!(
        log_section(&logs.stdout, &am_container(&app), "stdout").contains("sum = 28"),
        "{logs}"
    );

    // An executor killed in the middle of a task is replaced, the task runs again, and the
    // job succeeds (client mode: the driver prints here).
    let hold = TempDir::new("flaky-hold");
    let mut submit = support::spindle();
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
    let running = Running::start(submit, "flaky hold");
    let running_file = hold.path().join("running");
    wait_until(support::COMMAND, "a task to hold", || running_file.exists());
    let executor_pid = fs::read_to_string(&running_file).expect("pid");
    assert_ne!(executor_pid.trim(), running.pid().to_string());
    let killed = Command::new("kill")
        .args(["-KILL", executor_pid.trim()])
        .status()
        .expect("kill");
    assert!(killed.success());
    fs::write(hold.path().join("release"), b"").expect("release");
    let held = running.wait();
    assert!(held.ok(), "{held}");
    assert!(held.stdout.contains("sum = 28"), "{held}");
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
        "a replacement executor registered: {held}"
    );
}

#[test]
fn a_driver_that_never_creates_its_context_fails_every_attempt_with_exit_13() {
    let cluster = Cluster::start(2, NODE_MEMORY_MB);
    let stuck = cluster.submit(
        &["--am-wait-time", "2s", "--max-attempts", "2"],
        flaky(),
        &["stuck"],
    );
    assert_eq!(stuck.code, Some(1), "{stuck}");
    let wanted = "driver did not initialize its context within 2s";
    assert!(stuck.stderr.contains(wanted), "{stuck}");
    let app = app_id_of(&stuck);
    let status = cluster.spindle("status", &[&app]);
    assert!(status.stdout.contains("State : FAILED"), "{status}");
    for attempt in [1, 2] {
        let id = format!(
            "{}_{attempt:06}",
            app.replacen("application_", "appattempt_", 1)
        );
        let line = status
            .stdout
            .lines()
            .find(|l| l.contains(&id))
            .unwrap_or_else(|| panic!("attempt {id} not listed:\n{status}"));
        assert!(line.contains("exit status 13"), "{line}\n{status}");
    }
}
