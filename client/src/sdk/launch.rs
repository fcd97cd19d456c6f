//! Carrying out a launch plan: a local master runs the app in this process; a cluster master
//! submits this very program (`std::env::current_exe()`) as the application's AM, with
//! `SPINDLE_ROLE=am` and the application config, and then either follows it (cluster mode,
//! like `spindle submit`) or runs the driver here (client mode). `local-cluster[N,C,M]` first
//! starts an embedded cluster (and uses its secret), and stops it afterwards; a running RM is
//! called with the client secret that `SPINDLE_SECRET_FILE` names, as the CLI does.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context as _, anyhow};
use spindle_app_master::am::DeployMode;
use spindle_app_master::am::app_config::{APP_CONFIG_ENV, AppConfig, ROLE_AM, ROLE_ENV};
use spindle_app_master::sdk::{App, run_local_with_args};
use spindle_security::CallCredentials;
use tracing::info;

use super::client_mode::{self, ClientLaunch};
use super::options::LaunchPlan;
use super::settings::{LaunchSettings, publish};
use crate::address::Master;
use crate::cmd::app_flags::AppArgs;
use crate::cmd::submit::submit_and_follow;
use crate::config::ClientConfig;
use crate::credentials::credentials_from_env;
use crate::local_cluster::LocalCluster;
use crate::rm_client::RmClient;
use crate::submit::Submission;

/// The exit code of a launch that a signal interrupted (128 + SIGINT, as shells report it).
const EXIT_INTERRUPTED: u8 = 130;

/// Everything the launcher decided, and the process facts it needs.
pub struct Launch {
    pub plan: LaunchPlan,
    pub app_args: AppArgs,
    /// The program's own arguments.
    pub args: Vec<String>,
    /// `SPINDLE_DRIVER_HOST`, if set.
    pub driver_host: Option<String>,
    pub started: Instant,
}

/// Carries out `launch` for `app`; call from synchronous code (it makes its own runtime).
pub fn run(app: &App, launch: Launch) -> anyhow::Result<ExitCode> {
    match launch.plan.clone() {
        LaunchPlan::Local {
            url,
            threads,
            max_task_failures,
        } => {
            publish(LaunchSettings {
                master: url,
                deploy_mode: None,
                num_executors: 1,
                executor_cores: u32::try_from(threads).unwrap_or(u32::MAX),
                started: launch.started,
            });
            run_local_with_args(app, threads, max_task_failures, launch.args)
                .map_err(|e| anyhow!("the driver failed: {e}"))?;
            Ok(ExitCode::SUCCESS)
        }
        LaunchPlan::OnCluster {
            master,
            deploy_mode,
            config,
        } => {
            publish(LaunchSettings {
                master: master.to_string(),
                deploy_mode: Some(deploy_mode),
                num_executors: config.num_executors,
                executor_cores: config.executor_cores,
                started: launch.started,
            });
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("spindle-launcher")
                .enable_all()
                .build()
                .context("cannot start the launcher's runtime")?;
            let code = runtime.block_on(on_cluster(app, &launch, master, config));
            // A driver that ignored being stopped may still run user code; it must not hold
            // the process open.
            runtime.shutdown_background();
            code
        }
    }
}

async fn on_cluster(
    app: &App,
    launch: &Launch,
    master: Master,
    config: AppConfig,
) -> anyhow::Result<ExitCode> {
    match master {
        Master::Spindle(rm_addr) => {
            let credentials = credentials_from_env()?;
            on_rm(app, launch, &rm_addr, credentials, config).await
        }
        Master::LocalCluster {
            nodes,
            vcores,
            memory_mb,
        } => {
            let cluster = LocalCluster::start(nodes, vcores, memory_mb)
                .await
                .with_context(|| format!("starting {master}"))?;
            let rm_addr = cluster.rm_addr().to_string();
            info!(%rm_addr, "local cluster up");
            // The cluster's own secret, whatever SPINDLE_SECRET_FILE names.
            let credentials = cluster.credentials()?;
            let outcome = tokio::select! {
                outcome = on_rm(app, launch, &rm_addr, credentials, config) => outcome,
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("interrupted: stopping {master} and its containers");
                    Ok(ExitCode::from(EXIT_INTERRUPTED))
                }
            };
            cluster.shutdown().await;
            outcome
        }
        // The plan puts local masters elsewhere; answered all the same, never a panic.
        Master::Local { url, .. } => Err(anyhow!("{url} is a local master: no cluster to run on")),
    }
}

async fn on_rm(
    app: &App,
    launch: &Launch,
    rm_addr: &str,
    credentials: CallCredentials,
    config: AppConfig,
) -> anyhow::Result<ExitCode> {
    let client_config = ClientConfig::default();
    let prepared = self_submission(app, &launch.app_args, &launch.args, &config)?.prepare()?;
    match config.deploy_mode {
        DeployMode::Cluster => {
            let mut rm =
                RmClient::connect_with_timeout(rm_addr, client_config.connect_timeout, credentials)
                    .await?;
            submit_and_follow(&mut rm, &prepared, false).await
        }
        DeployMode::Client => {
            let client = ClientLaunch {
                rm_addr: rm_addr.to_string(),
                credentials,
                connect_timeout: client_config.connect_timeout,
                driver_host: launch.driver_host.clone(),
                args: launch.args.clone(),
                config,
            };
            client_mode::run(app, client, prepared).await
        }
    }
}

/// This program as its own application's AM: `./<this program> ARGS...` with
/// `SPINDLE_ROLE=am` and the application config (`--env` given by the user wins).
fn self_submission(
    app: &App,
    app_args: &AppArgs,
    args: &[String],
    config: &AppConfig,
) -> anyhow::Result<Submission> {
    let exe = std::env::current_exe().context("cannot find this program's own file")?;
    let program = exe
        .to_str()
        .ok_or_else(|| anyhow!("this program's path {} is not UTF-8", exe.display()))?;
    let mut submission = Submission::new(program, args.to_vec());
    submission.name = Some(app.name().to_string());
    submission
        .env
        .insert(ROLE_ENV.to_string(), ROLE_AM.to_string());
    submission
        .env
        .insert(APP_CONFIG_ENV.to_string(), config.to_json());
    app_args.apply(&mut submission, &ClientConfig::default().queue);
    Ok(submission)
}
