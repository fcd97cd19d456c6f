//! What an AM learns from the environment its NM started it in: which attempt it is (from
//! `CONTAINER_ID`, which embeds the attempt), where the RM is, which host it runs on, the AM
//! token that lets it speak for its attempt (`SPINDLE_AM_TOKEN`, set by the RM), and the staged
//! files its own containers can reuse (`SPINDLE_LOCAL_RESOURCES`).

use spindle_containers::launch_context::{is_plain_file_name, is_sha256_hex};
use spindle_containers::{ApplicationId, AttemptId, ContainerId, LocalResource};

pub const CONTAINER_ID: &str = "CONTAINER_ID";
pub const APPLICATION_ID: &str = "APPLICATION_ID";
pub const RM_ADDRESS: &str = "SPINDLE_RM_ADDRESS";
pub const NM_HOST: &str = "NM_HOST";
pub const LOCAL_RESOURCES: &str = "SPINDLE_LOCAL_RESOURCES";
pub const USER: &str = "USER";
pub const AM_TOKEN: &str = "SPINDLE_AM_TOKEN";

/// The AM's own container, as its environment describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmEnv {
    pub container_id: ContainerId,
    pub attempt_id: AttemptId,
    pub application_id: ApplicationId,
    /// The RM's gRPC address, exactly as the NM was told it.
    pub rm_address: String,
    pub nm_host: String,
    /// The application's owner; empty when the environment does not say.
    pub user: String,
    /// Files the client staged for this application (the program first); empty when none.
    pub local_resources: Vec<LocalResource>,
    /// The attempt's AM token, which every call to the RM's ApplicationMaster service carries;
    /// `None` when the environment has none (the RM will refuse the calls, saying so).
    pub am_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmEnvError {
    #[error(
        "environment variable {0} is not set: this program must run as a Spindle application master"
    )]
    Missing(&'static str),
    #[error("environment variable {name}={value:?} is malformed: {reason}")]
    Malformed {
        name: &'static str,
        value: String,
        reason: String,
    },
}

impl AmEnv {
    /// Reads the process environment.
    pub fn from_env() -> Result<AmEnv, AmEnvError> {
        AmEnv::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<AmEnv, AmEnvError> {
        let required = |name: &'static str| match lookup(name) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(AmEnvError::Missing(name)),
        };
        let malformed = |name: &'static str, value: &str, reason: String| AmEnvError::Malformed {
            name,
            value: value.to_string(),
            reason,
        };

        let raw_container = required(CONTAINER_ID)?;
        let container_id: ContainerId =
            raw_container
                .parse()
                .map_err(|e: spindle_containers::IdError| {
                    malformed(CONTAINER_ID, &raw_container, e.to_string())
                })?;
        let raw_app = required(APPLICATION_ID)?;
        let application_id: ApplicationId =
            raw_app.parse().map_err(|e: spindle_containers::IdError| {
                malformed(APPLICATION_ID, &raw_app, e.to_string())
            })?;
        if container_id.application() != application_id {
            return Err(malformed(
                APPLICATION_ID,
                &raw_app,
                format!("it does not match {CONTAINER_ID}={container_id}"),
            ));
        }
        let local_resources = match lookup(LOCAL_RESOURCES) {
            None => Vec::new(),
            Some(json) if json.trim().is_empty() => Vec::new(),
            Some(json) => parse_local_resources(&json)
                .map_err(|reason| malformed(LOCAL_RESOURCES, &json, reason))?,
        };
        Ok(AmEnv {
            container_id,
            attempt_id: container_id.attempt,
            application_id,
            rm_address: required(RM_ADDRESS)?,
            nm_host: required(NM_HOST)?,
            user: lookup(USER).unwrap_or_default(),
            local_resources,
            am_token: lookup(AM_TOKEN)
                .map(|token| token.trim().to_string())
                .filter(|token| !token.is_empty()),
        })
    }
}

/// A JSON array of `{name, sha256, size, executable}`, each checked as the NM will check it.
fn parse_local_resources(json: &str) -> Result<Vec<LocalResource>, String> {
    let resources: Vec<LocalResource> = serde_json::from_str(json)
        .map_err(|e| format!("expected a JSON array of {{name, sha256, size, executable}}: {e}"))?;
    for r in &resources {
        if !is_plain_file_name(&r.name) {
            return Err(format!(
                "resource name {:?} must be a plain file name (no '/', no '..')",
                r.name
            ));
        }
        if !is_sha256_hex(&r.sha256) {
            return Err(format!(
                "resource {:?} has sha256 {:?}: expected 64 lowercase hex digits",
                r.name, r.sha256
            ));
        }
    }
    Ok(resources)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const CONTAINER: &str = "container_1700000000000_0007_02_000001";

    fn vars(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut vars: HashMap<String, String> = [
            (CONTAINER_ID, CONTAINER),
            (APPLICATION_ID, "application_1700000000000_0007"),
            (RM_ADDRESS, "rm:8032"),
            (NM_HOST, "node1"),
            (USER, "alice"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        vars
    }

    fn read(vars: &HashMap<String, String>) -> Result<AmEnv, AmEnvError> {
        AmEnv::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn finds_the_attempt_in_the_container_id() {
        let env = read(&vars(&[])).unwrap();
        assert_eq!(
            env.attempt_id.to_string(),
            "appattempt_1700000000000_0007_000002"
        );
        assert_eq!(env.rm_address, "rm:8032");
        assert!(env.local_resources.is_empty());
        assert_eq!(env.am_token, None);
    }

    #[test]
    fn reads_the_am_token_the_rm_set() {
        let env = read(&vars(&[(AM_TOKEN, "0a0b.cafe\n")])).unwrap();
        assert_eq!(env.am_token.as_deref(), Some("0a0b.cafe"));
        let env = read(&vars(&[(AM_TOKEN, "")])).unwrap();
        assert_eq!(env.am_token, None);
    }

    #[test]
    fn reads_the_staged_resources() {
        let json = format!(
            r#"[{{"name":"pi","sha256":"{}","size":12,"executable":true}}]"#,
            "ab".repeat(32)
        );
        let env = read(&vars(&[(LOCAL_RESOURCES, &json)])).unwrap();
        assert_eq!(env.local_resources.len(), 1);
        assert_eq!(env.local_resources[0].name, "pi");
        assert!(env.local_resources[0].executable);
    }

    #[test]
    fn names_the_missing_variable() {
        let mut v = vars(&[]);
        v.remove(RM_ADDRESS);
        assert_eq!(read(&v).unwrap_err(), AmEnvError::Missing(RM_ADDRESS));
        let err = read(&vars(&[(NM_HOST, " ")])).unwrap_err().to_string();
        assert!(err.contains("NM_HOST is not set"), "{err}");
    }

    #[test]
    fn names_the_malformed_variable_and_why() {
        let err = read(&vars(&[(CONTAINER_ID, "c1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("CONTAINER_ID=\"c1\""), "{err}");
        let err = read(&vars(&[(APPLICATION_ID, "application_1700000000000_0008")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not match CONTAINER_ID"), "{err}");
        let err = read(&vars(&[(LOCAL_RESOURCES, "{")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SPINDLE_LOCAL_RESOURCES"), "{err}");
        let bad = r#"[{"name":"../x","sha256":"00","size":1,"executable":false}]"#;
        let err = read(&vars(&[(LOCAL_RESOURCES, bad)]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"../x\""), "{err}");
    }
}
