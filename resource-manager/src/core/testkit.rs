//! A harness for the core's unit tests: builds a core with small numbers, registers nodes,
//! drives applications to the state a test needs, and checks every invariant after each step.

use spindle_containers::{ApplicationId, AttemptId, ContainerId, LaunchContext, NodeId, Resource};

use super::{
    AllocateCall, AllocateNews, AllocatedContainer, Ask, Core, CoreConfig, CoreError, Effect,
    FinishCall, HeartbeatOutcome, NodeHeartbeat, NodeIdx, NodeInfo, RegisterCall,
    ReportedContainer, ReportedState, Submission,
};
use crate::config::Placement;

pub fn config() -> CoreConfig {
    CoreConfig {
        cluster_timestamp: 1_700_000_000_000,
        minimum_allocation: Resource::new(1024, 1),
        maximum_allocation: Resource::new(8192, 32),
        placement: Placement::Spread,
        nm_liveness_expiry_ms: 60_000,
        am_liveness_expiry_ms: 200_000,
        default_max_attempts: 2,
        max_attempts_limit: 10,
        am_exit_grace_ms: 10_000,
        max_completed_applications: 10_000,
    }
}

pub struct Harness {
    pub core: Core,
    pub now: u64,
    config: CoreConfig,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(|_| {})
    }

    pub fn with(change: impl FnOnce(&mut CoreConfig)) -> Self {
        let mut c = config();
        change(&mut c);
        Harness {
            core: Core::new(c.clone()),
            now: 0,
            config: c,
        }
    }

    /// The RM restarts from what it recorded (which the property tests check is `image`),
    /// with its start time as the config's cluster timestamp, as a server does.
    pub fn restart(&mut self) -> Vec<Effect> {
        let now = self.step();
        let config = CoreConfig {
            cluster_timestamp: self.config.cluster_timestamp + now,
            ..self.config.clone()
        };
        let (core, fx) = Core::recover(config, now, self.core.image().into_records());
        self.core = core;
        self.check();
        fx
    }

    pub fn register_node(
        &mut self,
        id: &str,
        memory_mb: u64,
        containers: Vec<ReportedContainer>,
    ) -> Vec<Effect> {
        let now = self.step();
        let fx = self
            .core
            .on_node_register(now, info(id, memory_mb), containers);
        self.check();
        fx
    }

    fn step(&mut self) -> u64 {
        self.now += 1;
        self.now
    }

    fn check(&self) {
        if let Err(broken) = self.core.check_invariants() {
            panic!("invariant broken: {broken}");
        }
    }

    pub fn node(&mut self, id: &str, memory_mb: u64) -> Vec<Effect> {
        self.register_node(id, memory_mb, vec![])
    }

    pub fn new_application(&mut self) -> ApplicationId {
        self.core.new_application().0
    }

    pub fn idx(&self, id: &str) -> NodeIdx {
        self.core.nodes().lookup(&id.parse().unwrap()).unwrap()
    }

    pub fn submission(&self, id: ApplicationId, am_memory_mb: i64) -> Submission {
        submission(id, am_memory_mb)
    }

    pub fn submit_app(&mut self, am_memory_mb: i64) -> (ApplicationId, Vec<Effect>) {
        let id = self.new_application();
        let now = self.step();
        let (_, fx) = self
            .core
            .submit(now, self.submission(id, am_memory_mb))
            .unwrap();
        self.check();
        (id, fx)
    }

    pub fn am_container(&self, app: ApplicationId) -> ContainerId {
        let app = self.core.app(app).unwrap();
        app.current_attempt().unwrap().am_container.unwrap()
    }

    /// An application whose AM is launched and registered.
    pub fn running_app(&mut self, am_memory_mb: i64) -> AttemptId {
        let (app, _) = self.submit_app(am_memory_mb);
        let am = self.am_container(app);
        let now = self.step();
        self.core.on_am_launched(now, am);
        self.register_am(am.attempt).unwrap();
        am.attempt
    }

    pub fn register_am(&mut self, attempt: AttemptId) -> Result<Vec<Effect>, CoreError> {
        let register = RegisterCall {
            attempt,
            host: "am-host".into(),
            rpc_port: 0,
            tracking_url: String::new(),
        };
        let now = self.step();
        let fx = self.core.on_register_am(now, register);
        self.check();
        fx
    }

    /// The AM unregisters with `final_status` (1 SUCCEEDED, 2 FAILED, 3 KILLED).
    pub fn finish(
        &mut self,
        attempt: AttemptId,
        final_status: i32,
        diagnostics: &str,
    ) -> Result<Vec<Effect>, CoreError> {
        let call = FinishCall {
            attempt,
            final_status,
            diagnostics: diagnostics.into(),
            tracking_url: String::new(),
        };
        let now = self.step();
        let fx = self.core.on_finish_am(now, call);
        self.check();
        fx
    }

    pub fn allocate(&mut self, attempt: AttemptId, asks: Vec<Ask>) -> AllocateNews {
        let now = self.step();
        self.core.on_allocate(now, call(attempt, asks)).unwrap();
        self.check();
        self.news(attempt)
    }

    /// Asks for `n` containers and returns what was allocated at once.
    pub fn ask(
        &mut self,
        attempt: AttemptId,
        priority: i32,
        memory_mb: i64,
        n: i32,
    ) -> Vec<AllocatedContainer> {
        self.allocate(attempt, vec![ask(priority, memory_mb, n)])
            .allocated
    }

    pub fn news(&mut self, attempt: AttemptId) -> AllocateNews {
        let now = self.step();
        let news = self.core.take_news(now, attempt).unwrap();
        self.check();
        news
    }

    pub fn outstanding(&self, attempt: AttemptId) -> u64 {
        let app = self.core.app(attempt.application).unwrap();
        app.attempt(attempt).unwrap().requests.outstanding()
    }

    pub fn nodes_of(&self, containers: &[AllocatedContainer]) -> Vec<String> {
        containers.iter().map(|c| c.node.to_string()).collect()
    }

    /// The container's node reports it completed.
    pub fn complete(
        &mut self,
        id: ContainerId,
        exit_status: i32,
        diagnostics: &str,
    ) -> Vec<Effect> {
        let node = self.core.container(id).unwrap().node;
        let node = self.core.node(node).id.to_string();
        let mut report = completed(id, exit_status);
        report.diagnostics = diagnostics.into();
        self.heartbeat(&node, vec![report]).unwrap().effects
    }

    pub fn heartbeat(
        &mut self,
        node: &str,
        containers: Vec<ReportedContainer>,
    ) -> Result<HeartbeatOutcome, CoreError> {
        let now = self.step();
        self.heartbeat_at(now, node, containers)
    }

    pub fn heartbeat_at(
        &mut self,
        now: u64,
        node: &str,
        containers: Vec<ReportedContainer>,
    ) -> Result<HeartbeatOutcome, CoreError> {
        let out = self
            .core
            .on_node_heartbeat(now, heartbeat(node, containers));
        self.check();
        out
    }
}

pub fn info(id: &str, memory_mb: u64) -> NodeInfo {
    NodeInfo {
        id: id.parse().unwrap(),
        hostname: String::new(),
        http_address: format!("{id}-http"),
        capability: Resource::new(memory_mb, 8),
    }
}

pub fn submission(id: ApplicationId, am_memory_mb: i64) -> Submission {
    Submission {
        id,
        name: "test".into(),
        queue: String::new(),
        application_type: String::new(),
        tags: vec![],
        user: "tester".into(),
        am_memory_mb,
        am_vcores: 1,
        am_launch: LaunchContext {
            command: vec!["./am".into()],
            ..Default::default()
        },
        max_attempts: 0,
        unmanaged: false,
    }
}

pub fn heartbeat(node: &str, containers: Vec<ReportedContainer>) -> NodeHeartbeat {
    NodeHeartbeat {
        node: node.parse().unwrap(),
        containers,
        healthy: true,
        health_report: String::new(),
    }
}

pub fn ask(priority: i32, memory_mb: i64, n: i32) -> Ask {
    Ask {
        priority,
        memory_mb,
        vcores: 1,
        num_containers: n,
        nodes: vec![],
        relax_locality: true,
    }
}

pub fn call(attempt: AttemptId, asks: Vec<Ask>) -> AllocateCall {
    AllocateCall {
        attempt,
        asks,
        cancels: vec![],
        releases: vec![],
        progress: 0.5,
    }
}

pub fn running(id: ContainerId) -> ReportedContainer {
    ReportedContainer {
        id,
        state: ReportedState::Running,
        exit_status: 0,
        diagnostics: String::new(),
    }
}

pub fn completed(id: ContainerId, exit_status: i32) -> ReportedContainer {
    ReportedContainer {
        id,
        state: ReportedState::Complete,
        exit_status,
        diagnostics: String::new(),
    }
}

/// The AM launch among the effects: (container, node).
pub fn launched_am(fx: &[Effect]) -> Option<(ContainerId, NodeId)> {
    fx.iter().find_map(|e| match e {
        Effect::LaunchAm {
            container, node, ..
        } => Some((*container, node.clone())),
        _ => None,
    })
}

/// Every container stop among the effects: (node, container, exit status).
pub fn stops(fx: &[Effect]) -> Vec<(String, ContainerId, i32)> {
    fx.iter()
        .flat_map(|e| match e {
            Effect::StopContainers {
                node,
                containers,
                exit_status,
            } => containers
                .iter()
                .map(|c| (node.to_string(), *c, *exit_status))
                .collect(),
            _ => vec![],
        })
        .collect()
}

pub fn woken(fx: &[Effect], attempt: AttemptId) -> bool {
    fx.contains(&Effect::WakeAllocate(attempt))
}
