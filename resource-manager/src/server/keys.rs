//! The key book: the RM's master keys (AM tokens) and node key seeds (container and NM tokens),
//! and when each is made, starts signing, retires and is forgotten. Both families roll every
//! `key-roll-interval`. A new master key signs at once (only the RM checks AM tokens); a new node
//! key is announced to the NMs first and signs only once every live node has heard of it (an NM
//! liveness expiry later, at most half a roll), so no NM is handed a token it cannot check yet.
//! A retired key stays until the last token it can have signed has expired.
//!
//! The book is plain data driven with the time and a source of random bytes; the core task owns
//! it, writes its changes to the state store with the batch that made them, and publishes a
//! `Keys` snapshot (`tokens`) once they are durable.

use std::io;

use spindle_protocol as proto;
use spindle_security::{Key, Secret, derive_node_key};

use super::tokens::Keys;
use crate::config::RmConfig;
use crate::store::{KEY_MATERIAL_BYTES, KeyChange, KeyFamily, StoredKey};

/// Fresh random key material.
pub type Random<'a> = &'a mut dyn FnMut() -> io::Result<[u8; KEY_MATERIAL_BYTES]>;

/// Material from the kernel's random source.
pub fn os_random() -> io::Result<[u8; KEY_MATERIAL_BYTES]> {
    Key::random(0).map(|key| *key.bytes())
}

/// The lifetimes the book works with, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySettings {
    pub roll_ms: u64,
    /// AM and NM tokens.
    pub long_token_ms: u64,
    pub container_token_ms: u64,
    /// How long a new node key is announced before it signs.
    pub node_activation_ms: u64,
}

impl KeySettings {
    pub fn new(config: &RmConfig) -> KeySettings {
        let ms = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let roll_ms = ms(config.key_roll_interval);
        KeySettings {
            roll_ms,
            long_token_ms: ms(config.am_and_nm_token_life()),
            container_token_ms: ms(config.container_token_expiry),
            node_activation_ms: ms(config.nm_liveness_expiry).min(roll_ms / 2),
        }
    }

    /// The longest a token signed by a key of `family` lives.
    fn token_life_ms(&self, family: KeyFamily) -> u64 {
        match family {
            KeyFamily::Master => self.long_token_ms,
            KeyFamily::Node => self.long_token_ms.max(self.container_token_ms),
        }
    }

    fn activation_ms(&self, family: KeyFamily) -> u64 {
        match family {
            KeyFamily::Master => 0,
            KeyFamily::Node => self.node_activation_ms,
        }
    }
}

pub struct KeyBook {
    settings: KeySettings,
    daemon: Secret,
    /// Newest first.
    master: Vec<StoredKey>,
    /// Newest first.
    node: Vec<StoredKey>,
}

impl KeyBook {
    /// The book of the keys a store kept (none on a first start); `advance` brings it up to date.
    pub fn recover(settings: KeySettings, daemon: Secret, stored: Vec<StoredKey>) -> KeyBook {
        let (mut master, mut node): (Vec<_>, Vec<_>) = stored
            .into_iter()
            .partition(|key| key.family == KeyFamily::Master);
        master.sort_by_key(|key| std::cmp::Reverse(key.id));
        node.sort_by_key(|key| std::cmp::Reverse(key.id));
        KeyBook {
            settings,
            daemon,
            master,
            node,
        }
    }

    /// Brings both families up to date at `now`: a first key if there is none, a new one once
    /// the newest is a roll interval old, the older keys retired once a newer one signs, and
    /// retired keys forgotten once every token they signed has expired. Returns what the store
    /// must keep; nothing changes if the random source fails.
    pub fn advance(&mut self, now: u64, random: Random) -> io::Result<Vec<KeyChange>> {
        let mut master = self.master.clone();
        let mut node = self.node.clone();
        let mut changes = advance(&mut master, KeyFamily::Master, &self.settings, now, random)?;
        changes.extend(advance(
            &mut node,
            KeyFamily::Node,
            &self.settings,
            now,
            random,
        )?);
        self.master = master;
        self.node = node;
        Ok(changes)
    }

    /// When `advance` next has something to do (after an `advance` at `now`, always later).
    pub fn next_change_ms(&self, now: u64) -> u64 {
        next_change(&self.master, KeyFamily::Master, &self.settings, now).min(next_change(
            &self.node,
            KeyFamily::Node,
            &self.settings,
            now,
        ))
    }

    /// The keys in use at `now`, to sign and check tokens with; None until `advance` made keys.
    pub fn snapshot(&self, now: u64) -> Option<Keys> {
        let master_signing = signing(&self.master, now)?.as_key();
        let node_signing = derive_node_key(&self.daemon, &announcement(signing(&self.node, now)?));
        let announced: Vec<proto::NodeKey> = self.node.iter().map(announcement).collect();
        Some(Keys::new(
            self.master.iter().map(StoredKey::as_key).collect(),
            master_signing,
            node_signing,
            announced,
            self.settings,
        ))
    }
}

/// How NMs are told of a node key: its id and seed, from which each derives the key itself.
fn announcement(key: &StoredKey) -> proto::NodeKey {
    proto::NodeKey {
        key_id: key.id,
        seed: key.material.to_vec(),
    }
}

/// The key that signs at `now`: the newest active one.
fn signing(keys: &[StoredKey], now: u64) -> Option<&StoredKey> {
    keys.iter().find(|key| key.active_from_ms <= now)
}

fn advance(
    keys: &mut Vec<StoredKey>,
    family: KeyFamily,
    settings: &KeySettings,
    now: u64,
    random: Random,
) -> io::Result<Vec<KeyChange>> {
    let mut changes = Vec::new();
    let due = keys
        .first()
        .is_none_or(|newest| now >= newest.created_ms.saturating_add(settings.roll_ms));
    if due {
        let first = keys.is_empty();
        let key = StoredKey {
            family,
            id: keys
                .first()
                .map_or(1, |newest| newest.id.checked_add(1).unwrap_or(1)),
            material: random()?,
            created_ms: now,
            // The very first key signs at once: there is no older one to sign meanwhile.
            active_from_ms: if first {
                now
            } else {
                now.saturating_add(settings.activation_ms(family))
            },
            retired_ms: None,
        };
        tracing::info!(
            ?family,
            key_id = key.id,
            active_from_ms = key.active_from_ms,
            "made a new key"
        );
        keys.insert(0, key.clone());
        changes.push(KeyChange::Put(key));
    }
    if let Some(at) = keys.iter().position(|key| key.active_from_ms <= now) {
        let took_over = keys[at].active_from_ms;
        for older in keys[at + 1..].iter_mut() {
            if older.retired_ms.is_none() {
                older.retired_ms = Some(took_over);
                changes.push(KeyChange::Put(older.clone()));
            }
        }
    }
    let life = settings.token_life_ms(family);
    keys.retain(|key| match key.retired_ms {
        Some(retired) if now >= retired.saturating_add(life) => {
            tracing::info!(
                ?family,
                key_id = key.id,
                "forgot a key whose tokens all expired"
            );
            changes.push(KeyChange::Remove { family, id: key.id });
            false
        }
        _ => true,
    });
    Ok(changes)
}

fn next_change(keys: &[StoredKey], family: KeyFamily, settings: &KeySettings, now: u64) -> u64 {
    let Some(newest) = keys.first() else {
        return now;
    };
    let life = settings.token_life_ms(family);
    let events = keys.iter().filter_map(|key| match key.retired_ms {
        Some(retired) => Some(retired.saturating_add(life)),
        None if key.active_from_ms > now => Some(key.active_from_ms),
        None => None,
    });
    events
        .chain([newest.created_ms.saturating_add(settings.roll_ms)])
        .min()
        .unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;

    fn settings() -> KeySettings {
        KeySettings {
            roll_ms: DAY,
            long_token_ms: 2 * DAY,
            container_token_ms: 600_000,
            node_activation_ms: 600_000,
        }
    }

    /// Material that differs every call.
    fn counter() -> impl FnMut() -> io::Result<[u8; KEY_MATERIAL_BYTES]> {
        let mut n = 0u8;
        move || {
            n += 1;
            Ok([n; KEY_MATERIAL_BYTES])
        }
    }

    fn book() -> KeyBook {
        KeyBook::recover(settings(), Secret::from_text(&"d".repeat(40)), Vec::new())
    }

    fn ids(keys: &[StoredKey]) -> Vec<u32> {
        keys.iter().map(|k| k.id).collect()
    }

    #[test]
    fn a_first_start_makes_one_key_of_each_family_that_signs_at_once() {
        let mut book = book();
        assert!(book.snapshot(0).is_none());
        let changes = book.advance(1_000, &mut counter()).unwrap();
        assert_eq!(changes.len(), 2);
        let keys = book.snapshot(1_000).unwrap();
        assert_eq!(keys.master_key_id(), 1);
        assert_eq!(keys.node_key_id(), 1);
        assert_eq!(keys.announced().len(), 1);
        assert_eq!(book.next_change_ms(1_000), 1_000 + DAY);
        assert!(book.advance(2_000, &mut counter()).unwrap().is_empty());
    }

    #[test]
    fn keys_roll_each_interval_and_a_rolled_key_stays_until_its_tokens_expired() {
        let mut book = book();
        let mut random = counter();
        book.advance(0, &mut random).unwrap();

        // A day later: a new master key signs at once; a new node key is announced first.
        let changes = book.advance(DAY, &mut random).unwrap();
        assert_eq!(ids(&book.master), [2, 1]);
        assert_eq!(book.master[1].retired_ms, Some(DAY));
        assert_eq!(ids(&book.node), [2, 1]);
        assert_eq!(book.node[1].retired_ms, None, "still signing");
        assert_eq!(
            changes.len(),
            3,
            "two new keys, one retirement: {changes:?}"
        );
        let keys = book.snapshot(DAY).unwrap();
        assert_eq!((keys.master_key_id(), keys.node_key_id()), (2, 1));
        assert_eq!(
            keys.announced().len(),
            2,
            "the new node key is announced already"
        );
        assert_eq!(book.next_change_ms(DAY), DAY + 600_000);

        // Once every node heard of it, the new node key signs.
        book.advance(DAY + 600_000, &mut random).unwrap();
        assert_eq!(book.node[1].retired_ms, Some(DAY + 600_000));
        assert_eq!(book.snapshot(DAY + 600_000).unwrap().node_key_id(), 2);

        // Key 1 of both families is kept through two more rolls, then forgotten: AM and NM
        // tokens live two days.
        book.advance(2 * DAY, &mut random).unwrap();
        assert_eq!(ids(&book.master), [3, 2, 1]);
        let changes = book.advance(3 * DAY, &mut random).unwrap();
        assert!(changes.contains(&KeyChange::Remove {
            family: KeyFamily::Master,
            id: 1
        }));
        assert_eq!(ids(&book.master), [4, 3, 2]);
        assert_eq!(ids(&book.node), [4, 3, 2, 1]);
        book.advance(3 * DAY + 600_000, &mut random).unwrap();
        assert_eq!(
            ids(&book.node),
            [4, 3, 2],
            "node key 1 retired at day 1 + 10 min"
        );
    }

    #[test]
    fn a_recovered_book_keeps_its_keys_and_catches_up_after_a_long_stop() {
        let mut first = book();
        let mut random = counter();
        let mut stored = Vec::new();
        for change in first.advance(0, &mut random).unwrap() {
            if let KeyChange::Put(key) = change {
                stored.push(key);
            }
        }
        let before = first.snapshot(10).unwrap();

        let mut again = KeyBook::recover(settings(), Secret::from_text(&"d".repeat(40)), stored);
        assert!(again.advance(10, &mut random).unwrap().is_empty());
        let after = again.snapshot(10).unwrap();
        assert_eq!(after, before, "the same keys after a restart");

        // Stopped for a week: a new key at once, the old ones retired from now.
        again.advance(7 * DAY, &mut random).unwrap();
        assert_eq!(ids(&again.master), [2, 1]);
        assert_eq!(again.master[1].retired_ms, Some(7 * DAY));
    }

    #[test]
    fn a_failing_random_source_changes_nothing() {
        let mut book = book();
        book.advance(0, &mut counter()).unwrap();
        let mut broken = || Err(io::Error::other("no entropy"));
        assert!(book.advance(DAY, &mut broken).is_err());
        assert_eq!(ids(&book.master), [1]);
        assert_eq!(book.master[0].retired_ms, None);
    }

    #[test]
    fn node_keys_activate_after_the_nm_expiry_but_within_half_a_roll() {
        let config = RmConfig {
            nm_liveness_expiry: std::time::Duration::from_secs(600),
            key_roll_interval: std::time::Duration::from_secs(60),
            ..RmConfig::default()
        };
        let s = KeySettings::new(&config);
        assert_eq!(s.node_activation_ms, 30_000);
        assert_eq!(s.long_token_ms, 120_000);
        assert_eq!(
            KeySettings::new(&RmConfig::default()).node_activation_ms,
            600_000
        );
    }
}
