//! `spindle submit`: ship a program to the cluster as an application's AM, print the
//! application id at once, then follow the app (pushed reports, no polling) and exit 0 only if
//! it FINISHED with final status SUCCEEDED.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use spindle_containers::{ApplicationId, Resource};
use spindle_protocol::{ApplicationReport, ApplicationState, FinalStatus};

use super::{MASTER_ENV, RM_ENV, args};
use crate::address::{Master, parse_host_port};
use crate::config::SpindleConfig;
use crate::local_cluster::LocalCluster;
use crate::report::{final_status_name, state_name};
use crate::rm_client::RmClient;
use crate::submit::{Submission, submit};
use crate::watch::follow;

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// Where to run: spindle://HOST:PORT (a running RM) or local-cluster[NODES,VCORES,MB]
    /// (default: $SPINDLE_MASTER, else the RM of --rm / $SPINDLE_RM / the config).
    #[arg(long, value_name = "URL", conflicts_with = "rm")]
    pub master: Option<String>,
    /// The resource manager's gRPC address; the same as --master spindle://HOST:PORT.
    #[arg(long, value_name = "HOST:PORT", value_parser = args::host_port)]
    pub rm: Option<String>,
    /// The application's name (default: the program's file name).
    #[arg(long)]
    pub name: Option<String>,
    /// The queue to submit to (default: client.queue of the config, "default").
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
    /// Return after submitting instead of following the app to its end.
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

    fn submission(&self, config: &SpindleConfig) -> Submission {
        let (program, program_args) = match self.command.split_first() {
            Some((program, rest)) => (program.clone(), rest.to_vec()),
            None => (String::new(), Vec::new()),
        };
        let mut submission = Submission::new(program, program_args);
        submission.name = self.name.clone();
        submission.queue = self
            .queue
            .clone()
            .unwrap_or_else(|| config.client.queue.clone());
        submission.am_resource = Resource::new(self.am_memory, self.am_cores);
        submission.files = self.files.clone();
        submission.env = self.env.iter().cloned().collect::<BTreeMap<_, _>>();
        submission.max_attempts = self.max_attempts.unwrap_or(0);
        submission
    }
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

pub async fn run(args: SubmitArgs, config: SpindleConfig) -> anyhow::Result<ExitCode> {
    let master = args.master(&config)?;
    // Find the program and files before asking anything of the cluster.
    let prepared = args.submission(&config).prepare()?;
    match master {
        Master::Spindle(addr) => {
            let mut rm =
                RmClient::connect_with_timeout(&addr, config.client.connect_timeout).await?;
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
    }
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
    let mut last: Option<(ApplicationState, FinalStatus)> = None;
    let report = follow(rm, id, |report| {
        let now = (report.state(), report.final_status());
        if last != Some(now) {
            last = Some(now);
            eprintln!("{id}: {}", state_name(now.0));
        }
    })
    .await
    .with_context(|| format!("following application {id}"))?;
    outcome(id, &report)
}

/// Exit 0 only for FINISHED with SUCCEEDED; anything else is an error carrying the
/// diagnostics.
fn outcome(id: ApplicationId, report: &ApplicationReport) -> anyhow::Result<ExitCode> {
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
