//! The keys that sign tokens, as the state store keeps them. The RM's master keys (AM tokens)
//! and the seeds of its node keys (container and NM tokens) are kept so that a restarted RM
//! still accepts the tokens it handed out before, and its nodes derive the same keys: running
//! AMs and containers carry on across a restart. Only the server's key book (`server::keys`)
//! makes and rolls them; the core never sees them.

use serde::{Deserialize, Serialize};
use spindle_security::Key;

/// Bytes of key material (a master key, or a node key's seed).
pub const KEY_MATERIAL_BYTES: usize = 32;

/// Which family a key belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyFamily {
    /// Signs AM tokens; never leaves the RM.
    Master,
    /// Its seed is announced to NMs, which derive the key that signs container and NM tokens
    /// from it and the daemon secret.
    Node,
}

/// One key and its life.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredKey {
    pub family: KeyFamily,
    pub id: u32,
    /// A master key's bytes, or a node key's seed.
    #[serde(with = "hex_material")]
    pub material: [u8; KEY_MATERIAL_BYTES],
    pub created_ms: u64,
    /// From when it signs (a node key is announced a while before, so that every node knows it
    /// before the first token it signs reaches one).
    pub active_from_ms: u64,
    /// When a newer key took over signing; it is dropped once the tokens it signed expired.
    pub retired_ms: Option<u64>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the material: a key in a log would be a key given away.
        f.debug_struct("StoredKey")
            .field("family", &self.family)
            .field("id", &self.id)
            .field("created_ms", &self.created_ms)
            .field("active_from_ms", &self.active_from_ms)
            .field("retired_ms", &self.retired_ms)
            .finish_non_exhaustive()
    }
}

impl StoredKey {
    /// The master key itself (for a master key).
    pub fn as_key(&self) -> Key {
        Key::from_bytes(self.id, self.material)
    }
}

/// A change to the stored keys, written with the batch that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// A new key, or a key whose life changed.
    Put(StoredKey),
    /// Every token it signed has expired: forget it.
    Remove { family: KeyFamily, id: u32 },
}

mod hex_material {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use super::KEY_MATERIAL_BYTES;

    pub fn serialize<S: Serializer>(
        bytes: &[u8; KEY_MATERIAL_BYTES],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<[u8; KEY_MATERIAL_BYTES], D::Error> {
        let text = String::deserialize(d)?;
        let bytes = hex::decode(&text).map_err(|_| D::Error::custom("key material is not hex"))?;
        bytes.try_into().map_err(|bytes: Vec<u8>| {
            D::Error::custom(format!(
                "key material has {} bytes; a key has {KEY_MATERIAL_BYTES}",
                bytes.len()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_key_reads_back_and_never_shows_its_material() {
        let key = StoredKey {
            family: KeyFamily::Node,
            id: 7,
            material: [0xab; KEY_MATERIAL_BYTES],
            created_ms: 1,
            active_from_ms: 2,
            retired_ms: Some(3),
        };
        let json = serde_json::to_string(&key).unwrap();
        assert!(json.contains(&"ab".repeat(KEY_MATERIAL_BYTES)), "{json}");
        assert!(json.contains("\"node\""), "{json}");
        assert_eq!(serde_json::from_str::<StoredKey>(&json).unwrap(), key);
        assert!(!format!("{key:?}").contains("abab"), "{key:?}");
        let short = json.replace(&"ab".repeat(KEY_MATERIAL_BYTES), "abab");
        let err = serde_json::from_str::<StoredKey>(&short).unwrap_err();
        assert!(err.to_string().contains("2 bytes"), "{err}");
    }
}
