//! The path of one application: submit → the AM container is started on a node → the AM
//! registers → asks for 3 containers and gets them at once → a completion reported by the NM
//! reaches the AM's open poll at once → the AM finishes → the app is FINISHED/SUCCEEDED, its
//! left-over containers stopped, and a watcher saw it all.

use spindle_containers::exit_status::KILLED_AFTER_APP_COMPLETION;
use spindle_protocol as proto;

use crate::common::*;

#[tokio::test]
async fn an_application_runs_from_submission_to_success() {
    let mut rm = Rm::start().await;
    let mut nm = FakeNm::register(&rm, 4096).await;

    let app = rm.submit(512).await;
    let mut watch = rm
        .client
        .watch_application(proto::GetApplicationReportRequest {
            application_id: app.clone(),
        })
        .await
        .unwrap()
        .into_inner();

    // The RM launches the AM container itself, with the submitted launch context.
    let am = nm.started().await;
    let launch = am.launch_context.as_ref().unwrap();
    assert_eq!(launch.command, vec!["./am", "--flag"]);
    assert_eq!(
        launch.environment.get("ROLE").map(String::as_str),
        Some("am")
    );
    assert_eq!(am.resource.unwrap().memory_mb, 512);
    // The user it runs as comes from its container token only, which names the owner.
    let token = nm.keys.check_container_token(&am.container_token).unwrap();
    assert_eq!(token.user, USER);
    assert!(
        launch.environment.contains_key(AM_TOKEN_ENV),
        "the AM is handed its token"
    );
    let attempt = attempt_of(&am.container_id);

    rm.register_am(&attempt).await;
    let report = rm.report(&app).await;
    assert_eq!(report.state, proto::ApplicationState::Running as i32);
    assert_eq!(report.current_attempt_id, attempt);

    // Allocation happens when the ask arrives: the answer carries all three at once, long
    // before the poll's 60 s wait (no heartbeat in between).
    let got = within(
        "the allocation",
        rm.allocate(&attempt, vec![ask(512, 1, 3)], 60_000),
    )
    .await
    .unwrap();
    assert_eq!(got.allocated.len(), 3);
    for c in &got.allocated {
        assert_eq!(c.node_id, nm.node_id);
        assert_eq!(c.node_address, nm.node_id);
        assert_eq!(c.resource.unwrap().memory_mb, 512);
        let token = nm.keys.check_container_token(&c.container_token).unwrap();
        assert_eq!(
            (token.container_id.as_str(), token.user.as_str()),
            (c.container_id.as_str(), USER)
        );
    }
    assert_eq!(got.nm_tokens.len(), 1, "an NM token for the node");
    assert_eq!(got.num_cluster_nodes, 1);

    // A poll waits for news; the NM's heartbeat with a completion answers it at once.
    let mut poller = rm.am_for(&attempt);
    let open = tokio::spawn({
        let attempt = attempt.clone();
        async move {
            poller
                .allocate(allocate_request(&attempt, vec![], 60_000))
                .await
        }
    });
    let first = got.allocated[0].container_id.clone();
    let running: Vec<_> = got
        .allocated
        .iter()
        .map(|c| running(&c.container_id))
        .collect();
    nm.heartbeat(running).await;
    let answer = nm.heartbeat(vec![completed(&first, 0)]).await;
    assert_eq!(answer.containers_acknowledged, vec![first.clone()]);
    let polled = within("the open poll to be answered", open)
        .await
        .unwrap()
        .unwrap()
        .into_inner();
    assert_eq!(polled.completed.len(), 1);
    assert_eq!(polled.completed[0].container_id, first);
    assert_eq!(polled.completed[0].exit_status, 0);

    rm.finish(&attempt, proto::FinalStatus::Succeeded, "done")
        .await;
    let report = rm.report(&app).await;
    assert_eq!(report.state, proto::ApplicationState::Finished as i32);
    assert_eq!(report.final_status, proto::FinalStatus::Succeeded as i32);
    assert_eq!(report.containers.len(), 4, "the AM's and three more");

    // The two containers still running are stopped as left-overs (-107); the AM exits itself.
    match nm.next_event().await {
        NmEvent::Stopped {
            mut containers,
            exit_status,
        } => {
            containers.sort();
            let mut expected: Vec<_> = got.allocated[1..]
                .iter()
                .map(|c| c.container_id.clone())
                .collect();
            expected.sort();
            assert_eq!(containers, expected);
            assert_eq!(exit_status, KILLED_AFTER_APP_COMPLETION);
        }
        other => panic!("expected StopContainers, got {other:?}"),
    }

    // The watcher saw the app through to its final state, and its stream ended there.
    let mut states = vec![];
    while let Some(report) = within("the watch stream", watch.message()).await.unwrap() {
        states.push(report.state);
    }
    assert_eq!(
        states.first(),
        Some(&(proto::ApplicationState::Accepted as i32))
    );
    assert!(states.contains(&(proto::ApplicationState::Running as i32)));
    assert_eq!(
        states.last(),
        Some(&(proto::ApplicationState::Finished as i32))
    );
    rm.shutdown().await;
}

#[tokio::test]
async fn the_am_container_dying_starts_a_new_attempt() {
    let mut rm = Rm::start().await;
    let mut nm = FakeNm::register(&rm, 4096).await;
    let app = rm.submit(512).await;
    let first = nm.started().await.container_id;
    nm.heartbeat(vec![completed(&first, 1)]).await;
    let second = nm.started().await.container_id;
    assert_eq!(attempt_of(&second).split('_').next_back(), Some("000002"));
    let report = rm.report(&app).await;
    assert_eq!(report.state, proto::ApplicationState::Accepted as i32);
    assert_eq!(report.attempts.len(), 2);
    assert_eq!(report.attempts[0].state, proto::AttemptState::Failed as i32);
    assert!(report.attempts[0].diagnostics.contains("exit status 1"));
    rm.shutdown().await;
}
