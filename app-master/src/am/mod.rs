//! The application-master role of a Spark-shaped program, Spark's `ApplicationMaster`: it reads
//! its container's environment and the launcher's [`AppConfig`], then either runs the user's
//! driver itself (cluster mode, [`cluster`]) or only launches executors for a driver that runs
//! in the submitting process (client mode, [`client_mode`]).
//!
//! Exit codes: [`EXIT_SUCCESS`] when the application unregistered SUCCEEDED,
//! [`EXIT_CONTEXT_NOT_INITIALIZED`] (13, Spark's) when the driver did not create its context in
//! time, [`EXIT_FAILURE`] otherwise.

pub mod app_config;
pub mod client_mode;
pub mod cluster;
pub mod driver_watch;
pub mod executor_launch;
pub mod executors;

use tracing::{Instrument, error, info, info_span, warn};

pub use app_config::{AppConfig, AppConfigError, DeployMode};
pub use driver_watch::{DriverEnd, DriverWatch, WatchError};
pub use executor_launch::{ExecutorLaunch, ExecutorProgram, ProgramError};

use crate::am_env::AmEnv;
use crate::amrm_client::{AmRmClient, FinalStatus};
use crate::sdk::App;

pub const EXIT_SUCCESS: i32 = 0;
pub const EXIT_FAILURE: i32 = 1;
/// Spark's `EXIT_SC_NOT_INITED`: the driver did not create its context within the AM wait time.
pub const EXIT_CONTEXT_NOT_INITIALIZED: i32 = 13;

/// Runs the AM role of `app` in this process, with the process's arguments and environment,
/// and returns the exit code. Call it from synchronous code (it makes its own runtime), when
/// `SPINDLE_ROLE=am`.
pub fn run_application_master(app: &App) -> i32 {
    run_application_master_with(app, std::env::args().collect(), |name| {
        std::env::var(name).ok()
    })
}

/// [`run_application_master`] with the program's `argv` (the program itself first) and its
/// environment given through `lookup`.
pub fn run_application_master_with(
    app: &App,
    argv: Vec<String>,
    lookup: impl Fn(&str) -> Option<String>,
) -> i32 {
    let env = match AmEnv::from_lookup(&lookup) {
        Ok(env) => env,
        Err(e) => {
            eprintln!("application master: {e}");
            return EXIT_FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("spindle-am")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("application master: cannot start its runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    let span = info_span!(
        "application_master",
        app_id = %env.application_id,
        attempt_id = %env.attempt_id,
    );
    let code = runtime.block_on(run(app, env, argv, lookup).instrument(span));
    // A driver that ignored being stopped may still run user code; it must not hold the
    // process open.
    runtime.shutdown_background();
    code
}

/// What both deploy modes start from.
pub(crate) struct AmSetup {
    pub env: AmEnv,
    pub client: AmRmClient,
    pub config: AppConfig,
    pub program: ExecutorProgram,
    /// The program's own arguments, for the driver.
    pub args: Vec<String>,
}

async fn run(
    app: &App,
    env: AmEnv,
    argv: Vec<String>,
    lookup: impl Fn(&str) -> Option<String>,
) -> i32 {
    let client = match AmRmClient::from_env(&env) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("application master: {e}");
            return EXIT_FAILURE;
        }
    };
    let argv0 = argv.first().map(String::as_str).unwrap_or("");
    let prepared = AppConfig::from_lookup(&lookup)
        .map_err(|e| e.to_string())
        .and_then(|config| {
            let program = ExecutorProgram::find(&env.local_resources, argv0, &lookup)
                .map_err(|e| e.to_string())?;
            Ok((config, program))
        });
    // The launch is wrong in a way no retry mends: end the application with the reason rather
    // than let the RM start the same attempt again.
    let (config, program) = match prepared {
        Ok(prepared) => prepared,
        Err(diagnostics) => return fail_unstarted(&client, &env, &diagnostics).await,
    };
    info!(
        deploy_mode = config.deploy_mode.as_str(),
        program = program.name(),
        "application master starting"
    );
    let setup = AmSetup {
        env,
        client,
        config,
        program,
        args: argv.into_iter().skip(1).collect(),
    };
    match setup.config.deploy_mode {
        DeployMode::Cluster => cluster::run_driver(app, setup).await,
        DeployMode::Client => client_mode::run_executor_launcher(setup).await,
    }
}

/// Registers only to unregister FAILED with `diagnostics`, so the reason reaches the
/// application's report.
async fn fail_unstarted(client: &AmRmClient, env: &AmEnv, diagnostics: &str) -> i32 {
    if let Err(e) = client.register(&env.nm_host, 0, "").await {
        eprintln!("application master: {diagnostics}");
        eprintln!("application master: cannot register to report it: {e}");
        return EXIT_FAILURE;
    }
    unregister(client, FinalStatus::Failed, diagnostics, "").await
}

/// Unregisters with the final status and returns the exit code: success only if the
/// application SUCCEEDED and the RM confirmed it.
async fn unregister(
    client: &AmRmClient,
    status: FinalStatus,
    diagnostics: &str,
    tracking_url: &str,
) -> i32 {
    if status == FinalStatus::Succeeded {
        info!("the application succeeded");
    } else {
        warn!(final_status = status.as_str_name(), %diagnostics, "the application failed");
        eprintln!("application master: {diagnostics}");
    }
    match client.finish(status, diagnostics, tracking_url).await {
        Ok(()) if status == FinalStatus::Succeeded => EXIT_SUCCESS,
        Ok(()) => EXIT_FAILURE,
        Err(e) => {
            error!("cannot unregister: {e}");
            eprintln!("application master: cannot unregister: {e}");
            EXIT_FAILURE
        }
    }
}
