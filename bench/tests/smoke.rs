//! Runs every scenario of `spindle-bench` at a tiny size, as a user would, and checks the shape
//! of what it prints: a table, then one JSON object on the last line whose figures are all
//! there and above zero. Timings are not judged here: that is what the bench itself is for.

use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// A hang guard only: each scenario takes seconds at these sizes, even in a debug build; `pi`
/// may first have cargo build the Pi example, minutes on a busy machine.
const HANG_GUARD: Duration = Duration::from_secs(1200);

fn bench(args: &[&str]) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_spindle-bench"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spindle-bench starts");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(HANG_GUARD) {
        Ok(output) => output.expect("spindle-bench's output is readable"),
        Err(_) => {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            panic!("spindle-bench {args:?} did not finish within {HANG_GUARD:?}");
        }
    }
}

/// Runs a scenario with `--json` and returns its JSON object, after checking that it succeeded,
/// printed a table first, and named itself.
fn scenario(name: &str, args: &[&str]) -> Value {
    let mut all = vec![name, "--json"];
    all.extend_from_slice(args);
    let output = bench(&all);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name} failed ({}):\n{stderr}",
        output.status
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() > 2, "{name} printed no table:\n{stdout}");
    assert!(
        lines[0].starts_with(&format!("{name}: ")),
        "the table's heading names the scenario: {}",
        lines[0]
    );
    let json: Value = serde_json::from_str(lines[lines.len() - 1])
        .unwrap_or_else(|e| panic!("{name}'s last line is not JSON ({e}):\n{stdout}"));
    assert!(json.is_object(), "{json}");
    assert_eq!(json["scenario"], name, "{json}");
    json
}

fn assert_positive(json: &Value, fields: &[&str]) {
    for field in fields {
        let value = json[*field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field} is missing or not a number in {json}"));
        assert!(value > 0.0, "{field} = {value} in {json}");
    }
}

#[test]
fn scheduler_reports_allocations_and_round_times() {
    let json = scenario(
        "scheduler",
        &[
            "--runs",
            "2",
            "--nodes",
            "20",
            "--apps",
            "3",
            "--containers",
            "500",
        ],
    );
    assert_positive(&json, &["containers", "allocations_per_s", "p50_ms"]);
    assert_eq!(json["containers"], 500);
    assert_eq!(json["runs"], 2);
    assert_eq!(json["per_run"]["p50_ms"].as_array().map(Vec::len), Some(2));
}

#[test]
fn rm_reports_throughput_latency_and_memory() {
    let json = scenario(
        "rm",
        &[
            "--runs",
            "1",
            "--nodes",
            "8",
            "--apps",
            "3",
            "--containers",
            "300",
            "--node-memory-mb",
            "8192",
        ],
    );
    assert_positive(
        &json,
        &[
            "containers",
            "allocations_per_s",
            "allocate_rpc_p50_ms",
            "allocate_rpc_p99_ms",
            "rm_peak_rss_mb",
        ],
    );
}

#[test]
fn launch_reports_launches_start_times_and_idle_memory() {
    let json = scenario(
        "launch",
        &["--runs", "1", "--containers", "12", "--parallel", "3"],
    );
    assert_positive(
        &json,
        &[
            "containers",
            "launches_per_s",
            "start_p50_ms",
            "start_p99_ms",
            "nm_idle_rss_mb",
        ],
    );
}

#[test]
fn pi_reports_each_phase_of_a_real_run() {
    // The first run may build the Pi example with cargo: the hang guard allows for it.
    let json = scenario("pi", &["--runs", "1", "--samples", "1000"]);
    assert_positive(
        &json,
        &[
            "p50_ms",
            "p95_ms",
            "min_ms",
            "to_submitted_ms",
            "to_am_registered_ms",
            "to_executors_registered_ms",
            "to_result_ms",
            "program_mb",
        ],
    );
    assert_eq!(json["runs"], 1);
    assert_eq!(json["executors"], 4);
    assert_eq!(json["samples"], 1000);
    let ms = |field: &str| json[field].as_f64().unwrap_or(f64::NAN);
    // The phases end in the order they happen.
    assert!(ms("to_submitted_ms") <= ms("to_am_registered_ms"), "{json}");
    assert!(
        ms("to_am_registered_ms") <= ms("to_executors_registered_ms"),
        "{json}"
    );
    assert!(
        ms("to_executors_registered_ms") <= ms("to_result_ms"),
        "{json}"
    );
    assert_eq!(ms("p50_ms"), ms("min_ms"), "one run: {json}");
}

#[test]
fn pi_refuses_a_program_that_is_not_executable() {
    let output = bench(&["pi", "--runs", "1", "--program", "Cargo.toml"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--program Cargo.toml"), "{stderr}");
    assert!(output.stdout.is_empty(), "no half-made report");
}

#[test]
fn bad_flags_exit_2() {
    let output = bench(&["scheduler", "--runs", "0"]);
    assert_eq!(output.status.code(), Some(2));
}
