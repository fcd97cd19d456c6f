//! `spindle kill APP_ID`: ask the RM to kill an application and wait, through the pushed
//! reports, until it is in a final state; an app that already ended is left as it is.

use std::process::ExitCode;

use anyhow::Context as _;
use spindle_containers::ApplicationId;

use super::{RmFlag, connect};
use crate::config::SpindleConfig;
use crate::report::{final_status_name, state_name};
use crate::watch::{follow, is_final};

#[derive(Debug, clap::Args)]
pub struct KillArgs {
    #[command(flatten)]
    pub rm: RmFlag,
    /// The application, e.g. application_1700000000000_0001.
    #[arg(value_name = "APP_ID")]
    pub app: ApplicationId,
}

pub async fn run(args: KillArgs, config: SpindleConfig) -> anyhow::Result<ExitCode> {
    let id = args.app;
    let mut rm = connect(&args.rm, &config).await?;
    let before = rm.application_report(id).await?;
    if is_final(before.state()) {
        println!(
            "application {id} has already ended: {} ({})",
            state_name(before.state()),
            final_status_name(before.final_status())
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("killing application {id}");
    let user = rm.user().to_string();
    let done = rm
        .kill_application(id, &format!("killed by user {user} with spindle kill"))
        .await?;
    let report = if done {
        rm.application_report(id).await?
    } else {
        follow(&mut rm, id, |_| {})
            .await
            .with_context(|| format!("waiting for application {id} to be killed"))?
    };
    println!(
        "application {id} is {} ({})",
        state_name(report.state()),
        final_status_name(report.final_status())
    );
    Ok(ExitCode::SUCCESS)
}
