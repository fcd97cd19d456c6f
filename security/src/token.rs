//! Signed tokens. A token is `<hex identifier>.<hex signature>`: the identifier a protobuf message
//! (`security.proto`) that says what the token allows and until when, the signature an HMAC-SHA256
//! over the token's kind and those bytes, keyed by the key the identifier names. Whoever holds
//! the key ring can check a token without asking anyone; whoever does not cannot make one.
//!
//! Two families of keys: the RM's *master keys* sign AM tokens and never leave the RM (it keeps
//! them in its state store, so a restart does not invalidate running AMs); *node keys* sign
//! container and NM tokens, and each side derives them from the daemon secret and a seed the RM
//! announces (`derive_node_key`), so the key itself never crosses the network. Both roll: a new
//! key signs, and the previous ones still verify until the tokens they signed have expired.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use spindle_protocol as proto;

use crate::secret::{Secret, random_bytes};

/// Bytes in a key.
pub const KEY_BYTES: usize = 32;

/// A key and its id (which the tokens it signs name).
#[derive(Clone, PartialEq, Eq)]
pub struct Key {
    pub id: u32,
    bytes: [u8; KEY_BYTES],
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({})", self.id)
    }
}

impl Key {
    pub fn from_bytes(id: u32, bytes: [u8; KEY_BYTES]) -> Key {
        Key { id, bytes }
    }

    /// A new key from the kernel's random source.
    pub fn random(id: u32) -> std::io::Result<Key> {
        let mut bytes = [0u8; KEY_BYTES];
        random_bytes(&mut bytes)?;
        Ok(Key { id, bytes })
    }

    /// The key's bytes, for the RM's state store.
    pub fn bytes(&self) -> &[u8; KEY_BYTES] {
        &self.bytes
    }
}

/// The keys a verifier accepts, newest (the one that signs) first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRing {
    keys: Vec<Key>,
}

impl KeyRing {
    pub fn new(keys: Vec<Key>) -> KeyRing {
        KeyRing { keys }
    }

    /// The key new tokens are signed with.
    pub fn current(&self) -> Option<&Key> {
        self.keys.first()
    }

    pub fn get(&self, id: u32) -> Option<&Key> {
        self.keys.iter().find(|key| key.id == id)
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }
}

/// What every token's identifier says about itself.
pub trait TokenIdentifier: prost::Message + Default {
    /// Names the token in errors, and separates the kinds in the signature, so that one kind of
    /// token can never pass for another even when the same key signs both.
    const KIND: &'static str;
    fn key_id(&self) -> u32;
    fn set_key_id(&mut self, id: u32);
    fn expiry_ms(&self) -> u64;
}

macro_rules! identifier {
    ($type:ty, $kind:literal) => {
        impl TokenIdentifier for $type {
            const KIND: &'static str = $kind;
            fn key_id(&self) -> u32 {
                self.key_id
            }
            fn set_key_id(&mut self, id: u32) {
                self.key_id = id;
            }
            fn expiry_ms(&self) -> u64 {
                self.expiry_ms
            }
        }
    };
}

identifier!(proto::AmTokenIdentifier, "AM token");
identifier!(proto::ContainerTokenIdentifier, "container token");
identifier!(proto::NmTokenIdentifier, "NM token");

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the {kind} is malformed: {problem}")]
    Malformed { kind: &'static str, problem: String },
    #[error(
        "the {kind} was signed with key {key_id}, which is not among the keys accepted here \
         ({known}): it was rolled out long ago, or this cluster's RM did not sign it"
    )]
    UnknownKey {
        kind: &'static str,
        key_id: u32,
        known: String,
    },
    #[error("the {kind}'s signature does not match its contents: it was forged or altered")]
    BadSignature { kind: &'static str },
    #[error("the {kind} expired {ago_secs} s ago")]
    Expired { kind: &'static str, ago_secs: u64 },
}

fn signature<I: TokenIdentifier>(key: &Key, identifier: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&key.bytes).expect("HMAC takes any key length");
    mac.update(I::KIND.as_bytes());
    mac.update(&[0]);
    mac.update(identifier);
    mac
}

/// Signs `identifier` with `key` (setting the key id it names) and returns the token.
pub fn issue<I: TokenIdentifier>(mut identifier: I, key: &Key) -> String {
    identifier.set_key_id(key.id);
    let bytes = identifier.encode_to_vec();
    let tag = signature::<I>(key, &bytes).finalize().into_bytes();
    format!("{}.{}", hex::encode(&bytes), hex::encode(tag))
}

/// Checks `token` against `ring` at `now_ms` and returns what it says.
pub fn verify<I: TokenIdentifier>(
    token: &str,
    ring: &KeyRing,
    now_ms: u64,
) -> Result<I, TokenError> {
    let malformed = |problem: &str| TokenError::Malformed {
        kind: I::KIND,
        problem: problem.to_string(),
    };
    let (identifier, tag) = token
        .split_once('.')
        .ok_or_else(|| malformed("a token reads <hex identifier>.<hex signature>"))?;
    let bytes = decode_lower_hex(identifier)
        .ok_or_else(|| malformed("its identifier is not lowercase hex"))?;
    let tag =
        decode_lower_hex(tag).ok_or_else(|| malformed("its signature is not lowercase hex"))?;
    let decoded =
        I::decode(bytes.as_slice()).map_err(|e| malformed(&format!("its identifier: {e}")))?;
    let key = ring
        .get(decoded.key_id())
        .ok_or_else(|| TokenError::UnknownKey {
            kind: I::KIND,
            key_id: decoded.key_id(),
            known: known_ids(ring),
        })?;
    signature::<I>(key, &bytes)
        .verify_slice(&tag)
        .map_err(|_| TokenError::BadSignature { kind: I::KIND })?;
    if decoded.expiry_ms() <= now_ms {
        return Err(TokenError::Expired {
            kind: I::KIND,
            ago_secs: (now_ms - decoded.expiry_ms()) / 1000,
        });
    }
    Ok(decoded)
}

/// The bytes of `text` if it is hex as `hex::encode` writes it (lowercase): a token or proof
/// has one spelling only, so a changed one never passes for the one that was issued.
pub(crate) fn decode_lower_hex(text: &str) -> Option<Vec<u8>> {
    if !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    hex::decode(text).ok()
}

fn known_ids(ring: &KeyRing) -> String {
    if ring.keys.is_empty() {
        return "none yet".to_string();
    }
    let ids: Vec<String> = ring.keys.iter().map(|key| key.id.to_string()).collect();
    format!("keys {}", ids.join(", "))
}

/// The node key that `announced` stands for: both the RM and each NM compute it from the daemon
/// secret, so only holders of that secret can sign or check container and NM tokens.
pub fn derive_node_key(daemon: &Secret, announced: &proto::NodeKey) -> Key {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(daemon.as_bytes()).expect("HMAC takes any key length");
    mac.update(b"spindle-node-key-v1\0");
    mac.update(&announced.key_id.to_be_bytes());
    mac.update(&announced.seed);
    Key {
        id: announced.key_id,
        bytes: mac.finalize().into_bytes().into(),
    }
}

/// The ring of node keys the RM announced, newest first.
pub fn node_key_ring(daemon: &Secret, announced: &[proto::NodeKey]) -> KeyRing {
    KeyRing::new(
        announced
            .iter()
            .map(|node_key| derive_node_key(daemon, node_key))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost::Message;

    fn container(expiry_ms: u64) -> proto::ContainerTokenIdentifier {
        proto::ContainerTokenIdentifier {
            container_id: "container_1_0001_01_000002".into(),
            node_id: "10.0.0.1:8041".into(),
            resource: Some(proto::Resource {
                memory_mb: 1024,
                vcores: 1,
            }),
            application_id: "application_1_0001".into(),
            user: "alice".into(),
            expiry_ms,
            key_id: 0,
        }
    }

    fn ring(ids: &[u32]) -> KeyRing {
        KeyRing::new(ids.iter().map(|&id| Key::random(id).unwrap()).collect())
    }

    #[test]
    fn a_token_verifies_with_its_key_and_says_what_it_was_issued_for() {
        let ring = ring(&[2, 1]);
        let token = issue(container(5_000), &ring.keys()[1]);
        let said: proto::ContainerTokenIdentifier = verify(&token, &ring, 4_999).unwrap();
        assert_eq!(
            said,
            proto::ContainerTokenIdentifier {
                key_id: 1,
                ..container(5_000)
            }
        );
    }

    #[test]
    fn expired_unknown_key_and_forged_tokens_are_refused() {
        let ring = ring(&[1]);
        let token = issue(container(5_000), ring.current().unwrap());
        let expired = verify::<proto::ContainerTokenIdentifier>(&token, &ring, 7_000);
        assert_eq!(
            expired.unwrap_err().to_string(),
            "the container token expired 2 s ago"
        );

        let rolled = self::ring(&[3]);
        let unknown = verify::<proto::ContainerTokenIdentifier>(&token, &rolled, 0).unwrap_err();
        assert!(unknown.to_string().contains("key 1") && unknown.to_string().contains("keys 3"));

        let forger = Key::random(1).unwrap();
        let forged = issue(container(5_000), &forger);
        assert_eq!(
            verify::<proto::ContainerTokenIdentifier>(&forged, &ring, 0),
            Err(TokenError::BadSignature {
                kind: "container token"
            })
        );
        // A bigger container under the real signature.
        let (_, tag) = token.split_once('.').unwrap();
        let mut bigger = container(5_000);
        bigger.key_id = 1;
        bigger.resource = Some(proto::Resource {
            memory_mb: 65536,
            vcores: 1,
        });
        let altered = format!("{}.{tag}", hex::encode(bigger.encode_to_vec()));
        assert!(matches!(
            verify::<proto::ContainerTokenIdentifier>(&altered, &ring, 0),
            Err(TokenError::BadSignature { .. })
        ));
    }

    #[test]
    fn one_kind_of_token_never_passes_for_another() {
        let ring = ring(&[1]);
        let nm = issue(
            proto::NmTokenIdentifier {
                application_id: "application_1_0001".into(),
                node_id: "n:1".into(),
                user: "alice".into(),
                expiry_ms: 5_000,
                key_id: 0,
            },
            ring.current().unwrap(),
        );
        assert!(verify::<proto::ContainerTokenIdentifier>(&nm, &ring, 0).is_err());
        assert!(verify::<proto::NmTokenIdentifier>(&nm, &ring, 0).is_ok());
    }

    #[test]
    fn node_keys_derive_alike_from_the_same_secret_only() {
        let announced = proto::NodeKey {
            key_id: 4,
            seed: vec![7; 32],
        };
        let daemon = Secret::from_text(&"d".repeat(40));
        let rm = derive_node_key(&daemon, &announced);
        assert_eq!(rm, derive_node_key(&daemon, &announced));
        let other = Secret::from_text(&"e".repeat(40));
        assert_ne!(rm, derive_node_key(&other, &announced));
        let ring = node_key_ring(&daemon, &[announced]);
        let token = issue(container(5_000), &rm);
        assert!(verify::<proto::ContainerTokenIdentifier>(&token, &ring, 0).is_ok());
        let rogue = node_key_ring(
            &other,
            &[proto::NodeKey {
                key_id: 4,
                seed: vec![7; 32],
            }],
        );
        assert!(verify::<proto::ContainerTokenIdentifier>(&token, &rogue, 0).is_err());
    }

    #[test]
    fn a_token_in_capitals_is_not_the_token_issued() {
        let ring = ring(&[1]);
        let token = issue(container(5_000), ring.current().unwrap());
        assert!(verify::<proto::ContainerTokenIdentifier>(&token, &ring, 0).is_ok());
        let shouted = token.to_ascii_uppercase();
        assert_ne!(shouted, token);
        let err = verify::<proto::ContainerTokenIdentifier>(&shouted, &ring, 0).unwrap_err();
        assert!(err.to_string().contains("lowercase hex"), "{err}");
    }

    proptest! {
        #[test]
        fn nonsense_tokens_are_refused_without_panicking(token in ".{0,200}") {
            let ring = ring(&[1]);
            prop_assert!(verify::<proto::AmTokenIdentifier>(&token, &ring, 0).is_err());
        }

        #[test]
        fn random_hex_identifiers_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                              tag in proptest::collection::vec(any::<u8>(), 0..40)) {
            let ring = ring(&[0, 1]);
            let token = format!("{}.{}", hex::encode(bytes), hex::encode(tag));
            prop_assert!(verify::<proto::NmTokenIdentifier>(&token, &ring, 0).is_err());
        }
    }
}
