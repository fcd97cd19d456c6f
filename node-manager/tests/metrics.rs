//! `GET /metrics` on the node manager's web port, read by a strict Prometheus text parser, says
//! what the node did: launches (with their latency), completions by exit-status class, failed
//! starts, what runs now, the memory its containers use and the node's capacity, and what the
//! localization cache saved.

mod support;

use std::time::Duration;

use spindle_protocol as proto;
use support::prometheus::{self, Exposition};
use support::{
    FakeRm, Node, SLOW_HEARTBEAT_MS, completion, container_id, guarded, http, pid, run_program,
    written,
};

/// Exits with its argument, or sleeps (saying so in `fg.pid`) when told `sleep`.
const PROGRAM: &[u8] = b"#!/bin/bash
if [ \"$1\" = sleep ]; then echo $$ > fg.pid; exec sleep 600; fi
exit \"$1\"
";

async fn metrics(node: &Node) -> Exposition {
    let page = http::get(node.nm().web_addr(), "/metrics").await;
    assert_eq!(page.status, 200);
    assert!(
        page.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        page.content_type
    );
    prometheus::parse(&page.body).unwrap_or_else(|e| panic!("{e}\n{}", page.body))
}

#[tokio::test]
async fn metrics_count_launches_completions_memory_and_the_file_cache() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let digest = rm.stage(PROGRAM);
    let size = PROGRAM.len();
    let mut node =
        Node::start_with(rm.addr, |c| c.monitor_interval = Duration::from_millis(50)).await;

    let before = metrics(&node).await;
    assert_eq!(
        before.value("spindle_nm_containers_launched_total", &[]),
        0.0
    );
    assert_eq!(
        before.value("spindle_nm_container_launch_seconds_count", &[]),
        0.0
    );
    assert_eq!(
        before.value("spindle_nm_memory_capacity_bytes", &[]),
        4096.0 * 1024.0 * 1024.0
    );

    // One at a time, so the first fetches the program and the others find it cached.
    for (n, arg) in [(1, "0"), (2, "3"), (3, "sleep")] {
        let answer = node
            .start_containers(vec![run_program(n, &digest, size, &[arg])])
            .await;
        assert_eq!(answer.started, vec![container_id(n)], "{answer:?}");
    }
    let mut refused = run_program(4, &digest, size, &["0"]);
    refused.resource = Some(proto::Resource {
        memory_mb: -1,
        vcores: 1,
    });
    assert_eq!(node.start_containers(vec![refused]).await.failed.len(), 1);
    completion(&mut rm, &container_id(1)).await;
    completion(&mut rm, &container_id(2)).await;
    let sleeper = pid(&written(&node.container_dir(3).join("fg.pid")).await);

    // The monitor samples every 50 ms; the first sample that saw the sleeper is awaited.
    let m = guarded("the monitor to sample the running container", async {
        loop {
            let m = metrics(&node).await;
            if m.value("spindle_nm_memory_used_bytes", &[]) > 0.0 {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(m.value("spindle_nm_containers_launched_total", &[]), 3.0);
    assert_eq!(
        m.value("spindle_nm_container_launch_failures_total", &[]),
        1.0
    );
    assert_eq!(
        m.value("spindle_nm_container_launch_seconds_count", &[]),
        3.0
    );
    assert!(m.value("spindle_nm_container_launch_seconds_sum", &[]) > 0.0);
    assert_eq!(
        m.value(
            "spindle_nm_container_launch_seconds_bucket",
            &[("le", "+Inf")]
        ),
        3.0
    );
    let completed = |m: &Exposition, class| {
        m.value(
            "spindle_nm_containers_completed_total",
            &[("exit_class", class)],
        )
    };
    assert_eq!(completed(&m, "success"), 1.0);
    assert_eq!(completed(&m, "failed"), 1.0);
    assert_eq!(completed(&m, "killed_by_appmaster"), 0.0);
    assert_eq!(
        m.value("spindle_nm_containers", &[("phase", "running")]),
        1.0
    );
    assert_eq!(
        m.value("spindle_nm_containers", &[("phase", "localizing")]),
        0.0
    );
    assert_eq!(
        m.value("spindle_nm_memory_allocated_bytes", &[]),
        512.0 * 1024.0 * 1024.0
    );
    assert_eq!(m.value("spindle_nm_vcores_allocated", &[]), 1.0);
    assert_eq!(m.value("spindle_nm_vcores_capacity", &[]), 4.0);
    assert_eq!(
        m.value("spindle_nm_localization_cache_misses_total", &[]),
        1.0
    );
    assert_eq!(
        m.value("spindle_nm_localization_cache_hits_total", &[]),
        2.0
    );
    assert_eq!(
        m.value("spindle_nm_localization_downloaded_bytes_total", &[]),
        size as f64
    );
    assert_eq!(
        m.family("spindle_nm_info").samples[0].labels["node_id"],
        node.nm().node_id().as_str()
    );

    let stopped = node
        .client
        .stop_containers(proto::StopContainersRequest {
            container_ids: vec![container_id(3)],
            exit_status: -105,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stopped.stopped, vec![container_id(3)]);
    support::ended(sleeper).await;
    let after = metrics(&node).await;
    assert_eq!(completed(&after, "killed_by_appmaster"), 1.0);
    assert_eq!(
        after.value("spindle_nm_containers", &[("phase", "running")]),
        0.0
    );
    assert_eq!(after.value("spindle_nm_memory_allocated_bytes", &[]), 0.0);
    node.shutdown().await;
}

#[test]
fn the_parser_refuses_what_is_not_the_format() {
    let good = "# HELP a_total A thing.\n# TYPE a_total counter\na_total{x=\"1\"} 2\n";
    assert!(prometheus::parse(good).is_ok());
    for bad in [
        "# HELP a_total A thing.\n# TYPE a_total counter\na_total{x=\"1\"} 2",
        "# TYPE a_total counter\na_total 2\n",
        "# HELP a_total A thing.\n# TYPE a_total counter\nb_total 2\n",
        "# HELP a_total A thing.\n# TYPE a_total counter\na_total -1\n",
        "# HELP a_total A thing.\n# TYPE a_total counter\na_total{x=1} 2\n",
        "# HELP a_total A thing.\n# TYPE a_total counter\na_total{x=\"1\",} 2\n",
        "# HELP a_total A thing.\n# TYPE a_total counter\na_total two\n",
        "# HELP h A.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h A.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n",
    ] {
        assert!(prometheus::parse(bad).is_err(), "accepted {bad:?}");
    }
}
