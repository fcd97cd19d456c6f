//! Bad input from clients, AMs and NMs is refused with an error that names the field and the
//! limit, and changes nothing.

use spindle_protocol as proto;
use spindle_resource_manager::{ResourceManager, RmError};
use tonic::Code;

use crate::common::*;

fn assert_refused(result: Result<impl std::fmt::Debug, tonic::Status>, code: Code, message: &str) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{}", status.message());
    assert!(
        status.message().contains(message),
        "{:?} should contain {message:?}",
        status.message()
    );
}

#[tokio::test]
async fn bad_submissions_are_refused_and_change_nothing() {
    let mut rm = Rm::start().await;
    let id = rm.new_app().await;

    let r = rm.client.submit_application(submission(&id, 100_000)).await;
    assert_refused(
        r,
        Code::InvalidArgument,
        "am_resource memory_mb=100000 exceeds the maximum allocation of 8192 MB",
    );
    let r = rm.client.submit_application(submission(&id, -5)).await;
    assert_refused(
        r,
        Code::InvalidArgument,
        "am_resource.memory_mb=-5 must be at least 1",
    );
    let mut too_many = submission(&id, 512);
    too_many.max_attempts = 50;
    let r = rm.client.submit_application(too_many).await;
    assert_refused(
        r,
        Code::InvalidArgument,
        "max_attempts=50 exceeds the limit of 10",
    );
    let mut no_command = submission(&id, 512);
    no_command.am_container.as_mut().unwrap().command.clear();
    let r = rm.client.submit_application(no_command).await;
    assert_refused(r, Code::InvalidArgument, "command is empty");
    let r = rm.client.submit_application(submission("app_1", 512)).await;
    assert_refused(
        r,
        Code::InvalidArgument,
        "application_id: malformed application id \"app_1\"",
    );
    let never_issued = format!(
        "application_{}_9999",
        rm.rm.as_ref().unwrap().cluster_timestamp()
    );
    let r = rm
        .client
        .submit_application(submission(&never_issued, 512))
        .await;
    assert_refused(r, Code::InvalidArgument, "was not handed out");

    let apps = rm
        .client
        .list_applications(proto::ListApplicationsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .applications;
    assert!(apps.is_empty(), "nothing was created: {apps:?}");

    // The id is still good for a correct submission, once.
    rm.client
        .submit_application(submission(&id, 512))
        .await
        .unwrap();
    let r = rm.client.submit_application(submission(&id, 512)).await;
    assert_refused(r, Code::FailedPrecondition, "already submitted");
    rm.shutdown().await;
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_named() {
    let mut rm = Rm::start().await;
    let ts = rm.rm.as_ref().unwrap().cluster_timestamp();
    let r = rm
        .client
        .get_application_report(proto::GetApplicationReportRequest {
            application_id: format!("application_{ts}_0042"),
        })
        .await;
    assert_refused(
        r,
        Code::NotFound,
        &format!("application_id=application_{ts}_0042 is not known"),
    );
    let r = rm
        .client
        .kill_application(proto::KillApplicationRequest {
            application_id: "nonsense".into(),
            diagnostics: String::new(),
        })
        .await;
    assert_refused(
        r,
        Code::InvalidArgument,
        "application_id: malformed application id \"nonsense\"",
    );

    // An AM may name its own attempt only, and must name it well.
    let mut nm = FakeNm::register(&rm, 4096).await;
    rm.submit(512).await;
    let own = attempt_of(&nm.started().await.container_id);
    let mut am = rm.am_for(&own);
    let r = am
        .allocate(allocate_request(
            &format!("appattempt_{ts}_0042_000001"),
            vec![],
            0,
        ))
        .await;
    assert_refused(
        r,
        Code::PermissionDenied,
        &format!("this call names attempt_id=appattempt_{ts}_0042_000001"),
    );
    let r = am
        .allocate(allocate_request("appattempt_x", vec![], 0))
        .await;
    assert_refused(
        r,
        Code::InvalidArgument,
        "attempt_id: malformed application attempt id",
    );
    rm.shutdown().await;
}

#[tokio::test]
async fn bad_asks_name_the_field_and_the_limit() {
    let mut rm = Rm::start().await;
    let mut nm = FakeNm::register(&rm, 8192).await;
    rm.submit(512).await;
    let attempt = attempt_of(&nm.started().await.container_id);
    let r = rm.allocate(&attempt, vec![ask(512, 1, 1)], 0).await;
    assert_refused(r, Code::FailedPrecondition, "has not registered");
    rm.register_am(&attempt).await;

    let r = rm.allocate(&attempt, vec![ask(100_000, 1, 1)], 0).await;
    assert_refused(
        r,
        Code::InvalidArgument,
        "container request memory_mb=100000 exceeds the maximum allocation of 8192 MB",
    );
    let r = rm
        .allocate(&attempt, vec![ask(512, 1, 1), ask(512, 0, 1)], 0)
        .await;
    assert_refused(
        r,
        Code::InvalidArgument,
        "asks[1].capability.vcores=0 must be at least 1",
    );
    let r = rm.allocate(&attempt, vec![ask(-1, 1, 1)], 0).await;
    assert_refused(
        r,
        Code::InvalidArgument,
        "asks[0].capability.memory_mb=-1 must be at least 1",
    );
    let r = rm.allocate(&attempt, vec![ask(512, 1, -3)], 0).await;
    assert_refused(
        r,
        Code::InvalidArgument,
        "asks[0].num_containers=-3 must not be negative",
    );
    let mut no_capability = ask(512, 1, 1);
    no_capability.capability = None;
    let r = rm.allocate(&attempt, vec![no_capability], 0).await;
    assert_refused(r, Code::InvalidArgument, "asks[0].capability is missing");
    let mut bad_release = allocate_request(&attempt, vec![], 0);
    bad_release.release = vec!["container_1_1".into()];
    assert_refused(
        rm.am_for(&attempt).allocate(bad_release).await,
        Code::InvalidArgument,
        "release[0]: malformed container id",
    );

    // None of it asked for anything: the node still holds only the AM.
    let got = rm.allocate(&attempt, vec![], 0).await.unwrap();
    assert!(got.allocated.is_empty());
    let r = rm
        .am_for(&attempt)
        .finish_application_master(proto::FinishApplicationMasterRequest {
            attempt_id: attempt.clone(),
            final_status: 0,
            diagnostics: String::new(),
            tracking_url: String::new(),
        })
        .await;
    assert_refused(r, Code::InvalidArgument, "final_status=0 is not allowed");
    rm.shutdown().await;
}

#[tokio::test]
async fn nodes_with_bad_registrations_are_refused_and_unknown_ones_resync() {
    let mut rm = Rm::start().await;
    let r = rm
        .tracker
        .register_node_manager(proto::RegisterNodeRequest {
            node_id: "127.0.0.1:9".into(),
            capability: Some(proto::Resource {
                memory_mb: 0,
                vcores: 4,
            }),
            ..Default::default()
        })
        .await;
    assert_refused(
        r,
        Code::InvalidArgument,
        "capability.memory_mb=0 must be at least 1",
    );
    let r = rm
        .tracker
        .register_node_manager(proto::RegisterNodeRequest {
            node_id: "no port".into(),
            capability: Some(proto::Resource {
                memory_mb: 1024,
                vcores: 4,
            }),
            ..Default::default()
        })
        .await;
    assert_refused(r, Code::InvalidArgument, "node_id: malformed node id");
    let answer = rm
        .tracker
        .node_heartbeat(proto::NodeHeartbeatRequest {
            node_id: "127.0.0.1:9".into(),
            healthy: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.action, proto::NodeAction::Resync as i32);
    rm.shutdown().await;
}

#[tokio::test]
async fn a_taken_port_is_named_in_the_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let state = tempfile::tempdir().unwrap();
    let mut config = test_config(state.path());
    config.bind = addr;
    let err = match ResourceManager::start(config).await {
        Err(e) => e,
        Ok(_) => panic!("bound a taken port"),
    };
    assert!(matches!(err, RmError::Bind { .. }));
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
}

#[tokio::test]
async fn bad_security_settings_are_named() {
    let state = tempfile::tempdir().unwrap();
    let refused = |change: &dyn Fn(&mut spindle_resource_manager::RmConfig)| {
        let mut config = test_config(state.path());
        change(&mut config);
        async move {
            match ResourceManager::start(config).await {
                Err(e) => e.to_string(),
                Ok(_) => panic!("started with a bad setting"),
            }
        }
    };
    let err = refused(&|c| c.admins = vec!["ok".into(), "not ok".into()]).await;
    assert!(
        err.contains("admins [1]") && err.contains("not a user name"),
        "{err}"
    );
    let err = refused(&|c| {
        c.queue_acls = [(
            "prod".to_string(),
            spindle_resource_manager::QueueAcl {
                submit: vec!["a/b".into()],
            },
        )]
        .into()
    })
    .await;
    assert!(
        err.contains("queue-acls prod.submit[0]") && err.contains("\"*\""),
        "{err}"
    );
    let err = refused(&|c| c.key_roll_interval = std::time::Duration::ZERO).await;
    assert!(
        err.contains("key-roll-interval must be longer than 0"),
        "{err}"
    );
}
