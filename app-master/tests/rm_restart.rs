//! An application master rides out a restart of its resource manager: a call it makes while no
//! RM is listening keeps trying (with capped back-off) instead of failing the AM, is answered by
//! the RM that comes back on the same port and state, and the attempt goes on with the AM token
//! it had — so distributed-shell's AM, which has no retry of its own, survives the restart.

use std::time::Duration;

use spindle_app_master::{AmCommand, AmRmClient, FinalStatus};
use spindle_containers::AttemptId;
use spindle_protocol as proto;
use spindle_protocol::application_client_client::ApplicationClientClient;
use spindle_resource_manager::{ResourceManager, RmConfig};
use spindle_security::{CallCredentials, Secret, SecretKind, current_user};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Hang guards only, far above what each step takes.
const GUARD: Duration = Duration::from_secs(60);

type Applications = ApplicationClientClient<InterceptedService<Channel, CallCredentials>>;

async fn applications(rm: &ResourceManager, state_dir: &std::path::Path) -> Applications {
    let secret = Secret::read(&state_dir.join(SecretKind::Client.file_name()))
        .expect("the RM generated its client secret");
    let channel = Channel::from_shared(format!("http://{}", rm.rpc_addr()))
        .unwrap()
        .connect()
        .await
        .expect("the RM accepts connections");
    ApplicationClientClient::with_interceptor(
        channel,
        CallCredentials::with_secret(SecretKind::Client, secret, current_user()),
    )
}

/// Submits an unmanaged application: the test itself is its AM.
async fn unmanaged(apps: &mut Applications) -> (AttemptId, String) {
    let id = apps
        .get_new_application(proto::GetNewApplicationRequest {})
        .await
        .unwrap()
        .into_inner()
        .application_id;
    let submitted = apps
        .submit_application(proto::SubmitApplicationRequest {
            application_id: id,
            name: "rides-out-a-restart".into(),
            user: current_user(),
            unmanaged: true,
            ..Default::default()
        })
        .await
        .expect("the submission is accepted")
        .into_inner();
    (submitted.attempt_id.parse().unwrap(), submitted.am_token)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_am_call_made_while_the_rm_is_down_is_answered_once_it_is_back() {
    let state = tempfile::tempdir().unwrap();
    let config = RmConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        web_bind: None,
        state_dir: state.path().to_path_buf(),
        ..RmConfig::default()
    };
    let rm = ResourceManager::start(config.clone()).await.unwrap();
    let addr = rm.rpc_addr();
    let mut apps = applications(&rm, state.path()).await;
    let (attempt, am_token) = unmanaged(&mut apps).await;
    assert!(!am_token.is_empty(), "an unmanaged AM gets its AM token");
    let am = AmRmClient::new(&addr.to_string(), attempt, &am_token).unwrap();
    am.register("localhost", 0, "").await.unwrap();

    rm.shutdown().await;
    let mut call = tokio::spawn({
        let am = am.clone();
        async move { am.allocate(0.0, Duration::ZERO).await }
    });
    // Nothing listens now: the call must still be trying, not failed.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut call)
            .await
            .is_err(),
        "the call ended while no RM was there"
    );

    let rm = ResourceManager::start(RmConfig {
        bind: addr,
        ..config
    })
    .await
    .expect("the RM starts again on its port");
    let answer = tokio::time::timeout(GUARD, call)
        .await
        .expect("hang guard")
        .unwrap()
        .expect("the new RM answers the call");
    // The new RM recovered the attempt and asked it to register again, which the client did.
    assert_ne!(answer.command, AmCommand::Shutdown, "{answer:?}");
    am.allocate(0.0, Duration::ZERO)
        .await
        .expect("the attempt goes on");
    am.finish(FinalStatus::Succeeded, "", "").await.unwrap();

    let mut apps = applications(&rm, state.path()).await;
    let report = apps
        .get_application_report(proto::GetApplicationReportRequest {
            application_id: attempt.application().to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        report.state(),
        proto::ApplicationState::Finished,
        "{report:?}"
    );
    assert_eq!(report.final_status(), proto::FinalStatus::Succeeded);
    rm.shutdown().await;
}
