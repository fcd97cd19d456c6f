//! The way into the core task: the commands it takes (each with a oneshot for its answer) and
//! `CoreHandle`, which the gRPC and web services clone to send them.

use std::time::Duration;

use spindle_containers::{ApplicationId, AttemptId, ContainerId};
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use super::polls::AllocateReply;
use super::status::{shutting_down, to_status};
use super::watchers::ReportSender;
use crate::core::{
    AllocateCall, Core, CoreError, FinishCall, HeartbeatOutcome, NodeHeartbeat, NodeInfo,
    RegisterCall, ReportedContainer, Submission,
};

pub type Reply<T> = oneshot::Sender<Result<T, CoreError>>;

/// A look at the core (with the time) that answers through its own channel.
pub type Reader = Box<dyn FnOnce(&Core, u64) + Send>;

pub enum Command {
    NewApplication(Reply<ApplicationId>),
    Submit(Submission, Reply<Option<AttemptId>>),
    Kill(ApplicationId, String, Reply<()>),
    Watch(ApplicationId, ReportSender, Reply<()>),
    RegisterNode(NodeInfo, Vec<ReportedContainer>, Reply<()>),
    Heartbeat(NodeHeartbeat, Reply<HeartbeatOutcome>),
    /// Answers with the application's queue.
    RegisterAm(RegisterCall, Reply<String>),
    Allocate {
        call: AllocateCall,
        wait: Duration,
        reply: AllocateReply,
    },
    FinishAm(FinishCall, Reply<()>),
    /// From the AM launcher: how StartContainers went.
    AmLaunched {
        container: ContainerId,
        result: Result<(), String>,
    },
    /// A read-only look at the core, with the time.
    Read(Reader),
}

#[derive(Clone)]
pub struct CoreHandle {
    tx: mpsc::Sender<Command>,
}

impl CoreHandle {
    pub fn new(tx: mpsc::Sender<Command>) -> Self {
        CoreHandle { tx }
    }

    /// Sends the command `make` builds around a reply channel and waits for the answer.
    pub async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, Status> {
        self.request(make).await?.map_err(to_status)
    }

    /// Like `call`, but hands back the core's refusal as it is, for callers that answer some
    /// refusals otherwise than with an error.
    pub async fn request<T>(
        &self,
        make: impl FnOnce(Reply<T>) -> Command,
    ) -> Result<Result<T, CoreError>, Status> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| shutting_down())?;
        answer.await.map_err(|_| shutting_down())
    }

    /// Runs `read` on the core task and returns what it computed.
    pub async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Core, u64) -> T + Send + 'static,
    ) -> Result<T, Status> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Read(Box::new(move |core, now| {
            let _ = reply.send(read(core, now));
        }));
        self.tx.send(command).await.map_err(|_| shutting_down())?;
        answer.await.map_err(|_| shutting_down())
    }
}
