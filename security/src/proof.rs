//! Proving a secret without sending it. A caller sends `v1.<kind>.<unix ms>.<hex mac>`, the mac an
//! HMAC-SHA256 keyed by the secret over the kind, the time and the user the call acts for. The
//! server recomputes it and accepts it within `PROOF_WINDOW` of its own clock: a proof seen on the
//! wire cannot be turned into the secret, nor reused for another user, nor after the window.
//! (Replay inside the window by someone who can read the wire is possible: use TLS on networks you
//! do not trust; docs/security.md says so.)

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::AuthError;
use crate::secret::{Secret, SecretKind};

/// How far a proof's time may be from the verifier's clock (Kerberos allows the same skew).
pub const PROOF_WINDOW: Duration = Duration::from_secs(300);

const VERSION: &str = "v1";

fn mac(secret: &Secret, kind: SecretKind, time_ms: u64, user: &str) -> Hmac<Sha256> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    for part in ["spindle-proof-v1", kind.tag(), &time_ms.to_string(), user] {
        mac.update(part.as_bytes());
        mac.update(&[0]);
    }
    mac
}

/// The proof that the caller holds `secret`, for a call acting for `user` at `now_ms`.
pub fn sign_proof(secret: &Secret, kind: SecretKind, user: &str, now_ms: u64) -> String {
    let tag = mac(secret, kind, now_ms, user).finalize().into_bytes();
    format!("{VERSION}.{}.{now_ms}.{}", kind.tag(), hex::encode(tag))
}

/// The kind a proof claims, so that a server that accepts either secret knows which to check.
pub fn proof_kind(presented: &str) -> Result<SecretKind, AuthError> {
    let mut parts = presented.split('.');
    match (parts.next(), parts.next()) {
        (Some(VERSION), Some(tag)) => SecretKind::from_tag(tag).ok_or_else(|| {
            AuthError::Malformed(format!(
                "the proof names the secret {tag:?}; allowed are \"client\" and \"daemon\""
            ))
        }),
        _ => Err(AuthError::Malformed(format!(
            "a proof reads {VERSION}.<client|daemon>.<unix ms>.<hex mac>; got {} characters that do not",
            presented.len()
        ))),
    }
}

/// Checks `presented` against `secret` for `user` at the verifier's `now_ms`.
pub fn verify_proof(
    secret: &Secret,
    kind: SecretKind,
    user: &str,
    presented: &str,
    now_ms: u64,
) -> Result<(), AuthError> {
    let claimed = proof_kind(presented)?;
    if claimed != kind {
        return Err(AuthError::WrongKind {
            presented: claimed,
            wanted: kind,
        });
    }
    let parts: Vec<&str> = presented.split('.').collect();
    let [_, _, time, tag] = parts[..] else {
        return Err(AuthError::Malformed(format!(
            "a proof has 4 dot-separated parts; this one has {}",
            parts.len()
        )));
    };
    let time_ms: u64 = time.parse().map_err(|_| {
        AuthError::Malformed(format!(
            "the proof's time {time:?} is not a number of milliseconds"
        ))
    })?;
    // One spelling per proof: hex decoding would also take the mac in capitals.
    let tag = crate::token::decode_lower_hex(tag)
        .ok_or_else(|| AuthError::Malformed("the proof's mac is not lowercase hex".to_string()))?;
    mac(secret, kind, time_ms, user)
        .verify_slice(&tag)
        .map_err(|_| AuthError::WrongSecret(kind))?;
    let off_ms = time_ms.abs_diff(now_ms);
    if off_ms > PROOF_WINDOW.as_millis() as u64 {
        return Err(AuthError::Skewed {
            off_secs: off_ms / 1000,
            allowed_secs: PROOF_WINDOW.as_secs(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secret(c: char) -> Secret {
        Secret::from_text(&c.to_string().repeat(40))
    }

    #[test]
    fn a_proof_verifies_for_its_secret_kind_and_user_only() {
        let now = 1_800_000_000_000;
        let proof = sign_proof(&secret('a'), SecretKind::Client, "alice", now);
        assert!(
            !proof.contains(&"a".repeat(40)),
            "the secret itself is never sent"
        );
        verify_proof(
            &secret('a'),
            SecretKind::Client,
            "alice",
            &proof,
            now + 1000,
        )
        .unwrap();

        let wrong = verify_proof(&secret('b'), SecretKind::Client, "alice", &proof, now);
        assert!(matches!(
            wrong,
            Err(AuthError::WrongSecret(SecretKind::Client))
        ));
        let other_user = verify_proof(&secret('a'), SecretKind::Client, "mallory", &proof, now);
        assert!(matches!(other_user, Err(AuthError::WrongSecret(_))));
        let other_kind = verify_proof(&secret('a'), SecretKind::Daemon, "alice", &proof, now);
        assert!(matches!(other_kind, Err(AuthError::WrongKind { .. })));
    }

    #[test]
    fn an_old_or_future_proof_is_refused_naming_the_skew() {
        let now = 1_800_000_000_000;
        let proof = sign_proof(&secret('a'), SecretKind::Daemon, "", now);
        let late = now + PROOF_WINDOW.as_millis() as u64 + 5_000;
        let err = verify_proof(&secret('a'), SecretKind::Daemon, "", &proof, late).unwrap_err();
        assert!(err.to_string().contains("305 s"), "{err}");
        let early = now - PROOF_WINDOW.as_millis() as u64 - 5_000;
        assert!(verify_proof(&secret('a'), SecretKind::Daemon, "", &proof, early).is_err());
    }

    proptest! {
        #[test]
        fn nonsense_is_refused_without_panicking(presented in ".{0,120}", user in "[a-z]{0,8}") {
            let result = verify_proof(&secret('a'), SecretKind::Client, &user, &presented, 0);
            prop_assert!(result.is_err());
        }

        #[test]
        fn a_changed_proof_never_verifies(position in 0usize..200, byte in any::<u8>()) {
            let proof = sign_proof(&secret('a'), SecretKind::Client, "alice", 1000);
            let mut bytes = proof.clone().into_bytes();
            let at = position % bytes.len();
            prop_assume!(bytes[at] != byte);
            bytes[at] = byte;
            let changed = String::from_utf8_lossy(&bytes).into_owned();
            prop_assume!(changed != proof);
            prop_assert!(verify_proof(&secret('a'), SecretKind::Client, "alice", &changed, 1000).is_err());
        }
    }
}
