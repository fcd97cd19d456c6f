//! The doors of the gRPC port: a call without a proof, or with a proof of the wrong secret, is
//! refused before any handler runs, with what to set; a client cannot join a node; a daemon
//! cannot submit or kill (though it may watch, as NMs do).

use spindle_protocol as proto;
use spindle_protocol::application_client_client::ApplicationClientClient;
use spindle_protocol::resource_tracker_client::ResourceTrackerClient;
use spindle_security::{CallCredentials, Secret, SecretKind};
use tonic::Code;

use super::assert_refused;
use crate::common::*;

fn node_request(node_id: &str) -> proto::RegisterNodeRequest {
    proto::RegisterNodeRequest {
        node_id: node_id.into(),
        hostname: "rogue".into(),
        http_address: "127.0.0.1:1".into(),
        capability: Some(proto::Resource {
            memory_mb: 65536,
            vcores: 64,
        }),
        containers: vec![],
    }
}

#[tokio::test]
async fn a_wrong_or_missing_client_secret_is_refused_saying_what_to_set() {
    let mut rm = Rm::start().await;
    let wrong = Secret::from_text(&"w".repeat(64));
    let mut stranger = ApplicationClientClient::new(rm.with(CallCredentials::with_secret(
        SecretKind::Client,
        wrong,
        USER.into(),
    )));
    let message = assert_refused(
        stranger
            .get_new_application(proto::GetNewApplicationRequest {})
            .await,
        Code::Unauthenticated,
        "the proof does not match this cluster's client secret",
    );
    assert!(message.contains("SPINDLE_SECRET_FILE"), "{message}");

    let mut anonymous =
        ApplicationClientClient::new(rm.with(CallCredentials::user_only(USER.into())));
    let message = assert_refused(
        anonymous
            .list_applications(proto::ListApplicationsRequest::default())
            .await,
        Code::Unauthenticated,
        "needs proof of the cluster's client secret",
    );
    assert!(
        message.contains("SPINDLE_SECRET_FILE") && message.contains("--secret-file"),
        "{message}"
    );
    // The staging store and the log store have the same door.
    let mut staging = spindle_protocol::staging_store_client::StagingStoreClient::new(
        rm.with(CallCredentials::user_only(USER.into())),
    );
    assert_refused(
        staging
            .stat(proto::StatRequest {
                sha256: "0".repeat(64),
            })
            .await,
        Code::Unauthenticated,
        "client secret",
    );
    assert!(
        rm.client
            .list_applications(proto::ListApplicationsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .applications
            .is_empty()
    );
    rm.shutdown().await;
}

#[tokio::test]
async fn a_client_proof_cannot_register_a_node() {
    let mut rm = Rm::start().await;
    let client = CallCredentials::with_secret(
        SecretKind::Client,
        rm.secret(SecretKind::Client),
        USER.into(),
    );
    let mut tracker = ResourceTrackerClient::new(rm.with(client));
    assert_refused(
        tracker
            .register_node_manager(node_request("127.0.0.1:9"))
            .await,
        Code::Unauthenticated,
        "this call needs proof of the daemon secret, and a proof of the client secret was \
         presented",
    );
    let mut anonymous = ResourceTrackerClient::new(
        rm.with(CallCredentials::user_only(spindle_security::current_user())),
    );
    let message = assert_refused(
        anonymous
            .register_node_manager(node_request("127.0.0.1:9"))
            .await,
        Code::Unauthenticated,
        "daemon secret",
    );
    assert!(message.contains("SPINDLE_DAEMON_SECRET_FILE"), "{message}");
    let nodes = rm
        .client
        .list_nodes(proto::ListNodesRequest {})
        .await
        .unwrap()
        .into_inner()
        .nodes;
    assert!(nodes.is_empty(), "no node joined: {nodes:?}");
    // A client may not upload logs either (that is the NMs').
    let r = rm
        .logs
        .upload_logs(tokio_stream::iter(vec![proto::LogUploadChunk {
            end: true,
            ..Default::default()
        }]))
        .await;
    assert_refused(
        r,
        Code::PermissionDenied,
        "UploadLogs needs proof of the daemon secret",
    );
    rm.shutdown().await;
}

#[tokio::test]
async fn a_daemon_proof_cannot_submit_or_kill_but_may_watch() {
    let mut rm = Rm::start().await;
    let app = rm.submit(512).await;
    let daemon = CallCredentials::with_secret(
        SecretKind::Daemon,
        rm.secret(SecretKind::Daemon),
        spindle_security::current_user(),
    );
    let mut nm = ApplicationClientClient::new(rm.with(daemon));
    assert_refused(
        nm.get_new_application(proto::GetNewApplicationRequest {})
            .await,
        Code::PermissionDenied,
        "GetNewApplication needs proof of the client secret; this call proved the daemon secret",
    );
    assert_refused(
        nm.submit_application(submission(&app, 512)).await,
        Code::PermissionDenied,
        "SubmitApplication needs proof of the client secret",
    );
    assert_refused(
        nm.kill_application(proto::KillApplicationRequest {
            application_id: app.clone(),
            diagnostics: String::new(),
        })
        .await,
        Code::PermissionDenied,
        "KillApplication needs proof of the client secret",
    );
    assert_refused(
        nm.get_log_tokens(proto::GetLogTokensRequest {
            application_id: app.clone(),
        })
        .await,
        Code::PermissionDenied,
        "GetLogTokens needs proof of the client secret",
    );
    let mut watch = nm
        .watch_application(proto::GetApplicationReportRequest {
            application_id: app.clone(),
        })
        .await
        .expect("an NM may watch an application")
        .into_inner();
    let first = within("the first report", watch.message())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.state, proto::ApplicationState::Accepted as i32);
    rm.shutdown().await;
}
