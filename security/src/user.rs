//! The user a call acts for. Spindle believes the name a client sends, as YARN's simple
//! authentication does (docs/security.md says so plainly); what it checks is the name's shape, so
//! that a name can never be a path or an escape sequence when it is used as one.

use crate::error::AuthError;

/// The longest user name accepted (Linux' own limit is 32).
pub const MAX_USER_CHARS: usize = 64;

/// Names the user a client acts for instead of its OS user, as `HADOOP_USER_NAME` does under
/// YARN's simple authentication: a convenience, not a protection (docs/security.md).
pub const USER_ENV: &str = "SPINDLE_USER";

/// The user a client's calls act for: `SPINDLE_USER` when set, else the OS user.
pub fn client_user() -> Result<String, AuthError> {
    match std::env::var(USER_ENV) {
        Ok(name) if !name.is_empty() => {
            validate_user(&name).map_err(|e| AuthError::BadUser(format!("{USER_ENV}: {e}")))?;
            Ok(name)
        }
        _ => Ok(current_user()),
    }
}

/// The name of the user this process runs as: from the password database, else `$USER`, else
/// the numeric uid.
pub fn current_user() -> String {
    let uid = nix::unistd::geteuid();
    if let Ok(Some(user)) = nix::unistd::User::from_uid(uid) {
        return user.name;
    }
    std::env::var("USER")
        .ok()
        .filter(|name| validate_user(name).is_ok())
        .unwrap_or_else(|| uid.to_string())
}

/// Checks that `name` is a user name: 1 to 64 ASCII letters, digits, '.', '_' or '-', not
/// starting with '-' or '.'.
pub fn validate_user(name: &str) -> Result<(), AuthError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    let ok = !name.is_empty()
        && name.chars().count() <= MAX_USER_CHARS
        && name.chars().all(allowed)
        && !name.starts_with(['-', '.']);
    if ok {
        Ok(())
    } else {
        Err(AuthError::BadUser(format!(
            "{name:?} is not a user name: use 1 to {MAX_USER_CHARS} letters, digits, '.', '_' or \
             '-', not starting with '-' or '.'"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_are_checked_for_shape() {
        for good in ["alice", "svc_spark", "a.b-c", "u1000"] {
            validate_user(good).unwrap();
        }
        for bad in [
            "",
            "..",
            "../etc",
            "a/b",
            "-rf",
            ".hidden",
            "al ice",
            "é",
            &"a".repeat(65),
        ] {
            assert!(validate_user(bad).is_err(), "{bad:?}");
        }
        validate_user(&current_user()).unwrap();
    }
}
