//! Capacity: an ask beyond what the cluster has waits and is served the moment capacity frees;
//! a kill stops every container of the app on its NM at once (-106) and ends it KILLED.

use spindle_containers::exit_status::KILLED_BY_RESOURCEMANAGER;
use spindle_protocol as proto;

use crate::common::*;

#[tokio::test]
async fn an_ask_beyond_capacity_waits_and_is_served_when_capacity_frees() {
    let mut rm = Rm::start().await;
    let mut nm = FakeNm::register(&rm, 2048).await;
    rm.submit(512).await;
    let attempt = attempt_of(&nm.started().await.container_id);
    rm.register_am(&attempt).await;

    let got = rm
        .allocate(&attempt, vec![ask(512, 1, 4)], 0)
        .await
        .unwrap();
    assert_eq!(got.allocated.len(), 3, "the AM holds 512 of 2048 MB");
    let report = rm.report(&app_of(&attempt)).await;
    assert_eq!(report.running_containers, 4);

    let mut poller = rm.am_for(&attempt);
    let open = tokio::spawn({
        let attempt = attempt.clone();
        async move {
            poller
                .allocate(allocate_request(&attempt, vec![], 60_000))
                .await
        }
    });
    // The poll cannot be answered yet; a completion frees room for the fourth container.
    nm.heartbeat(vec![completed(&got.allocated[0].container_id, 0)])
        .await;
    let answer = within("the waiting ask to be served", open)
        .await
        .unwrap()
        .unwrap()
        .into_inner();
    assert_eq!(answer.completed.len(), 1);
    assert_eq!(answer.allocated.len(), 1, "the fourth container");
    rm.shutdown().await;
}

#[tokio::test]
async fn a_kill_stops_the_containers_on_the_node_and_ends_the_app_killed() {
    let mut rm = Rm::start().await;
    let mut nm = FakeNm::register(&rm, 4096).await;
    let app = rm.submit(512).await;
    let am = nm.started().await.container_id;
    let attempt = attempt_of(&am);
    rm.register_am(&attempt).await;
    let got = rm
        .allocate(&attempt, vec![ask(512, 1, 2)], 0)
        .await
        .unwrap();

    let mut poller = rm.am_for(&attempt);
    let open = tokio::spawn({
        let attempt = attempt.clone();
        async move {
            poller
                .allocate(allocate_request(&attempt, vec![], 60_000))
                .await
        }
    });
    let killed = rm
        .client
        .kill_application(proto::KillApplicationRequest {
            application_id: app.clone(),
            diagnostics: "enough".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(killed.killed);

    match nm.next_event().await {
        NmEvent::Stopped {
            mut containers,
            exit_status,
        } => {
            containers.sort();
            let mut expected: Vec<_> = got
                .allocated
                .iter()
                .map(|c| c.container_id.clone())
                .collect();
            expected.push(am);
            expected.sort();
            assert_eq!(containers, expected);
            assert_eq!(exit_status, KILLED_BY_RESOURCEMANAGER);
        }
        other => panic!("expected StopContainers, got {other:?}"),
    }
    let report = rm.report(&app).await;
    assert_eq!(report.state, proto::ApplicationState::Killed as i32);
    assert_eq!(report.final_status, proto::FinalStatus::Killed as i32);
    assert!(report.diagnostics.contains("enough"));
    // The AM's open poll is told to shut down.
    let answer = within("the poll to be answered", open)
        .await
        .unwrap()
        .unwrap()
        .into_inner();
    assert_eq!(answer.command, proto::AmCommand::Shutdown as i32);
    // The NM is told to clean up anything of the app it still runs.
    let hb = nm
        .heartbeat(vec![running(&got.allocated[0].container_id)])
        .await;
    assert_eq!(hb.applications_to_cleanup, vec![app.clone()]);
    assert_eq!(
        hb.containers_to_cleanup,
        vec![got.allocated[0].container_id.clone()]
    );
    // Watching an application that is over gives its final report and ends.
    let mut watch = rm
        .client
        .watch_application(proto::GetApplicationReportRequest {
            application_id: app.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let last = within("the final report", watch.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.state, proto::ApplicationState::Killed as i32);
    assert!(
        within("the end of the stream", watch.message())
            .await
            .unwrap()
            .is_none()
    );
    rm.shutdown().await;
}

#[tokio::test]
async fn list_nodes_reports_capacity_use_and_state() {
    let mut rm = Rm::start().await;
    let mut nm = FakeNm::register(&rm, 4096).await;
    rm.submit(1000).await;
    nm.started().await;
    let nodes = rm
        .client
        .list_nodes(proto::ListNodesRequest {})
        .await
        .unwrap()
        .into_inner()
        .nodes;
    assert_eq!(nodes.len(), 1);
    let n = &nodes[0];
    assert_eq!(n.node_id, nm.node_id);
    assert_eq!(n.state, proto::NodeState::Running as i32);
    assert_eq!(n.capability.unwrap().memory_mb, 4096);
    assert_eq!(
        n.used.unwrap().memory_mb,
        1024,
        "1000 MB rounded up to a multiple of 256"
    );
    assert_eq!(n.num_containers, 1);
    rm.shutdown().await;
}

fn app_of(attempt: &str) -> String {
    let id: spindle_containers::AttemptId = attempt.parse().unwrap();
    id.application.to_string()
}
