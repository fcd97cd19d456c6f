//! Role dispatch: one program, three roles. Started by a person it is the *launcher*; started
//! by the launcher or `spindle submit` with `SPINDLE_ROLE=am` it is the application master;
//! started by its AM as `PROGRAM executor --driver-url …` it is an executor. A user's `main`
//! hands its [`App`] to [`run`] and returns what it returns.

use std::process::ExitCode;
use std::time::Instant;

use clap::{CommandFactory, FromArgMatches};
use spindle_app_master::am::app_config::{
    APP_CONFIG_ENV, AppConfig, ROLE_AM, ROLE_ENV, ROLE_EXECUTOR,
};
use spindle_app_master::am::run_application_master_with;
use spindle_app_master::sdk::{App, executor_main};

use super::driver_host::DRIVER_HOST_ENV;
use super::launch::{self, Launch};
use super::options::{LaunchArgs, MASTER_ENV};
use super::settings::{LaunchSettings, publish, with_program_defaults};
use crate::cmd::logging::{self, LogFormat};
use crate::cmd::{EXIT_FAILED, EXIT_USAGE};

/// The word that starts an executor's arguments (Spark's CoarseGrainedExecutorBackend).
pub const EXECUTOR_ARG: &str = "executor";

/// Which role a process plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Launcher,
    ApplicationMaster,
    Executor,
}

/// The role of a process with arguments `argv` (the program first) and `SPINDLE_ROLE` =
/// `role_env`. An unknown `SPINDLE_ROLE` is refused, naming what is allowed.
pub fn role(argv: &[String], role_env: Option<&str>) -> Result<Role, String> {
    if argv.get(1).map(String::as_str) == Some(EXECUTOR_ARG) {
        return Ok(Role::Executor);
    }
    match role_env.map(str::trim) {
        None | Some("") => Ok(Role::Launcher),
        Some(ROLE_AM) => Ok(Role::ApplicationMaster),
        Some(ROLE_EXECUTOR) => Ok(Role::Executor),
        Some(other) => Err(format!(
            "{ROLE_ENV}={other:?} is not a role: expected {ROLE_AM:?}, {ROLE_EXECUTOR:?}, or \
             unset to launch the program"
        )),
    }
}

/// A program's entry: its [`App`] and its own defaults for the launcher's settings.
#[derive(Debug, Clone)]
pub struct Launcher {
    app: App,
    defaults: AppConfig,
}

impl Launcher {
    pub fn new(app: App) -> Launcher {
        Launcher {
            app,
            defaults: AppConfig::default(),
        }
    }

    /// The executors this program keeps unless `--num-executors` says otherwise (Spark's
    /// default is 2). Reaches the AM too, when `spindle submit` does not say.
    pub fn num_executors(mut self, executors: u32) -> Launcher {
        self.defaults.num_executors = executors;
        self
    }

    /// Each executor's vcores unless `--executor-cores` says otherwise (default 1).
    pub fn executor_cores(mut self, cores: u32) -> Launcher {
        self.defaults.executor_cores = cores;
        self
    }

    /// Each executor's memory unless `--executor-memory` says otherwise (default 512 MB).
    pub fn executor_memory_mb(mut self, memory_mb: u64) -> Launcher {
        self.defaults.executor_memory_mb = memory_mb;
        self
    }

    /// Runs this process's role with its own arguments and environment; returns the exit code
    /// for `main` to return.
    pub fn run(self) -> ExitCode {
        self.run_with(std::env::args().collect(), |name| std::env::var(name).ok())
    }

    /// [`Launcher::run`] with the arguments (`argv[0]` the program) and environment given.
    pub fn run_with(self, argv: Vec<String>, env: impl Fn(&str) -> Option<String>) -> ExitCode {
        let started = Instant::now();
        let role = match role(&argv, env(ROLE_ENV).as_deref()) {
            Ok(role) => role,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        match role {
            Role::Executor => {
                logging::init(LogFormat::Text, true);
                let rest = match argv.get(1).map(String::as_str) {
                    Some(EXECUTOR_ARG) => &argv[2..],
                    _ => argv.get(1..).unwrap_or_default(),
                };
                match executor_main(&self.app, rest) {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => {
                        eprintln!("executor: {e}");
                        exit_code(e.exit_code())
                    }
                }
            }
            Role::ApplicationMaster => {
                logging::init(LogFormat::Text, true);
                self.run_application_master(argv, env, started)
            }
            Role::Launcher => {
                logging::init(LogFormat::Text, false);
                self.launch(argv, env, started)
            }
        }
    }

    /// The AM role, with the program's defaults under whatever the launcher's config leaves
    /// out.
    fn run_application_master(
        self,
        argv: Vec<String>,
        env: impl Fn(&str) -> Option<String>,
        started: Instant,
    ) -> ExitCode {
        let app_config = with_program_defaults(env(APP_CONFIG_ENV).as_deref(), &self.defaults);
        if let Ok(config) = AppConfig::from_json(&app_config) {
            let rm = env("SPINDLE_RM_ADDRESS").unwrap_or_default();
            publish(LaunchSettings {
                master: format!("spindle://{rm}"),
                deploy_mode: Some(config.deploy_mode),
                num_executors: config.num_executors,
                executor_cores: config.executor_cores,
                started,
            });
        }
        let lookup = move |name: &str| {
            if name == APP_CONFIG_ENV {
                Some(app_config.clone())
            } else {
                env(name)
            }
        };
        exit_code(run_application_master_with(&self.app, argv, lookup))
    }

    /// The launcher role: parse the flags, then run locally or on a cluster.
    fn launch(
        self,
        argv: Vec<String>,
        env: impl Fn(&str) -> Option<String>,
        started: Instant,
    ) -> ExitCode {
        // clap keeps names as &'static str; a process launches once, so leaking one is fine.
        let name: &'static str = self.app.name().to_string().leak();
        let command = LaunchArgs::command().name(name);
        let parsed = command
            .try_get_matches_from(argv)
            .and_then(|matches| LaunchArgs::from_arg_matches(&matches));
        let args = match parsed {
            Ok(args) => args,
            Err(e) => {
                // --help lands here too, with exit code 0.
                let _ = e.print();
                return exit_code(e.exit_code());
            }
        };
        let plan = match args.plan(env(MASTER_ENV).as_deref(), &self.defaults) {
            Ok(plan) => plan,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
        };
        let launch = Launch {
            plan,
            app_args: args.app,
            args: args.args,
            driver_host: env(DRIVER_HOST_ENV),
            started,
        };
        match launch::run(&self.app, launch) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(EXIT_FAILED)
            }
        }
    }
}

/// Runs `app` in the role this process was started for; `main` returns what it returns.
///
/// ```no_run
/// use spindle_client::sdk::App;
///
/// fn main() -> std::process::ExitCode {
///     spindle_client::run(
///         App::new("squares")
///             .task("square", |x: u64| -> Result<u64, String> { Ok(x * x) })
///             .driver(|ctx| {
///                 let squares: Vec<u64> =
///                     ctx.run("square", vec![1u64, 2, 3]).map_err(|e| e.to_string())?;
///                 println!("{squares:?}");
///                 Ok(())
///             }),
///     )
/// }
/// ```
pub fn run(app: App) -> ExitCode {
    Launcher::new(app).run()
}

/// A process exit code from an `i32` role outcome; codes outside 0..=255 become 1.
fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(EXIT_FAILED))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn roles_come_from_the_first_argument_then_the_environment() {
        let executor = argv(&["./pi", "executor", "--driver-url", "http://h:1"]);
        assert_eq!(role(&executor, None), Ok(Role::Executor));
        assert_eq!(role(&executor, Some("am")), Ok(Role::Executor));
        assert_eq!(
            role(&argv(&["./pi", "100"]), Some("am")),
            Ok(Role::ApplicationMaster)
        );
        assert_eq!(role(&argv(&["pi"]), None), Ok(Role::Launcher));
        assert_eq!(role(&argv(&["pi"]), Some(" ")), Ok(Role::Launcher));
        assert_eq!(role(&argv(&[]), None), Ok(Role::Launcher));
        let err = role(&argv(&["pi"]), Some("driver")).unwrap_err();
        assert!(err.contains("SPINDLE_ROLE=\"driver\""), "{err}");
        assert!(err.contains("\"am\""), "{err}");
    }

    #[test]
    fn a_bad_role_or_flag_is_a_usage_error() {
        let app = || App::new("t").driver(|_| Ok(()));
        let code = Launcher::new(app()).run_with(argv(&["t"]), |name| {
            (name == ROLE_ENV).then(|| "driver".to_string())
        });
        assert_eq!(code, ExitCode::from(EXIT_USAGE));
        let code = Launcher::new(app()).run_with(argv(&["t", "--num-executors", "x"]), |_| None);
        assert_eq!(code, ExitCode::from(EXIT_USAGE));
        let code = Launcher::new(app()).run_with(argv(&["t", "--master", "yarn"]), |_| None);
        assert_eq!(code, ExitCode::from(EXIT_USAGE));
    }

    #[test]
    fn a_local_master_runs_the_driver_with_its_arguments() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let record = seen.clone();
        let app = App::new("t")
            .task("double", |x: u64| -> Result<u64, String> { Ok(2 * x) })
            .driver(move |ctx| {
                let doubled: Vec<u64> = ctx
                    .run("double", vec![1u64, 2])
                    .map_err(|e| e.to_string())?;
                record.lock().unwrap().push((ctx.args().to_vec(), doubled));
                Ok(())
            });
        let code = Launcher::new(app).run_with(
            argv(&["t", "--master", "local[2]", "--", "a", "--b"]),
            |_| None,
        );
        assert_eq!(code, ExitCode::SUCCESS);
        assert_eq!(
            *seen.lock().unwrap(),
            [(argv(&["a", "--b"]), vec![2u64, 4])]
        );
        let failing = App::new("f").driver(|_| Err("no".to_string()));
        let code = Launcher::new(failing).run_with(argv(&["f", "--master", "local"]), |_| None);
        assert_eq!(code, ExitCode::from(EXIT_FAILED));
    }
}
