//! What a container runs: its command (argv), environment and local resources, checked once
//! where it comes off the wire so that nothing after has to doubt it.

use std::collections::BTreeMap;

use spindle_protocol as proto;

/// A file to put into the container's working directory, named by the content's sha256.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LocalResource {
    pub name: String,
    pub sha256: String,
    pub size: u64,
    pub executable: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LaunchContext {
    pub command: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub local_resources: Vec<LocalResource>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaunchContextError {
    #[error("launch context is missing")]
    Missing,
    #[error("launch context command is empty: it needs at least the program")]
    EmptyCommand,
    #[error(
        "local resource name {0:?} is not allowed: it must be a plain file name inside the \
         container directory (no '/', no '..', not empty)"
    )]
    BadResourceName(String),
    #[error("local resource {name:?} has sha256 {sha256:?}: expected 64 lowercase hex digits")]
    BadDigest { name: String, sha256: String },
    #[error(
        "environment variable name {0:?} is not allowed: use letters, digits and '_', not starting with a digit"
    )]
    BadEnvName(String),
    #[error("argument {index} of the command contains a NUL byte")]
    NulInCommand { index: usize },
}

/// A file name that stays inside the directory it is joined to.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0')
        && name.len() <= 255
}

pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn is_env_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl LaunchContext {
    pub fn from_proto(
        ctx: Option<&proto::ContainerLaunchContext>,
    ) -> Result<Self, LaunchContextError> {
        let ctx = ctx.ok_or(LaunchContextError::Missing)?;
        let launch = LaunchContext {
            command: ctx.command.clone(),
            env: ctx
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            local_resources: ctx
                .local_resources
                .iter()
                .map(|r| LocalResource {
                    name: r.name.clone(),
                    sha256: r.sha256.clone(),
                    size: r.size,
                    executable: r.executable,
                })
                .collect(),
        };
        launch.validate()?;
        Ok(launch)
    }

    pub fn validate(&self) -> Result<(), LaunchContextError> {
        if self.command.is_empty() || self.command[0].is_empty() {
            return Err(LaunchContextError::EmptyCommand);
        }
        if let Some(index) = self.command.iter().position(|a| a.contains('\0')) {
            return Err(LaunchContextError::NulInCommand { index });
        }
        for r in &self.local_resources {
            if !is_plain_file_name(&r.name) {
                return Err(LaunchContextError::BadResourceName(r.name.clone()));
            }
            if !is_sha256_hex(&r.sha256) {
                return Err(LaunchContextError::BadDigest {
                    name: r.name.clone(),
                    sha256: r.sha256.clone(),
                });
            }
        }
        if let Some(name) = self.env.keys().find(|k| !is_env_name(k)) {
            return Err(LaunchContextError::BadEnvName(name.clone()));
        }
        Ok(())
    }

    pub fn to_proto(&self) -> proto::ContainerLaunchContext {
        proto::ContainerLaunchContext {
            command: self.command.clone(),
            environment: self
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            local_resources: self
                .local_resources
                .iter()
                .map(|r| proto::LocalResource {
                    name: r.name.clone(),
                    sha256: r.sha256.clone(),
                    size: r.size,
                    executable: r.executable,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(name: &str) -> LaunchContext {
        LaunchContext {
            command: vec!["./prog".into()],
            env: BTreeMap::new(),
            local_resources: vec![LocalResource {
                name: name.into(),
                sha256: "a".repeat(64),
                size: 1,
                executable: true,
            }],
        }
    }

    #[test]
    fn refuses_names_that_escape_the_container_dir() {
        for bad in ["../x", "/etc/passwd", "a/b", "..", ".", ""] {
            assert_eq!(
                ctx(bad).validate(),
                Err(LaunchContextError::BadResourceName(bad.into()))
            );
        }
        assert!(ctx("prog").validate().is_ok());
    }
}
