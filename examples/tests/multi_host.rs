//! Multi-host: the RM and each NM in their own network namespace, with their own address,
//! joined by veth pairs on a bridge that the test creates and removes. Distributed-shell runs
//! across two nodes, and the program reaches the AM's node through the RM's staging store; and a
//! node cut off from the network (its link taken down) is lost, its work is done again
//! elsewhere, and when it comes back it registers again and kills what the RM gave up on.
//! Needs root (and `ip` from iproute2); elsewhere it skips and says why.

mod support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

/// Network namespaces made for one test, removed (with their veths) on drop.
struct TestNetwork {
    tag: u32,
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
    /// One namespace per host, each with the `eth0`-like end of a veth pair at
    /// `10.213.<net>.<i+1>`, the other end on a bridge in a switch namespace of its own: nothing
    /// touches the host's own network. `tag` names this test's namespaces and links apart from
    /// those of other tests running at the same time.
    fn create(tag: u32, hosts: &[&str], net: u8) -> TestNetwork {
        let switch = format!("sp{tag}-sw");
        let mut network = TestNetwork {
            tag,
            namespaces: Vec::new(),
        };
        ip(&["netns", "add", &switch]);
        network.namespaces.push(switch.clone());
        ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &switch, "link", "set", "br0", "up"]);
        for (i, host) in hosts.iter().enumerate() {
            let ns = network.namespace(host);
            ip(&["netns", "add", &ns]);
            network.namespaces.push(ns.clone());
            let (end, peer) = (network.host_end(i), format!("sp{tag}{i}b"));
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

    fn namespace(&self, host: &str) -> String {
        format!("sp{}-{host}", self.tag)
    }

    /// The host's end of the veth pair of host number `i` (in the order `create` got them).
    fn host_end(&self, i: usize) -> String {
        format!("sp{}{i}h", self.tag)
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
    let uid = fs::metadata("/proc/self")
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

/// An RM on host `rm` (10.213.<net>.1) and an NM on each of `nm1`, `nm2`, … (.2, .3, …), each
/// in its own namespace. Fields drop in order: NMs first (they stop their containers while the
/// RM is up), then the RM, the network last.
struct Hosts {
    /// Held for their drop, which stops them.
    #[allow(dead_code)]
    nms: Vec<Daemon>,
    #[allow(dead_code)]
    rm: Daemon,
    network: TestNetwork,
    rm_ns: String,
    rm_bind: String,
    node_ids: Vec<String>,
    work_dirs: Vec<std::path::PathBuf>,
    nm_logs: Vec<std::path::PathBuf>,
    #[allow(dead_code)]
    dir: TempDir,
}

impl Hosts {
    /// `nodes` NMs of `memory_mb` each, returned once the RM lists them all RUNNING; `test`
    /// (0, 1, …) keeps this test's namespaces apart from the other tests'.
    fn start(test: u32, nodes: usize, memory_mb: u64, rm_flags: &[&str]) -> Hosts {
        let tag = (std::process::id() % 10_000) * 10 + test;
        let net = (tag % 250) as u8 + 1;
        let names: Vec<String> = std::iter::once("rm".to_string())
            .chain((1..=nodes).map(|i| format!("nm{i}")))
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let network = TestNetwork::create(tag, &names, net);
        let rm_ns = network.namespace("rm");
        let address = |i: usize| format!("10.213.{net}.{i}");

        let dir = TempDir::new("multi-host");
        let config = dir.path().join("spindle.yaml");
        fs::write(
            &config,
            "resource-manager:\n  minimum-allocation: {memory_mb: 128, vcores: 1}\n",
        )
        .expect("write config");
        let rm_bind = format!("{}:8032", address(1));
        let state_dir = dir.path().join("rm");
        let web_bind = format!("{}:8088", address(1));
        let mut rm_args = vec![
            "--config",
            config.to_str().unwrap(),
            "resource-manager",
            "--bind",
            &rm_bind,
            "--web-bind",
            &web_bind,
            "--state-dir",
            state_dir.to_str().unwrap(),
        ];
        rm_args.extend_from_slice(rm_flags);
        let rm = Daemon::start_in(
            Some(&rm_ns),
            "resource-manager",
            &rm_args,
            dir.path(),
            "cluster-timestamp",
        );
        let memory = memory_mb.to_string();
        let mut nms = Vec::new();
        let mut work_dirs = Vec::new();
        let mut nm_logs = Vec::new();
        for (i, host) in names.iter().enumerate().skip(1) {
            let work_dir = dir.path().join(host);
            let bind = format!("{}:8041", address(i + 1));
            nms.push(Daemon::start_in(
                Some(&network.namespace(host)),
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
                    &memory,
                    "--vcores",
                    "4",
                    "--hostname",
                    host,
                ],
                dir.path(),
                "web-address",
            ));
            work_dirs.push(work_dir);
            nm_logs.push(dir.path().join(format!("{host}.log")));
        }
        let node_ids = nms.iter().map(|nm| nm.get("node-id")).collect();
        let hosts = Hosts {
            nms,
            rm,
            network,
            rm_ns,
            rm_bind,
            node_ids,
            work_dirs,
            nm_logs,
            dir,
        };
        wait_until(DAEMON_START, "every node RUNNING", || {
            (0..nodes).all(|i| hosts.node_state(i).as_deref() == Some("RUNNING"))
        });
        hosts
    }

    /// `spindle ARGS` run to its end on the RM's host.
    fn spindle(&self, args: &[&str]) -> Run {
        run_in(Some(&self.rm_ns), args)
    }

    /// `spindle ARGS` left running in the background on the RM's host.
    fn spawn(&self, args: &[&str]) -> Running {
        let mut command = spindle_in(Some(&self.rm_ns));
        command.args(args);
        Running::start(command, &format!("spindle {args:?}"))
    }

    fn master(&self) -> String {
        format!("spindle://{}", self.rm_bind)
    }

    /// Node `index`'s state as the RM lists it (RUNNING, LOST, …).
    fn node_state(&self, index: usize) -> Option<String> {
        let nodes = self.spindle(&["nodes", "--rm", &self.rm_bind]);
        nodes
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(self.node_ids[index].as_str()))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_string)
    }

    /// Takes the link of node `index`'s host down (a cut cable) or brings it up again.
    fn set_link(&self, index: usize, up: bool) {
        let ns = self.network.namespace(&format!("nm{}", index + 1));
        let end = self.network.host_end(index + 1);
        ip(&[
            "-n",
            &ns,
            "link",
            "set",
            &end,
            if up { "up" } else { "down" },
        ]);
    }
}

#[test]
fn distributed_shell_runs_on_two_hosts_and_the_program_travels_through_staging() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipped: multi-host test {reason}");
        return;
    }
    let hosts = Hosts::start(0, 2, 2048, &[]);
    let master = hosts.master();
    let submit = hosts.spindle(&[
        "submit",
        "--master",
        &master,
        "--",
        distributed_shell(),
        "--num-containers",
        "4",
        "--container-memory",
        "256",
        "--shell-command",
        "echo ran on $NM_HOST",
    ]);
    assert!(submit.ok(), "submit failed:\n{submit}");
    let app = app_id_of(&submit);

    let logs = hosts.spindle(&["logs", &app, "--rm", &hosts.rm_bind]);
    assert!(logs.ok(), "logs failed:\n{logs}");
    for node_id in &hosts.node_ids {
        let host = node_id.split(':').next().expect("host:port");
        let line = format!("ran on {host}");
        assert!(
            logs.stdout.contains(&line),
            "no container on {host} ({line:?}):\n{logs}"
        );
    }

    // The AM's node got distributed-shell from the RM's staging store: the file cache of the
    // user its containers ran as (usercache/<user>/filecache) holds it under its sha256,
    // byte-identical to what the client had.
    let digest = sha256_of(distributed_shell());
    let cached: Vec<_> = hosts
        .work_dirs
        .iter()
        .filter_map(|w| fs::read_dir(w.join("usercache")).ok())
        .flat_map(|users| users.filter_map(Result::ok))
        .map(|user| user.path().join("filecache").join(&digest))
        .filter(|p| p.exists())
        .collect();
    assert!(!cached.is_empty(), "no node cached the program {digest}");
    for path in &cached {
        assert_eq!(sha256_of(path.to_str().unwrap()), digest);
    }
}

/// The node (index into `hosts.node_ids`) whose NM started process `pid`.
fn node_of(hosts: &Hosts, pid: &str) -> usize {
    let env = fs::read(format!("/proc/{pid}/environ")).expect("the process's environment");
    let address = env
        .split(|b| *b == 0)
        .find_map(|var| var.strip_prefix(b"NM_ADDRESS="))
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .expect("NM_ADDRESS in its environment");
    hosts
        .node_ids
        .iter()
        .position(|id| *id == address)
        .unwrap_or_else(|| panic!("{address} is not a node of the cluster"))
}

/// Prints a measured figure in the form `docs/failures.md` quotes.
fn measured(what: &str, took: Duration) {
    println!("MEASURED {what}: {} ms", took.as_millis());
}

/// Waits (hang guard `guard`) until `found` returns something; returns it and when.
fn wait_for<T>(guard: Duration, what: &str, mut found: impl FnMut() -> Option<T>) -> (T, Instant) {
    let deadline = Instant::now() + guard;
    loop {
        if let Some(value) = found() {
            return (value, Instant::now());
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_partitioned_node_is_lost_and_on_its_return_kills_what_the_rm_gave_up_on() {
    if let Some(reason) = skip_reason() {
        eprintln!("skipped: multi-host test {reason}");
        return;
    }
    // Two nodes of 1024 MB: the 512 MB AM takes one, spread placement puts the one executor
    // on the other; the replacement fits beside the AM.
    let hosts = Hosts::start(
        1,
        2,
        1024,
        &["--nm-liveness-expiry", "2s", "--am-liveness-expiry", "5s"],
    );
    // `flaky hold` (in cluster mode, its driver in the AM) holds the task of input 3 on the
    // executor until the release file appears.
    let hold = TempDir::new("partition-hold");
    let running_file = hold.path().join("running");
    let master = hosts.master();
    let submit = hosts.spawn(&[
        "submit",
        "--master",
        &master,
        "--num-executors",
        "1",
        "--",
        flaky(),
        "hold",
        hold.path().to_str().unwrap(),
    ]);
    let app = submit.first_line();
    wait_until(COMMAND, "a task to hold", || running_file.exists());
    let held_pid = fs::read_to_string(&running_file).expect("pid");
    let held_pid = held_pid.trim().to_string();
    let victim = node_of(&hosts, &held_pid);
    let victim_id = hosts.node_ids[victim].clone();
    let am = format!(
        "container_{}_01_000001",
        app.trim_start_matches("application_")
    );
    let am_logs = || {
        let logs = hosts.spindle(&["logs", &app, "--rm", &hosts.rm_bind, "--container", &am]);
        logs.stdout
    };
    assert!(
        !am_logs().contains(&format!("on node {victim_id}")),
        "the executor shares the AM's node"
    );

    let cut_at = Instant::now();
    hosts.set_link(victim, false);
    wait_until(Duration::from_secs(60), "the node to be LOST", || {
        hosts.node_state(victim).as_deref() == Some("LOST")
    });
    measured(
        "partition: link down to LOST (NM expiry 2 s)",
        cut_at.elapsed(),
    );
    wait_until(
        Duration::from_secs(60),
        "the AM to hear of -100 and launch a replacement",
        || {
            let logs = am_logs();
            logs.lines().any(|l| {
                l.contains("executor exited executor_id=1 ")
                    && l.contains("exit status -100 (ABORTED)")
            }) && logs
                .lines()
                .any(|l| l.contains("launched executor executor_id=2 "))
        },
    );
    measured(
        "partition: link down to the replacement launched",
        cut_at.elapsed(),
    );
    // The driver drops the executor the RM gave up on and runs its held task again, on the
    // replacement, while the node is still cut off and the old executor still runs there.
    let ((), rerun_at) = wait_for(
        Duration::from_secs(60),
        "the held task to run again",
        || {
            let pid = fs::read_to_string(&running_file).unwrap_or_default();
            let pid = pid.trim();
            (!pid.is_empty() && pid != held_pid && node_of(&hosts, pid) != victim).then_some(())
        },
    );
    measured(
        "partition: link down to the lost task running again",
        rerun_at - cut_at,
    );
    assert!(alive(held_pid.parse().expect("a pid")), "cut off, not dead");
    let lost_container = am_logs()
        .lines()
        .find(|l| l.contains("launched executor executor_id=1 "))
        .and_then(|l| l.split("container_id=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the first executor's container")
        .to_string();

    let healed_at = Instant::now();
    hosts.set_link(victim, true);
    wait_until(
        Duration::from_secs(120),
        "the node to register again",
        || hosts.node_state(victim).as_deref() == Some("RUNNING"),
    );
    measured("partition: link up to RUNNING again", healed_at.elapsed());
    wait_until(
        Duration::from_secs(60),
        "the node to kill the containers the RM gave up on",
        || node_processes(&victim_id, &hosts.work_dirs[victim]).is_empty(),
    );
    measured(
        "partition: link up to its containers killed",
        healed_at.elapsed(),
    );
    let nm_log = fs::read_to_string(&hosts.nm_logs[victim]).unwrap_or_default();
    assert!(
        nm_log.contains("the RM does not know this node any more: registering again"),
        "{nm_log}"
    );
    // Killed on the RM's word (-106), not ended by anything of the application's.
    assert!(
        nm_log
            .lines()
            .any(|l| l.contains(&lost_container)
                && l.contains("container completed exit_status=-106")),
        "{nm_log}"
    );

    fs::write(hold.path().join("release"), b"").expect("release");
    let run = submit.wait();
    assert!(run.ok(), "{run}");
    let status = hosts.spindle(&["status", &app, "--rm", &hosts.rm_bind]);
    assert!(
        status.stdout.contains("Final-State : SUCCEEDED"),
        "{status}"
    );
    let logs = am_logs();
    assert!(logs.contains("sum = 28"), "{logs}");
}
