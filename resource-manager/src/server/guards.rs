//! The checks before any handler runs, and the helpers handlers use to see who called. Every
//! gRPC service is wrapped in an interceptor: `SecretGuard` (a proof of the client or daemon
//! secret, as each service needs) or `AmGuard` (an AM token signed with one of the RM's master
//! keys). A call that fails them never reaches a handler: it is answered `unauthenticated` with
//! what to set. Handlers then refuse, `permission_denied`, what the believed caller may not do.

use spindle_containers::AttemptId;
use spindle_security::{
    AM_TOKEN_HEADER, AuthError, Caller, Secret, SecretGuard, SecretKind, presented_token,
};
use tonic::service::Interceptor;
use tonic::{Request, Status};

use super::acl::Denied;
use super::convert;
use super::tokens::{AmIdentity, KeysHandle};

/// The client secret first: a caller that proved nothing is told to set the client secret.
pub fn client_or_daemon(client: &Secret, daemon: &Secret) -> SecretGuard {
    SecretGuard::new(vec![
        (SecretKind::Client, client.clone()),
        (SecretKind::Daemon, daemon.clone()),
    ])
}

pub fn daemon_only(daemon: &Secret) -> SecretGuard {
    SecretGuard::new(vec![(SecretKind::Daemon, daemon.clone())])
}

/// Lets through calls with a valid AM token, and notes which attempt it is for.
#[derive(Clone)]
pub struct AmGuard {
    keys: KeysHandle,
}

impl AmGuard {
    pub fn new(keys: KeysHandle) -> AmGuard {
        AmGuard { keys }
    }
}

impl Interceptor for AmGuard {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let identity = presented_token(request.metadata(), AM_TOKEN_HEADER, "AM token")
            .and_then(|token| {
                self.keys
                    .get()
                    .check_am_token(token, spindle_security::now_ms())
            })
            .inspect_err(|e| tracing::debug!(error = %e, "refused an ApplicationMaster call"))?;
        request.extensions_mut().insert(identity);
        Ok(request)
    }
}

/// Who made a call that passed a `SecretGuard`.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or_else(|| Status::from(AuthError::MissingProof(SecretKind::Client)))
}

/// The caller of `call`, which needs the client secret (a daemon may only watch and read).
pub fn client_caller<T>(request: &Request<T>, call: &'static str) -> Result<Caller, Status> {
    let caller = caller(request)?;
    match caller.via {
        SecretKind::Client => Ok(caller),
        SecretKind::Daemon => Err(Denied::ClientOnly {
            call,
            proved: "daemon secret",
            user: caller.user,
        }
        .into()),
    }
}

/// The caller of `call`, which needs the daemon secret.
pub fn daemon_caller<T>(request: &Request<T>, call: &'static str) -> Result<Caller, Status> {
    let caller = caller(request)?;
    match caller.via {
        SecretKind::Daemon => Ok(caller),
        SecretKind::Client => Err(Denied::DaemonOnly {
            call,
            proved: "client secret",
            user: caller.user,
        }
        .into()),
    }
}

/// What the AM token of a call that passed `AmGuard` says.
pub fn am_identity<T>(request: &Request<T>) -> Result<AmIdentity, Status> {
    request
        .extensions()
        .get::<AmIdentity>()
        .copied()
        .ok_or_else(|| Status::from(AuthError::MissingToken("AM token")))
}

/// The attempt a request names, which must be its AM token's.
pub fn own_attempt(identity: &AmIdentity, requested: &str) -> Result<AttemptId, Status> {
    let attempt = convert::attempt_id(requested)?;
    if attempt == identity.attempt {
        Ok(attempt)
    } else {
        Err(Denied::OtherAttempt {
            token: identity.attempt.to_string(),
            requested: attempt.to_string(),
        }
        .into())
    }
}
