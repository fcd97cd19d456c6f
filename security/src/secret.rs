//! The cluster's two secrets, each a file only its owner may read (ssh insists on the same for
//! keys). The *client secret* lets a client call the RM; the *daemon secret* lets an NM join, and
//! the keys that sign container and NM tokens are derived from it. Two, so that a user who may
//! submit cannot join a rogue node. A secret is never sent: callers prove they hold it
//! (`crate::proof`).

use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Random bytes in a generated secret (written as hex).
const GENERATED_BYTES: usize = 32;
/// A configured secret shorter than this is refused: it could be guessed.
pub const MIN_SECRET_CHARS: usize = 32;

/// Which of the two secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretKind {
    /// Proven by every client call to the RM (submit, status, kill, logs …).
    Client,
    /// Proven by NMs to the RM; the root of the RM↔NM token keys.
    Daemon,
}

impl SecretKind {
    /// The file name `spindle resource-manager` generates in its state dir.
    pub fn file_name(self) -> &'static str {
        match self {
            SecretKind::Client => "client.secret",
            SecretKind::Daemon => "daemon.secret",
        }
    }

    /// The environment variable that names the secret's file.
    pub fn env_var(self) -> &'static str {
        match self {
            SecretKind::Client => "SPINDLE_SECRET_FILE",
            SecretKind::Daemon => "SPINDLE_DAEMON_SECRET_FILE",
        }
    }

    /// The command-line flag that names the secret's file.
    pub fn flag(self) -> &'static str {
        match self {
            SecretKind::Client => "--secret-file",
            SecretKind::Daemon => "--daemon-secret-file",
        }
    }

    /// How proofs name the kind on the wire.
    pub fn tag(self) -> &'static str {
        match self {
            SecretKind::Client => "client",
            SecretKind::Daemon => "daemon",
        }
    }

    pub(crate) fn from_tag(tag: &str) -> Option<SecretKind> {
        match tag {
            "client" => Some(SecretKind::Client),
            "daemon" => Some(SecretKind::Daemon),
            _ => None,
        }
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} secret", self.tag())
    }
}

/// A secret file that cannot be used, and why.
#[derive(Debug, thiserror::Error)]
#[error("secret file {} {problem}", path.display())]
pub struct SecretError {
    pub path: PathBuf,
    pub problem: String,
}

/// A secret's bytes. Its `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    bytes: Vec<u8>,
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl Secret {
    /// A secret from its text (surrounding whitespace, like the file's newline, is not part of it).
    pub fn from_text(text: &str) -> Secret {
        Secret {
            bytes: text.trim().as_bytes().to_vec(),
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Whether `presented` is this secret (as an HTTP bearer presents it), compared in constant
    /// time by digest, so that neither its bytes nor its length leak through timing.
    pub fn matches(&self, presented: &str) -> bool {
        use sha2::{Digest, Sha256};
        let ours: [u8; 32] = Sha256::digest(&self.bytes).into();
        let theirs: [u8; 32] = Sha256::digest(presented.trim().as_bytes()).into();
        ours.iter()
            .zip(theirs.iter())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
    }

    /// Reads a secret file, refusing one that group or others may read, one that is not a regular
    /// file, and one too short to be unguessable.
    pub fn read(path: &Path) -> Result<Secret, SecretError> {
        let refuse = |problem: String| SecretError {
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
        let chars = text.trim().chars().count();
        if chars < MIN_SECRET_CHARS {
            return Err(refuse(format!(
                "holds a secret of {chars} characters; at least {MIN_SECRET_CHARS} are needed \
                 (for example 64 hex digits of random bytes)"
            )));
        }
        Ok(Secret::from_text(&text))
    }

    /// The secret at `path`, generated there first if there is no file yet. The flag says whether
    /// it was generated.
    pub fn read_or_generate(path: &Path) -> Result<(Secret, bool), SecretError> {
        match fs::symlink_metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok((Secret::generate(path)?, true))
            }
            _ => Ok((Secret::read(path)?, false)),
        }
    }

    /// Writes a new random secret: to a temporary file of mode 0600 first, renamed into place once
    /// complete, so that a crash never leaves a half-written secret behind.
    pub fn generate(path: &Path) -> Result<Secret, SecretError> {
        let refuse = |what: &str, e: std::io::Error| SecretError {
            path: path.to_path_buf(),
            problem: format!("cannot be {what}: {e}"),
        };
        let mut bytes = [0u8; GENERATED_BYTES];
        random_bytes(&mut bytes).map_err(|e| refuse("generated from /dev/urandom", e))?;
        let text = hex::encode(bytes);
        let temp = temp_path(path);
        let _ = fs::remove_file(&temp);
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .and_then(|mut file| {
                file.write_all(format!("{text}\n").as_bytes())?;
                file.sync_all()
            })
            .and_then(|()| fs::rename(&temp, path));
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(refuse("written", e));
        }
        Ok(Secret::from_text(&text))
    }
}

/// Fills `buf` from the kernel's random source.
pub(crate) fn random_bytes(buf: &mut [u8]) -> std::io::Result<()> {
    fs::File::open("/dev/urandom")?.read_exact(buf)
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn a_generated_secret_is_private_and_read_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SecretKind::Daemon.file_name());
        let (first, generated) = Secret::read_or_generate(&path).unwrap();
        assert!(generated);
        assert_eq!(mode(&path), 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 2 * GENERATED_BYTES);
        let (second, generated) = Secret::read_or_generate(&path).unwrap();
        assert!(!generated);
        assert_eq!(first, second);
        assert!(first.matches(text.trim()) && !first.matches(&text.trim()[1..]));
        assert!(!temp_path(&path).exists());
        assert_eq!(
            format!("{first:?}"),
            "Secret(…)",
            "Debug never shows the bytes"
        );
    }

    #[test]
    fn a_secret_others_can_read_is_refused_naming_the_file_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        fs::write(&path, "x".repeat(40)).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = Secret::read(&path).unwrap_err().to_string();
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(
            err.contains("mode 0644") && err.contains("chmod 600"),
            "{err}"
        );
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            Secret::read(&path).unwrap(),
            Secret::from_text(&"x".repeat(40))
        );
    }

    #[test]
    fn short_missing_and_directory_secrets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short");
        fs::write(&path, "short\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let err = Secret::read(&path).unwrap_err().to_string();
        assert!(err.contains("5 characters"), "{err}");
        let err = Secret::read(&dir.path().join("nowhere"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("nowhere") && err.contains("cannot be read"),
            "{err}"
        );
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let err = Secret::read(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
