//! Who may use this node: the checks of NM tokens (every ContainerManager call, and the HTTP log
//! pages) and container tokens (each container of a StartContainers call). Both are signed with
//! node keys, which this node derives from the daemon secret and the seeds the RM announces at
//! registration and in every heartbeat answer; until the first announcement there is nothing
//! to check a token with, and every call is answered `unavailable`.
//!
//! An NM token names one application: a call that carries it may start, stop, query and read
//! the logs of that application's containers on this node, and no other's. A container token
//! names one container, its node, its resource, its application and its owner: the node starts
//! exactly that container, and runs it for that owner (never for a user named in the request).

use spindle_containers::{ApplicationId, ContainerId, NodeId, Resource};
use spindle_protocol as proto;
use spindle_security::{AuthError, KeyRing, Secret, node_key_ring, validate_user, verify};
use tokio::sync::watch;

/// The node keys, as last announced by the RM.
#[derive(Debug)]
pub struct NodeKeys {
    daemon: Secret,
    ring: watch::Sender<Option<KeyRing>>,
}

impl NodeKeys {
    pub fn new(daemon: Secret) -> NodeKeys {
        NodeKeys {
            daemon,
            ring: watch::Sender::new(None),
        }
    }

    /// Takes the keys the RM announced (newest first). An answer that announces none changes
    /// nothing: an RM always sends the keys in use, so an empty list is an RM that says nothing.
    pub fn announce(&self, announced: &[proto::NodeKey]) {
        if announced.is_empty() {
            return;
        }
        let ring = node_key_ring(&self.daemon, announced);
        self.ring.send_if_modified(|held| {
            let changed = held.as_ref() != Some(&ring);
            *held = Some(ring);
            changed
        });
    }

    /// The keys to check tokens with; `None` before the RM announced any.
    pub fn ring(&self) -> Option<KeyRing> {
        self.ring.borrow().clone()
    }

    /// Resolves once the RM has announced keys.
    pub async fn announced(&self) {
        let mut ring = self.ring.subscribe();
        // The sender lives as long as `self`, so the wait ends only with keys.
        let _ = ring.wait_for(Option::is_some).await;
    }
}

/// Why a caller may not do what it asked.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error(
        "this node manager has not registered with the RM yet, so it has no keys to check \
         tokens with: try again shortly"
    )]
    NoKeysYet,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("the NM token is for node {token_node}, and this is node {node}")]
    WrongNode { token_node: String, node: NodeId },
    #[error("the NM token names no valid application: {0}")]
    BadApplication(String),
    #[error(
        "{what} belongs to application {app}, and the NM token allows application {allowed} only"
    )]
    OtherApplication {
        what: String,
        app: ApplicationId,
        allowed: ApplicationId,
    },
}

impl From<AccessError> for tonic::Status {
    fn from(error: AccessError) -> tonic::Status {
        match error {
            AccessError::NoKeysYet => tonic::Status::unavailable(error.to_string()),
            AccessError::OtherApplication { .. } => {
                tonic::Status::permission_denied(error.to_string())
            }
            AccessError::Auth(_)
            | AccessError::WrongNode { .. }
            | AccessError::BadApplication(_) => tonic::Status::unauthenticated(error.to_string()),
        }
    }
}

/// What a verified NM token allows: calls about one application's containers on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub application: ApplicationId,
    /// The user the token was issued to (for the logs).
    pub user: String,
}

impl Scope {
    /// Whether the token allows `app`; `what` names the thing asked about in the refusal.
    pub fn allows(
        &self,
        app: ApplicationId,
        what: impl FnOnce() -> String,
    ) -> Result<(), AccessError> {
        if app == self.application {
            Ok(())
        } else {
            Err(AccessError::OtherApplication {
                what: what(),
                app,
                allowed: self.application,
            })
        }
    }
}

/// Checks the NM token a call presented (`None`: it presented none) for node `node` at `now_ms`.
pub fn check_nm_token(
    ring: Option<&KeyRing>,
    node: &NodeId,
    token: Option<&str>,
    now_ms: u64,
) -> Result<Scope, AccessError> {
    let ring = ring.ok_or(AccessError::NoKeysYet)?;
    let token = token.ok_or(AuthError::MissingToken("NM token"))?;
    let said: proto::NmTokenIdentifier = verify(token, ring, now_ms).map_err(AuthError::from)?;
    if said.node_id != node.as_str() {
        return Err(AccessError::WrongNode {
            token_node: said.node_id,
            node: node.clone(),
        });
    }
    let application = said
        .application_id
        .parse()
        .map_err(|e: spindle_containers::IdError| AccessError::BadApplication(e.to_string()))?;
    Ok(Scope {
        application,
        user: said.user,
    })
}

/// Checks one container's token against what the request asks for; returns the container's
/// owner, the user it runs for. The refusal says what did not match (without `container_token:`,
/// which the caller's error adds).
pub fn check_container_token(
    ring: &KeyRing,
    node: &NodeId,
    scope: &Scope,
    token: &str,
    id: ContainerId,
    resource: Resource,
    now_ms: u64,
) -> Result<String, String> {
    if token.is_empty() {
        return Err(
            "missing: a node starts only containers the RM allocated; send the \
                    allocated Container's container_token"
                .to_string(),
        );
    }
    let said: proto::ContainerTokenIdentifier =
        verify(token, ring, now_ms).map_err(|e| e.to_string())?;
    if said.node_id != node.as_str() {
        return Err(format!(
            "it is for node {}, and this is node {node}",
            said.node_id
        ));
    }
    if said.container_id != id.to_string() {
        return Err(format!(
            "it is for container {}, and the request names {id}",
            said.container_id
        ));
    }
    let allowed = said
        .resource
        .as_ref()
        .map(|r| (r.memory_mb, r.vcores))
        .unwrap_or_default();
    let asked = (resource.memory_mb as i64, resource.vcores as i32);
    if allowed != asked {
        return Err(format!(
            "it allows memory_mb={} and vcores={}, and the request asks for memory_mb={} and \
             vcores={}",
            allowed.0, allowed.1, asked.0, asked.1
        ));
    }
    if said.application_id != scope.application.to_string() {
        return Err(format!(
            "it is for application {}, and the NM token for application {}",
            said.application_id, scope.application
        ));
    }
    if said.application_id != id.application().to_string() {
        return Err(format!(
            "it names application {}, and container {id} belongs to {}",
            said.application_id,
            id.application()
        ));
    }
    validate_user(&said.user).map_err(|e| format!("its user: {e}"))?;
    Ok(said.user)
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_security::{Key, issue};

    const NOW: u64 = 1_800_000_000_000;

    fn node() -> NodeId {
        NodeId::new("10.0.0.1:8041".to_string()).unwrap()
    }

    fn app(n: u32) -> ApplicationId {
        format!("application_1700000000000_{n:04}").parse().unwrap()
    }

    fn cid(n: u64) -> ContainerId {
        format!("container_1700000000000_0001_01_{n:06}")
            .parse()
            .unwrap()
    }

    fn nm_token(key: &Key, node: &str, app: &str, expiry_ms: u64) -> String {
        issue(
            proto::NmTokenIdentifier {
                application_id: app.into(),
                node_id: node.into(),
                user: "alice".into(),
                expiry_ms,
                key_id: 0,
            },
            key,
        )
    }

    fn container_token(key: &Key, id: ContainerId, memory_mb: i64, user: &str) -> String {
        issue(
            proto::ContainerTokenIdentifier {
                container_id: id.to_string(),
                node_id: node().to_string(),
                resource: Some(proto::Resource {
                    memory_mb,
                    vcores: 1,
                }),
                application_id: id.application().to_string(),
                user: user.into(),
                expiry_ms: NOW + 1000,
                key_id: 0,
            },
            key,
        )
    }

    fn keys() -> (NodeKeys, Key) {
        let daemon = Secret::from_text(&"d".repeat(40));
        let announced = proto::NodeKey {
            key_id: 3,
            seed: vec![9; 32],
        };
        let keys = NodeKeys::new(daemon.clone());
        keys.announce(std::slice::from_ref(&announced));
        // An empty announcement keeps what there is.
        keys.announce(&[]);
        let key = spindle_security::derive_node_key(&daemon, &announced);
        (keys, key)
    }

    #[test]
    fn an_nm_token_scopes_calls_to_its_application_on_its_node() {
        let (keys, key) = keys();
        let ring = keys.ring();
        let token = nm_token(&key, "10.0.0.1:8041", &app(1).to_string(), NOW + 1);
        let scope = check_nm_token(ring.as_ref(), &node(), Some(&token), NOW).unwrap();
        assert_eq!(scope.application, app(1));
        assert!(scope.allows(app(1), || "x".into()).is_ok());
        let err = scope
            .allows(app(2), || format!("container {}", cid(1)))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "container {} belongs to application {}, and the NM token allows application {} only",
                cid(1),
                app(2),
                app(1)
            )
        );
        assert_eq!(
            tonic::Status::from(err).code(),
            tonic::Code::PermissionDenied
        );

        let elsewhere = nm_token(&key, "10.0.0.2:8041", &app(1).to_string(), NOW + 1);
        let err = check_nm_token(ring.as_ref(), &node(), Some(&elsewhere), NOW).unwrap_err();
        assert!(err.to_string().contains("10.0.0.2:8041"), "{err}");
        let expired = check_nm_token(ring.as_ref(), &node(), Some(&token), NOW + 1).unwrap_err();
        assert!(expired.to_string().contains("expired"), "{expired}");
        let missing = check_nm_token(ring.as_ref(), &node(), None, NOW).unwrap_err();
        assert!(missing.to_string().contains("NM token"), "{missing}");
        assert_eq!(
            tonic::Status::from(missing).code(),
            tonic::Code::Unauthenticated
        );
        let forged = nm_token(
            &Key::random(3).unwrap(),
            "10.0.0.1:8041",
            "application_1_0001",
            NOW + 1,
        );
        assert!(check_nm_token(ring.as_ref(), &node(), Some(&forged), NOW).is_err());
        let no_keys = check_nm_token(None, &node(), Some(&token), NOW).unwrap_err();
        assert_eq!(
            tonic::Status::from(no_keys).code(),
            tonic::Code::Unavailable
        );
    }

    #[test]
    fn a_container_token_must_match_the_request_exactly() {
        let (keys, key) = keys();
        let ring = keys.ring().unwrap();
        let scope = Scope {
            application: app(1),
            user: "alice".into(),
        };
        let r = Resource::new(512, 1);
        let check = |token: &str, id, resource| {
            check_container_token(&ring, &node(), &scope, token, id, resource, NOW)
        };
        let token = container_token(&key, cid(1), 512, "alice");
        assert_eq!(check(&token, cid(1), r), Ok("alice".to_string()));
        assert!(
            check(&token, cid(2), r)
                .unwrap_err()
                .contains("is for container")
        );
        let bigger = check(&token, cid(1), Resource::new(1024, 1)).unwrap_err();
        assert!(
            bigger.contains("memory_mb=512") && bigger.contains("memory_mb=1024"),
            "{bigger}"
        );
        assert!(check("", cid(1), r).unwrap_err().starts_with("missing"));
        let other_app: ContainerId = "container_1700000000000_0002_01_000001".parse().unwrap();
        let token = container_token(&key, other_app, 512, "alice");
        assert!(
            check(&token, other_app, r)
                .unwrap_err()
                .contains("NM token for application")
        );
        let token = container_token(&key, cid(1), 512, "../root");
        assert!(
            check(&token, cid(1), r)
                .unwrap_err()
                .starts_with("its user")
        );
        let forged = container_token(&Key::random(3).unwrap(), cid(1), 512, "alice");
        assert!(check(&forged, cid(1), r).unwrap_err().contains("forged"));
    }
}
