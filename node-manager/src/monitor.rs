//! The memory monitor (YARN's ContainersMonitor): every `monitor-interval` it samples each
//! running container's process tree and stops (exit -104) any that uses more physical memory
//! than it was given. Where the host has no writable cgroups it is the only enforcement; where
//! it has, it is the one that explains itself (usage and the process tree), the kernel's limit
//! being the one that cannot be outrun between two samples. The sum of what it samples is the
//! node's `memory used` metric.

use std::sync::Arc;
use std::time::Duration;

use spindle_containers::ContainerId;
use spindle_containers::exit_status;
use spindle_containers::memory::{MemorySampler, TreeMemory};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::containers::Watched;
use crate::diagnostics;
use crate::launch;
use crate::node::Node;
use crate::state_store::StopReason;

/// Runs until `shutdown` turns true.
pub async fn run(node: Arc<Node>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let mut sampler = match MemorySampler::new() {
        Ok(sampler) => sampler,
        Err(e) => {
            tracing::error!("the memory monitor cannot run, limits are not sampled: {e}");
            return;
        }
    };
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.wait_for(|stop| *stop) => return,
            _ = ticker.tick() => {}
        }
        let watched = node.containers.watched();
        if watched.is_empty() {
            node.metrics.set_memory_used(0);
            continue;
        }
        // Reading every process's stat is blocking file I/O: off the runtime's threads.
        let sampled = tokio::task::spawn_blocking(move || {
            sampler.refresh();
            let round = sample(&sampler, &watched);
            (sampler, round)
        })
        .await;
        let verdicts = match sampled {
            Ok((back, round)) => {
                sampler = back;
                node.metrics.set_memory_used(round.used_bytes);
                round.verdicts
            }
            Err(e) => {
                tracing::error!("the memory monitor failed, limits are not sampled any more: {e}");
                return;
            }
        };
        for (id, diagnostics) in verdicts {
            tracing::warn!(container_id = %id, app = %id.application(), "{}", diagnostics.lines().next().unwrap_or(""));
            let stopper = Arc::clone(&node);
            let reason = StopReason {
                exit_status: exit_status::KILLED_EXCEEDED_PMEM,
                diagnostics: Some(diagnostics),
            };
            node.tasks.spawn(async move {
                launch::stop(&stopper, id, reason).await;
            });
        }
    }
}

/// One round of sampling.
struct Round {
    /// Every running container's resident memory, summed.
    used_bytes: u64,
    /// The containers over their memory, with the diagnostics to record.
    verdicts: Vec<(ContainerId, String)>,
}

/// Every running container's usage as of the sampler's last refresh. Containers already ending
/// or being stopped count towards the node's usage, but are left to that end.
fn sample(sampler: &MemorySampler, watched: &[Watched]) -> Round {
    let mut round = Round {
        used_bytes: 0,
        verdicts: Vec::new(),
    };
    for w in watched {
        let members = w.process.cgroup().map(|c| c.pids()).unwrap_or_default();
        let usage = sampler.tree(w.process.pid(), &members);
        round.used_bytes = round.used_bytes.saturating_add(usage.rss_bytes);
        if w.stopping || w.process.try_exit().is_some() {
            continue;
        }
        if let Some(diagnostics) = verdict(w.id, &usage, w.resource.memory_mb) {
            round.verdicts.push((w.id, diagnostics));
        }
    }
    round
}

/// The diagnostics to stop with, when `usage` is over `limit_mb`.
pub fn verdict(id: ContainerId, usage: &TreeMemory, limit_mb: u64) -> Option<String> {
    (usage.rss_bytes > limit_mb.saturating_mul(1 << 20))
        .then(|| diagnostics::beyond_memory(id, usage, limit_mb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_usage_over_the_limit_is_a_verdict() {
        let id: ContainerId = "container_1700000000000_0001_01_000002".parse().unwrap();
        let usage = |rss_bytes| TreeMemory {
            rss_bytes,
            processes: vec![],
        };
        assert_eq!(verdict(id, &usage(64 << 20), 64), None);
        let over = verdict(id, &usage((64 << 20) + 1), 64).unwrap();
        assert!(
            over.starts_with(&format!(
                "Container {id} is running beyond physical memory limits. Current usage: 65 MB \
                 of 64 MB physical memory used. Killing container."
            )),
            "{over}"
        );
    }
}
