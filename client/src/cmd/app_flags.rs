//! The flags of an application that `spindle submit` and an SDK program's own launcher share:
//! how it is submitted (name, queue, AM size, files, env, attempts) and Spark's settings for its
//! AM (deploy mode, executors, AM wait time, task failures). Each flag can turn back into
//! command-line words, so `spindle submit --deploy-mode client` can hand them on to the
//! program it starts as the launcher.

use std::path::PathBuf;
use std::time::Duration;

use spindle_app_master::am::DeployMode;
use spindle_app_master::am::app_config::AppConfig;

use super::args;
use crate::submit::Submission;

/// How the application is submitted.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct AppArgs {
    /// The application's name (default: the program's).
    #[arg(long)]
    pub name: Option<String>,
    /// The queue to submit to (default: "default").
    #[arg(long)]
    pub queue: Option<String>,
    /// The AM container's memory: 512m, 2g, or MB.
    #[arg(long, default_value = "512m", value_parser = args::memory_mb, allow_hyphen_values = true)]
    pub am_memory: u64,
    /// The AM container's virtual cores.
    #[arg(long, default_value = "1", value_parser = args::vcores, allow_hyphen_values = true)]
    pub am_cores: u32,
    /// More files to ship next to the program, comma separated.
    #[arg(long, value_delimiter = ',', value_name = "FILE,...")]
    pub files: Vec<PathBuf>,
    /// An environment variable for the AM container (repeatable).
    #[arg(long = "env", value_name = "NAME=VALUE", value_parser = args::env_pair)]
    pub env: Vec<(String, String)>,
    /// How many AM attempts before the app fails (default: the cluster's, 2).
    #[arg(long, value_parser = args::max_attempts, allow_hyphen_values = true)]
    pub max_attempts: Option<u32>,
}

impl AppArgs {
    /// Fills `submission` from the flags; `default_queue` applies when `--queue` is absent.
    pub fn apply(&self, submission: &mut Submission, default_queue: &str) {
        if self.name.is_some() {
            submission.name = self.name.clone();
        }
        submission.queue = self
            .queue
            .clone()
            .unwrap_or_else(|| default_queue.to_string());
        submission.am_resource = spindle_containers::Resource::new(self.am_memory, self.am_cores);
        submission.files = self.files.clone();
        submission.env.extend(self.env.iter().cloned());
        submission.max_attempts = self.max_attempts.unwrap_or(0);
    }

    /// The flags again, as words of a command line.
    pub fn to_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if let Some(name) = &self.name {
            flags.extend(["--name".to_string(), name.clone()]);
        }
        if let Some(queue) = &self.queue {
            flags.extend(["--queue".to_string(), queue.clone()]);
        }
        flags.extend(["--am-memory".to_string(), format!("{}m", self.am_memory)]);
        flags.extend(["--am-cores".to_string(), self.am_cores.to_string()]);
        for file in &self.files {
            flags.extend(["--files".to_string(), file.display().to_string()]);
        }
        for (name, value) in &self.env {
            flags.extend(["--env".to_string(), format!("{name}={value}")]);
        }
        if let Some(attempts) = self.max_attempts {
            flags.extend(["--max-attempts".to_string(), attempts.to_string()]);
        }
        flags
    }
}

/// Spark's settings for a Spark-shaped application, as `spark-submit` names them. Each is
/// optional: what is not given takes the program's default, then the AM's.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct SparkArgs {
    /// Where the driver runs: cluster (inside the AM) or client (in the submitting process).
    #[arg(long, value_name = "MODE", value_parser = deploy_mode)]
    pub deploy_mode: Option<DeployMode>,
    /// Executors to keep running (default: the program's, else 2).
    #[arg(long, value_name = "N", value_parser = executors, allow_hyphen_values = true)]
    pub num_executors: Option<u32>,
    /// Each executor's memory: 512m, 2g, or MB (default 512m).
    #[arg(long, value_name = "SIZE", value_parser = args::memory_mb, allow_hyphen_values = true)]
    pub executor_memory: Option<u64>,
    /// Each executor's vcores, and the tasks it runs at once (default 1).
    #[arg(long, value_name = "N", value_parser = args::vcores, allow_hyphen_values = true)]
    pub executor_cores: Option<u32>,
    /// How long the AM waits for the driver to create its context in cluster mode, e.g. 2s
    /// (default 100s); then the attempt fails with exit code 13.
    #[arg(long, value_name = "DURATION", value_parser = am_wait_time)]
    pub am_wait_time: Option<Duration>,
    /// Failures of one task that fail its job; 1 means no retries (default 4).
    #[arg(long, value_name = "N", value_parser = task_failures, allow_hyphen_values = true)]
    pub max_task_failures: Option<u32>,
}

impl SparkArgs {
    /// `base` with every given flag laid over it (the deploy mode is not among them: the
    /// caller decides it).
    pub fn app_config(&self, base: AppConfig) -> AppConfig {
        AppConfig {
            num_executors: self.num_executors.unwrap_or(base.num_executors),
            executor_memory_mb: self.executor_memory.unwrap_or(base.executor_memory_mb),
            executor_cores: self.executor_cores.unwrap_or(base.executor_cores),
            am_wait_time_ms: self.am_wait_time.map_or(base.am_wait_time_ms, duration_ms),
            max_task_failures: self.max_task_failures.unwrap_or(base.max_task_failures),
            ..base
        }
    }

    /// The JSON object of `SPINDLE_APP_CONFIG` holding only the given settings, so that the
    /// program's own defaults (and then the AM's) fill the rest.
    pub fn given_config_json(&self) -> String {
        let mut fields = serde_json::Map::new();
        let mut put = |name: &str, value: Option<u64>| {
            if let Some(value) = value {
                fields.insert(name.to_string(), value.into());
            }
        };
        put("num_executors", self.num_executors.map(u64::from));
        put("executor_memory_mb", self.executor_memory);
        put("executor_cores", self.executor_cores.map(u64::from));
        put("am_wait_time_ms", self.am_wait_time.map(duration_ms));
        put("max_task_failures", self.max_task_failures.map(u64::from));
        serde_json::Value::Object(fields).to_string()
    }

    /// The given settings as words of a command line, the deploy mode left out.
    pub fn to_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        let mut put = |flag: &str, value: Option<String>| {
            if let Some(value) = value {
                flags.extend([flag.to_string(), value]);
            }
        };
        put("--num-executors", self.num_executors.map(|n| n.to_string()));
        put(
            "--executor-memory",
            self.executor_memory.map(|m| format!("{m}m")),
        );
        put(
            "--executor-cores",
            self.executor_cores.map(|c| c.to_string()),
        );
        put(
            "--am-wait-time",
            self.am_wait_time.map(|d| format!("{}ms", duration_ms(d))),
        );
        put(
            "--max-task-failures",
            self.max_task_failures.map(|n| n.to_string()),
        );
        flags
    }
}

/// Whole milliseconds, saturating (a wait of centuries is still a wait).
fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// `cluster` or `client`.
pub fn deploy_mode(s: &str) -> Result<DeployMode, String> {
    match s.trim() {
        "cluster" => Ok(DeployMode::Cluster),
        "client" => Ok(DeployMode::Client),
        _ => Err(format!(
            "invalid deploy mode {s:?}: expected cluster or client"
        )),
    }
}

/// A number of executors: 0 or more (the driver may ask for some later).
fn executors(s: &str) -> Result<u32, String> {
    s.trim()
        .parse::<u32>()
        .map_err(|_| format!("invalid number of executors {s:?}: expected a whole number"))
}

/// Task failures: at least 1.
fn task_failures(s: &str) -> Result<u32, String> {
    match s.trim().parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "invalid max task failures {s:?}: expected a whole number of at least 1 (1 means no retries)"
        )),
    }
}

/// A duration of at least a millisecond.
fn am_wait_time(s: &str) -> Result<Duration, String> {
    let duration = args::duration(s)?;
    if duration < Duration::from_millis(1) {
        return Err(format!(
            "invalid AM wait time {s:?}: it must be at least 1ms"
        ));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Flags {
        #[command(flatten)]
        app: AppArgs,
        #[command(flatten)]
        spark: SparkArgs,
    }

    fn parse(line: &[&str]) -> Result<Flags, clap::Error> {
        Flags::try_parse_from(std::iter::once("x").chain(line.iter().copied()))
    }

    #[test]
    fn given_settings_override_the_base_and_only_they_reach_the_json() {
        let flags = parse(&["--num-executors", "4", "--am-wait-time", "2s"]).unwrap();
        let config = flags.spark.app_config(AppConfig {
            executor_cores: 3,
            ..AppConfig::default()
        });
        assert_eq!(config.num_executors, 4);
        assert_eq!(config.am_wait_time_ms, 2000);
        assert_eq!(config.executor_cores, 3, "the base's value stays");
        assert_eq!(config.executor_memory_mb, 512);
        assert_eq!(
            flags.spark.given_config_json(),
            r#"{"am_wait_time_ms":2000,"num_executors":4}"#
        );
        // What the JSON says, the AM reads back.
        let read = AppConfig::from_json(&flags.spark.given_config_json()).unwrap();
        assert_eq!((read.num_executors, read.am_wait_time_ms), (4, 2000));
        assert_eq!(parse(&[]).unwrap().spark.given_config_json(), "{}");
    }

    #[test]
    fn flags_turn_back_into_the_same_flags() {
        let line = [
            "--name",
            "n",
            "--queue",
            "q",
            "--am-memory",
            "1g",
            "--am-cores",
            "2",
            "--files",
            "a,b",
            "--env",
            "K=v=w",
            "--max-attempts",
            "3",
            "--deploy-mode",
            "client",
            "--num-executors",
            "0",
            "--executor-memory",
            "2g",
            "--executor-cores",
            "2",
            "--am-wait-time",
            "1500ms",
            "--max-task-failures",
            "1",
        ];
        let flags = parse(&line).unwrap();
        assert_eq!(flags.spark.deploy_mode, Some(DeployMode::Client));
        let mut again: Vec<String> = flags.app.to_flags();
        again.extend(flags.spark.to_flags());
        let reparsed = parse(&again.iter().map(String::as_str).collect::<Vec<_>>()).unwrap();
        assert_eq!(reparsed.app, flags.app);
        assert_eq!(
            reparsed.spark,
            SparkArgs {
                deploy_mode: None,
                ..flags.spark.clone()
            }
        );
    }

    #[test]
    fn bad_values_name_what_is_allowed() {
        for (line, wanted) in [
            (&["--deploy-mode", "yarn"][..], "expected cluster or client"),
            (&["--num-executors", "-1"], "invalid number of executors"),
            (&["--executor-cores", "0"], "at least 1"),
            (&["--executor-memory", "0"], "\"0\""),
            (&["--am-wait-time", "0s"], "at least 1ms"),
            (&["--max-task-failures", "0"], "1 means no retries"),
        ] {
            let err = parse(line).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{line:?}");
            assert!(err.to_string().contains(wanted), "{line:?}: {err}");
        }
    }

    #[test]
    fn app_flags_fill_a_submission() {
        let flags = parse(&["--am-memory", "1g", "--env", "A=1", "--max-attempts", "1"]).unwrap();
        let mut submission = Submission::new("p", Vec::new());
        submission.env.insert("B".into(), "2".into());
        flags.app.apply(&mut submission, "prod");
        assert_eq!(submission.queue, "prod");
        assert_eq!(submission.am_resource.memory_mb, 1024);
        assert_eq!(submission.max_attempts, 1);
        assert_eq!(submission.env.len(), 2);
        assert_eq!(submission.name, None);
    }
}
