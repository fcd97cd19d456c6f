//! Simulated node managers for the `rm` scenario: in-process ResourceTracker clients, each with
//! its own connection to the RM as a real NM has. A node registers, then heartbeats as the real
//! NM does: at the RM's interval, and at once (coalesced) when containers complete. Its
//! containers run in no time: the AM hands each one over on allocation, and the node's next
//! heartbeat reports it COMPLETE with exit 0, until the RM acknowledges it. No node serves a
//! ContainerManager: the `rm` scenario's AMs are unmanaged and every container ends by itself,
//! so the RM never calls a node. Like a real NM, each proves the cluster's daemon secret on
//! every call.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use spindle_app_master::Container;
use spindle_containers::exit_status::SUCCESS;
use spindle_containers::{ContainerId, NodeId, Resource};
use spindle_protocol as proto;
use spindle_protocol::resource_tracker_client::ResourceTrackerClient;
use spindle_security::CallCredentials;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::unmanaged;

type Tracker = ResourceTrackerClient<InterceptedService<Channel, CallCredentials>>;

/// Registrations in flight at once: a thousand simultaneous connects would overflow the RM's
/// accept backlog and stall on SYN retries, which is set-up noise, not the RM's speed.
const REGISTERING_AT_ONCE: usize = 64;

/// Where the AMs hand over the containers they were given, by node.
pub struct Inboxes {
    by_node: HashMap<NodeId, mpsc::UnboundedSender<ContainerId>>,
}

impl Inboxes {
    /// Runs `container` on its node: it completes with exit 0 and the node reports it.
    pub fn run(&self, container: &Container) -> anyhow::Result<()> {
        let inbox = self.by_node.get(&container.node_id).with_context(|| {
            format!(
                "container {} was allocated on {}, which is not a simulated node",
                container.id, container.node_id
            )
        })?;
        inbox
            .send(container.id)
            .map_err(|_| anyhow::anyhow!("simulated node {} has stopped", container.node_id))
    }
}

pub struct SimNodes {
    inboxes: Arc<Inboxes>,
    tasks: JoinSet<anyhow::Result<()>>,
    stop: watch::Sender<bool>,
}

impl SimNodes {
    /// Registers `count` nodes of `capability` with the RM at `rm`, proving the daemon secret
    /// with `daemon`, and starts their heartbeats.
    pub async fn start(
        rm: &str,
        daemon: &CallCredentials,
        count: u32,
        capability: Resource,
    ) -> anyhow::Result<SimNodes> {
        let registered: Vec<(NodeId, Tracker, Duration)> =
            futures::stream::iter((0..count).map(|i| register(rm, daemon.clone(), i, capability)))
                .buffer_unordered(REGISTERING_AT_ONCE)
                .try_collect()
                .await?;
        let (stop, stopped) = watch::channel(false);
        let mut by_node = HashMap::new();
        let mut tasks = JoinSet::new();
        for (node, tracker, interval) in registered {
            let (tx, rx) = mpsc::unbounded_channel();
            by_node.insert(node.clone(), tx);
            let heartbeats = Heartbeats {
                node,
                tracker,
                interval,
                inbox: rx,
                stop: stopped.clone(),
            };
            tasks.spawn(heartbeats.run());
        }
        Ok(SimNodes {
            inboxes: Arc::new(Inboxes { by_node }),
            tasks,
            stop,
        })
    }

    pub fn inboxes(&self) -> Arc<Inboxes> {
        Arc::clone(&self.inboxes)
    }

    /// Waits for the first node to fail and says why; never returns while they all work.
    pub async fn first_failure(&mut self) -> anyhow::Error {
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return e,
                Err(e) => return anyhow::anyhow!("a simulated node's task failed: {e}"),
            }
        }
        std::future::pending().await
    }

    /// Stops every node's heartbeats; reports the first node that had failed.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        while let Some(joined) = self.tasks.join_next().await {
            joined.context("a simulated node's task failed")??;
        }
        Ok(())
    }
}

async fn register(
    rm: &str,
    daemon: CallCredentials,
    index: u32,
    capability: Resource,
) -> anyhow::Result<(NodeId, Tracker, Duration)> {
    // A name, not an address anybody listens on: the RM never calls these nodes.
    let node = NodeId::new(format!("sim-node-{index:04}:8041"))?;
    let mut tracker = ResourceTrackerClient::with_interceptor(unmanaged::channel(rm)?, daemon);
    let request = proto::RegisterNodeRequest {
        node_id: node.to_string(),
        hostname: node.host().to_string(),
        http_address: format!("{}:8042", node.host()),
        capability: Some(capability.to_proto()),
        containers: Vec::new(),
    };
    let answer = tracker
        .register_node_manager(request)
        .await
        .with_context(|| format!("registering simulated node {node}"))?
        .into_inner();
    let interval = Duration::from_millis(answer.heartbeat_interval_ms.max(1).into());
    Ok((node, tracker, interval))
}

struct Heartbeats {
    node: NodeId,
    tracker: Tracker,
    interval: Duration,
    inbox: mpsc::UnboundedReceiver<ContainerId>,
    stop: watch::Receiver<bool>,
}

impl Heartbeats {
    async fn run(mut self) -> anyhow::Result<()> {
        // Completed containers the RM has not acknowledged yet: reported on every heartbeat.
        let mut unacknowledged: Vec<ContainerId> = Vec::new();
        loop {
            tokio::select! {
                biased;
                _ = self.stop.wait_for(|stop| *stop) => return Ok(()),
                got = self.inbox.recv() => match got {
                    Some(id) => unacknowledged.push(id),
                    None => return Ok(()),
                },
                () = tokio::time::sleep(self.interval) => {}
            }
            // Whatever else completed meanwhile rides on the same heartbeat.
            while let Ok(id) = self.inbox.try_recv() {
                unacknowledged.push(id);
            }
            let request = proto::NodeHeartbeatRequest {
                node_id: self.node.to_string(),
                containers: unacknowledged.iter().map(complete).collect(),
                healthy: true,
                health_report: String::new(),
            };
            let answer = self
                .tracker
                .node_heartbeat(request)
                .await
                .with_context(|| format!("heartbeat of simulated node {}", self.node))?
                .into_inner();
            if answer.action() != proto::NodeAction::Normal {
                bail!(
                    "the RM answered simulated node {} with {:?}",
                    self.node,
                    answer.action()
                );
            }
            let acknowledged: HashSet<&str> = answer
                .containers_acknowledged
                .iter()
                .map(String::as_str)
                .collect();
            unacknowledged.retain(|id| !acknowledged.contains(id.to_string().as_str()));
        }
    }
}

fn complete(id: &ContainerId) -> proto::ContainerStatus {
    proto::ContainerStatus {
        container_id: id.to_string(),
        state: proto::ContainerState::Complete as i32,
        exit_status: SUCCESS,
        diagnostics: String::new(),
    }
}
