//! What the RM hands out for nodes to check: every allocated container carries a container
//! token that verifies with the node keys derived from the daemon secret and names the
//! application's owner, each Allocate answer an NM token per node it allocated on, and the RM's
//! own AM launch the AM's container token. Log tokens and aggregated logs are for the owner and
//! admins only.

use spindle_protocol as proto;
use spindle_security::{node_key_ring, verify};
use tonic::Code;

use super::assert_refused;
use crate::common::*;

#[tokio::test]
async fn containers_carry_tokens_that_nodes_check_and_that_name_the_owner() {
    let mut rm = Rm::start().await;
    let mut nm = FakeNm::register(&rm, 8192).await;
    let app = rm.submit(512).await;

    // The RM started the AM with its container token (the fake NM checked it, and the NM token
    // the call carried, as a real one does).
    let am = nm.started().await;
    let said = nm.keys.check_container_token(&am.container_token).unwrap();
    assert_eq!(said.user, USER);
    assert_eq!(said.container_id, am.container_id);
    assert_eq!(said.application_id, app);
    assert_eq!(said.resource, am.resource);
    let attempt = attempt_of(&am.container_id);
    rm.register_am(&attempt).await;

    let got = rm
        .allocate(&attempt, vec![ask(1024, 1, 2)], 0)
        .await
        .unwrap();
    assert_eq!(got.allocated.len(), 2);
    // Checked the way an NM checks them: with keys derived from the daemon secret and the
    // seeds the RM announced.
    let ring = node_key_ring(
        &rm.secret(spindle_security::SecretKind::Daemon),
        &nm.keys.announced(),
    );
    let now = spindle_security::now_ms();
    for c in &got.allocated {
        let said: proto::ContainerTokenIdentifier = verify(&c.container_token, &ring, now).unwrap();
        assert_eq!(said.container_id, c.container_id);
        assert_eq!(said.node_id, nm.node_id);
        assert_eq!(said.resource, c.resource);
        assert_eq!(said.user, USER);
        assert!(
            said.expiry_ms <= now + 10 * 60_000,
            "container-token-expiry, 10 min"
        );
    }
    assert_eq!(got.nm_tokens.len(), 1, "one node, one NM token");
    assert_eq!(got.nm_tokens[0].node_id, nm.node_id);
    let said: proto::NmTokenIdentifier = verify(&got.nm_tokens[0].token, &ring, now).unwrap();
    assert_eq!(
        (said.application_id.as_str(), said.user.as_str()),
        (app.as_str(), USER)
    );

    // A token other than the RM's is no container token at all.
    let rogue = node_key_ring(
        &spindle_security::Secret::from_text(&"r".repeat(64)),
        &nm.keys.announced(),
    );
    assert!(
        verify::<proto::ContainerTokenIdentifier>(&got.allocated[0].container_token, &rogue, now)
            .is_err()
    );
    rm.shutdown().await;
}

#[tokio::test]
async fn log_tokens_and_aggregated_logs_are_for_the_owner_and_admins() {
    let mut rm = Rm::start_with(|c| c.admins = vec!["boss".into()]).await;
    let mut nm = FakeNm::register(&rm, 8192).await;
    let app = rm.submit(512).await;
    let am = nm.started().await.container_id;
    rm.log_uploads
        .upload_logs(tokio_stream::iter(vec![
            proto::LogUploadChunk {
                container_id: am.clone(),
                file: "stdout".into(),
                data: b"secret results".to_vec(),
                node_id: nm.node_id.clone(),
                end: false,
            },
            proto::LogUploadChunk {
                end: true,
                ..Default::default()
            },
        ]))
        .await
        .unwrap();
    let ask_tokens = |user: &str| {
        let mut client = rm.client_as(user);
        let app = app.clone();
        async move {
            client
                .get_log_tokens(proto::GetLogTokensRequest {
                    application_id: app,
                })
                .await
                .map(tonic::Response::into_inner)
        }
    };

    let tokens = ask_tokens(USER).await.unwrap().tokens;
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].node_id, nm.node_id);
    let ring = node_key_ring(
        &rm.secret(spindle_security::SecretKind::Daemon),
        &nm.keys.announced(),
    );
    let said: proto::NmTokenIdentifier =
        verify(&tokens[0].token, &ring, spindle_security::now_ms()).unwrap();
    assert_eq!(said.application_id, app);
    assert_eq!(
        ask_tokens("boss").await.unwrap().tokens.len(),
        1,
        "an admin may"
    );
    let message = assert_refused(
        ask_tokens("mallory").await,
        Code::PermissionDenied,
        &format!("user mallory may not get the log tokens of application {app}, owned by {USER}"),
    );
    assert!(message.contains("boss"), "names who may: {message}");

    let list = proto::ListLogsRequest {
        application_id: app.clone(),
        container_id: String::new(),
    };
    let read = proto::ReadLogRequest {
        container_id: am.clone(),
        file: "stdout".into(),
        offset: 0,
    };
    let mut mallory = spindle_protocol::log_store_client::LogStoreClient::new(rm.with(
        spindle_security::CallCredentials::with_secret(
            spindle_security::SecretKind::Client,
            rm.secret(spindle_security::SecretKind::Client),
            "mallory".into(),
        ),
    ));
    assert_refused(
        mallory.list_logs(list.clone()).await,
        Code::PermissionDenied,
        "user mallory may not read the logs of application",
    );
    assert_refused(
        mallory.read_log(read.clone()).await,
        Code::PermissionDenied,
        "user mallory may not read the logs of application",
    );
    let listed = rm.logs.list_logs(list).await.unwrap().into_inner();
    assert_eq!(listed.containers.len(), 1, "the owner may");
    let mut stream = rm.logs.read_log(read).await.unwrap().into_inner();
    let chunk = stream.message().await.unwrap().unwrap();
    assert_eq!(chunk.data, b"secret results");
    rm.shutdown().await;
}
