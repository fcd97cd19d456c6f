//! A real node manager on loopback, in a temp work dir, against a small in-test RM: it registers,
//! runs staged programs as real processes with the contract's environment, reports completions
//! at once, stops whole process groups, refuses bad requests, and serves logs.

mod support;

use std::collections::HashMap;

use spindle_node_manager::{NmConfig, NodeManager};
use spindle_protocol as proto;
use support::{
    APP, FakeRm, Node, SLOW_HEARTBEAT_MS, completion, container_id, ended, guarded, http, pid,
    run_program, sha256, tokens, written,
};
use tonic::Code;

const FAILING_PROGRAM: &[u8] = b"#!/bin/bash
echo \"hello from $CONTAINER_ID\"
for v in CONTAINER_ID APPLICATION_ID NM_HOST NM_PORT NM_ADDRESS NM_HTTP_ADDRESS \\
         SPINDLE_RM_ADDRESS LOG_DIRS PWD HOME USER GREETING; do
  printf '%s=%s\\n' \"$v\" \"${!v}\"
done
printf 'arg=%s\\n' \"$@\"
echo 'something went wrong' >&2
exit 3
";

/// Runs until stopped, with a grandchild; says it is up by writing its pids.
const SLEEPING_PROGRAM: &[u8] = b"#!/bin/bash
sleep 600 & echo $! > bg.pid
echo $$ > fg.pid
wait
";

const CHATTY_PROGRAM: &[u8] = b"#!/bin/bash
printf 'line1\\nline2\\n'
echo err >&2
";

#[tokio::test]
async fn registers_with_the_rm() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let node = Node::start(rm.addr).await;
    let registration = guarded("registration", rm.registrations.recv())
        .await
        .unwrap();
    assert_eq!(registration.node_id, node.nm().node_id().to_string());
    assert_eq!(registration.node_id, node.nm().rpc_addr().to_string());
    assert_eq!(registration.http_address, node.nm().web_addr().to_string());
    assert_eq!(
        registration.capability,
        Some(proto::Resource {
            memory_mb: 4096,
            vcores: 4
        })
    );
    node.shutdown().await;
}

#[tokio::test]
async fn registers_when_the_rm_starts_after_it() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let rm_addr = free.local_addr().unwrap();
    drop(free);
    let node = Node::start_unregistered(rm_addr, |_| {}).await;
    // Let a few registration attempts fail first (ordering, not a timing assertion).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut rm = FakeRm::start(rm_addr, SLOW_HEARTBEAT_MS).await;
    let registration = guarded("registration", rm.registrations.recv())
        .await
        .unwrap();
    assert_eq!(registration.node_id, node.nm().node_id().to_string());
    node.shutdown().await;
}

#[tokio::test]
async fn runs_a_staged_program_with_the_contract_env_and_reports_its_failure_at_once() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let digest = rm.stage(FAILING_PROGRAM);
    let mut node = Node::start(rm.addr).await;
    let request = run_program(1, &digest, FAILING_PROGRAM.len(), &["a b", "c"]);
    let answer = node.start_containers(vec![request]).await;
    assert_eq!(answer.failed, vec![]);
    assert_eq!(answer.started, vec![container_id(1)]);

    // The heartbeat interval is ten minutes: this is the out-of-band heartbeat.
    let status = completion(&mut rm, &container_id(1)).await;
    assert_eq!(status.exit_status, 3);
    assert!(
        status.diagnostics.starts_with(&format!(
            "Container {} exited with exit status 3",
            container_id(1)
        )),
        "{}",
        status.diagnostics
    );
    assert!(
        status.diagnostics.contains("something went wrong"),
        "{}",
        status.diagnostics
    );

    let stdout = std::fs::read_to_string(node.log_dir(1).join("stdout")).unwrap();
    assert!(
        stdout.starts_with(&format!("hello from {}\n", container_id(1))),
        "{stdout}"
    );
    let env: HashMap<&str, &str> = stdout.lines().filter_map(|l| l.split_once('=')).collect();
    let nm = node.nm();
    let container_dir = node.container_dir(1);
    let log_dir = node.log_dir(1);
    let rm_addr = rm.addr.to_string();
    let port = nm.rpc_addr().port().to_string();
    let web = nm.web_addr().to_string();
    let node_id = nm.node_id().to_string();
    let id = container_id(1);
    // As root the owner (no user of this host) runs as the fallback, and USER says so; else the
    // node manager's user runs it, and USER names the owner, as YARN's default executor does.
    let user = if nix::unistd::geteuid().is_root() {
        tokens::container_user()
    } else {
        tokens::OWNER.to_string()
    };
    let expected = [
        ("CONTAINER_ID", id.as_str()),
        ("APPLICATION_ID", APP),
        ("NM_HOST", "127.0.0.1"),
        ("NM_PORT", port.as_str()),
        ("NM_ADDRESS", node_id.as_str()),
        ("NM_HTTP_ADDRESS", web.as_str()),
        ("SPINDLE_RM_ADDRESS", rm_addr.as_str()),
        ("LOG_DIRS", log_dir.to_str().unwrap()),
        ("PWD", container_dir.to_str().unwrap()),
        ("HOME", container_dir.to_str().unwrap()),
        ("USER", user.as_str()),
        ("GREETING", "it's $HOME"),
    ];
    for (name, value) in expected {
        assert_eq!(env.get(name).copied(), Some(value), "{name}");
    }
    let args: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("arg="))
        .collect();
    assert_eq!(args, vec!["a b", "c"]);
    let recorded = std::fs::read_to_string(container_dir.join("exit_code")).unwrap();
    assert_eq!(recorded, "3\n");
    node.shutdown().await;
}

#[tokio::test]
async fn completions_are_reported_until_acknowledged() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), 20).await;
    let digest = rm.stage(CHATTY_PROGRAM);
    let mut node = Node::start(rm.addr).await;
    let answer = node
        .start_containers(vec![run_program(1, &digest, CHATTY_PROGRAM.len(), &[])])
        .await;
    assert_eq!(answer.started, vec![container_id(1)]);
    let status = completion(&mut rm, &container_id(1)).await;
    assert_eq!(status.exit_status, 0);
    rm.answer_next(proto::NodeHeartbeatResponse {
        heartbeat_interval_ms: 20,
        containers_acknowledged: vec![container_id(1)],
        ..Default::default()
    });
    guarded("a heartbeat without the acknowledged container", async {
        loop {
            let beat = rm.heartbeats.recv().await.unwrap();
            if beat
                .containers
                .iter()
                .all(|c| c.container_id != container_id(1))
            {
                return;
            }
        }
    })
    .await;
    // Still known to status queries while its application runs.
    let statuses = node
        .client
        .get_container_statuses(proto::GetContainerStatusesRequest {
            container_ids: vec![container_id(1)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(statuses.statuses.len(), 1);
    node.shutdown().await;
}

#[tokio::test]
async fn stop_containers_kills_the_whole_group() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let digest = rm.stage(SLEEPING_PROGRAM);
    let mut node = Node::start(rm.addr).await;
    let answer = node
        .start_containers(vec![run_program(1, &digest, SLEEPING_PROGRAM.len(), &[])])
        .await;
    assert_eq!(answer.started, vec![container_id(1)]);
    let program = pid(&written(&node.container_dir(1).join("fg.pid")).await);
    let grandchild = pid(&std::fs::read_to_string(node.container_dir(1).join("bg.pid")).unwrap());

    let stopped = guarded(
        "StopContainers",
        node.client.stop_containers(proto::StopContainersRequest {
            container_ids: vec![container_id(1), container_id(99), "container_x".into()],
            exit_status: 0,
        }),
    )
    .await
    .unwrap()
    .into_inner();
    assert_eq!(stopped.stopped, vec![container_id(1)]);
    let failures: Vec<&str> = stopped.failed.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(failures.len(), 2);
    assert!(
        failures[0].contains("is not known on this node"),
        "{failures:?}"
    );
    assert!(
        failures[1].starts_with("container_id: malformed container id"),
        "{failures:?}"
    );
    ended(program).await;
    ended(grandchild).await;

    let statuses = node
        .client
        .get_container_statuses(proto::GetContainerStatusesRequest {
            container_ids: vec![container_id(1)],
        })
        .await
        .unwrap()
        .into_inner();
    let status = &statuses.statuses[0];
    assert_eq!(status.state, proto::ContainerState::Complete as i32);
    assert_eq!(status.exit_status, -105);
    assert!(
        status
            .diagnostics
            .contains("stopped by the application master")
    );
    assert_eq!(
        completion(&mut rm, &container_id(1)).await.exit_status,
        -105
    );
    node.shutdown().await;
}

#[tokio::test]
async fn bad_requests_fail_alone_with_clear_errors_and_start_nothing() {
    let rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let digest = rm.stage(CHATTY_PROGRAM);
    let size = CHATTY_PROGRAM.len();
    let mut node = Node::start(rm.addr).await;
    let good = run_program(9, &digest, size, &[]);
    let mut malformed_id = run_program(1, &digest, size, &[]);
    malformed_id.container_id = "container_bogus".into();
    let mut escaping_name = run_program(2, &digest, size, &[]);
    escaping_name
        .launch_context
        .as_mut()
        .unwrap()
        .local_resources[0]
        .name = "../x".into();
    let bad_digest = run_program(3, "xyz", size, &[]);
    let mut no_resource = run_program(4, &digest, size, &[]);
    no_resource.resource = None;
    let mut no_memory = run_program(5, &digest, size, &[]);
    no_memory.resource.as_mut().unwrap().memory_mb = 0;
    let mut no_command = run_program(6, &digest, size, &[]);
    no_command.launch_context.as_mut().unwrap().command.clear();
    let mut readonly_env = run_program(7, &digest, size, &[]);
    readonly_env
        .launch_context
        .as_mut()
        .unwrap()
        .environment
        .insert("UID".into(), "0".into());

    let answer = node
        .start_containers(vec![
            malformed_id,
            escaping_name,
            bad_digest,
            no_resource,
            no_memory,
            no_command,
            readonly_env,
            good,
        ])
        .await;
    assert_eq!(answer.started, vec![container_id(9)]);
    let failed: HashMap<String, String> = answer
        .failed
        .into_iter()
        .map(|f| (f.container_id, f.message))
        .collect();
    let expect = |id: &str, phrase: &str| {
        let message = failed
            .get(id)
            .unwrap_or_else(|| panic!("{id} failed: {failed:?}"));
        assert!(
            message.contains(phrase),
            "{id}: {message:?} should say {phrase:?}"
        );
    };
    expect(
        "container_bogus",
        "container_id: malformed container id \"container_bogus\"",
    );
    expect(&container_id(2), "\"../x\" is not allowed");
    expect(
        &container_id(3),
        "sha256 \"xyz\": expected 64 lowercase hex digits",
    );
    expect(&container_id(4), "resource is missing");
    expect(&container_id(5), "resource.memory_mb=0 must be at least 1");
    expect(&container_id(6), "command is empty");
    expect(&container_id(7), "\"UID\" is read-only");
    assert_eq!(failed.len(), 7);

    let started: Vec<String> = std::fs::read_dir(node.root().join("appcache").join(APP))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(started, vec![container_id(9)]);
    let logged: Vec<_> = std::fs::read_dir(node.root().join("logs").join(APP))
        .unwrap()
        .collect();
    assert_eq!(logged.len(), 1);

    let again = node
        .start_containers(vec![run_program(9, &digest, size, &[])])
        .await;
    assert!(
        again.failed[0]
            .message
            .contains("is already known on this node")
    );
    node.shutdown().await;
}

#[tokio::test]
async fn content_that_does_not_match_its_digest_is_refused() {
    let rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let claimed = sha256(CHATTY_PROGRAM);
    let tampered = b"#!/bin/bash\necho tampered\n";
    rm.serve_as(&claimed, tampered);
    let mut node = Node::start(rm.addr).await;
    let answer = node
        .start_containers(vec![run_program(1, &claimed, 0, &[])])
        .await;
    assert!(answer.started.is_empty());
    let message = &answer.failed[0].message;
    assert!(
        message.contains(&claimed) && message.contains(&sha256(tampered)),
        "{message}"
    );
    let cache = node
        .root()
        .join("usercache")
        .join(tokens::container_user())
        .join("filecache");
    assert!(!cache.join(&claimed).exists());
    assert!(!node.container_dir(1).exists());
    node.shutdown().await;
}

#[tokio::test]
async fn logs_are_listed_read_and_served_over_http() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let digest = rm.stage(CHATTY_PROGRAM);
    let mut node = Node::start(rm.addr).await;
    node.start_containers(vec![run_program(1, &digest, CHATTY_PROGRAM.len(), &[])])
        .await;
    completion(&mut rm, &container_id(1)).await;

    let listed = node
        .client
        .list_container_logs(proto::ListContainerLogsRequest {
            application_id: APP.into(),
            container_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.containers,
        vec![proto::ContainerLogFiles {
            container_id: container_id(1),
            files: vec![
                proto::LogFile {
                    name: "stderr".into(),
                    size: 4
                },
                proto::LogFile {
                    name: "stdout".into(),
                    size: 12
                },
            ],
            node_id: node.nm().node_id().to_string(),
        }]
    );

    let read = |file: &str, offset: u64| {
        let mut client = node.client.clone();
        let request = proto::ReadContainerLogRequest {
            container_id: container_id(1),
            file: file.into(),
            offset,
            follow: false,
        };
        async move {
            let mut stream = client.read_container_log(request).await?.into_inner();
            let mut data = Vec::new();
            while let Some(chunk) = stream.message().await? {
                data.extend(chunk.data);
            }
            Ok::<_, tonic::Status>(String::from_utf8(data).unwrap())
        }
    };
    assert_eq!(read("stdout", 6).await.unwrap(), "line2\n");
    assert_eq!(
        read("../stdout", 0).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    assert_eq!(read("nope", 0).await.unwrap_err().code(), Code::NotFound);
    let other_app = "application_1700000000000_0042";
    let list_other = proto::ListContainerLogsRequest {
        application_id: other_app.into(),
        container_id: String::new(),
    };
    let not_ours = node
        .client
        .list_container_logs(list_other.clone())
        .await
        .unwrap_err();
    assert_eq!(not_ours.code(), Code::PermissionDenied);
    let unknown = node
        .client_with(tokens::nm_token(&node.node_id(), other_app))
        .list_container_logs(list_other)
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);

    let web = node.nm().web_addr();
    let token = tokens::nm_token(&node.node_id(), APP);
    let bearer = format!("Bearer {token}");
    let authorized = [("Authorization", bearer.as_str())];
    let page = http::get_with(
        web,
        &format!("/node/containerlogs/{}/stdout", container_id(1)),
        &authorized,
    )
    .await;
    assert_eq!((page.status, page.body.as_str()), (200, "line1\nline2\n"));
    assert!(page.content_type.starts_with("text/plain"));
    let by_query = http::get(
        web,
        &format!(
            "/node/containerlogs/{}/stderr?nm.token={token}",
            container_id(1)
        ),
    )
    .await;
    assert_eq!((by_query.status, by_query.body.as_str()), (200, "err\n"));
    let escaping = http::get_with(
        web,
        &format!("/node/containerlogs/{}/..%2F..%2Fstate", container_id(1)),
        &authorized,
    )
    .await;
    assert_eq!(escaping.status, 400, "{}", escaping.body);
    let anonymous = http::get(
        web,
        &format!("/node/containerlogs/{}/stdout", container_id(1)),
    )
    .await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    assert!(anonymous.body.contains("NM token"), "{}", anonymous.body);
    let missing = http::get_with(
        web,
        &format!("/node/containerlogs/{}/stdout", container_id(7)),
        &authorized,
    )
    .await;
    assert_eq!(missing.status, 404);
    assert!(
        missing.body.contains("no logs of container"),
        "{}",
        missing.body
    );
    assert_eq!(
        http::get_with(web, "/node/containerlogs/container_x/stdout", &authorized)
            .await
            .status,
        404
    );
    let info = http::get(web, "/ws/v1/node/info").await;
    let info: serde_json::Value = serde_json::from_str(&info.body).unwrap();
    assert_eq!(info["nodeInfo"]["id"], node.nm().node_id().to_string());
    assert_eq!(info["nodeInfo"]["totalPmemAllocatedContainersMB"], 4096);
    node.shutdown().await;
}

#[tokio::test]
async fn the_rm_cleans_up_containers_and_applications() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), 20).await;
    let digest = rm.stage(SLEEPING_PROGRAM);
    let size = SLEEPING_PROGRAM.len();
    let mut node = Node::start(rm.addr).await;
    let answer = node
        .start_containers(vec![
            run_program(1, &digest, size, &[]),
            run_program(2, &digest, size, &[]),
        ])
        .await;
    assert_eq!(answer.started.len(), 2);
    let first = pid(&written(&node.container_dir(1).join("fg.pid")).await);
    let second = pid(&written(&node.container_dir(2).join("fg.pid")).await);

    rm.answer_next(proto::NodeHeartbeatResponse {
        heartbeat_interval_ms: 20,
        containers_to_cleanup: vec![container_id(1)],
        ..Default::default()
    });
    assert_eq!(
        completion(&mut rm, &container_id(1)).await.exit_status,
        -106
    );
    ended(first).await;

    rm.answer_next(proto::NodeHeartbeatResponse {
        heartbeat_interval_ms: 20,
        applications_to_cleanup: vec![APP.into()],
        ..Default::default()
    });
    assert_eq!(
        completion(&mut rm, &container_id(2)).await.exit_status,
        -107
    );
    ended(second).await;
    let app_dir = node.root().join("appcache").join(APP);
    guarded("the application's working dirs to be deleted", async {
        while app_dir.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    // The logs go to the RM's log store (these programs write none: empty files go too), and
    // once it has them, they are deleted here.
    let upload = guarded("the logs to be uploaded", rm.uploads.recv())
        .await
        .unwrap();
    assert_eq!(upload.node_id, node.nm().node_id().to_string());
    let uploaded: Vec<(String, String)> = upload.files.keys().cloned().collect();
    let expected: Vec<(String, String)> = [1, 2]
        .into_iter()
        .flat_map(|n| ["stderr", "stdout"].map(|f| (container_id(n), f.to_string())))
        .collect();
    assert_eq!(uploaded, expected);
    let log_dir = node.root().join("logs").join(APP);
    guarded("the uploaded logs to be deleted here", async {
        while log_dir.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
    let late = node
        .start_containers(vec![run_program(3, &digest, size, &[])])
        .await;
    assert!(late.failed[0].message.contains("has finished on this node"));
    node.shutdown().await;
}

#[tokio::test]
async fn resync_registers_again_with_the_running_containers_and_shutdown_stops_them() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), 20).await;
    let digest = rm.stage(SLEEPING_PROGRAM);
    let mut node = Node::start(rm.addr).await;
    guarded("registration", rm.registrations.recv())
        .await
        .unwrap();
    node.start_containers(vec![run_program(1, &digest, SLEEPING_PROGRAM.len(), &[])])
        .await;
    let program = pid(&written(&node.container_dir(1).join("fg.pid")).await);
    let grandchild = pid(&std::fs::read_to_string(node.container_dir(1).join("bg.pid")).unwrap());

    rm.answer_next(proto::NodeHeartbeatResponse {
        action: proto::NodeAction::Resync as i32,
        ..Default::default()
    });
    let again = guarded("registering again", rm.registrations.recv())
        .await
        .unwrap();
    let running: Vec<(&str, i32)> = again
        .containers
        .iter()
        .map(|c| (c.container_id.as_str(), c.state))
        .collect();
    assert_eq!(
        running,
        vec![(
            container_id(1).as_str(),
            proto::ContainerState::Running as i32
        )]
    );

    node.shutdown().await;
    ended(program).await;
    ended(grandchild).await;
}

#[tokio::test]
async fn dropping_the_node_manager_kills_its_containers() {
    let rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let digest = rm.stage(SLEEPING_PROGRAM);
    let mut node = Node::start(rm.addr).await;
    node.start_containers(vec![run_program(1, &digest, SLEEPING_PROGRAM.len(), &[])])
        .await;
    let program = pid(&written(&node.container_dir(1).join("fg.pid")).await);
    let grandchild = pid(&std::fs::read_to_string(node.container_dir(1).join("bg.pid")).unwrap());
    let cgroup = node.nm().cgroup_dir().map(std::path::Path::to_path_buf);
    drop(node.nm.take());
    ended(program).await;
    ended(grandchild).await;
    if let Some(cgroup) = cgroup {
        guarded("the node's cgroups to be removed", async {
            while cgroup.exists() {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        })
        .await;
    }
}

#[tokio::test]
async fn a_work_dir_serves_one_node_manager_and_settings_are_checked() {
    let rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let node = Node::start(rm.addr).await;
    let same_dir = support::config(rm.addr, node.work_dir.path());
    let err = NodeManager::start(same_dir.clone()).await.err().unwrap();
    assert!(
        err.to_string().starts_with(&format!(
            "state store {}",
            node.root().join("state/containers.redb").display()
        )),
        "{err}"
    );
    let zero = NmConfig {
        monitor_interval: std::time::Duration::ZERO,
        ..same_dir
    };
    let err = NodeManager::start(zero).await.err().unwrap();
    assert_eq!(
        err.to_string(),
        "monitor-interval must be more than 0 (e.g. 3s or 500ms)"
    );
    node.shutdown().await;
}
