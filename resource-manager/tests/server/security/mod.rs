//! Who may call what, over the wire: proofs of the secrets at every service's door (`proofs`),
//! AM tokens for the ApplicationMaster service (`am_tokens`), the tokens the RM hands out for
//! nodes to check (`tokens`), the keys behind them across restarts and rolls (`keys`), and the
//! owner/admin and queue ACLs (`acl`).

mod acl;
mod am_tokens;
mod keys;
mod proofs;
mod tokens;

use spindle_containers::AttemptId;
use spindle_protocol as proto;
use spindle_resource_manager::STORE_FILE;
use spindle_resource_manager::store::{EmbeddedStore, KeyFamily, StateStore};
use spindle_security::{Key, issue};
use tonic::Code;

/// Checks a refusal's code and that its message says `says`.
pub fn assert_refused<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: Code,
    says: &str,
) -> String {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), code, "{}", status.message());
    assert!(
        status.message().contains(says),
        "{:?} should say {says:?}",
        status.message()
    );
    status.message().to_string()
}

/// The RM's current master key, read from the state store of a stopped RM: what only the RM
/// can sign AM tokens with.
pub fn master_key(state_dir: &std::path::Path) -> Key {
    let store = EmbeddedStore::open(&state_dir.join(STORE_FILE)).expect("the stopped RM's store");
    store
        .load_keys()
        .expect("its keys")
        .into_iter()
        .filter(|k| k.family == KeyFamily::Master)
        .max_by_key(|k| k.id)
        .expect("a master key")
        .as_key()
}

/// An AM token for `attempt` until `expiry_ms`, signed with `key`.
pub fn am_token(attempt: &str, expiry_ms: u64, key: &Key) -> String {
    let attempt: AttemptId = attempt.parse().unwrap();
    issue(
        proto::AmTokenIdentifier {
            attempt_id: attempt.to_string(),
            expiry_ms,
            key_id: 0,
        },
        key,
    )
}
