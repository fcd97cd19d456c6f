//! What a driver may want to know about how its program was launched — the master, the deploy
//! mode, how many executors the application keeps, when the program started — the way a Spark
//! driver reads its `SparkConf`. Also how a program's own defaults (Pi keeps 4 executors) reach
//! its AM: fields the launcher's `SPINDLE_APP_CONFIG` leaves out take the program's values.

use std::sync::OnceLock;
use std::time::Instant;

use spindle_app_master::am::DeployMode;
use spindle_app_master::am::app_config::AppConfig;

/// How this process's application was launched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSettings {
    /// The master URL: as given to the launcher; in an AM, `spindle://` and the RM it reports
    /// to.
    pub master: String,
    /// `None` for local masters (no AM at all).
    pub deploy_mode: Option<DeployMode>,
    /// The executors the application keeps; 1 for local masters (the in-process executor).
    pub num_executors: u32,
    /// Each executor's cores: the tasks it runs at once (local masters: the thread count).
    pub executor_cores: u32,
    /// When the program entered `spindle_client::run`: the start of the timings a driver
    /// reports.
    pub started: Instant,
}

static SETTINGS: OnceLock<LaunchSettings> = OnceLock::new();

/// How this process's application was launched, once `spindle_client::run` has decided (set
/// before the driver starts; `None` in a process that did not launch through `run`).
pub fn launch_settings() -> Option<&'static LaunchSettings> {
    SETTINGS.get()
}

/// Records the settings; the first call wins, as a process launches one application.
pub(crate) fn publish(settings: LaunchSettings) {
    let _ = SETTINGS.set(settings);
}

/// The `SPINDLE_APP_CONFIG` an AM of this program should read: `given` (the launcher's or
/// `spindle submit`'s JSON) with every field it leaves out taken from the program's
/// `defaults`. Text that is not a JSON object is passed on unchanged, for the AM to report.
pub fn with_program_defaults(given: Option<&str>, defaults: &AppConfig) -> String {
    let given = given.filter(|g| !g.trim().is_empty()).unwrap_or("{}");
    let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str(given) else {
        return given.to_string();
    };
    let program = match serde_json::to_value(defaults) {
        Ok(serde_json::Value::Object(program)) => program,
        _ => return given.to_string(),
    };
    for (name, value) in program {
        // The driver's URL and the deploy mode are the launcher's to say, never a default.
        if name == "driver_url" || name == "deploy_mode" {
            continue;
        }
        fields.entry(name).or_insert(value);
    }
    serde_json::Value::Object(fields).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pi_defaults() -> AppConfig {
        AppConfig {
            num_executors: 4,
            ..AppConfig::default()
        }
    }

    #[test]
    fn missing_fields_take_the_programs_defaults() {
        let merged = with_program_defaults(Some(r#"{"executor_cores":2}"#), &pi_defaults());
        let config = AppConfig::from_json(&merged).unwrap();
        assert_eq!(config.num_executors, 4);
        assert_eq!(config.executor_cores, 2);
        assert_eq!(config.deploy_mode, DeployMode::Cluster);
        for nothing in [None, Some(""), Some("  ")] {
            let config = AppConfig::from_json(&with_program_defaults(nothing, &pi_defaults()));
            assert_eq!(config.unwrap().num_executors, 4);
        }
    }

    #[test]
    fn given_fields_win_and_client_mode_keeps_its_url() {
        let given = r#"{"deploy_mode":"client","driver_url":"http://h:1","num_executors":1}"#;
        let config =
            AppConfig::from_json(&with_program_defaults(Some(given), &pi_defaults())).unwrap();
        assert_eq!(config.num_executors, 1);
        assert_eq!(config.driver_url.as_deref(), Some("http://h:1"));
        assert_eq!(config.deploy_mode, DeployMode::Client);
    }

    #[test]
    fn what_is_not_an_object_reaches_the_am_unchanged() {
        assert_eq!(with_program_defaults(Some("[1"), &pi_defaults()), "[1");
        assert_eq!(with_program_defaults(Some("[1]"), &pi_defaults()), "[1]");
        // An unknown field stays, so the AM names it.
        let merged = with_program_defaults(Some(r#"{"num_executor":3}"#), &pi_defaults());
        let err = AppConfig::from_json(&merged).unwrap_err().to_string();
        assert!(err.contains("num_executor"), "{err}");
    }
}
