//! `spindle submit`: ship a program to the cluster as an application's AM, print the
//! application id at once, then follow the app (pushed reports, no polling) and exit 0 only if
//! it FINISHED with final status SUCCEEDED. The AM always gets `SPINDLE_ROLE=am` and the Spark
//! flags given (`SPINDLE_APP_CONFIG`): SDK programs need them, plain programs ignore them. With
//! `--deploy-mode client` the program instead runs here as its own launcher.

use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use spindle_app_master::am::DeployMode;
use spindle_app_master::am::app_config::{APP_CONFIG_ENV, ROLE_AM, ROLE_ENV};
use spindle_containers::ApplicationId;
use spindle_protocol::{ApplicationReport, ApplicationState, FinalStatus};

use super::app_flags::{AppArgs, SparkArgs};
use super::progress::Progress;
use super::{EXIT_FAILED, MASTER_ENV, RM_ENV, SecretFlag, args};
use crate::address::{Master, parse_host_port};
use crate::config::SpindleConfig;
use crate::credentials::{SECRET_FILE_ENV, secret_file};
use crate::local_cluster::LocalCluster;
use crate::report::{final_status_name, state_name};
use crate::rm_client::RmClient;
use crate::submit::{Submission, resolve_program, submit};
use crate::watch::follow;

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// Where to run: spindle://HOST:PORT (a running RM), local-cluster[NODES,VCORES,MB], or (in
    /// client mode) local[N] (default: $SPINDLE_MASTER, else the RM of --rm / $SPINDLE_RM /
    /// the config).
    #[arg(long, value_name = "URL", conflicts_with = "rm")]
    pub master: Option<String>,
    /// The resource manager's gRPC address; the same as --master spindle://HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", value_parser = args::host_port)]
    pub rm: Option<String>,
    #[command(flatten)]
    pub secret: SecretFlag,
    #[command(flatten)]
    pub app: AppArgs,
    #[command(flatten)]
    pub spark: SparkArgs,
    /// Return after submitting instead of following the app to its end (cluster mode).
    #[arg(long)]
    pub no_wait: bool,
    /// The program (a path if it contains '/', else found in PATH) and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "PROGRAM [ARGS]..."
    )]
    pub command: Vec<String>,
}

impl SubmitArgs {
    /// `--master`, else `--rm`, else `SPINDLE_MASTER`, else `SPINDLE_RM`, else the config.
    fn master(&self, config: &SpindleConfig) -> anyhow::Result<Master> {
        if let Some(master) = &self.master {
            return Ok(master.parse()?);
        }
        if let Some(rm) = &self.rm {
            return Ok(Master::Spindle(rm.clone()));
        }
        if let Some(value) = non_empty_env(MASTER_ENV) {
            return value
                .parse()
                .with_context(|| format!("{MASTER_ENV}={value}"));
        }
        if let Some(value) = non_empty_env(RM_ENV) {
            return Ok(Master::Spindle(
                parse_host_port("resource manager", &value)
                    .with_context(|| format!("{RM_ENV}={value}"))?,
            ));
        }
        Ok(Master::Spindle(config.client.rm.clone()))
    }

    /// `--deploy-mode`, else cluster, except for local masters, which have no cluster.
    fn deploy_mode(&self, master: &Master) -> DeployMode {
        self.spark.deploy_mode.unwrap_or(match master {
            Master::Local { .. } => DeployMode::Client,
            _ => DeployMode::Cluster,
        })
    }

    /// The cluster-mode submission: the program as the AM, told its role and the Spark
    /// settings that were given (`--env` may override both).
    fn submission(&self, config: &SpindleConfig) -> Submission {
        let (program, program_args) = match self.command.split_first() {
            Some((program, rest)) => (program.clone(), rest.to_vec()),
            None => (String::new(), Vec::new()),
        };
        let mut submission = Submission::new(program, program_args);
        submission
            .env
            .insert(ROLE_ENV.to_string(), ROLE_AM.to_string());
        submission
            .env
            .insert(APP_CONFIG_ENV.to_string(), self.spark.given_config_json());
        self.app.apply(&mut submission, &config.client.queue);
        submission
    }

    /// The client-mode launcher's command line: `PROGRAM --master URL --deploy-mode client
    /// FLAGS... -- ARGS...`.
    fn launcher_command(&self, master: &Master, config: &SpindleConfig) -> Vec<String> {
        let mut line = vec![
            "--master".to_string(),
            master.to_string(),
            "--deploy-mode".to_string(),
            DeployMode::Client.as_str().to_string(),
        ];
        let mut app = self.app.clone();
        app.queue = Some(
            app.queue
                .clone()
                .unwrap_or_else(|| config.client.queue.clone()),
        );
        line.extend(app.to_flags());
        line.extend(self.spark.to_flags());
        line.push("--".to_string());
        line.extend(self.command.iter().skip(1).cloned());
        line
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub async fn run(args: SubmitArgs, config: SpindleConfig) -> anyhow::Result<ExitCode> {
    let master = args.master(&config)?;
    if args.deploy_mode(&master) == DeployMode::Client {
        return run_launcher(&args, &master, &config).await;
    }
    // Find the program and files before asking anything of the cluster.
    let prepared = args.submission(&config).prepare()?;
    match master {
        Master::Spindle(addr) => {
            let credentials = args.secret.credentials(&config)?;
            let mut rm =
                RmClient::connect_with_timeout(&addr, config.client.connect_timeout, credentials)
                    .await?;
            submit_and_follow(&mut rm, &prepared, args.no_wait).await
        }
        Master::LocalCluster {
            nodes,
            vcores,
            memory_mb,
        } => {
            // The cluster lives in this process, so it ends with it: following is the only way.
            if args.no_wait {
                anyhow::bail!(
                    "--no-wait cannot be used with --master {master}: the cluster runs inside \
                     this command and ends with it"
                );
            }
            let cluster = LocalCluster::start(nodes, vcores, memory_mb)
                .await
                .with_context(|| format!("starting {master}"))?;
            let outcome = match cluster.client().await {
                Ok(mut rm) => submit_and_follow(&mut rm, &prepared, false).await,
                Err(e) => Err(e.into()),
            };
            cluster.shutdown().await;
            outcome
        }
        Master::Local { url, .. } => anyhow::bail!(
            "--deploy-mode cluster cannot be used with --master {url}: a local master has no \
             cluster; use --deploy-mode client"
        ),
    }
}

/// Client mode: PROGRAM runs here as its own launcher, so its driver prints on this terminal;
/// its exit code is this command's (128 + the signal if a signal ended it).
async fn run_launcher(
    args: &SubmitArgs,
    master: &Master,
    config: &SpindleConfig,
) -> anyhow::Result<ExitCode> {
    if args.no_wait {
        anyhow::bail!(
            "--no-wait cannot be used with --deploy-mode client: the driver runs inside this \
             command"
        );
    }
    let program_name = args.command.first().map(String::as_str).unwrap_or("");
    let path_var = std::env::var_os("PATH");
    let program = resolve_program(program_name, path_var.as_deref())?;
    let mut launcher = tokio::process::Command::new(&program);
    launcher
        .args(args.launcher_command(master, config))
        // The program is the launcher here, whatever this shell says.
        .env_remove(ROLE_ENV)
        .env_remove(APP_CONFIG_ENV);
    // The launcher reads the client secret from the environment only: hand on the one this
    // command was told of (never the secret itself, only where it is).
    let env = |name: &str| std::env::var(name).ok();
    if let Some((path, _)) = secret_file(args.secret.secret_file.as_deref(), env, &config.client) {
        launcher.env(SECRET_FILE_ENV, path);
    }
    let status = launcher
        .status()
        .await
        .with_context(|| format!("cannot run {}", program.display()))?;
    use std::os::unix::process::ExitStatusExt as _;
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .unwrap_or(i32::from(EXIT_FAILED));
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(EXIT_FAILED)))
}

/// Submits, prints the id, and (unless `no_wait`) follows the app to its end.
pub(crate) async fn submit_and_follow(
    rm: &mut RmClient,
    prepared: &crate::PreparedSubmission,
    no_wait: bool,
) -> anyhow::Result<ExitCode> {
    let id = submit(rm, prepared).await?;
    println!("{id}");
    let _ = std::io::stdout().flush();
    if no_wait {
        return Ok(ExitCode::SUCCESS);
    }
    let mut progress = Progress::for_this_terminal(id);
    let followed = follow(rm, id, |report| progress.update(report)).await;
    progress.finish();
    let report = followed.with_context(|| format!("following application {id}"))?;
    outcome(id, &report)
}

/// Exit 0 only for FINISHED with SUCCEEDED; anything else is an error carrying the
/// diagnostics.
pub(crate) fn outcome(id: ApplicationId, report: &ApplicationReport) -> anyhow::Result<ExitCode> {
    let state = state_name(report.state());
    let final_status = final_status_name(report.final_status());
    if report.state() == ApplicationState::Finished
        && report.final_status() == FinalStatus::Succeeded
    {
        eprintln!("{id} finished: {state} ({final_status})");
        return Ok(ExitCode::SUCCESS);
    }
    let diagnostics = if report.diagnostics.trim().is_empty() {
        "no diagnostics".to_string()
    } else {
        report.diagnostics.trim_end().to_string()
    };
    anyhow::bail!("application {id} ended {state} with final status {final_status}: {diagnostics}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn submit_args(line: &[&str]) -> SubmitArgs {
        let cli = crate::cmd::Cli::try_parse_from(
            ["spindle", "submit"].iter().chain(line.iter()).copied(),
        )
        .unwrap();
        match cli.command {
            crate::cmd::Command::Submit(args) => args,
            other => panic!("not submit: {other:?}"),
        }
    }

    #[test]
    fn the_am_always_learns_its_role_and_the_given_spark_flags() {
        let config = SpindleConfig::default();
        let plain = submit_args(&["--", "ds", "--num-containers", "2"]).submission(&config);
        assert_eq!(plain.env[ROLE_ENV], "am");
        assert_eq!(plain.env[APP_CONFIG_ENV], "{}");
        let spark = submit_args(&["--num-executors", "4", "--am-wait-time", "2s", "--", "pi"])
            .submission(&config);
        assert_eq!(
            spark.env[APP_CONFIG_ENV],
            r#"{"am_wait_time_ms":2000,"num_executors":4}"#
        );
        let overridden = submit_args(&["--env", "SPINDLE_ROLE=", "--", "tool"]).submission(&config);
        assert_eq!(overridden.env[ROLE_ENV], "", "--env wins");
    }

    #[test]
    fn deploy_mode_defaults_to_cluster_except_for_local_masters() {
        let args = submit_args(&["--", "pi"]);
        let rm = Master::Spindle("rm:1".into());
        assert_eq!(args.deploy_mode(&rm), DeployMode::Cluster);
        let local: Master = "local[2]".parse().unwrap();
        assert_eq!(args.deploy_mode(&local), DeployMode::Client);
        let client = submit_args(&["--deploy-mode", "client", "--", "pi"]);
        assert_eq!(client.deploy_mode(&rm), DeployMode::Client);
    }

    #[test]
    fn client_mode_hands_every_flag_to_the_programs_launcher() {
        let args = submit_args(&[
            "--master",
            "spindle://rm:8032",
            "--deploy-mode",
            "client",
            "--num-executors",
            "4",
            "--name",
            "pi",
            "--",
            "pi",
            "1000",
            "--verbose",
        ]);
        let master = args.master(&SpindleConfig::default()).unwrap();
        let line = args.launcher_command(&master, &SpindleConfig::default());
        let expected = [
            "--master",
            "spindle://rm:8032",
            "--deploy-mode",
            "client",
            "--name",
            "pi",
            "--queue",
            "default",
            "--am-memory",
            "512m",
            "--am-cores",
            "1",
            "--num-executors",
            "4",
            "--",
            "1000",
            "--verbose",
        ];
        assert_eq!(line, expected);
        // The launcher reads it back as it was meant.
        let parsed =
            crate::sdk::LaunchArgs::try_parse_from(std::iter::once("pi".to_string()).chain(line))
                .unwrap();
        assert_eq!(parsed.spark.num_executors, Some(4));
        assert_eq!(parsed.spark.deploy_mode, Some(DeployMode::Client));
        assert_eq!(parsed.args, ["1000", "--verbose"]);
    }

    #[test]
    fn only_finished_and_succeeded_is_success() {
        let id: ApplicationId = "application_1_0001".parse().unwrap();
        let mut report = ApplicationReport {
            state: ApplicationState::Finished as i32,
            final_status: FinalStatus::Succeeded as i32,
            ..Default::default()
        };
        assert!(outcome(id, &report).is_ok());
        report.final_status = FinalStatus::Failed as i32;
        report.diagnostics = "container c failed: exit status 3".into();
        let err = outcome(id, &report).unwrap_err().to_string();
        assert!(err.contains("FINISHED with final status FAILED"), "{err}");
        assert!(err.contains("exit status 3"), "{err}");
        report.state = ApplicationState::Killed as i32;
        report.final_status = FinalStatus::Killed as i32;
        assert!(outcome(id, &report).is_err());
    }
}
