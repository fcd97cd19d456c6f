//! Who may call whom in a Spindle cluster, as data and pure functions: the two cluster secrets
//! and the proofs that a caller holds one, the signed tokens the RM hands out (AM, container and
//! NM tokens) and the key rings that check them, the user a call acts for, and the gRPC metadata
//! all of it travels in. The daemons decide what a verified caller may do; this crate only says
//! who the caller is. docs/security.md tells the whole story.

mod call;
mod error;
mod proof;
mod secret;
mod token;
mod user;

pub use call::{
    AM_TOKEN_HEADER, CallCredentials, Caller, NM_TOKEN_HEADER, PROOF_HEADER, SecretGuard,
    USER_HEADER, presented_token, presented_user,
};
pub use error::AuthError;
pub use proof::{PROOF_WINDOW, sign_proof, verify_proof};
pub use secret::{Secret, SecretError, SecretKind};
pub use token::{
    Key, KeyRing, TokenError, TokenIdentifier, derive_node_key, issue, node_key_ring, verify,
};
pub use user::{USER_ENV, client_user, current_user, validate_user};

/// Milliseconds since the Unix epoch: the clock that proofs and token expiries are read against.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
