//! What an executor container runs: the AM's own program, found among the staged files, started
//! in the executor role with Spark's CoarseGrainedExecutorBackend arguments. Both deploy modes
//! launch executors this way; only the driver URL differs.

use std::collections::BTreeMap;
use std::path::Path;

use spindle_containers::{ApplicationId, LaunchContext, LocalResource};

use super::app_config::{ROLE_ENV, ROLE_EXECUTOR};
use crate::allocator::ExecutorId;

/// Variables of the AM's own environment that executors inherit, so that one setting (the log
/// filter) reaches every process of the application.
pub const INHERITED_ENV: [&str; 1] = ["RUST_LOG"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramError {
    #[error("the AM's own argv[0] is empty: cannot tell which staged file is the program")]
    NoArgv0,
    #[error(
        "no executable file named {name:?} (the AM's own program, argv[0]={argv0:?}) is among \
         the staged files in SPINDLE_LOCAL_RESOURCES: {staged}"
    )]
    NotStaged {
        name: String,
        argv0: String,
        staged: String,
    },
}

/// The program executors run, with every staged file they get beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorProgram {
    /// The staged file's name: the command is `./<name>`.
    name: String,
    local_resources: Vec<LocalResource>,
    env: BTreeMap<String, String>,
}

impl ExecutorProgram {
    /// Picks the first executable staged file named like the basename of the AM's `argv0`
    /// (the AM runs as `./<program>`, so that is the program the client staged). `inherited`
    /// gives the AM's own value of each of [`INHERITED_ENV`].
    pub fn find(
        local_resources: &[LocalResource],
        argv0: &str,
        inherited: impl Fn(&str) -> Option<String>,
    ) -> Result<ExecutorProgram, ProgramError> {
        let name = Path::new(argv0)
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty())
            .ok_or(ProgramError::NoArgv0)?;
        if !local_resources
            .iter()
            .any(|r| r.executable && r.name == name)
        {
            let staged = if local_resources.is_empty() {
                "(none)".to_string()
            } else {
                local_resources
                    .iter()
                    .map(|r| {
                        let executable = if r.executable { " (executable)" } else { "" };
                        format!("{}{executable}", r.name)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(ProgramError::NotStaged {
                name: name.to_string(),
                argv0: argv0.to_string(),
                staged,
            });
        }
        let mut env: BTreeMap<String, String> = INHERITED_ENV
            .iter()
            .filter_map(|var| inherited(var).map(|value| (var.to_string(), value)))
            .collect();
        env.insert(ROLE_ENV.to_string(), ROLE_EXECUTOR.to_string());
        Ok(ExecutorProgram {
            name: name.to_string(),
            local_resources: local_resources.to_vec(),
            env,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The launch recipe of executors that connect to `driver_url`.
    pub fn for_driver(
        &self,
        driver_url: &str,
        cores: u32,
        app_id: ApplicationId,
    ) -> ExecutorLaunch {
        ExecutorLaunch {
            program: self.clone(),
            driver_url: driver_url.to_string(),
            cores,
            app_id,
        }
    }
}

/// Builds each executor's launch context; what the allocator calls per container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorLaunch {
    program: ExecutorProgram,
    driver_url: String,
    cores: u32,
    app_id: ApplicationId,
}

impl ExecutorLaunch {
    /// `./<program> executor --driver-url URL --executor-id N --hostname H --cores C --app-id ID`.
    pub fn context(&self, executor_id: ExecutorId, hostname: &str) -> LaunchContext {
        let command = [
            format!("./{}", self.program.name),
            "executor".to_string(),
            "--driver-url".to_string(),
            self.driver_url.clone(),
            "--executor-id".to_string(),
            executor_id.to_string(),
            "--hostname".to_string(),
            hostname.to_string(),
            "--cores".to_string(),
            self.cores.to_string(),
            "--app-id".to_string(),
            self.app_id.to_string(),
        ];
        LaunchContext {
            command: command.into(),
            env: self.program.env.clone(),
            local_resources: self.program.local_resources.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::sdk::ExecutorArgs;

    use super::*;

    fn staged(name: &str, executable: bool) -> LocalResource {
        LocalResource {
            name: name.into(),
            sha256: "ab".repeat(32),
            size: 10,
            executable,
        }
    }

    fn app_id() -> ApplicationId {
        "application_1700000000000_0003".parse().unwrap()
    }

    #[test]
    fn launches_the_ams_own_program_in_the_executor_role() {
        let resources = [
            staged("data.csv", false),
            staged("pi", true),
            staged("helper", true),
        ];
        let program = ExecutorProgram::find(&resources, "./pi", |var| {
            (var == "RUST_LOG").then(|| "debug".to_string())
        })
        .unwrap();
        assert_eq!(program.name(), "pi");
        let launch = program
            .for_driver("http://node-1:40111", 2, app_id())
            .context(7, "node-3");
        assert_eq!(launch.command[0], "./pi");
        assert_eq!(launch.command[1], "executor");
        // The executor role parses exactly what the AM writes.
        let args = ExecutorArgs::parse(&launch.command[2..]).unwrap();
        assert_eq!(args.driver_url, "http://node-1:40111");
        assert_eq!(args.executor_id, "7");
        assert_eq!(args.hostname, "node-3");
        assert_eq!(args.cores, 2);
        assert_eq!(args.app_id, "application_1700000000000_0003");
        assert_eq!(launch.local_resources, resources);
        assert_eq!(
            launch.env.get("SPINDLE_ROLE").map(String::as_str),
            Some("executor")
        );
        assert_eq!(
            launch.env.get("RUST_LOG").map(String::as_str),
            Some("debug")
        );
        assert!(launch.validate().is_ok());
    }

    #[test]
    fn names_the_program_it_looked_for_and_what_was_staged() {
        let resources = [staged("pi", false), staged("other", true)];
        let err = ExecutorProgram::find(&resources, "/tmp/x/pi", |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no executable file named \"pi\""), "{err}");
        assert!(err.contains("argv[0]=\"/tmp/x/pi\""), "{err}");
        assert!(err.contains("pi, other (executable)"), "{err}");
        let err = ExecutorProgram::find(&[], "./pi", |_| None)
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("SPINDLE_LOCAL_RESOURCES: (none)"), "{err}");
        assert_eq!(
            ExecutorProgram::find(&resources, "", |_| None),
            Err(ProgramError::NoArgv0)
        );
    }
}
