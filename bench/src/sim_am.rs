//! A simulated application master for the `rm` scenario, speaking through the real `AmRmClient`:
//! it asks for its whole share at once, hands every container it gets to its (simulated) node,
//! and is done when all of them have completed. After any answer with news it calls again at
//! once (`wait_ms = 0`), since more is likely on its way; after an empty answer it long-polls.
//! Only the calls answered at once are latency samples: a long poll's time is mostly waiting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use spindle_app_master::{AmCommand, AmRmClient, ContainerRequest};
use spindle_containers::Resource;
use spindle_containers::exit_status::SUCCESS;

use crate::sim_node::Inboxes;

/// The priority of every ask (any value above the AM's 0).
const PRIORITY: i32 = 1;

pub struct SimAm {
    pub client: AmRmClient,
    /// How many containers it runs.
    pub share: u32,
    /// Its long poll's wait: the longest the RM holds one.
    pub long_poll: Duration,
}

/// What one AM saw.
#[derive(Debug, Default)]
pub struct AmOutcome {
    /// The time of each Allocate call made with `wait_ms = 0`.
    pub latencies: Vec<Duration>,
    /// Every Allocate call, long polls included.
    pub calls: u64,
}

impl SimAm {
    pub async fn run(self, nodes: Arc<Inboxes>, capability: Resource) -> anyhow::Result<AmOutcome> {
        let mut outcome = AmOutcome::default();
        if self.share == 0 {
            return Ok(outcome);
        }
        let attempt = self.client.attempt_id();
        let request = ContainerRequest::new(capability, PRIORITY);
        self.client.add_container_requests(&request, self.share)?;
        let mut completed: u32 = 0;
        let mut wait = Duration::ZERO;
        while completed < self.share {
            let progress = completed as f32 / self.share as f32;
            let started = Instant::now();
            let answer = self.client.allocate(progress, wait).await?;
            outcome.calls += 1;
            if wait.is_zero() {
                outcome.latencies.push(started.elapsed());
            }
            if answer.command == AmCommand::Shutdown {
                bail!("the RM shut {attempt} down after {completed} completed containers");
            }
            if let Some(extra) = answer.surplus.first() {
                bail!("{attempt} was given container {} beyond its asks", extra.id);
            }
            for container in &answer.allocated {
                nodes.run(container)?;
            }
            for status in &answer.completed {
                if status.exit_status != SUCCESS {
                    bail!(
                        "container {} of {attempt} ended with {}: {}",
                        status.id,
                        status.exit_status,
                        status.diagnostics
                    );
                }
            }
            completed += answer.completed.len() as u32;
            let news = !answer.allocated.is_empty() || !answer.completed.is_empty();
            wait = if news { Duration::ZERO } else { self.long_poll };
        }
        Ok(outcome)
    }
}
