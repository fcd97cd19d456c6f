//! Who a client is to the cluster: the user its calls act for (`SPINDLE_USER`, else the OS
//! user) and its proof of the cluster's client secret. The secret's file is named by
//! `--secret-file`, else `SPINDLE_SECRET_FILE`, else `client.secret-file` in spindle.yaml; with
//! none, calls name the user and prove nothing, so the RM's refusal tells the user what to set.
//! A client never opens the daemon secret.

use std::path::{Path, PathBuf};

use spindle_security::{CallCredentials, Secret, SecretKind, client_user};

use crate::config::ClientConfig;
use crate::error::ClientError;

/// The environment variable that names the client secret's file.
pub const SECRET_FILE_ENV: &str = "SPINDLE_SECRET_FILE";

/// Where a client secret's path came from, to name it when the file cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    Flag,
    Env,
    Config,
    /// A cluster this process started itself (`local-cluster[…]`).
    LocalCluster,
}

impl SecretSource {
    pub fn describe(self) -> &'static str {
        match self {
            SecretSource::Flag => "--secret-file",
            SecretSource::Env => SECRET_FILE_ENV,
            SecretSource::Config => "client.secret-file in spindle.yaml",
            SecretSource::LocalCluster => "the local cluster",
        }
    }
}

/// The client secret's file: `flag`, else `SPINDLE_SECRET_FILE` (read through `env`, empty
/// meaning unset), else the config's `client.secret-file`; `None` when nothing names one.
pub fn secret_file(
    flag: Option<&Path>,
    env: impl Fn(&str) -> Option<String>,
    config: &ClientConfig,
) -> Option<(PathBuf, SecretSource)> {
    if let Some(path) = flag {
        return Some((path.to_path_buf(), SecretSource::Flag));
    }
    if let Some(path) = env(SECRET_FILE_ENV).filter(|v| !v.is_empty()) {
        return Some((PathBuf::from(path), SecretSource::Env));
    }
    config
        .secret_file
        .clone()
        .map(|path| (path, SecretSource::Config))
}

/// The credentials of a client command: the secret that `--secret-file` (given as `flag`), the
/// environment or the config names, for the user of [`client_user`].
pub fn client_credentials(
    flag: Option<&Path>,
    config: &ClientConfig,
) -> Result<CallCredentials, ClientError> {
    let file = secret_file(flag, |name| std::env::var(name).ok(), config);
    credentials_from(file.as_ref().map(|(path, from)| (path.as_path(), *from)))
}

/// The credentials of an SDK program's launcher: `SPINDLE_SECRET_FILE`, as the CLI reads it.
pub fn credentials_from_env() -> Result<CallCredentials, ClientError> {
    client_credentials(None, &ClientConfig::default())
}

/// Proof of the secret in `file` (read now, refused if others may read it), or of nothing.
pub fn credentials_from(
    file: Option<(&Path, SecretSource)>,
) -> Result<CallCredentials, ClientError> {
    let user = client_user().map_err(|e| ClientError::User(e.to_string()))?;
    let Some((path, from)) = file else {
        return Ok(CallCredentials::user_only(user));
    };
    let secret = Secret::read(path).map_err(|source| ClientError::Secret {
        from: from.describe(),
        source,
    })?;
    Ok(CallCredentials::with_secret(
        SecretKind::Client,
        secret,
        user,
    ))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn config(path: Option<&str>) -> ClientConfig {
        ClientConfig {
            secret_file: path.map(PathBuf::from),
            ..ClientConfig::default()
        }
    }

    #[test]
    fn the_flag_wins_then_the_environment_then_the_config() {
        let env = |value: &'static str| {
            move |name: &str| (name == SECRET_FILE_ENV).then(|| value.to_string())
        };
        let flag = Path::new("/flag");
        assert_eq!(
            secret_file(Some(flag), env("/env"), &config(Some("/config"))),
            Some((PathBuf::from("/flag"), SecretSource::Flag))
        );
        assert_eq!(
            secret_file(None, env("/env"), &config(Some("/config"))),
            Some((PathBuf::from("/env"), SecretSource::Env))
        );
        assert_eq!(
            secret_file(None, env(""), &config(Some("/config"))),
            Some((PathBuf::from("/config"), SecretSource::Config))
        );
        assert_eq!(secret_file(None, env(""), &config(None)), None);
    }

    #[test]
    fn no_secret_still_names_the_user() {
        let credentials = credentials_from(None).unwrap();
        assert!(!credentials.user().is_empty());
    }

    #[test]
    fn a_secret_others_may_read_is_refused_naming_where_it_was_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.secret");
        std::fs::write(&path, "s".repeat(64)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = credentials_from(Some((&path, SecretSource::Env)))
            .unwrap_err()
            .to_string();
        assert!(err.contains(SECRET_FILE_ENV), "{err}");
        assert!(
            err.contains("mode 0644") && err.contains("chmod 600"),
            "{err}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        credentials_from(Some((&path, SecretSource::Flag))).unwrap();
    }
}
