//! The keys behind the tokens: kept in the state store, so that after a restart the RM accepts
//! the AM tokens it handed out before and announces the same node keys (running AMs and
//! containers carry on); rolled by a timer, a new node key announced beside the old one, and an
//! AM whose token the old key signed handed a new token.

use std::time::Duration;

use spindle_protocol as proto;

use crate::common::*;

#[tokio::test]
async fn am_tokens_and_node_keys_survive_a_restart() {
    let mut rm = Rm::start().await;
    let mut nm = FakeNm::register(&rm, 8192).await;
    let before = nm.keys.announced();
    rm.submit(512).await;
    let am = nm.started().await.container_id;
    let attempt = attempt_of(&am);
    rm.register_am(&attempt).await;
    let token = rm.am_tokens.get(&attempt).unwrap();

    let mut rm = rm.crash_and_restart().await;
    nm.reconnect(&rm);
    let answer = nm.register_again(vec![running(&am)]).await;
    assert_eq!(
        answer.node_keys, before,
        "the same node keys after the restart"
    );

    // The AM goes on with the token it was started with.
    let mut same_am = rm.am_with_token(&token);
    let resync = same_am
        .allocate(allocate_request(&attempt, vec![], 0))
        .await
        .expect("the AM token from before the restart is accepted")
        .into_inner();
    assert_eq!(resync.command, proto::AmCommand::Resync as i32);
    rm.register_am(&attempt).await;
    let got = rm
        .allocate(&attempt, vec![ask(512, 1, 1)], 0)
        .await
        .unwrap();
    assert_eq!(got.allocated.len(), 1);
    let said = nm
        .keys
        .check_container_token(&got.allocated[0].container_token)
        .expect("a node that kept its keys checks new container tokens");
    assert_eq!(said.user, USER);
    rm.shutdown().await;
}

#[tokio::test]
async fn keys_roll_on_a_timer_and_an_am_gets_a_token_of_the_new_key() {
    let mut rm = Rm::start_with(|c| c.key_roll_interval = Duration::from_secs(3)).await;
    let mut nm = FakeNm::register(&rm, 8192).await;
    let first = nm.keys.announced();
    assert_eq!(first.len(), 1);
    rm.submit(512).await;
    let am = nm.started().await.container_id;
    let attempt = attempt_of(&am);
    rm.register_am(&attempt).await;

    // The new node key is announced beside the old one, which stays while its tokens live.
    let announced = within("a new node key to be announced", async {
        loop {
            let answer = nm.heartbeat(vec![running(&am)]).await;
            if answer.node_keys.len() > 1 {
                return answer.node_keys;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(
        announced.last(),
        first.first(),
        "the old key is still announced"
    );
    assert!(announced[0].key_id > first[0].key_id, "newest first");

    // The master key rolled with it: the AM's next Allocate brings a token of the new key.
    let answer = rm.allocate(&attempt, vec![], 0).await.unwrap();
    assert!(!answer.am_token.is_empty(), "a token of the new master key");
    assert_eq!(answer.nm_tokens.len(), 1, "and NM tokens for its node");
    rm.am_with_token(&answer.am_token)
        .allocate(allocate_request(&attempt, vec![], 0))
        .await
        .expect("the new token is accepted");
    rm.shutdown().await;
}
