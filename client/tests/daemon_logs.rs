//! The `spindle resource-manager` binary as an operator runs it: settings from `SPINDLE_*`
//! variables, `--log-format json` giving one JSON object per stderr line (what log shippers
//! read), and a clean stop on SIGTERM.

use std::io::{BufRead as _, BufReader, Read as _};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Hang guard only; the daemon normally starts in milliseconds.
const GUARD: Duration = Duration::from_secs(60);

/// Kills the daemon if the test fails before stopping it.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_resource_manager_logs_json_lines_and_reads_its_settings_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("spindle.yaml");
    std::fs::write(&config, "resource-manager:\n  bind: 127.0.0.1:1\n").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_spindle"))
        .args(["--log-format", "json", "resource-manager"])
        .arg("--config")
        .arg(&config)
        // The variable wins over the file's port 1, which could not be bound.
        .env("SPINDLE_RESOURCE_MANAGER__BIND", "127.0.0.1:0")
        .env("SPINDLE_RESOURCE_MANAGER__WEB_BIND", "null")
        .env("SPINDLE_RESOURCE_MANAGER__STATE_DIR", dir.path().join("rm"))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);

    let stdout = daemon.0.stdout.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut announced = Vec::new();
    while !announced
        .iter()
        .any(|l: &String| l.starts_with("cluster-timestamp:"))
    {
        announced.push(
            lines_rx
                .recv_timeout(GUARD)
                .expect("the RM announces itself"),
        );
    }
    let rpc = announced
        .iter()
        .find_map(|l| l.strip_prefix("rpc-address: "))
        .expect("rpc-address line");
    assert!(
        rpc.starts_with("127.0.0.1:") && !rpc.ends_with(":1"),
        "{rpc}"
    );
    assert!(
        announced.contains(&"web-address: none".to_string()),
        "{announced:?}"
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let mut stderr = String::new();
    daemon
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(daemon.0.wait().unwrap().success(), "{stderr}");

    let events: Vec<serde_json::Value> = stderr
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect();
    assert!(!events.is_empty());
    for event in &events {
        assert!(event["level"].is_string(), "{event}");
        assert!(event["timestamp"].is_string(), "{event}");
    }
    assert!(
        events.iter().any(
            |e| e["fields"]["message"] == "stopping the resource manager"
                && e["fields"]["signal"] == "SIGTERM"
        ),
        "{stderr}"
    );
}
