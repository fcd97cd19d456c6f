//! How credentials travel on gRPC calls: in metadata, added by `CallCredentials` on the caller's
//! side (a tonic interceptor) and checked by `SecretGuard` (or the daemon's own token check) on
//! the server's side before any handler runs.

use std::sync::{Arc, RwLock};

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::error::AuthError;
use crate::proof::{proof_kind, sign_proof, verify_proof};
use crate::secret::{Secret, SecretKind};
use crate::user::validate_user;

/// The user the call acts for (believed, as YARN's simple authentication does).
pub const USER_HEADER: &str = "x-spindle-user";
/// A proof of the client or daemon secret (`crate::proof`).
pub const PROOF_HEADER: &str = "x-spindle-proof";
/// An AM token, on every AM → RM call.
pub const AM_TOKEN_HEADER: &str = "x-spindle-am-token";
/// An NM token, on every call to an NM's ContainerManager.
pub const NM_TOKEN_HEADER: &str = "x-spindle-nm-token";

/// What a caller attaches to each call: its user, and a fresh proof of its secret or its token.
/// Cheap to clone; clones share the token, so `replace_token` reaches every channel using it.
#[derive(Clone, Debug)]
pub struct CallCredentials {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    user: String,
    secret: Option<(SecretKind, Secret)>,
    token: Option<(&'static str, RwLock<String>)>,
}

impl CallCredentials {
    /// Proves `secret` on every call, acting for `user`.
    pub fn with_secret(kind: SecretKind, secret: Secret, user: String) -> CallCredentials {
        Self::new(user, Some((kind, secret)), None)
    }

    /// Sends `token` in the metadata entry `header` on every call, acting for `user`.
    pub fn with_token(header: &'static str, token: String, user: String) -> CallCredentials {
        Self::new(user, None, Some((header, RwLock::new(token))))
    }

    /// Names the user and proves nothing: servers will refuse it, saying what is missing. For
    /// a client with no secret configured, which should hear that from the server it called.
    pub fn user_only(user: String) -> CallCredentials {
        Self::new(user, None, None)
    }

    fn new(
        user: String,
        secret: Option<(SecretKind, Secret)>,
        token: Option<(&'static str, RwLock<String>)>,
    ) -> CallCredentials {
        CallCredentials {
            inner: Arc::new(Inner {
                user,
                secret,
                token,
            }),
        }
    }

    pub fn user(&self) -> &str {
        &self.inner.user
    }

    /// Uses `token` from now on (an AM's token after the RM rolled its key). No effect on
    /// credentials made without a token.
    pub fn replace_token(&self, token: String) {
        if let Some((_, current)) = &self.inner.token {
            *current.write().unwrap_or_else(|e| e.into_inner()) = token;
        }
    }

    /// Adds the credentials to `metadata`.
    pub fn attach(&self, metadata: &mut MetadataMap) -> Result<(), Status> {
        let value = |text: &str, what: &str| {
            MetadataValue::try_from(text).map_err(|_| {
                Status::invalid_argument(format!("the {what} cannot be sent as gRPC metadata"))
            })
        };
        metadata.insert(USER_HEADER, value(&self.inner.user, "user name")?);
        if let Some((kind, secret)) = &self.inner.secret {
            let proof = sign_proof(secret, *kind, &self.inner.user, crate::now_ms());
            metadata.insert(PROOF_HEADER, value(&proof, "proof")?);
        }
        if let Some((header, token)) = &self.inner.token {
            let token = token.read().unwrap_or_else(|e| e.into_inner()).clone();
            metadata.insert(*header, value(&token, "token")?);
        }
        Ok(())
    }
}

impl Interceptor for CallCredentials {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        self.attach(request.metadata_mut())?;
        Ok(request)
    }
}

/// Who a verified call came from; `SecretGuard` puts it in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user: String,
    /// Which secret the caller proved.
    pub via: SecretKind,
}

/// The server side: refuses calls without a valid proof of one of the accepted secrets.
#[derive(Clone, Debug)]
pub struct SecretGuard {
    accepted: Arc<Vec<(SecretKind, Secret)>>,
}

impl SecretGuard {
    pub fn new(accepted: Vec<(SecretKind, Secret)>) -> SecretGuard {
        SecretGuard {
            accepted: Arc::new(accepted),
        }
    }

    /// Checks the proof in `metadata` at the server's `now_ms`.
    pub fn check(&self, metadata: &MetadataMap, now_ms: u64) -> Result<Caller, AuthError> {
        let wanted = self
            .accepted
            .first()
            .map(|(kind, _)| *kind)
            .unwrap_or(SecretKind::Client);
        let user = presented_user(metadata)?;
        let proof = metadata
            .get(PROOF_HEADER)
            .ok_or(AuthError::MissingProof(wanted))?
            .to_str()
            .map_err(|_| AuthError::Malformed("the proof is not ASCII".into()))?;
        let claimed = proof_kind(proof)?;
        let (kind, secret) = self
            .accepted
            .iter()
            .find(|(kind, _)| *kind == claimed)
            .ok_or(AuthError::WrongKind {
                presented: claimed,
                wanted,
            })?;
        verify_proof(secret, *kind, &user, proof, now_ms)?;
        Ok(Caller { user, via: *kind })
    }
}

impl Interceptor for SecretGuard {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = self.check(request.metadata(), crate::now_ms())?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// The user name a call names, checked for shape.
pub fn presented_user(metadata: &MetadataMap) -> Result<String, AuthError> {
    let user = metadata
        .get(USER_HEADER)
        .ok_or_else(|| AuthError::BadUser(format!("the call names no user ({USER_HEADER})")))?
        .to_str()
        .map_err(|_| AuthError::BadUser("the user name is not ASCII".into()))?;
    validate_user(user)?;
    Ok(user.to_string())
}

/// The token in metadata entry `header`; `what` names it in the error when it is missing.
pub fn presented_token<'a>(
    metadata: &'a MetadataMap,
    header: &'static str,
    what: &'static str,
) -> Result<&'a str, AuthError> {
    metadata
        .get(header)
        .and_then(|value| value.to_str().ok())
        .ok_or(AuthError::MissingToken(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(c: char) -> Secret {
        Secret::from_text(&c.to_string().repeat(40))
    }

    fn metadata_from(credentials: &CallCredentials) -> MetadataMap {
        let mut metadata = MetadataMap::new();
        credentials.attach(&mut metadata).unwrap();
        metadata
    }

    #[test]
    fn the_guard_believes_the_right_secret_and_names_the_caller() {
        let guard = SecretGuard::new(vec![
            (SecretKind::Client, secret('c')),
            (SecretKind::Daemon, secret('d')),
        ]);
        let client = CallCredentials::with_secret(SecretKind::Client, secret('c'), "alice".into());
        let caller = guard
            .check(&metadata_from(&client), crate::now_ms())
            .unwrap();
        assert_eq!(
            caller,
            Caller {
                user: "alice".into(),
                via: SecretKind::Client
            }
        );

        let daemon = CallCredentials::with_secret(SecretKind::Daemon, secret('d'), "yarn".into());
        assert_eq!(
            guard
                .check(&metadata_from(&daemon), crate::now_ms())
                .unwrap()
                .via,
            SecretKind::Daemon
        );

        let wrong = CallCredentials::with_secret(SecretKind::Client, secret('x'), "alice".into());
        let err = guard
            .check(&metadata_from(&wrong), crate::now_ms())
            .unwrap_err();
        assert!(err.to_string().contains("SPINDLE_SECRET_FILE"), "{err}");
    }

    #[test]
    fn a_client_proof_does_not_open_a_daemon_only_door() {
        let guard = SecretGuard::new(vec![(SecretKind::Daemon, secret('d'))]);
        let client = CallCredentials::with_secret(SecretKind::Client, secret('d'), "alice".into());
        let err = guard
            .check(&metadata_from(&client), crate::now_ms())
            .unwrap_err();
        assert!(matches!(err, AuthError::WrongKind { .. }), "{err}");
        let nothing = CallCredentials::user_only("alice".into());
        let err = guard
            .check(&metadata_from(&nothing), crate::now_ms())
            .unwrap_err();
        assert!(
            err.to_string().contains("SPINDLE_DAEMON_SECRET_FILE"),
            "{err}"
        );
    }

    #[test]
    fn a_replaced_token_reaches_every_clone() {
        let credentials =
            CallCredentials::with_token(AM_TOKEN_HEADER, "one".into(), "alice".into());
        let clone = credentials.clone();
        credentials.replace_token("two".into());
        let metadata = metadata_from(&clone);
        assert_eq!(
            presented_token(&metadata, AM_TOKEN_HEADER, "AM token").unwrap(),
            "two"
        );
        assert_eq!(presented_user(&metadata).unwrap(), "alice");
    }
}
