//! `spindle logs APP_ID [--container ID]`: every log file of the application's containers,
//! fetched from the node managers that ran them, each under a `==> … <==` header.

use std::process::ExitCode;

use spindle_containers::{ApplicationId, ContainerId};

use super::{RmFlag, connect};
use crate::config::SpindleConfig;
use crate::logs::write_logs;

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
}

pub async fn run(args: LogsArgs, config: SpindleConfig) -> anyhow::Result<ExitCode> {
    let mut rm = connect(&args.rm, &config).await?;
    let mut stdout = tokio::io::stdout();
    let outcome = write_logs(&mut rm, args.app, args.container, &mut stdout).await?;
    for problem in &outcome.problems {
        eprintln!("error: {problem}");
    }
    if !outcome.problems.is_empty() {
        return Ok(ExitCode::from(super::EXIT_FAILED));
    }
    if outcome.files == 0 {
        let what = match args.container {
            Some(container) => format!("container {container}"),
            None => format!("application {}", args.app),
        };
        anyhow::bail!("no logs found for {what}");
    }
    Ok(ExitCode::SUCCESS)
}
