//! `spindle logs APP_ID [--container ID] [--file NAME] [--follow]`: the log files of the
//! application's containers, each under a `==> … <==` header, read from the node managers that
//! ran them or, once the application is over and its logs were aggregated, from the RM's log
//! store; with `--follow`, tailed until the application ends.

use std::process::ExitCode;

use spindle_containers::launch_context::is_plain_file_name;
use spindle_containers::{ApplicationId, ContainerId};

use super::{RmFlag, connect};
use crate::config::SpindleConfig;
use crate::logs::{LogSelection, follow_logs, write_selected};

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub rm: RmFlag,
    /// The application, e.g. application_1700000000000_0001.
    #[arg(value_name = "APP_ID")]
    pub app: ApplicationId,
    /// Only this container's logs.
    #[arg(long, value_name = "CONTAINER_ID")]
    pub container: Option<ContainerId>,
    /// Only this log file of each container (stdout, stderr, or one the program wrote).
    #[arg(long, value_name = "NAME", value_parser = log_file_name)]
    pub file: Option<String>,
    /// Keep printing what the running containers write until the application ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

fn log_file_name(value: &str) -> Result<String, String> {
    if is_plain_file_name(value) {
        Ok(value.to_string())
    } else {
        Err("expected a plain file name such as stdout or stderr (no '/', not '..')".into())
    }
}

pub async fn run(args: LogsArgs, config: SpindleConfig) -> anyhow::Result<ExitCode> {
    let selection = LogSelection::new(args.app, args.container, args.file)?;
    let mut rm = connect(&args.rm, &config).await?;
    let mut stdout = tokio::io::stdout();
    let outcome = if args.follow {
        follow_logs(&mut rm, &selection, &mut stdout).await?
    } else {
        write_selected(&mut rm, &selection, &mut stdout).await?
    };
    for problem in &outcome.problems {
        eprintln!("error: {problem}");
    }
    if !outcome.problems.is_empty() {
        return Ok(ExitCode::from(super::EXIT_FAILED));
    }
    if outcome.files == 0 {
        anyhow::bail!("no logs found for {}", selection.describe());
    }
    Ok(ExitCode::SUCCESS)
}
