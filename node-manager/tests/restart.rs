//! A node manager killed with SIGKILL and started again on the same work dir takes its
//! containers back. The node manager runs as a process of its own (see `support::child`), so
//! the kill is real: no destructor, no shutdown, its tasks and open store gone mid-flight. The
//! containers outlive it in their own sessions; the next run re-attaches to the ones still
//! running, reports the status of the one that ended meanwhile at registration, sees a
//! re-attached container's exit at once, and can stop one as a whole group.

mod support;

use spindle_containers::proc_stat;
use spindle_node_manager::NmConfig;
use spindle_protocol as proto;
use support::child::{self, ChildNodeManager};
use support::{
    FakeRm, GroupReaper, SLOW_HEARTBEAT_MS, completion, container_id, ended, guarded, pid,
    run_program, running, tokens, written,
};

/// Runs until stopped, with a grandchild; says it is up by writing its pids.
const SLEEPING_PROGRAM: &[u8] = b"#!/bin/bash
sleep 600 & echo $! > bg.pid
echo $$ > fg.pid
wait
";

/// Waits for a line on its fifo `go`, then exits with the status it was given.
const WAITING_PROGRAM: &[u8] = b"#!/bin/bash
mkfifo go
echo $$ > fg.pid
read -r line < go
exit \"$1\"
";

/// The child process's test: serves a node manager when `ChildNodeManager` runs it, and does
/// nothing in an ordinary test run.
#[test]
fn child_node_manager() {
    child::serve_if_asked();
}

/// Lets a waiting program go on (blocks until it opens its fifo, which it has by `fg.pid`).
async fn release(dir: &std::path::Path) {
    let fifo = dir.join("go");
    guarded(
        "the program to read its fifo",
        tokio::task::spawn_blocking(move || std::fs::write(fifo, "go\n").unwrap()),
    )
    .await
    .unwrap();
}

fn states(statuses: &[proto::ContainerStatus]) -> Vec<(String, i32, i32)> {
    let mut states: Vec<(String, i32, i32)> = statuses
        .iter()
        .map(|c| (c.container_id.clone(), c.state, c.exit_status))
        .collect();
    states.sort();
    states
}

#[tokio::test]
async fn a_killed_node_manager_takes_its_containers_back_when_it_restarts() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let sleeper = rm.stage(SLEEPING_PROGRAM);
    let waiter = rm.stage(WAITING_PROGRAM);
    let work_dir = tempfile::tempdir().unwrap();
    let config = support::config(rm.addr, work_dir.path());

    let first = ChildNodeManager::start(&config).await;
    let node_id = first.rpc_addr.to_string();
    let mut client = tokens::connect(first.rpc_addr, &node_id, support::APP).await;
    let requests = tokens::with_tokens(
        vec![
            run_program(1, &sleeper, SLEEPING_PROGRAM.len(), &[]),
            run_program(2, &waiter, WAITING_PROGRAM.len(), &["7"]),
            run_program(3, &waiter, WAITING_PROGRAM.len(), &["9"]),
        ],
        &node_id,
    );
    let answer = client
        .start_containers(proto::StartContainersRequest { requests })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.failed, vec![]);
    let registration = guarded("registration", rm.registrations.recv())
        .await
        .unwrap();
    assert_eq!(registration.containers, vec![]);

    let root = std::fs::canonicalize(work_dir.path()).unwrap();
    let dir = |n: u64| {
        root.join("appcache")
            .join(support::APP)
            .join(container_id(n))
    };
    let mut reaper = GroupReaper::default();
    let mut programs = Vec::new();
    for n in 1..=3 {
        let program = pid(&written(&dir(n).join("fg.pid")).await);
        reaper.0.push(program);
        programs.push(program);
    }
    let grandchild = pid(&std::fs::read_to_string(dir(1).join("bg.pid")).unwrap());
    // The launch script's bash, which records the exit code after the program ends.
    let script_of_2 = proc_stat::read(programs[1]).unwrap().parent;

    // The restart keeps the address: it is the node's id.
    let node_addr = first.rpc_addr;
    first.kill().await;
    assert!(
        programs.iter().all(|&p| running(p)) && running(grandchild),
        "containers outlive their node manager"
    );
    // Container 2 ends while no node manager runs.
    release(&dir(2)).await;
    ended(script_of_2).await;

    let restarted = NmConfig {
        bind: node_addr,
        ..config.clone()
    };
    let second = ChildNodeManager::start(&restarted).await;
    let registration = guarded("registration after the restart", rm.registrations.recv())
        .await
        .unwrap();
    let (complete, live) = (
        proto::ContainerState::Complete as i32,
        proto::ContainerState::Running as i32,
    );
    assert_eq!(
        states(&registration.containers),
        vec![
            (container_id(1), live, 0),
            (container_id(2), complete, 7),
            (container_id(3), live, 0),
        ]
    );
    let ended_meanwhile = registration
        .containers
        .iter()
        .find(|c| c.container_id == container_id(2))
        .unwrap();
    assert!(
        ended_meanwhile.diagnostics.starts_with(&format!(
            "Container {} exited with exit status 7",
            container_id(2)
        )),
        "{}",
        ended_meanwhile.diagnostics
    );

    // A re-attached container's exit is seen as it happens (the heartbeat interval is long).
    release(&dir(3)).await;
    assert_eq!(completion(&mut rm, &container_id(3)).await.exit_status, 9);

    // A re-attached container is stopped as a whole.
    let mut client = tokens::connect(second.rpc_addr, &node_id, support::APP).await;
    let stopped = client
        .stop_containers(proto::StopContainersRequest {
            container_ids: vec![container_id(1)],
            exit_status: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stopped.stopped, vec![container_id(1)]);
    ended(programs[0]).await;
    ended(grandchild).await;
    assert_eq!(
        completion(&mut rm, &container_id(1)).await.exit_status,
        -105
    );

    let statuses = client
        .get_container_statuses(proto::GetContainerStatusesRequest {
            container_ids: (1..=3).map(container_id).collect(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        states(&statuses.statuses),
        vec![
            (container_id(1), complete, -105),
            (container_id(2), complete, 7),
            (container_id(3), complete, 9),
        ]
    );
    // A graceful end this time: the node manager cleans up after itself.
    second.terminate().await;
}
