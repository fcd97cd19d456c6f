//! A container's logs while it runs and after its application is over: `ReadContainerLog` with
//! `follow` streams what the program appends and ends when the container does; when the RM says
//! the application is over (through a watch, no heartbeat answer needed) the node uploads its
//! logs to the RM's log store and deletes them here (its web pages then say where they went);
//! and a node manager started on a work dir with logs of an application whose end it missed
//! uploads them too.

mod support;

use std::time::Duration;

use spindle_protocol as proto;
use support::{
    APP, FakeRm, Node, SLOW_HEARTBEAT_MS, completion, container_id, guarded, http, run_program,
    tokens,
};

/// Says hello, waits until a file `go` appears in its working dir, says goodbye, exits.
const WAITING_PROGRAM: &[u8] = b"#!/bin/bash
echo hello
echo warming up >&2
while [ ! -e go ]; do sleep 0.02; done
echo goodbye
";

const CHATTY_PROGRAM: &[u8] = b"#!/bin/bash
printf 'line1\\nline2\\n'
echo err >&2
";

async fn gone(path: &std::path::Path) {
    guarded("the directory to be deleted", async {
        while path.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

async fn followers(node: &Node) -> String {
    let page = http::get(node.nm().web_addr(), "/metrics").await;
    support::prometheus::parse(&page.body)
        .unwrap()
        .value("spindle_nm_log_followers", &[])
        .to_string()
}

#[tokio::test]
async fn follow_streams_what_a_running_container_appends_and_ends_with_it() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let digest = rm.stage(WAITING_PROGRAM);
    let mut node = Node::start(rm.addr).await;
    node.start_containers(vec![run_program(1, &digest, WAITING_PROGRAM.len(), &[])])
        .await;
    let mut stream = node
        .client
        .read_container_log(proto::ReadContainerLogRequest {
            container_id: container_id(1),
            file: "stdout".into(),
            offset: 0,
            follow: true,
        })
        .await
        .unwrap()
        .into_inner();
    let mut seen = String::new();
    guarded("hello", async {
        while !seen.contains("hello\n") {
            let chunk = stream.message().await.unwrap().expect("still open");
            seen.push_str(&String::from_utf8(chunk.data).unwrap());
        }
    })
    .await;
    assert_eq!(seen, "hello\n");
    assert_eq!(followers(&node).await, "1");

    std::fs::write(node.container_dir(1).join("go"), "").unwrap();
    let rest = guarded("the rest and the end of the stream", async {
        let mut rest = String::new();
        while let Some(chunk) = stream.message().await.unwrap() {
            rest.push_str(&String::from_utf8(chunk.data).unwrap());
        }
        rest
    })
    .await;
    assert_eq!(rest, "goodbye\n");
    assert_eq!(completion(&mut rm, &container_id(1)).await.exit_status, 0);
    guarded("the follower to be let go", async {
        while followers(&node).await != "0" {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // A complete container's log is read once and the stream ends.
    let mut again = node
        .client
        .read_container_log(proto::ReadContainerLogRequest {
            container_id: container_id(1),
            file: "stderr".into(),
            offset: 0,
            follow: true,
        })
        .await
        .unwrap()
        .into_inner();
    let mut text = String::new();
    guarded("the whole stderr", async {
        while let Some(chunk) = again.message().await.unwrap() {
            text.push_str(&String::from_utf8(chunk.data).unwrap());
        }
    })
    .await;
    assert_eq!(text, "warming up\n");
    node.shutdown().await;
}

#[tokio::test]
async fn a_follower_does_not_hold_up_shutdown() {
    let rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let digest = rm.stage(WAITING_PROGRAM);
    let mut node = Node::start(rm.addr).await;
    node.start_containers(vec![run_program(1, &digest, WAITING_PROGRAM.len(), &[])])
        .await;
    let mut stream = node
        .client
        .read_container_log(proto::ReadContainerLogRequest {
            container_id: container_id(1),
            file: "stdout".into(),
            offset: 0,
            follow: true,
        })
        .await
        .unwrap()
        .into_inner();
    guarded("the first chunk", stream.message()).await.unwrap();
    // The hang guard inside `shutdown` fails the test if the open stream holds it up.
    node.shutdown().await;
}

#[tokio::test]
async fn when_the_rm_says_the_app_is_over_its_logs_are_uploaded_and_deleted_here() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let digest = rm.stage(CHATTY_PROGRAM);
    let mut node = Node::start(rm.addr).await;
    for n in [1, 2] {
        node.start_containers(vec![run_program(n, &digest, CHATTY_PROGRAM.len(), &[])])
            .await;
        completion(&mut rm, &container_id(n)).await;
    }
    assert!(node.log_dir(1).join("stdout").exists());

    // No heartbeat answer names the app: the node hears of its end through its watch.
    rm.end_app(APP);
    let upload = guarded("the logs to be uploaded", rm.uploads.recv())
        .await
        .unwrap();
    assert_eq!(upload.node_id, node.nm().node_id().to_string());
    for n in [1, 2] {
        let file = |name: &str| {
            upload
                .files
                .get(&(container_id(n), name.to_string()))
                .cloned()
        };
        assert_eq!(file("stdout").as_deref(), Some(&b"line1\nline2\n"[..]));
        assert_eq!(file("stderr").as_deref(), Some(&b"err\n"[..]));
    }
    assert_eq!(upload.files.len(), 4);
    gone(&node.root().join("logs").join(APP)).await;
    gone(&node.root().join("appcache").join(APP)).await;
    // The node's log links say where the logs went (reading them from the RM takes the
    // client secret, which a node does not hold).
    let web = node.nm().web_addr();
    let token = tokens::nm_token(&node.node_id(), APP);
    let path = |n: u64, file: &str| {
        format!(
            "/node/containerlogs/{}/{file}?nm.token={token}",
            container_id(n)
        )
    };
    let page = http::get(web, &path(2, "stdout")).await;
    assert_eq!(page.status, 404);
    assert!(page.body.contains("spindle logs"), "{}", page.body);

    let page = http::get(node.nm().web_addr(), "/metrics").await;
    let m = support::prometheus::parse(&page.body).unwrap();
    assert_eq!(
        m.value(
            "spindle_nm_log_aggregations_total",
            &[("outcome", "uploaded")]
        ),
        1.0
    );
    assert_eq!(m.value("spindle_nm_log_aggregated_files_total", &[]), 4.0);
    assert_eq!(m.value("spindle_nm_log_aggregated_bytes_total", &[]), 32.0);
    let late = node
        .start_containers(vec![run_program(3, &digest, CHATTY_PROGRAM.len(), &[])])
        .await;
    assert!(late.failed[0].message.contains("has finished on this node"));
    node.shutdown().await;
}

#[tokio::test]
async fn logs_left_by_an_earlier_run_are_uploaded_once_their_app_is_over() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let work_dir = tempfile::tempdir().unwrap();
    let log_dir = work_dir.path().join("logs").join(APP).join(container_id(4));
    std::fs::create_dir_all(&log_dir).unwrap();
    std::fs::write(log_dir.join("stdout"), "from the last run\n").unwrap();
    rm.end_app(APP);
    let nm = spindle_node_manager::NodeManager::start(support::config(rm.addr, work_dir.path()))
        .await
        .unwrap();
    let upload = guarded("the logs to be uploaded", rm.uploads.recv())
        .await
        .unwrap();
    assert_eq!(
        upload.files.get(&(container_id(4), "stdout".to_string())),
        Some(&b"from the last run\n".to_vec())
    );
    gone(&work_dir.path().join("logs").join(APP)).await;
    guarded("shutdown", nm.shutdown()).await;
}
