//! The `spindle` command line: one clap tree for the daemons (`resource-manager`,
//! `node-manager`, the development `local-cluster`) and the client commands (`submit`, `apps`,
//! `status`, `kill`, `nodes`, `logs`). Each command lives in its own module; this one parses, sets up logging and the
//! runtime, and turns the outcome into the documented exit code (0 ok, 1 failed, 2 usage).

pub mod app_flags;
pub mod apps;
pub mod args;
pub mod completions;
pub mod config;
pub mod daemons;
pub mod help;
pub mod kill;
pub mod local_cluster;
pub mod logging;
pub mod logs;
pub mod nodes;
pub mod progress;
pub mod submit;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{self as config_file, SpindleConfig};

/// The process failed: the application did not succeed, or the command could not do its job.
pub const EXIT_FAILED: u8 = 1;
/// The command line was wrong (clap's own code for usage errors).
pub const EXIT_USAGE: u8 = 2;

/// The environment variable that names the RM for client commands.
pub const RM_ENV: &str = "SPINDLE_RM";
/// The environment variable that names the master for `spindle submit`.
pub const MASTER_ENV: &str = "SPINDLE_MASTER";

#[derive(Debug, Parser)]
#[command(
    name = "spindle",
    version,
    about = "A YARN-style cluster manager",
    long_about = None,
    after_help = help::TOP
)]
pub struct Cli {
    /// The config file (default: $SPINDLE_CONFIG, else /etc/spindle/spindle.yaml if it exists).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How log lines on stderr look; RUST_LOG filters them.
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Text)]
    pub log_format: logging::LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the resource manager until SIGINT or SIGTERM.
    #[command(after_help = help::RESOURCE_MANAGER)]
    ResourceManager(daemons::RmArgs),
    /// Run a node manager until SIGINT or SIGTERM.
    #[command(after_help = help::NODE_MANAGER)]
    NodeManager(daemons::NmArgs),
    /// Run an embedded development cluster (an RM and node managers in one process, on
    /// loopback) until SIGINT or SIGTERM.
    #[command(after_help = help::LOCAL_CLUSTER)]
    LocalCluster(local_cluster::LocalClusterArgs),
    /// Submit an application and follow it to its end.
    #[command(after_help = help::SUBMIT)]
    Submit(submit::SubmitArgs),
    /// List applications.
    #[command(after_help = help::APPS)]
    Apps(apps::AppsArgs),
    /// Show one application's report and attempts.
    #[command(after_help = help::STATUS)]
    Status(apps::StatusArgs),
    /// Kill an application and wait until it is KILLED.
    #[command(after_help = help::KILL)]
    Kill(kill::KillArgs),
    /// List the cluster's nodes.
    #[command(after_help = help::NODES)]
    Nodes(nodes::NodesArgs),
    /// Print the logs of an application's containers.
    #[command(after_help = help::LOGS)]
    Logs(logs::LogsArgs),
    /// Print the default spindle.yaml, or the settings in effect.
    #[command(after_help = help::CONFIG)]
    Config(config::ConfigArgs),
    /// Print a shell completion script (bash, zsh, fish, …).
    #[command(after_help = help::COMPLETIONS)]
    Completions(completions::CompletionsArgs),
}

impl Command {
    fn is_daemon(&self) -> bool {
        matches!(
            self,
            Command::ResourceManager(_) | Command::NodeManager(_) | Command::LocalCluster(_)
        )
    }
}

/// Where client commands find the RM (`--rm`, else `SPINDLE_RM`, else `client.rm` of the
/// config) and how they prove they may use it (`--secret-file`, else `SPINDLE_SECRET_FILE`, else
/// `client.secret-file`).
#[derive(Debug, Clone, clap::Args)]
pub struct RmFlag {
    /// The resource manager's gRPC address (default: $SPINDLE_RM, else client.rm of the
    /// config, else 127.0.0.1:8032).
    #[arg(long, value_name = "HOST:PORT", value_parser = args::host_port)]
    pub rm: Option<String>,
    #[command(flatten)]
    pub secret: SecretFlag,
}

/// `--secret-file`: the cluster's client secret, for every client command.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SecretFlag {
    /// The cluster's client secret, a file only you may read (default: $SPINDLE_SECRET_FILE,
    /// else client.secret-file of the config; `spindle resource-manager` prints the line to
    /// export).
    #[arg(long, value_name = "PATH")]
    pub secret_file: Option<PathBuf>,
}

impl SecretFlag {
    /// The credentials every call of the command carries.
    pub fn credentials(
        &self,
        config: &SpindleConfig,
    ) -> anyhow::Result<spindle_security::CallCredentials> {
        Ok(crate::credentials::client_credentials(
            self.secret_file.as_deref(),
            &config.client,
        )?)
    }
}

impl RmFlag {
    pub fn resolve(&self, config: &SpindleConfig) -> anyhow::Result<String> {
        if let Some(rm) = &self.rm {
            return Ok(rm.clone());
        }
        match std::env::var(RM_ENV) {
            Ok(value) if !value.is_empty() => {
                args::host_port(&value).map_err(|e| anyhow::anyhow!("{RM_ENV}: {e}"))
            }
            _ => Ok(config.client.rm.clone()),
        }
    }
}

/// Runs `spindle` with the process's arguments and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format, cli.command.is_daemon());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        // `spindle logs … | head`: the reader has all it wanted; as for other Unix tools, that
        // is not an error worth a message.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Completions(args) = cli.command {
        return completions::run(args);
    }
    if let Command::Config(config::ConfigArgs {
        command: config::ConfigCommand::Defaults,
    }) = cli.command
    {
        return config::print_defaults();
    }
    let config = config_file::load(cli.config.as_deref())?;
    match cli.command {
        Command::ResourceManager(args) => daemons::run_resource_manager(args, config).await,
        Command::NodeManager(args) => daemons::run_node_manager(args, config).await,
        Command::LocalCluster(args) => local_cluster::run(args, config).await,
        Command::Submit(args) => submit::run(args, config).await,
        Command::Apps(args) => apps::run_apps(args, config).await,
        Command::Status(args) => apps::run_status(args, config).await,
        Command::Kill(args) => kill::run(args, config).await,
        Command::Nodes(args) => nodes::run(args, config).await,
        Command::Logs(args) => logs::run(args, config).await,
        Command::Config(_) => config::print_effective(&config),
        Command::Completions(args) => completions::run(args),
    }
}

/// Connects to the RM a client command names, with the config's connect timeout.
pub(crate) async fn connect(
    flag: &RmFlag,
    config: &SpindleConfig,
) -> anyhow::Result<crate::RmClient> {
    let addr = flag.resolve(config)?;
    let credentials = flag.secret.credentials(config)?;
    Ok(
        crate::RmClient::connect_with_timeout(&addr, config.client.connect_timeout, credentials)
            .await?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(line: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("spindle").chain(line.iter().copied()))
    }

    #[test]
    fn submit_takes_the_program_after_double_dash() {
        let cli = parse(&[
            "submit",
            "--master",
            "spindle://127.0.0.1:8032",
            "--am-memory",
            "1g",
            "--env",
            "A=1",
            "--env",
            "B=x=y",
            "--files",
            "a.txt,b.txt",
            "--",
            "ds",
            "--num-containers",
            "4",
        ])
        .unwrap();
        let Command::Submit(args) = cli.command else {
            panic!("not submit")
        };
        assert_eq!(args.app.am_memory, 1024);
        assert_eq!(args.command, ["ds", "--num-containers", "4"]);
        assert_eq!(args.app.env.len(), 2);
        assert_eq!(args.app.env[1], ("B".to_string(), "x=y".to_string()));
        assert_eq!(args.app.files.len(), 2);
    }

    #[test]
    fn usage_errors_are_exit_code_2() {
        for line in [
            &["submit", "--am-memory", "0", "--", "x"][..],
            &["submit", "--am-memory", "-5", "--", "x"],
            &["submit", "--am-cores", "0", "--", "x"],
            &["submit", "--env", "1=2", "--", "x"],
            &["submit"],
            &["status", "application_x"],
            &["logs", "application_1_0001", "--container", "nope"],
            &["apps", "--state", "DONE"],
            &["frobnicate"],
        ] {
            let err = parse(line).unwrap_err();
            assert_eq!(err.exit_code(), i32::from(EXIT_USAGE), "{line:?}: {err}");
        }
    }

    #[test]
    fn malformed_ids_get_the_id_parsers_error() {
        let err = parse(&["status", "application_x"]).unwrap_err().to_string();
        assert!(err.contains("malformed application id"), "{err}");
        assert!(err.contains("expected application_"), "{err}");
    }

    #[test]
    fn global_flags_go_anywhere() {
        let cli = parse(&["nodes", "--config", "/x.yaml", "--log-format", "json"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/x.yaml")));
        assert_eq!(cli.log_format, logging::LogFormat::Json);
    }
}
