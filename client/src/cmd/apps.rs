//! `spindle apps` (a table of applications, YARN's `application -list`) and `spindle status
//! APP_ID` (one application's report and attempts, YARN's `application -status`).

use std::process::ExitCode;

use spindle_containers::ApplicationId;

use super::{RmFlag, connect};
use crate::config::SpindleConfig;
use crate::report::{AppView, apps_text, parse_states, status_text};

#[derive(Debug, clap::Args)]
pub struct AppsArgs {
    #[command(flatten)]
    pub rm: RmFlag,
    /// Only applications in these states (comma separated; default: all, same as ALL).
    #[arg(long, value_delimiter = ',', value_name = "STATE,...", value_parser = state_name)]
    pub state: Vec<String>,
    /// Print JSON (an array of applications) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Checks a `--state` value while parsing, so a typo is a usage error naming the choices.
fn state_name(s: &str) -> Result<String, String> {
    parse_states(&[s.to_string()]).map(|_| s.to_string())
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub rm: RmFlag,
    /// The application, e.g. application_1700000000000_0001.
    #[arg(value_name = "APP_ID")]
    pub app: ApplicationId,
    /// Print JSON instead of `Key : value` lines.
    #[arg(long)]
    pub json: bool,
}

pub async fn run_apps(args: AppsArgs, config: SpindleConfig) -> anyhow::Result<ExitCode> {
    let states = parse_states(&args.state).map_err(anyhow::Error::msg)?;
    let mut rm = connect(&args.rm, &config).await?;
    let mut apps = rm.list_applications(&states).await?;
    apps.sort_by(|a, b| {
        let id = |r: &spindle_protocol::ApplicationReport| {
            r.application_id.parse::<ApplicationId>().ok()
        };
        id(a).cmp(&id(b))
    });
    if args.json {
        let views: Vec<AppView> = apps.iter().map(AppView::from).collect();
        println!("{}", serde_json::to_string_pretty(&views)?);
    } else {
        print!("{}", apps_text(&apps));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_status(args: StatusArgs, config: SpindleConfig) -> anyhow::Result<ExitCode> {
    let mut rm = connect(&args.rm, &config).await?;
    let report = rm.application_report(args.app).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&AppView::from(&report))?);
    } else {
        print!("{}", status_text(&report));
    }
    Ok(ExitCode::SUCCESS)
}
