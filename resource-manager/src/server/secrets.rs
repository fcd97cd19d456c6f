//! The RM's two secrets, read before anything else starts: the client secret (clients prove it
//! on every gRPC call, and present it as the REST bearer) and the daemon secret (NMs prove it;
//! node keys derive from it). Each is the configured file, or the state directory's
//! `client.secret` / `daemon.secret`, generated on the first start and kept.

use std::path::{Path, PathBuf};

use spindle_security::{Secret, SecretError, SecretKind};

use crate::{RmConfig, RmError};

pub struct Secrets {
    pub client: Secret,
    pub daemon: Secret,
    pub client_file: PathBuf,
    pub daemon_file: PathBuf,
}

impl Secrets {
    /// Reads (or generates) both secrets, refusing a file others may read, a secret too short,
    /// and one secret used for both: a user who may submit could then join a node.
    pub fn load(config: &RmConfig) -> Result<Secrets, RmError> {
        let (client, client_file) =
            load(SecretKind::Client, config.secret_file.as_deref(), config)?;
        let (daemon, daemon_file) = load(
            SecretKind::Daemon,
            config.daemon_secret_file.as_deref(),
            config,
        )?;
        if client == daemon {
            return Err(RmError::Secret {
                kind: SecretKind::Daemon,
                error: SecretError {
                    path: daemon_file,
                    problem: format!(
                        "holds the same secret as the client secret file {}: they must differ, \
                         or anyone who may submit could join a node",
                        client_file.display()
                    ),
                },
            });
        }
        Ok(Secrets {
            client,
            daemon,
            client_file,
            daemon_file,
        })
    }
}

fn load(
    kind: SecretKind,
    configured: Option<&Path>,
    config: &RmConfig,
) -> Result<(Secret, PathBuf), RmError> {
    let refuse = |error: SecretError| RmError::Secret { kind, error };
    if let Some(path) = configured {
        return Ok((Secret::read(path).map_err(refuse)?, path.to_path_buf()));
    }
    let path = config.state_dir.join(kind.file_name());
    std::fs::create_dir_all(&config.state_dir).map_err(|error| RmError::StateDir {
        path: config.state_dir.clone(),
        error,
    })?;
    let (secret, generated) = Secret::read_or_generate(&path).map_err(refuse)?;
    if generated {
        tracing::info!(path = %path.display(), "generated the {kind}");
    }
    Ok((secret, path))
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn config(state: &Path) -> RmConfig {
        RmConfig {
            state_dir: state.to_path_buf(),
            ..RmConfig::default()
        }
    }

    fn write_secret(path: &Path, text: &str, mode: u32) {
        fs::write(path, text).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn both_secrets_are_generated_apart_and_kept_across_starts() {
        let state = tempfile::tempdir().unwrap();
        let first = Secrets::load(&config(state.path())).unwrap();
        assert_eq!(first.client_file, state.path().join("client.secret"));
        assert_eq!(first.daemon_file, state.path().join("daemon.secret"));
        assert_ne!(first.client, first.daemon);
        for file in [&first.client_file, &first.daemon_file] {
            assert_eq!(
                fs::metadata(file).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let second = Secrets::load(&config(state.path())).unwrap();
        assert_eq!(
            (second.client, second.daemon),
            (first.client, first.daemon),
            "the same secrets on the next start"
        );
    }

    #[test]
    fn configured_files_are_used_and_refused_when_others_may_read_them() {
        let state = tempfile::tempdir().unwrap();
        let client = state.path().join("mine");
        write_secret(&client, &"c".repeat(40), 0o640);
        let mut config = config(state.path());
        config.secret_file = Some(client.clone());
        let err = Secrets::load(&config).err().expect("refused").to_string();
        assert!(
            err.contains("client secret")
                && err.contains(&client.display().to_string())
                && err.contains("mode 0640")
                && err.contains("chmod 600"),
            "{err}"
        );
        fs::set_permissions(&client, fs::Permissions::from_mode(0o600)).unwrap();
        let secrets = Secrets::load(&config).unwrap();
        assert!(secrets.client.matches(&"c".repeat(40)));
        assert!(
            !state.path().join("client.secret").exists(),
            "nothing is generated when a secret file is configured"
        );
    }

    #[test]
    fn one_secret_for_both_is_refused() {
        let state = tempfile::tempdir().unwrap();
        let (client, daemon) = (state.path().join("c"), state.path().join("d"));
        write_secret(&client, &"s".repeat(40), 0o600);
        write_secret(&daemon, &"s".repeat(40), 0o600);
        let mut config = config(state.path());
        config.secret_file = Some(client);
        config.daemon_secret_file = Some(daemon);
        let err = Secrets::load(&config).err().expect("refused").to_string();
        assert!(err.contains("must differ"), "{err}");
    }
}
