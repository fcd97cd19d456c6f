//! Multi-host: the RM and each of two NMs in their own network namespace, with their own
//! address, joined by veth pairs on a bridge that the test creates and removes. Distributed-shell
//! runs across both nodes, and the program reaches the AM's node through the RM's staging store.
//! Needs root (and `ip` from iproute2); elsewhere it skips and says why.

mod support;

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use support::*;

/// Network namespaces made for one test run, removed (with their veths) on drop.
struct TestNetwork {
    namespaces: Vec<String>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TestNetwork {
    /// One namespace per host, each with `eth0`-like end of a veth pair at `10.213.<net>.<i+1>`,
    /// the other end on a bridge in a switch namespace of its own: nothing touches the host's
    /// own network.
    fn create(tag: u32, hosts: &[&str], net: u8) -> TestNetwork {
        let switch = format!("sp{tag}-sw");
        let mut network = TestNetwork {
            namespaces: Vec::new(),
        };
        ip(&["netns", "add", &switch]);
        network.namespaces.push(switch.clone());
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for (i, host) in hosts.iter().enumerate() {
            let ns = network.namespace(tag, host);
            ip(&["netns", "add", &ns]);
            network.namespaces.push(ns.clone());
            let (end, peer) = (format!("sp{tag}{i}h"), format!("sp{tag}{i}b"));
            ip(&["link", "add", &end, "type", "veth", "peer", "name", &peer]);
            ip(&["link", "set", &end, "netns", &ns]);
            ip(&["link", "set", &peer, "netns", &switch]);
            ip(&["-n", &switch, "link", "set", &peer, "master", "br0", "up"]);
            let address = format!("10.213.{net}.{}/24", i + 1);
            ip(&["-n", &ns, "addr", "add", &address, "dev", &end]);
            ip(&["-n", &ns, "link", "set", &end, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
        }
        network
    }

    fn namespace(&self, tag: u32, host: &str) -> String {
        format!("sp{tag}-{host}")
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn skip_reason() -> Option<String> {
    let uid = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX);
    if uid != 0 {
        return Some(format!(
            "needs root to create network namespaces (running as uid {uid})"
        ));
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("needs `ip` from iproute2".to_string()),
    }
}

fn sha256_of(path: &str) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string()
}

#[test]
fn distributed_shell_runs_on_two_hosts_and_the_program_travels_through_staging() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipped: multi-host test {reason}");
        return;
    }
    let tag = std::process::id() % 100_000;
    let net = (tag % 250) as u8 + 1;
    let network = TestNetwork::create(tag, &["rm", "nm1", "nm2"], net);
    let rm_ns = network.namespace(tag, "rm");
    let address = |i: u8| format!("10.213.{net}.{i}");

    let dir = TempDir::new("multi-host");
    let config = dir.path().join("spindle.yaml");
    std::fs::write(
        &config,
        "resource-manager:\n  minimum-allocation: {memory_mb: 128, vcores: 1}\n",
    )
    .expect("write config");
    let rm_bind = format!("{}:8032", address(1));
    let state_dir = dir.path().join("rm");
    let rm = Daemon::start_in(
        Some(&rm_ns),
        "resource-manager",
        &[
            "--config",
            config.to_str().unwrap(),
            "resource-manager",
            "--bind",
            &rm_bind,
            "--web-bind",
            &format!("{}:8088", address(1)),
            "--state-dir",
            state_dir.to_str().unwrap(),
        ],
        dir.path(),
        "cluster-timestamp",
    );
    let mut nms = Vec::new();
    let mut work_dirs = Vec::new();
    for (i, host) in [(2u8, "nm1"), (3u8, "nm2")] {
        let work_dir = dir.path().join(host);
        let bind = format!("{}:8041", address(i));
        nms.push(Daemon::start_in(
            Some(&network.namespace(tag, host)),
            host,
            &[
                "node-manager",
                "--rm",
                &rm_bind,
                "--bind",
                &bind,
                "--work-dir",
                work_dir.to_str().unwrap(),
                "--memory-mb",
                "2048",
                "--vcores",
                "4",
                "--hostname",
                host,
            ],
            dir.path(),
            "web-address",
        ));
        work_dirs.push(work_dir);
    }

    // Both nodes RUNNING, as seen from the RM's host.
    let deadline = std::time::Instant::now() + DAEMON_START;
    loop {
        let nodes = run_in(Some(&rm_ns), &["nodes", "--rm", &rm_bind]);
        let running = nodes
            .stdout
            .lines()
            .filter(|l| l.contains("RUNNING"))
            .count();
        if running == 2 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nodes did not register:\n{nodes}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let submit = run_in(
        Some(&rm_ns),
        &[
            "submit",
            "--master",
            &format!("spindle://{rm_bind}"),
            "--",
            distributed_shell(),
            "--num-containers",
            "4",
            "--container-memory",
            "256",
            "--shell-command",
            "echo ran on $NM_HOST",
        ],
    );
    assert!(submit.ok(), "submit failed:\n{submit}");
    let app = app_id_of(&submit);

    let logs = run_in(Some(&rm_ns), &["logs", &app, "--rm", &rm_bind]);
    assert!(logs.ok(), "logs failed:\n{logs}");
    for i in [2, 3] {
        let line = format!("ran on {}", address(i));
        assert!(
            logs.stdout.contains(&line),
            "no container on {} ({line:?}):\n{logs}",
            address(i)
        );
    }

    // The AM's node got distributed-shell from the RM's staging store: its file cache holds it
    // under its sha256, byte-identical to what the client had.
    let digest = sha256_of(distributed_shell());
    let cached: Vec<_> = work_dirs
        .iter()
        .map(|w| w.join("filecache").join(&digest))
        .filter(|p| p.exists())
        .collect();
    assert!(!cached.is_empty(), "no node cached the program {digest}");
    for path in &cached {
        assert_eq!(sha256_of(path.to_str().unwrap()), digest);
    }

    drop(nms);
    drop(rm);
}
