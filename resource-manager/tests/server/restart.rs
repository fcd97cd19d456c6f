//! The RM is cut off (as by SIGKILL: no graceful end) while one application runs with containers
//! on a node, one has finished and one waits for room, and a new RM starts on the same state
//! directory: nothing is lost. The finished one is listed as it ended, the running one is still
//! RUNNING, its node re-registers and its containers are re-attached, its AM is told to resync and
//! then finishes it, the waiting one is started, new containers carry the new epoch, and the
//! application ids go on where they were.

use spindle_containers::exit_status::ABORTED;
use spindle_protocol as proto;

use crate::common::*;

async fn finish(rm: &mut Rm, attempt: &str, status: proto::FinalStatus, diagnostics: &str) {
    rm.finish(attempt, status, diagnostics).await;
}

fn sequence(app: &str) -> u32 {
    let id: spindle_containers::ApplicationId = app.parse().unwrap();
    id.sequence
}

#[tokio::test]
async fn a_restarted_rm_loses_nothing_and_running_work_goes_on() {
    let mut rm = Rm::start().await;
    let mut nm = FakeNm::register(&rm, 8192).await;

    // A: ran and finished with a failure; its AM exited.
    let a = rm.submit(512).await;
    let am_a = nm.started().await.container_id;
    rm.register_am(&attempt_of(&am_a)).await;
    finish(
        &mut rm,
        &attempt_of(&am_a),
        proto::FinalStatus::Failed,
        "it broke",
    )
    .await;
    nm.heartbeat(vec![completed(&am_a, 0)]).await;

    // B: running, with two containers besides its AM.
    let b = rm.submit(512).await;
    let am_b = nm.started().await.container_id;
    let attempt_b = attempt_of(&am_b);
    rm.register_am(&attempt_b).await;
    let got = rm
        .allocate(&attempt_b, vec![ask(512, 1, 2)], 0)
        .await
        .unwrap();
    assert_eq!(got.allocated.len(), 2);
    let (w1, w2) = (
        got.allocated[0].container_id.clone(),
        got.allocated[1].container_id.clone(),
    );
    nm.heartbeat(vec![running(&am_b), running(&w1), running(&w2)])
        .await;

    // C: accepted, its AM too big for the room left (8192 - 3 × 512 < 6912).
    let c = rm.submit(6912).await;
    let spare = rm.new_app().await;
    assert_eq!(
        rm.report(&c).await.state,
        proto::ApplicationState::Accepted as i32
    );

    let mut rm = rm.crash_and_restart().await;

    let listed = rm
        .client
        .list_applications(proto::ListApplicationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .applications;
    let ids: Vec<_> = listed.iter().map(|r| r.application_id.clone()).collect();
    assert_eq!(ids, vec![a.clone(), b.clone(), c.clone()]);
    let report_a = &listed[0];
    assert_eq!(report_a.state, proto::ApplicationState::Finished as i32);
    assert_eq!(report_a.final_status, proto::FinalStatus::Failed as i32);
    assert_eq!(report_a.diagnostics, "it broke");
    assert_eq!(listed[1].state, proto::ApplicationState::Running as i32);
    assert_eq!(listed[2].state, proto::ApplicationState::Accepted as i32);

    let next = rm.new_app().await;
    assert_eq!(
        sequence(&next),
        sequence(&spare) + 1,
        "no id handed out twice"
    );
    assert_eq!(
        next.rsplit_once('_').unwrap().0,
        a.rsplit_once('_').unwrap().0,
        "ids keep their cluster timestamp"
    );

    // The NM learns that the RM does not know it, and registers again with what it runs: B's AM
    // and one worker (the other died while the RM was down).
    nm.reconnect(&rm);
    let answer = nm.heartbeat(vec![running(&am_b), running(&w1)]).await;
    assert_eq!(answer.action, proto::NodeAction::Resync as i32);
    nm.register_again(vec![running(&am_b), running(&w1)]).await;
    let report_b = rm.report(&b).await;
    assert_eq!(report_b.running_containers, 2, "the AM and w1, re-attached");
    assert_eq!(report_b.allocated.unwrap().memory_mb, 1024);

    // With w2's room back, C's AM is started, in the new epoch.
    let am_c = nm.started().await.container_id;
    assert!(am_c.starts_with("container_e1_"), "{am_c}");
    assert_eq!(
        attempt_of(&am_c),
        format!("{}_000001", c.replace("application_", "appattempt_"))
    );

    // B's AM is told to resync (and that w2 is gone), registers again, asks for what is left
    // (8192 - 512 - 512 - 6912 = 256 MB), and finishes.
    let resync = rm.allocate(&attempt_b, vec![], 0).await.unwrap();
    assert_eq!(resync.command, proto::AmCommand::Resync as i32);
    assert_eq!(resync.completed.len(), 1);
    assert_eq!(resync.completed[0].container_id, w2);
    assert_eq!(resync.completed[0].exit_status, ABORTED);
    rm.register_am(&attempt_b).await;
    let got = within(
        "the allocation",
        rm.allocate(&attempt_b, vec![ask(256, 1, 1)], 60_000),
    )
    .await
    .unwrap();
    assert_eq!(got.command, proto::AmCommand::None as i32);
    assert_eq!(got.allocated.len(), 1);
    let w3 = got.allocated[0].container_id.clone();
    assert!(w3.starts_with("container_e1_"), "{w3}");
    finish(&mut rm, &attempt_b, proto::FinalStatus::Succeeded, "").await;
    let report_b = rm.report(&b).await;
    assert_eq!(report_b.state, proto::ApplicationState::Finished as i32);
    assert_eq!(report_b.final_status, proto::FinalStatus::Succeeded as i32);
    assert_eq!(report_b.attempts.len(), 1, "the same attempt throughout");

    // Its left-over containers are stopped as after any application.
    match nm.next_event().await {
        NmEvent::Stopped { mut containers, .. } => {
            containers.sort();
            let mut expected = vec![w1, w3];
            expected.sort();
            assert_eq!(containers, expected);
        }
        other => panic!("expected StopContainers, got {other:?}"),
    }
    rm.shutdown().await;
}

#[tokio::test]
async fn a_graceful_restart_keeps_the_state_too() {
    let mut rm = Rm::start().await;
    let app = rm.submit(512).await;
    let mut rm = rm.shutdown_and_restart().await;
    let report = rm.report(&app).await;
    assert_eq!(report.state, proto::ApplicationState::Accepted as i32);
    assert_eq!(
        report.attempts.len(),
        1,
        "still waiting for a node, as before"
    );
    rm.shutdown().await;
}
