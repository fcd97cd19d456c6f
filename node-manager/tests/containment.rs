//! A container stays inside what it was given: memory past its limit gets it killed with exit
//! -104 and YARN's diagnostic, by the kernel at its cgroup's limit or by the memory monitor
//! where cgroups are off; and when its application ends, none of its processes is left, not
//! even one that left its session with `setsid`. The cgroup tests say so and stop on a host
//! without writable cgroups.

mod support;

use std::time::Duration;

use spindle_containers::proc_stat;
use spindle_node_manager::CgroupMode;
use spindle_protocol as proto;
use support::{
    APP, FakeRm, GroupReaper, Node, SLOW_HEARTBEAT_MS, completion, container_id, ended, guarded,
    pid, run_program_in, written,
};

/// Holds a line that never ends in `tail`, 256 MB of it, until killed; the writer's loop then
/// dies of SIGPIPE, so the pipeline ends with `tail`.
const MEMORY_HOG: &[u8] = b"#!/bin/bash
{ head -c 256M /dev/zero; while printf '\\0'; do sleep 0.1; done; } | tail
";

/// Starts a process in a session of its own, a background child, and waits.
const ESCAPING_PROGRAM: &[u8] = b"#!/bin/bash
setsid bash -c 'echo $$ > escapee.pid.tmp; mv escapee.pid.tmp escapee.pid; exec sleep 600' &
sleep 600 & echo $! > bg.pid
echo $$ > fg.pid
wait
";

const LIMIT_MB: i64 = 64;

fn without_cgroups(node: &Node) -> bool {
    if node.nm().cgroup_version().is_none() {
        eprintln!("this host has no writable cgroups: the cgroup part is not tested");
        return true;
    }
    false
}

#[tokio::test]
async fn the_kernel_kills_a_container_at_its_cgroup_limit_and_it_is_reported_as_104() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let digest = rm.stage(MEMORY_HOG);
    // The monitor samples too rarely to get there first: this is the kernel's doing.
    let mut node = Node::start_with(rm.addr, |c| {
        c.monitor_interval = Duration::from_secs(3600);
    })
    .await;
    if without_cgroups(&node) {
        return node.shutdown().await;
    }
    let request = run_program_in(1, &digest, MEMORY_HOG.len(), &[], LIMIT_MB);
    assert_eq!(node.start_containers(vec![request]).await.failed, vec![]);
    let status = completion(&mut rm, &container_id(1)).await;
    assert_eq!(status.exit_status, -104, "{}", status.diagnostics);
    let expected = format!(
        "Container {} is running beyond physical memory limits. Current usage: {LIMIT_MB} MB of \
         {LIMIT_MB} MB physical memory used. The kernel's OOM killer killed",
        container_id(1)
    );
    assert!(
        status.diagnostics.starts_with(&expected),
        "{}",
        status.diagnostics
    );
    assert!(
        status
            .diagnostics
            .ends_with("and it exited with exit status 137."),
        "{}",
        status.diagnostics
    );
    node.shutdown().await;
}

#[tokio::test]
async fn without_cgroups_the_monitor_alone_kills_a_container_over_its_memory() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let digest = rm.stage(MEMORY_HOG);
    let mut node = Node::start_with(rm.addr, |c| {
        c.cgroups = CgroupMode::Off;
        c.monitor_interval = Duration::from_millis(100);
    })
    .await;
    assert_eq!(node.nm().cgroup_version(), None);
    let request = run_program_in(1, &digest, MEMORY_HOG.len(), &[], LIMIT_MB);
    assert_eq!(node.start_containers(vec![request]).await.failed, vec![]);
    let status = completion(&mut rm, &container_id(1)).await;
    assert_eq!(status.exit_status, -104, "{}", status.diagnostics);
    let prefix = format!(
        "Container {} is running beyond physical memory limits. Current usage: ",
        container_id(1)
    );
    let usage_mb: u64 = status
        .diagnostics
        .strip_prefix(&prefix)
        .and_then(|rest| rest.split_once(" MB of 64 MB physical memory used. Killing container."))
        .and_then(|(usage, _)| usage.parse().ok())
        .unwrap_or_else(|| panic!("{}", status.diagnostics));
    assert!(usage_mb > 64, "{}", status.diagnostics);
    assert!(
        status.diagnostics.contains(" tail"),
        "the process tree is dumped: {}",
        status.diagnostics
    );
    node.shutdown().await;
}

#[tokio::test]
async fn when_its_app_ends_nothing_of_a_container_is_left_not_even_a_setsid_escapee() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), 20).await;
    let digest = rm.stage(ESCAPING_PROGRAM);
    let mut node = Node::start(rm.addr).await;
    if without_cgroups(&node) {
        return node.shutdown().await;
    }
    let request = run_program_in(1, &digest, ESCAPING_PROGRAM.len(), &[], 512);
    assert_eq!(node.start_containers(vec![request]).await.failed, vec![]);
    let program = pid(&written(&node.container_dir(1).join("fg.pid")).await);
    let escapee = pid(&written(&node.container_dir(1).join("escapee.pid")).await);
    let background = pid(&std::fs::read_to_string(node.container_dir(1).join("bg.pid")).unwrap());
    let _reaper = GroupReaper(vec![program, escapee]);
    let session = |p| proc_stat::read(p).unwrap().session;
    assert_ne!(session(escapee), session(program), "it left the session");

    rm.answer_next(proto::NodeHeartbeatResponse {
        heartbeat_interval_ms: 20,
        applications_to_cleanup: vec![APP.into()],
        ..Default::default()
    });
    assert_eq!(
        completion(&mut rm, &container_id(1)).await.exit_status,
        -107
    );
    for p in [program, background, escapee] {
        ended(p).await;
    }
    let app_dir = node.root().join("appcache").join(APP);
    guarded("the application's working dirs to be deleted", async {
        while app_dir.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let upload = guarded("the logs to be uploaded", rm.uploads.recv()).await;
    assert!(
        upload.is_some_and(|u| u.files.contains_key(&(container_id(1), "stdout".into()))),
        "the logs went to the RM"
    );
    node.shutdown().await;
}
