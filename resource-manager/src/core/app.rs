//! Applications and their attempts as the RM records them, with YARN's states. The rules that
//! move them between states live in `lifecycle` and `am`; this file is the vocabulary.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};
use spindle_containers::{ApplicationId, AttemptId, ContainerId, LaunchContext, Resource};

use super::node::NodeIdx;
use super::record::{AppRecord, AttemptRecord};
use super::requests::Requests;

/// An application's state. NEW is the id handed out by `new_application` before submission and
/// has no record; the rest are YARN's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AppState {
    Submitted,
    /// Queued: waiting for (or running) an attempt whose AM has not registered.
    Accepted,
    /// The current attempt's AM has registered.
    Running,
    /// The AM unregistered; its final status says how it went.
    Finished,
    /// The last attempt failed.
    Failed,
    Killed,
}

impl AppState {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            AppState::Finished | AppState::Failed | AppState::Killed
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FinalStatus {
    Undefined,
    Succeeded,
    Failed,
    Killed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AttemptState {
    /// Waiting for its AM container.
    New,
    /// Its AM container is allocated and being launched.
    Allocated,
    /// Its AM container runs (or, unmanaged, the submitter acts as its AM).
    Launched,
    /// Its AM has registered.
    Running,
    /// Its AM unregistered.
    Finished,
    Failed,
    Killed,
}

impl AttemptState {
    pub fn is_over(self) -> bool {
        matches!(
            self,
            AttemptState::Finished | AttemptState::Failed | AttemptState::Killed
        )
    }
}

/// What the RM tells an AM besides containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmCommand {
    /// The RM restarted and recovered the attempt: register again and ask again for what is
    /// still wanted.
    Resync,
    /// The attempt is over: exit.
    Shutdown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedContainer {
    pub id: ContainerId,
    pub exit_status: i32,
    pub diagnostics: String,
}

/// What an attempt has not yet been told. Each item is delivered by exactly one Allocate answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct News {
    pub allocated: Vec<ContainerId>,
    pub completed: Vec<CompletedContainer>,
    /// Nodes whose state changed under this attempt's containers.
    pub updated_nodes: BTreeSet<NodeIdx>,
    pub command: Option<AmCommand>,
}

impl News {
    pub fn is_empty(&self) -> bool {
        self.allocated.is_empty()
            && self.completed.is_empty()
            && self.updated_nodes.is_empty()
            && self.command.is_none()
    }
}

#[derive(Debug, Clone)]
pub struct Attempt {
    pub id: AttemptId,
    pub state: AttemptState,
    pub am_container: Option<ContainerId>,
    /// Where the AM said it runs, when it registered.
    pub host: String,
    pub rpc_port: i32,
    pub tracking_url: String,
    pub diagnostics: String,
    pub start_ms: u64,
    pub finish_ms: Option<u64>,
    /// The last time the AM spoke or was answered; its liveness clock.
    pub last_heard_ms: u64,
    pub progress: f32,
    pub requests: Requests,
    pub(crate) news: News,
    /// The number of the next container allocated to this attempt (the AM's is 1).
    pub(crate) next_container: u64,
    /// Recovered after an RM restart, and its AM has not registered since: every Allocate is
    /// answered RESYNC until it does.
    pub(crate) resync: bool,
}

impl Attempt {
    pub(crate) fn new(id: AttemptId, now: u64) -> Self {
        Attempt {
            id,
            state: AttemptState::New,
            am_container: None,
            host: String::new(),
            rpc_port: 0,
            tracking_url: String::new(),
            diagnostics: String::new(),
            start_ms: now,
            finish_ms: None,
            last_heard_ms: now,
            progress: 0.0,
            requests: Requests::default(),
            news: News::default(),
            next_container: 1,
            resync: false,
        }
    }

    /// The id of the next container, in the RM's current `epoch`.
    pub(crate) fn next_container_id(&mut self, epoch: u32) -> ContainerId {
        let id = ContainerId::new(self.id, epoch, self.next_container);
        self.next_container += 1;
        id
    }

    pub fn to_record(&self) -> AttemptRecord {
        AttemptRecord {
            id: self.id,
            state: self.state,
            am_container: self.am_container,
            host: self.host.clone(),
            rpc_port: self.rpc_port,
            tracking_url: self.tracking_url.clone(),
            diagnostics: self.diagnostics.clone(),
            start_ms: self.start_ms,
            finish_ms: self.finish_ms,
        }
    }

    /// An attempt as recorded: its liveness clock starts at `now`, its requests and news anew.
    pub(crate) fn from_record(r: AttemptRecord, now: u64) -> Self {
        let mut attempt = Attempt::new(r.id, r.start_ms);
        attempt.state = r.state;
        attempt.am_container = r.am_container;
        attempt.host = r.host;
        attempt.rpc_port = r.rpc_port;
        attempt.tracking_url = r.tracking_url;
        attempt.diagnostics = r.diagnostics;
        attempt.finish_ms = r.finish_ms;
        attempt.last_heard_ms = now;
        attempt
    }
}

/// What a client submits, checked at the edge for shape (ids, launch context) and by the core
/// for the cluster's limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    pub id: ApplicationId,
    pub name: String,
    pub queue: String,
    pub application_type: String,
    pub tags: Vec<String>,
    pub user: String,
    /// As asked, before normalization: (memory_mb, vcores).
    pub am_memory_mb: i64,
    pub am_vcores: i32,
    pub am_launch: LaunchContext,
    /// 0: the cluster's default.
    pub max_attempts: i32,
    pub unmanaged: bool,
}

#[derive(Debug, Clone)]
pub struct App {
    pub id: ApplicationId,
    pub name: String,
    pub queue: String,
    pub user: String,
    pub application_type: String,
    pub tags: Vec<String>,
    pub state: AppState,
    pub final_status: FinalStatus,
    pub diagnostics: String,
    pub submit_ms: u64,
    pub finish_ms: Option<u64>,
    pub am_resource: Resource,
    pub am_launch: LaunchContext,
    pub max_attempts: u32,
    pub unmanaged: bool,
    pub attempts: Vec<Attempt>,
    /// Every container it ever held, the AM's included, in allocation order.
    pub containers: Vec<ContainerId>,
    /// The sum of its live containers' resources, and their number.
    pub allocated: Resource,
    pub live_containers: u32,
    /// Its place in the FIFO queue (submission order).
    pub(crate) order: u64,
}

impl App {
    pub fn current_attempt(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    pub(crate) fn current_attempt_mut(&mut self) -> Option<&mut Attempt> {
        self.attempts.last_mut()
    }

    pub fn attempt(&self, id: AttemptId) -> Option<&Attempt> {
        let index = (id.attempt as usize).checked_sub(1)?;
        self.attempts.get(index).filter(|a| a.id == id)
    }

    pub(crate) fn attempt_mut(&mut self, id: AttemptId) -> Option<&mut Attempt> {
        let index = (id.attempt as usize).checked_sub(1)?;
        self.attempts.get_mut(index).filter(|a| a.id == id)
    }

    pub fn is_current(&self, id: AttemptId) -> bool {
        self.current_attempt().is_some_and(|a| a.id == id)
    }

    pub fn to_record(&self) -> AppRecord {
        AppRecord {
            id: self.id,
            name: self.name.clone(),
            queue: self.queue.clone(),
            user: self.user.clone(),
            application_type: self.application_type.clone(),
            tags: self.tags.clone(),
            submit_ms: self.submit_ms,
            order: self.order,
            am_resource: self.am_resource,
            am_launch: self.am_launch.clone(),
            max_attempts: self.max_attempts,
            unmanaged: self.unmanaged,
            state: self.state,
            final_status: self.final_status,
            diagnostics: self.diagnostics.clone(),
            finish_ms: self.finish_ms,
        }
    }

    /// An application as recorded, without its attempts and containers.
    pub(crate) fn from_record(r: AppRecord) -> Self {
        App {
            id: r.id,
            name: r.name,
            queue: r.queue,
            user: r.user,
            application_type: r.application_type,
            tags: r.tags,
            state: r.state,
            final_status: r.final_status,
            diagnostics: r.diagnostics,
            submit_ms: r.submit_ms,
            finish_ms: r.finish_ms,
            am_resource: r.am_resource,
            am_launch: r.am_launch,
            max_attempts: r.max_attempts,
            unmanaged: r.unmanaged,
            attempts: Vec::new(),
            containers: Vec::new(),
            allocated: Resource::ZERO,
            live_containers: 0,
            order: r.order,
        }
    }
}

macro_rules! yarn_names {
    ($ty:ty { $($variant:ident => $name:literal),* $(,)? }) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $(Self::$variant => $name),* })
            }
        }
    };
}

yarn_names!(AppState {
    Submitted => "SUBMITTED", Accepted => "ACCEPTED", Running => "RUNNING",
    Finished => "FINISHED", Failed => "FAILED", Killed => "KILLED",
});
yarn_names!(FinalStatus {
    Undefined => "UNDEFINED", Succeeded => "SUCCEEDED", Failed => "FAILED", Killed => "KILLED",
});
yarn_names!(AttemptState {
    New => "NEW", Allocated => "ALLOCATED", Launched => "LAUNCHED", Running => "RUNNING",
    Finished => "FINISHED", Failed => "FAILED", Killed => "KILLED",
});
