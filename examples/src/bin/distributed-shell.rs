//! YARN's distributed shell on Spindle: an application master that runs one shell command in N
//! containers and succeeds only if every one exits 0. It is the reference example of the
//! low-level AM API: `AmRmClient` asks the RM for containers, `NmClient` starts them on their
//! nodes, and `Allocate` long polls bring the allocations and completions.
//!
//! Exit codes: 0 every container succeeded; 1 a container failed, or the AM itself failed or was
//! shut down by the RM; 2 bad flags.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use spindle_app_master::nm_client::Outcomes;
use spindle_app_master::{
    AllocateResult, AmCommand, AmEnv, AmRmClient, AmRmError, Container, ContainerRequest,
    FinalStatus, NmClient,
};
use spindle_containers::{ContainerId, LaunchContext, Resource, exit_status};
use tokio::task::JoinSet;

#[derive(Parser, Debug)]
#[command(
    name = "distributed-shell",
    about = "Runs a shell command in N containers (started by `spindle submit` as the AM)"
)]
struct Args {
    /// How many containers run the command.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    num_containers: u32,
    /// Memory of each container, in MB.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..))]
    container_memory: u64,
    /// Virtual cores of each container.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    container_vcores: u32,
    /// The command, run as `bash -c CMD`.
    #[arg(long)]
    shell_command: String,
    /// Priority of the container requests.
    #[arg(long, default_value_t = 0)]
    priority: i32,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(FinalStatus::Succeeded) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("distributed-shell: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<FinalStatus> {
    let env = AmEnv::from_env()?;
    let client = AmRmClient::from_env(&env)?;
    let registration = client
        .register(&env.nm_host, 0, "")
        .await
        .context("registering with the resource manager")?;
    let mut shell = Shell {
        client: client.clone(),
        nm: NmClient::new(client.nm_tokens()),
        launch: LaunchContext {
            command: vec!["bash".into(), "-c".into(), args.shell_command],
            ..LaunchContext::default()
        },
        wanted: args.num_containers,
        running: HashMap::new(),
        failures: Vec::new(),
        finished: 0,
    };
    let capability = Resource::new(args.container_memory, args.container_vcores);
    let request = ContainerRequest::new(capability, args.priority);
    let outcome = match client.add_container_requests(&request, args.num_containers) {
        Ok(()) => shell.run(registration.max_allocate_wait).await,
        Err(e) => Err(e.into()),
    };
    let (status, diagnostics) = match outcome {
        Ok(()) if shell.failures.is_empty() => (FinalStatus::Succeeded, String::new()),
        Ok(()) => (FinalStatus::Failed, shell.failures.join("\n")),
        Err(e) if e.downcast_ref::<Shutdown>().is_some() => return Err(e),
        Err(e) => (FinalStatus::Failed, format!("{e:#}")),
    };
    client
        .finish(status, &diagnostics, "")
        .await
        .context("unregistering from the resource manager")?;
    if !diagnostics.is_empty() {
        eprintln!("{diagnostics}");
    }
    Ok(status)
}

/// The RM ended the attempt: exit without unregistering.
#[derive(Debug)]
struct Shutdown;

impl std::fmt::Display for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the resource manager shut this attempt down (AM_COMMAND_SHUTDOWN)")
    }
}

impl std::error::Error for Shutdown {}

struct Shell {
    client: AmRmClient,
    nm: NmClient,
    launch: LaunchContext,
    wanted: u32,
    /// Containers given the command and not yet complete.
    running: HashMap<ContainerId, Container>,
    failures: Vec<String>,
    finished: u32,
}

impl Shell {
    /// Launches containers as they arrive and returns once every one has completed.
    async fn run(&mut self, wait: std::time::Duration) -> anyhow::Result<()> {
        let mut starting: JoinSet<Outcomes<()>> = JoinSet::new();
        // The poll stays open while starts complete: dropping it could lose its news.
        let mut poll = Box::pin(allocate(self.client.clone(), 0.0, wait));
        while self.finished < self.wanted {
            tokio::select! {
                answer = &mut poll => {
                    self.on_allocate(answer?, &mut starting)?;
                    let progress = self.finished as f32 / self.wanted as f32;
                    poll = Box::pin(allocate(self.client.clone(), progress, wait));
                }
                Some(started) = starting.join_next() => {
                    for (id, outcome) in started? {
                        if let Err(e) = outcome {
                            self.client.release(id);
                            self.finish(id, &format!("failed to start: {e}"), false);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn on_allocate(
        &mut self,
        answer: AllocateResult,
        starting: &mut JoinSet<Outcomes<()>>,
    ) -> anyhow::Result<()> {
        if answer.command == AmCommand::Shutdown {
            bail!(Shutdown);
        }
        let launched = self.finished + self.running.len() as u32;
        let room = self.wanted.saturating_sub(launched) as usize;
        let mut batch = Vec::new();
        for (i, container) in answer.allocated.into_iter().enumerate() {
            if i < room {
                self.running.insert(container.id, container.clone());
                batch.push((container, self.launch.clone()));
            } else {
                self.client.release(container.id);
            }
        }
        for container in answer.surplus {
            self.client.release(container.id);
        }
        if !batch.is_empty() {
            let nm = self.nm.clone();
            starting.spawn(async move { nm.start_containers(batch).await });
        }
        for status in answer.completed {
            let ok = status.exit_status == exit_status::SUCCESS;
            self.finish(status.id, &status.describe(), ok);
        }
        Ok(())
    }

    /// Records a container's end once (a container that failed to start may still be reported
    /// complete later).
    fn finish(&mut self, id: ContainerId, how: &str, ok: bool) {
        let Some(container) = self.running.remove(&id) else {
            return;
        };
        self.finished += 1;
        println!("{id} on node {}: {how}", container.node_id);
        if !ok {
            self.failures.push(format!(
                "container {id} on node {} failed: {how}",
                container.node_id
            ));
        }
    }
}

async fn allocate(
    client: AmRmClient,
    progress: f32,
    wait: std::time::Duration,
) -> Result<AllocateResult, AmRmError> {
    client.allocate(progress, wait).await
}
