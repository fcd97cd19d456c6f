//! Why a caller was not believed. Every message says what was presented and what would have been
//! accepted, so that a user can fix their setup from the message alone.

use crate::secret::SecretKind;
use crate::token::TokenError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "this call needs proof of the cluster's {0}: point {env} (or {flag}, or `{key}` in \
         spindle.yaml) at the cluster's {file}",
        env = .0.env_var(), flag = .0.flag(), file = .0.file_name(),
        key = match .0 { SecretKind::Client => "client.secret-file", SecretKind::Daemon => "daemon-secret-file" }
    )]
    MissingProof(SecretKind),
    #[error(
        "the proof does not match this cluster's {0}: does {env} name this cluster's {file}?",
        env = .0.env_var(), file = .0.file_name()
    )]
    WrongSecret(SecretKind),
    #[error("this call needs proof of the {wanted}, and a proof of the {presented} was presented")]
    WrongKind {
        presented: SecretKind,
        wanted: SecretKind,
    },
    #[error(
        "the proof was made {off_secs} s away from this server's clock; the clocks of a cluster \
         must agree within {allowed_secs} s"
    )]
    Skewed { off_secs: u64, allowed_secs: u64 },
    #[error("the proof is malformed: {0}")]
    Malformed(String),
    #[error("the caller's user name: {0}")]
    BadUser(String),
    #[error("this call needs the {0} in its metadata")]
    MissingToken(&'static str),
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl From<AuthError> for tonic::Status {
    fn from(error: AuthError) -> tonic::Status {
        tonic::Status::unauthenticated(error.to_string())
    }
}
