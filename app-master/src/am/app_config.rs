//! The launcher → AM contract for Spark-shaped applications: what the client puts in the AM
//! container's environment, and how the AM reads it back. The client crate writes the other
//! side; both build against the text below.
//!
//! # The contract
//!
//! The AM container of a Spark-shaped application runs `./<program> ARGS...`: the user's own
//! program with the user's own arguments (the driver reads them through
//! `DriverContext::args()`). Its environment holds, besides the variables every container gets
//! (`CONTAINER_ID`, `APPLICATION_ID`, `NM_HOST`, `SPINDLE_RM_ADDRESS`, `USER`, …, see `AmEnv`):
//!
//! - `SPINDLE_ROLE=am`: the program's role dispatch runs `run_application_master`.
//! - `SPINDLE_LOCAL_RESOURCES`: the JSON array of staged files (`{name, sha256, size,
//!   executable}`), the program among them, so executors get the same files.
//! - `SPINDLE_APP_CONFIG`: the JSON of [`AppConfig`]; every field may be left out and takes the
//!   default shown, and an unknown field is an error that names it:
//!
//! ```json
//! { "deploy_mode": "cluster",      // or "client"
//!   "num_executors": 2,            // executors to keep; the driver may ask for more or fewer
//!   "executor_memory_mb": 512,     // each executor's container memory
//!   "executor_cores": 1,           // each executor's vcores, and the tasks it runs at once
//!   "am_wait_time_ms": 100000,     // cluster mode: how long the driver may take to come up
//!   "max_task_failures": 4,        // failures of one task that fail its job
//!   "driver_url": null }           // client mode only, and required there: the driver in
//!                                  // the submitting process, "http://HOST:PORT"
//! ```
//!
//! The AM launches each executor with the staged files and the command
//! `./<program> executor --driver-url URL --executor-id N --hostname H --cores C --app-id ID`
//! (program: the executable staged file named like the AM's own `argv[0]`), with
//! `SPINDLE_ROLE=executor` in its environment.
//!
//! The AM exits 0 when it unregistered SUCCEEDED, 13 when the driver did not create its
//! context within `am_wait_time_ms` (without unregistering, so the RM retries the attempt),
//! and 1 otherwise.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use spindle_containers::Resource;

use crate::endpoint;

/// The variable that selects a program's role.
pub const ROLE_ENV: &str = "SPINDLE_ROLE";
/// `SPINDLE_ROLE` of an application master.
pub const ROLE_AM: &str = "am";
/// `SPINDLE_ROLE` of an executor.
pub const ROLE_EXECUTOR: &str = "executor";
/// The variable holding the JSON of [`AppConfig`].
pub const APP_CONFIG_ENV: &str = "SPINDLE_APP_CONFIG";

/// Where the driver runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployMode {
    /// Inside the AM, on a thread of its own (Spark's `runDriver`).
    #[default]
    Cluster,
    /// In the submitting process; the AM only launches executors (Spark's ExecutorLauncher).
    Client,
}

impl DeployMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DeployMode::Cluster => "cluster",
            DeployMode::Client => "client",
        }
    }
}

/// How a Spark-shaped application wants to run, as the launcher tells its AM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    pub deploy_mode: DeployMode,
    pub num_executors: u32,
    pub executor_memory_mb: u64,
    pub executor_cores: u32,
    pub am_wait_time_ms: u64,
    pub max_task_failures: u32,
    pub driver_url: Option<String>,
}

impl Default for AppConfig {
    /// Spark's defaults: two executors of 512 MB and one core, 100 s for the driver to come up,
    /// four failures of a task before its job fails.
    fn default() -> AppConfig {
        AppConfig {
            deploy_mode: DeployMode::Cluster,
            num_executors: 2,
            executor_memory_mb: 512,
            executor_cores: 1,
            am_wait_time_ms: 100_000,
            max_task_failures: 4,
            driver_url: None,
        }
    }
}

/// The fields of [`AppConfig`], as the JSON names them.
const FIELDS: [&str; 7] = [
    "deploy_mode",
    "num_executors",
    "executor_memory_mb",
    "executor_cores",
    "am_wait_time_ms",
    "max_task_failures",
    "driver_url",
];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppConfigError {
    #[error("{APP_CONFIG_ENV} is not a JSON object of the application config: {reason}")]
    Json { reason: String },
    #[error("{APP_CONFIG_ENV}: unknown field {field:?}; the fields are {}", FIELDS.join(", "))]
    UnknownField { field: String },
    #[error("{APP_CONFIG_ENV}: {field}={value} is not allowed: {allowed}")]
    Invalid {
        field: &'static str,
        value: String,
        allowed: String,
    },
}

impl AppConfig {
    /// Reads `SPINDLE_APP_CONFIG` from the process environment.
    pub fn from_env() -> Result<AppConfig, AppConfigError> {
        AppConfig::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads `SPINDLE_APP_CONFIG` through `lookup`; unset or blank means every default.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<AppConfig, AppConfigError> {
        match lookup(APP_CONFIG_ENV) {
            Some(json) if !json.trim().is_empty() => AppConfig::from_json(&json),
            _ => {
                let config = AppConfig::default();
                config.validate()?;
                Ok(config)
            }
        }
    }

    /// Parses and validates the JSON form. Fields are read one by one, so that a value of the
    /// wrong type is reported with its field's name (serde alone names only the position).
    pub fn from_json(json: &str) -> Result<AppConfig, AppConfigError> {
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| AppConfigError::Json {
                reason: e.to_string(),
            })?;
        let serde_json::Value::Object(fields) = value else {
            return Err(AppConfigError::Json {
                reason: format!("expected an object, got {value}"),
            });
        };
        if let Some(unknown) = fields.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(AppConfigError::UnknownField {
                field: unknown.clone(),
            });
        }
        let mut config = AppConfig::default();
        read_field(&fields, "deploy_mode", &mut config.deploy_mode)?;
        read_field(&fields, "num_executors", &mut config.num_executors)?;
        read_field(
            &fields,
            "executor_memory_mb",
            &mut config.executor_memory_mb,
        )?;
        read_field(&fields, "executor_cores", &mut config.executor_cores)?;
        read_field(&fields, "am_wait_time_ms", &mut config.am_wait_time_ms)?;
        read_field(&fields, "max_task_failures", &mut config.max_task_failures)?;
        read_field(&fields, "driver_url", &mut config.driver_url)?;
        config.validate()?;
        Ok(config)
    }

    /// The JSON form, for the launcher to put in `SPINDLE_APP_CONFIG`.
    pub fn to_json(&self) -> String {
        // A struct of plain fields always serializes.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Checks every field against what the AM can carry out.
    pub fn validate(&self) -> Result<(), AppConfigError> {
        let invalid = |field: &'static str, value: String, allowed: &str| {
            Err(AppConfigError::Invalid {
                field,
                value,
                allowed: allowed.to_string(),
            })
        };
        if self.executor_memory_mb == 0 {
            return invalid("executor_memory_mb", "0".into(), "it must be at least 1");
        }
        if self.executor_cores == 0 {
            return invalid("executor_cores", "0".into(), "it must be at least 1");
        }
        if self.am_wait_time_ms == 0 {
            return invalid("am_wait_time_ms", "0".into(), "it must be at least 1");
        }
        if self.max_task_failures == 0 {
            return invalid(
                "max_task_failures",
                "0".into(),
                "it must be at least 1 (1 means no retries)",
            );
        }
        match (self.deploy_mode, &self.driver_url) {
            (DeployMode::Cluster, Some(url)) => invalid(
                "driver_url",
                format!("{url:?}"),
                "it is only for deploy_mode=client (in cluster mode the AM runs the driver)",
            ),
            (DeployMode::Client, None) => invalid(
                "driver_url",
                "null".into(),
                "deploy_mode=client needs the driver's URL, http://HOST:PORT",
            ),
            (DeployMode::Client, Some(url))
                if !url.starts_with("http://") || endpoint::uri(url).is_err() =>
            {
                invalid(
                    "driver_url",
                    format!("{url:?}"),
                    "expected http://HOST:PORT",
                )
            }
            _ => Ok(()),
        }
    }

    pub fn am_wait_time(&self) -> Duration {
        Duration::from_millis(self.am_wait_time_ms)
    }

    /// Each executor's container.
    pub fn executor_resource(&self) -> Resource {
        Resource::new(self.executor_memory_mb, self.executor_cores)
    }
}

/// Replaces `slot` with the field's value when the JSON has it.
fn read_field<T: serde::de::DeserializeOwned>(
    fields: &serde_json::Map<String, serde_json::Value>,
    field: &'static str,
    slot: &mut T,
) -> Result<(), AppConfigError> {
    if let Some(value) = fields.get(field) {
        *slot = T::deserialize(value).map_err(|e| AppConfigError::Invalid {
            field,
            value: value.to_string(),
            allowed: e.to_string(),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(json: &str) -> Result<AppConfig, AppConfigError> {
        AppConfig::from_lookup(|name| (name == APP_CONFIG_ENV).then(|| json.to_string()))
    }

    #[test]
    fn every_field_has_sparks_default() {
        let expected = AppConfig {
            deploy_mode: DeployMode::Cluster,
            num_executors: 2,
            executor_memory_mb: 512,
            executor_cores: 1,
            am_wait_time_ms: 100_000,
            max_task_failures: 4,
            driver_url: None,
        };
        assert_eq!(from("{}").unwrap(), expected);
        assert_eq!(from("  ").unwrap(), expected);
        assert_eq!(AppConfig::from_lookup(|_| None).unwrap(), expected);
        assert_eq!(expected.am_wait_time(), Duration::from_secs(100));
        assert_eq!(expected.executor_resource(), Resource::new(512, 1));
    }

    #[test]
    fn reads_what_the_launcher_writes() {
        let config = from(
            r#"{"deploy_mode":"client","num_executors":4,"executor_memory_mb":1024,
                "executor_cores":2,"am_wait_time_ms":5000,"max_task_failures":1,
                "driver_url":"http://10.0.0.7:41000"}"#,
        )
        .unwrap();
        assert_eq!(config.deploy_mode, DeployMode::Client);
        assert_eq!(config.num_executors, 4);
        assert_eq!(config.executor_resource(), Resource::new(1024, 2));
        assert_eq!(config.driver_url.as_deref(), Some("http://10.0.0.7:41000"));
        assert_eq!(AppConfig::from_json(&config.to_json()).unwrap(), config);
        // Zero executors is allowed: the driver may ask for some later.
        assert_eq!(from(r#"{"num_executors":0}"#).unwrap().num_executors, 0);
    }

    #[test]
    fn names_the_field_and_what_is_allowed() {
        for (json, wanted) in [
            (
                r#"{"executor_memory_mb":0}"#,
                "SPINDLE_APP_CONFIG: executor_memory_mb=0 is not allowed: it must be at least 1",
            ),
            (r#"{"executor_cores":0}"#, "executor_cores=0 is not allowed"),
            (
                r#"{"am_wait_time_ms":0}"#,
                "am_wait_time_ms=0 is not allowed",
            ),
            (r#"{"max_task_failures":0}"#, "1 means no retries"),
            (
                r#"{"driver_url":"http://h:1"}"#,
                "driver_url=\"http://h:1\" is not allowed: it is only for deploy_mode=client",
            ),
            (
                r#"{"deploy_mode":"client"}"#,
                "driver_url=null is not allowed: deploy_mode=client needs",
            ),
            (
                r#"{"deploy_mode":"client","driver_url":"h:1"}"#,
                "driver_url=\"h:1\" is not allowed: expected http://HOST:PORT",
            ),
            (
                r#"{"deploy_mode":"client","driver_url":"http://h"}"#,
                "expected http://HOST:PORT",
            ),
        ] {
            let err = from(json).unwrap_err().to_string();
            assert!(err.contains(wanted), "{json}: {err}");
        }
    }

    #[test]
    fn refuses_unknown_fields_bad_types_and_bad_modes() {
        for (json, wanted) in [
            (
                r#"{"num_executor":3}"#,
                "unknown field \"num_executor\"; the fields are deploy_mode, num_executors,",
            ),
            (
                r#"{"num_executors":-1}"#,
                "num_executors=-1 is not allowed: invalid value: integer `-1`, expected u32",
            ),
            (
                r#"{"executor_memory_mb":"1g"}"#,
                "executor_memory_mb=\"1g\" is not allowed",
            ),
            (
                r#"{"deploy_mode":"yarn"}"#,
                "deploy_mode=\"yarn\" is not allowed: unknown variant `yarn`",
            ),
            ("[", "SPINDLE_APP_CONFIG is not a JSON object"),
            ("[1]", "expected an object, got [1]"),
        ] {
            let err = from(json).unwrap_err().to_string();
            assert!(err.contains(wanted), "{json}: {err}");
        }
    }
}
