//! Tokens as the RM hands them out and checks them: AM tokens (master keys), container and NM
//! tokens (node keys), from `Keys`, the key book's snapshot of the keys in use. Tokens are
//! computed whenever they are handed out, never stored: an HMAC costs about a microsecond.
//! `KeysHandle` shares the snapshot between the core task, which replaces it when keys roll, and
//! the services that sign and check with it.

use std::sync::{Arc, RwLock};

use spindle_containers::{ApplicationId, AttemptId, ContainerId, NodeId, Resource};
use spindle_protocol as proto;
use spindle_security::{AuthError, Key, KeyRing, TokenError, issue, verify};

use super::keys::KeySettings;

/// The keys in use at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Keys {
    /// Every master key still accepted, newest first.
    master: KeyRing,
    master_signing: Key,
    node_signing: Key,
    /// Every node key still in use (announced, signing or retired), newest first.
    announced: Vec<proto::NodeKey>,
    settings: KeySettings,
}

/// What a checked AM token says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AmIdentity {
    pub attempt: AttemptId,
    /// The token was signed by an older key, or is past half its life: hand the AM a new one.
    pub renew: bool,
}

impl Keys {
    pub fn new(
        master: Vec<Key>,
        master_signing: Key,
        node_signing: Key,
        announced: Vec<proto::NodeKey>,
        settings: KeySettings,
    ) -> Keys {
        Keys {
            master: KeyRing::new(master),
            master_signing,
            node_signing,
            announced,
            settings,
        }
    }

    pub fn master_key_id(&self) -> u32 {
        self.master_signing.id
    }

    pub fn node_key_id(&self) -> u32 {
        self.node_signing.id
    }

    /// The node keys for NMs, newest first.
    pub fn announced(&self) -> &[proto::NodeKey] {
        &self.announced
    }

    /// The token that lets `attempt`'s AM call the ApplicationMaster service.
    pub fn am_token(&self, attempt: AttemptId, now_ms: u64) -> String {
        let identifier = proto::AmTokenIdentifier {
            attempt_id: attempt.to_string(),
            expiry_ms: now_ms.saturating_add(self.settings.long_token_ms),
            key_id: 0,
        };
        issue(identifier, &self.master_signing)
    }

    /// The token that lets an NM start `container` on `node`, as `user`.
    pub fn container_token(
        &self,
        container: ContainerId,
        node: &NodeId,
        resource: Resource,
        user: &str,
        now_ms: u64,
    ) -> String {
        let identifier = proto::ContainerTokenIdentifier {
            container_id: container.to_string(),
            node_id: node.to_string(),
            resource: Some(resource.to_proto()),
            application_id: container.application().to_string(),
            user: user.to_string(),
            expiry_ms: now_ms.saturating_add(self.settings.container_token_ms),
            key_id: 0,
        };
        issue(identifier, &self.node_signing)
    }

    /// The token that lets its bearer manage `app`'s containers on `node`.
    pub fn nm_token(
        &self,
        app: ApplicationId,
        node: &NodeId,
        user: &str,
        now_ms: u64,
    ) -> proto::NodeToken {
        let identifier = proto::NmTokenIdentifier {
            application_id: app.to_string(),
            node_id: node.to_string(),
            user: user.to_string(),
            expiry_ms: now_ms.saturating_add(self.settings.long_token_ms),
            key_id: 0,
        };
        proto::NodeToken {
            node_id: node.to_string(),
            token: issue(identifier, &self.node_signing),
        }
    }

    /// Checks an AM token and says which attempt it is for.
    pub fn check_am_token(&self, token: &str, now_ms: u64) -> Result<AmIdentity, AuthError> {
        let said: proto::AmTokenIdentifier = verify(token, &self.master, now_ms)?;
        let attempt = said.attempt_id.parse().map_err(|e| {
            AuthError::Token(TokenError::Malformed {
                kind: "AM token",
                problem: format!("its attempt: {e}"),
            })
        })?;
        let half_life = self.settings.long_token_ms / 2;
        let renew = said.key_id != self.master_signing.id
            || now_ms.saturating_add(half_life) >= said.expiry_ms;
        Ok(AmIdentity { attempt, renew })
    }
}

/// What the tokens of one Allocate answer say: whose application, signed when.
pub struct Grant<'a> {
    pub keys: &'a Keys,
    pub app: ApplicationId,
    pub owner: &'a str,
    pub now_ms: u64,
}

/// The keys in use, shared: read on every token check, replaced when keys roll.
#[derive(Clone)]
pub struct KeysHandle {
    current: Arc<RwLock<Arc<Keys>>>,
}

impl KeysHandle {
    pub fn new(keys: Keys) -> KeysHandle {
        KeysHandle {
            current: Arc::new(RwLock::new(Arc::new(keys))),
        }
    }

    pub fn get(&self) -> Arc<Keys> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set(&self, keys: Keys) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
    }
}

#[cfg(test)]
mod tests {
    use spindle_security::{Secret, node_key_ring};

    use super::*;
    use crate::server::keys::KeyBook;
    use crate::store::KEY_MATERIAL_BYTES;

    const DAY: u64 = 86_400_000;

    fn settings() -> KeySettings {
        KeySettings {
            roll_ms: DAY,
            long_token_ms: 2 * DAY,
            container_token_ms: 600_000,
            node_activation_ms: 600_000,
        }
    }

    fn daemon() -> Secret {
        Secret::from_text(&"d".repeat(40))
    }

    fn book_at(now: u64) -> KeyBook {
        let mut n = 0u8;
        let mut random = move || {
            n += 1;
            Ok([n; KEY_MATERIAL_BYTES])
        };
        let mut book = KeyBook::recover(settings(), daemon(), Vec::new());
        book.advance(0, &mut random).unwrap();
        book.advance(now, &mut random).unwrap();
        book
    }

    fn attempt() -> AttemptId {
        "appattempt_1700000000000_0001_000001".parse().unwrap()
    }

    #[test]
    fn an_am_token_names_its_attempt_and_is_renewed_after_half_its_life_or_a_roll() {
        let keys = book_at(0).snapshot(0).unwrap();
        let token = keys.am_token(attempt(), 0);
        let fresh = keys.check_am_token(&token, 1_000).unwrap();
        assert_eq!(
            fresh,
            AmIdentity {
                attempt: attempt(),
                renew: false
            }
        );
        assert!(
            keys.check_am_token(&token, DAY).unwrap().renew,
            "half its life"
        );
        let err = keys.check_am_token(&token, 2 * DAY).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");

        // After a roll the old key still checks it, and asks for a new one.
        let rolled = book_at(DAY).snapshot(DAY).unwrap();
        let identity = rolled.check_am_token(&token, DAY / 2).unwrap();
        assert!(identity.renew);
        let renewed = rolled.am_token(attempt(), DAY / 2);
        assert!(!rolled.check_am_token(&renewed, DAY / 2).unwrap().renew);
    }

    #[test]
    fn forged_and_altered_am_tokens_are_refused() {
        let keys = book_at(0).snapshot(0).unwrap();
        let forged = issue(
            proto::AmTokenIdentifier {
                attempt_id: attempt().to_string(),
                expiry_ms: DAY,
                key_id: 0,
            },
            &Key::from_bytes(1, [9; 32]),
        );
        let err = keys.check_am_token(&forged, 0).unwrap_err();
        assert!(err.to_string().contains("forged"), "{err}");
        let not_an_attempt = issue(
            proto::AmTokenIdentifier {
                attempt_id: "appattempt_x".into(),
                expiry_ms: DAY,
                key_id: 0,
            },
            &keys.master_signing,
        );
        let err = keys.check_am_token(&not_an_attempt, 0).unwrap_err();
        assert!(err.to_string().contains("its attempt"), "{err}");
    }

    #[test]
    fn container_and_nm_tokens_verify_with_the_keys_nodes_derive() {
        let keys = book_at(0).snapshot(0).unwrap();
        let ring = node_key_ring(&daemon(), keys.announced());
        let container: ContainerId = "container_1700000000000_0001_01_000002".parse().unwrap();
        let node: NodeId = "10.0.0.1:8041".parse().unwrap();
        let token = keys.container_token(container, &node, Resource::new(1024, 1), "alice", 5);
        let said: proto::ContainerTokenIdentifier = verify(&token, &ring, 6).unwrap();
        assert_eq!(said.user, "alice");
        assert_eq!(said.application_id, "application_1700000000000_0001");
        assert_eq!(said.node_id, "10.0.0.1:8041");
        assert_eq!(said.expiry_ms, 600_005);
        assert_eq!(said.resource, Some(Resource::new(1024, 1).to_proto()));

        let nm = keys.nm_token(container.application(), &node, "alice", 5);
        assert_eq!(nm.node_id, "10.0.0.1:8041");
        let said: proto::NmTokenIdentifier = verify(&nm.token, &ring, 6).unwrap();
        assert_eq!(said.application_id, "application_1700000000000_0001");
        assert_eq!(said.expiry_ms, 2 * DAY + 5);

        let rogue = node_key_ring(&Secret::from_text(&"e".repeat(40)), keys.announced());
        assert!(verify::<proto::NmTokenIdentifier>(&nm.token, &rogue, 6).is_err());
    }

    #[test]
    fn a_handle_hands_out_the_keys_last_set() {
        let handle = KeysHandle::new(book_at(0).snapshot(0).unwrap());
        let clone = handle.clone();
        handle.set(book_at(DAY).snapshot(DAY).unwrap());
        assert_eq!(clone.get().master_key_id(), 2);
    }
}
