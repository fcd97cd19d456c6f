//! The ApplicationMaster service takes AM tokens only: none, a forged one, an expired one, or
//! another attempt's is refused, and nothing changes. A token past half its life is renewed in
//! the Allocate answer, with NM tokens for the nodes the application holds containers on. An
//! unmanaged AM gets its token in the submission's answer.

use spindle_protocol as proto;
use spindle_security::Key;
use tonic::Code;

use super::{am_token, assert_refused, master_key};
use crate::common::*;

const DAY_MS: u64 = 86_400_000;

fn register(attempt: &str) -> proto::RegisterApplicationMasterRequest {
    proto::RegisterApplicationMasterRequest {
        attempt_id: attempt.into(),
        host: "127.0.0.1".into(),
        rpc_port: 0,
        tracking_url: String::new(),
    }
}

#[tokio::test]
async fn missing_malformed_forged_and_other_attempts_tokens_are_refused() {
    let mut rm = Rm::start().await;
    let mut nm = FakeNm::register(&rm, 8192).await;
    let app = rm.submit(512).await;
    let attempt = attempt_of(&nm.started().await.container_id);
    rm.submit(512).await;
    let other = attempt_of(&nm.started().await.container_id);

    let mut none = rm.am_with_token("");
    assert_refused(
        none.register_application_master(register(&attempt)).await,
        Code::Unauthenticated,
        "AM token",
    );
    assert_refused(
        rm.am_with_token("not a token")
            .register_application_master(register(&attempt))
            .await,
        Code::Unauthenticated,
        "the AM token is malformed",
    );
    let forged = am_token(&attempt, u64::MAX, &Key::from_bytes(1, [7; 32]));
    assert_refused(
        rm.am_with_token(&forged)
            .register_application_master(register(&attempt))
            .await,
        Code::Unauthenticated,
        "the AM token's signature does not match its contents: it was forged or altered",
    );
    // The other application's AM, with its own valid token, cannot act for this attempt.
    let message = assert_refused(
        rm.am_for(&other)
            .allocate(allocate_request(&attempt, vec![ask(512, 1, 4)], 0))
            .await,
        Code::PermissionDenied,
        &format!("the AM token is for attempt {other}, and this call names attempt_id={attempt}"),
    );
    assert!(message.contains("its own attempt only"), "{message}");
    assert_refused(
        rm.am_for(&other)
            .finish_application_master(proto::FinishApplicationMasterRequest {
                attempt_id: attempt.clone(),
                final_status: proto::FinalStatus::Failed as i32,
                diagnostics: String::new(),
                tracking_url: String::new(),
            })
            .await,
        Code::PermissionDenied,
        "its own attempt only",
    );
    let report = rm.report(&app).await;
    assert_eq!(report.state, proto::ApplicationState::Accepted as i32);
    assert_eq!(report.running_containers, 1, "only its AM");
    rm.shutdown().await;
}

#[tokio::test]
async fn an_expired_token_is_refused_and_one_past_half_its_life_is_renewed() {
    let mut rm = Rm::start().await;
    let mut nm = FakeNm::register(&rm, 8192).await;
    rm.submit(512).await;
    let am = nm.started().await.container_id;
    let attempt = attempt_of(&am);
    rm.register_am(&attempt).await;

    // Tokens signed with the RM's own master key, as only the RM could make them.
    let mut key = None;
    let rm = rm
        .restart_after(true, |state| key = Some(master_key(state)))
        .await;
    let key = key.unwrap();
    let now = spindle_security::now_ms();
    let expired = am_token(&attempt, now - 5_000, &key);
    let aging = am_token(&attempt, now + 60_000, &key);
    nm.reconnect(&rm);
    nm.register_again(vec![running(&am)]).await;

    assert_refused(
        rm.am_with_token(&expired)
            .allocate(allocate_request(&attempt, vec![], 0))
            .await,
        Code::Unauthenticated,
        "the AM token expired",
    );

    // A token past half its life (two days) still works, and the answer brings a new one and
    // the NM tokens for the node that holds the application's containers.
    let mut aging_am = rm.am_with_token(&aging);
    aging_am
        .register_application_master(register(&attempt))
        .await
        .unwrap();
    let answer = aging_am
        .allocate(allocate_request(&attempt, vec![], 0))
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.am_token.is_empty(), "a renewed AM token");
    assert_eq!(answer.nm_tokens.len(), 1);
    assert_eq!(answer.nm_tokens[0].node_id, nm.node_id);
    let renewed = answer.am_token;
    let said: proto::AmTokenIdentifier =
        spindle_security::verify(&renewed, &spindle_security::KeyRing::new(vec![key]), now)
            .unwrap();
    assert_eq!(said.attempt_id, attempt);
    assert!(
        said.expiry_ms >= now + 2 * DAY_MS - 60_000,
        "{}",
        said.expiry_ms
    );

    // The new one is fresh: no renewal with it.
    let answer = rm
        .am_with_token(&renewed)
        .allocate(allocate_request(&attempt, vec![], 0))
        .await
        .unwrap()
        .into_inner();
    assert!(answer.am_token.is_empty() && answer.nm_tokens.is_empty());
    rm.shutdown().await;
}

#[tokio::test]
async fn an_unmanaged_am_gets_its_token_with_the_submission() {
    let mut rm = Rm::start().await;
    let app = rm.new_app().await;
    let mut request = submission(&app, 512);
    request.unmanaged = true;
    request.am_container = None;
    let answer = rm
        .client
        .submit_application(request)
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.am_token.is_empty());
    let mut am = rm.am_with_token(&answer.am_token);
    am.register_application_master(register(&answer.attempt_id))
        .await
        .expect("the unmanaged AM registers with its token");
    assert_eq!(
        rm.report(&app).await.state,
        proto::ApplicationState::Running as i32
    );
    rm.shutdown().await;
}
