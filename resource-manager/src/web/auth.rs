//! Who may call the web port. A call that changes something (an application id handed out, a
//! submission, a kill) must present the client secret as `Authorization: Bearer <secret>` and
//! name the user it acts for with the `user.name` query parameter, as YARN's simple
//! authentication names it; reads are anonymous unless `anonymous-reads` is off.
//!
//! The secret is a file only its owner may read (ssh insists on the same for keys): the
//! configured `secret-file`, or `state-dir/client.secret`, made from the system's random source
//! on the first start and kept. Only its sha256 stays in memory, and a presented secret is
//! compared by digest in constant time, so neither its bytes nor its length leak through timing.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use axum::extract::{Query, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::WebState;
use super::error::WebError;
use crate::{RmConfig, RmError};

/// The generated secret's file name in the state directory.
pub const SECRET_FILE: &str = "client.secret";
/// Random bytes in a generated secret (written as hex).
const SECRET_BYTES: usize = 32;
/// A configured secret shorter than this is refused: it could be guessed.
const MIN_SECRET_CHARS: usize = 32;
/// The longest user name taken from `user.name` (Linux' own limit is 32).
const MAX_USER_CHARS: usize = 64;

pub struct ClientSecret {
    digest: [u8; 32],
}

impl ClientSecret {
    /// The configured secret, or the state directory's (generated if it is not there yet).
    pub fn load(config: &RmConfig) -> Result<ClientSecret, RmError> {
        match &config.secret_file {
            Some(path) => Self::read(path),
            None => {
                let path = config.state_dir.join(SECRET_FILE);
                match fs::symlink_metadata(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::generate(&path),
                    _ => Self::read(&path),
                }
            }
        }
    }

    fn from_text(text: &str) -> ClientSecret {
        ClientSecret {
            digest: Sha256::digest(text.as_bytes()).into(),
        }
    }

    fn read(path: &Path) -> Result<ClientSecret, RmError> {
        let refuse = |problem: String| RmError::Secret {
            path: path.to_path_buf(),
            problem,
        };
        let meta = fs::metadata(path).map_err(|e| refuse(format!("cannot be read: {e}")))?;
        if !meta.is_file() {
            return Err(refuse("is not a regular file".into()));
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(refuse(format!(
                "is accessible by group or others (mode {mode:04o}); it must be readable by its \
                 owner only: chmod 600 {}",
                path.display()
            )));
        }
        let text = fs::read_to_string(path).map_err(|e| refuse(format!("cannot be read: {e}")))?;
        let secret = text.trim();
        if secret.chars().count() < MIN_SECRET_CHARS {
            return Err(refuse(format!(
                "holds a secret of {} characters; at least {MIN_SECRET_CHARS} are needed \
                 (for example 64 hex digits of random bytes)",
                secret.chars().count()
            )));
        }
        Ok(Self::from_text(secret))
    }

    /// Writes a new secret: to a temporary file of mode 0600 first, renamed into place once it
    /// is complete, so that a crash never leaves a half-written secret behind.
    fn generate(path: &Path) -> Result<ClientSecret, RmError> {
        let refuse = |what: &str, e: std::io::Error| RmError::Secret {
            path: path.to_path_buf(),
            problem: format!("cannot be {what}: {e}"),
        };
        let mut bytes = [0u8; SECRET_BYTES];
        fs::File::open("/dev/urandom")
            .and_then(|mut random| random.read_exact(&mut bytes))
            .map_err(|e| refuse("generated from /dev/urandom", e))?;
        let secret = hex::encode(bytes);
        let temp = temp_path(path);
        let _ = fs::remove_file(&temp);
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut file| {
                file.write_all(format!("{secret}\n").as_bytes())?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&temp, path));
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(refuse("written", e));
        }
        tracing::info!(path = %path.display(), "generated the client secret");
        Ok(Self::from_text(&secret))
    }

    /// Whether `presented` is the secret, compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        digest
            .iter()
            .zip(self.digest.iter())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The user a changing call acts for, as `user.name` named it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
}

/// Lets reads through (when anonymous reads are allowed) and checks everything else: the
/// bearer secret, and for calls that change something, the user. A passed changing call
/// carries its `Caller` to the handler.
pub async fn guard(State(web): State<WebState>, mut request: Request, next: Next) -> Response {
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    if !changes && web.anonymous_reads {
        return next.run(request).await;
    }
    if let Err(refused) = check_bearer(&web, &request) {
        return refused.into_response();
    }
    if changes {
        match caller(&request) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
            }
            Err(refused) => return refused.into_response(),
        }
    }
    next.run(request).await
}

fn check_bearer(web: &WebState, request: &Request) -> Result<(), WebError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(secret) if web.secret.matches(secret) => Ok(()),
        Some(_) => Err(WebError::Unauthorized(
            "the bearer secret in the Authorization header is not this resource manager's \
             client secret"
                .into(),
        )),
        None => Err(WebError::Unauthorized(
            "this call needs the header 'Authorization: Bearer <client secret>' (the \
             resource manager's client.secret)"
                .into(),
        )),
    }
}

fn caller(request: &Request) -> Result<Caller, WebError> {
    let query: HashMap<String, String> = Query::try_from_uri(request.uri())
        .map(|Query(q)| q)
        .unwrap_or_default();
    let Some(user) = query.get("user.name").filter(|u| !u.is_empty()) else {
        return Err(WebError::Unauthorized(
            "this call changes the cluster: name the user it acts for with the user.name query \
             parameter (?user.name=<user>)"
                .into(),
        ));
    };
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if user.chars().count() > MAX_USER_CHARS || !user.chars().all(allowed) {
        return Err(WebError::BadRequest(format!(
            "user.name={user:?} is not a user name: use at most {MAX_USER_CHARS} letters, \
             digits, '.', '_' or '-'"
        )));
    }
    Ok(Caller { user: user.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(state: &Path, secret_file: Option<PathBuf>) -> RmConfig {
        RmConfig {
            state_dir: state.to_path_buf(),
            secret_file,
            ..RmConfig::default()
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_generated_secret_is_private_and_kept_across_starts() {
        let state = tempfile::tempdir().unwrap();
        let first = ClientSecret::load(&config(state.path(), None)).unwrap();
        let path = state.path().join(SECRET_FILE);
        assert_eq!(mode(&path), 0o600);
        let text = fs::read_to_string(&path).unwrap();
        let secret = text.trim();
        assert_eq!(secret.len(), 2 * SECRET_BYTES);
        assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(first.matches(secret));
        assert!(!first.matches(&secret[1..]));
        assert!(!first.matches(""));

        let second = ClientSecret::load(&config(state.path(), None)).unwrap();
        assert!(second.matches(secret), "the same secret on the next start");
        assert!(!temp_path(&path).exists());
    }

    #[test]
    fn a_secret_others_can_read_is_refused_naming_the_file_and_the_fix() {
        let state = tempfile::tempdir().unwrap();
        let path = state.path().join("secret");
        fs::write(&path, "x".repeat(40)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = ClientSecret::load(&config(state.path(), Some(path.clone())))
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("mode 0640"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");

        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let secret = ClientSecret::load(&config(state.path(), Some(path))).unwrap();
        assert!(secret.matches(&"x".repeat(40)));
        assert!(
            !state.path().join(SECRET_FILE).exists(),
            "nothing is generated when a secret file is configured"
        );
    }

    #[test]
    fn a_short_or_missing_configured_secret_is_refused() {
        let state = tempfile::tempdir().unwrap();
        let path = state.path().join("secret");
        fs::write(&path, "short\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = ClientSecret::load(&config(state.path(), Some(path)))
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains("5 characters"), "{err}");

        let missing = state.path().join("nowhere");
        let err = ClientSecret::load(&config(state.path(), Some(missing)))
            .err()
            .expect("refused")
            .to_string();
        assert!(
            err.contains("nowhere") && err.contains("cannot be read"),
            "{err}"
        );
    }
}
