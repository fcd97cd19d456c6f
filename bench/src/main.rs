//! `spindle-bench`: Spindle's benchmarks, one command per scenario. Each prints a table of its
//! runs and their medians on stdout, and with `--json` one JSON object on the last line.
//!
//! Exit codes: 0 the scenario ran; 1 it failed (the error says where); 2 bad flags.

mod am_timing;
mod cpu;
mod daemon;
mod launch;
mod pi;
mod pi_program;
mod report;
mod rm;
mod scheduler;
mod serve;
mod sim_am;
mod sim_node;
mod stats;
mod unmanaged;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use crate::report::Report;

#[derive(Parser, Debug)]
#[command(
    name = "spindle-bench",
    about = "Spindle's benchmarks: each scenario prints a table of its runs and their medians"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone, Copy)]
struct Common {
    /// How many times to run the scenario; the figures reported are the medians.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Also print one JSON object with the results on the last line of stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The RM's scheduling core alone, no network: allocations per second.
    Scheduler {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: scheduler::SchedulerArgs,
    },
    /// A real RM process over gRPC with simulated node managers and application masters.
    Rm {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: rm::RmArgs,
    },
    /// A real NM process launching /bin/true containers, with a real RM beside it.
    Launch {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: launch::LaunchArgs,
    },
    /// The Pi example end to end, in cluster mode, on an embedded local cluster.
    Pi {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: pi::PiArgs,
    },
    /// Runs a resource manager for the `rm` and `launch` scenarios.
    #[command(hide = true)]
    ServeRm(serve::ServeRmArgs),
    /// Runs a node manager for the `launch` scenario.
    #[command(hide = true)]
    ServeNm(serve::ServeNmArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    raise_open_file_limit();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("spindle-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Scheduler { common, args } => {
            print(common, scheduler::run(&args, common.runs)?);
        }
        Command::Rm { common, args } => {
            print(common, runtime()?.block_on(rm::run(&args, common.runs))?);
        }
        Command::Launch { common, args } => {
            print(
                common,
                runtime()?.block_on(launch::run(&args, common.runs))?,
            );
        }
        Command::Pi { common, args } => {
            // Found (or built) before anything is timed or started.
            let program = pi_program::locate(args.program.as_deref())?;
            print(
                common,
                runtime()?.block_on(pi::run(&args, &program, common.runs))?,
            );
        }
        Command::ServeRm(args) => runtime()?.block_on(serve::resource_manager(args))?,
        Command::ServeNm(args) => runtime()?.block_on(serve::node_manager(args))?,
    }
    Ok(())
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn print(common: Common, report: Report) {
    print!("{}", report.table());
    if common.json {
        println!("{}", report.json());
    }
}

/// The `rm` scenario holds a connection per simulated node on both ends, more than the common
/// soft limit of 1024 open files; the hard limit is what the system allows, so take it.
fn raise_open_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!("cannot raise the open-file limit from {soft} to {hard}: {e}");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot read the open-file limit: {e}"),
    }
}
