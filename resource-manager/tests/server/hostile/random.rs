//! Anything goes: random calls, valid or not, in random order, against a fresh RM each time.
//! The ids are drawn from small pools so that many calls hit real applications, attempts,
//! containers and nodes; the RM must neither panic nor stop answering.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use sha2::{Digest, Sha256};
use spindle_protocol as proto;
use tonic::Code;

use super::values::{bad_sha, junk};
use super::{Call, check_no_panic, fail, panics_on, rm_runtime, runner, send};
use crate::common::*;

/// An id from a pool: the `n`th of its kind in this RM, or junk.
#[derive(Debug, Clone)]
enum Pick {
    Nth(u8),
    Junk(String),
}

fn pick() -> BoxedStrategy<Pick> {
    prop_oneof![
        12 => (0u8..2).prop_map(Pick::Nth),
        3 => (2u8..4).prop_map(Pick::Nth),
        1 => junk().prop_map(Pick::Junk)
    ]
    .boxed()
}

/// A value mostly in the range that matters, sometimes anything at all.
fn memory_mb() -> BoxedStrategy<i64> {
    prop_oneof![20 => 1i64..3000, 1 => any::<i64>(), 1 => Just(i64::MAX)].boxed()
}

fn vcores() -> BoxedStrategy<i32> {
    prop_oneof![20 => 1i32..5, 1 => any::<i32>()].boxed()
}

fn count() -> BoxedStrategy<i32> {
    prop_oneof![20 => 0i32..5, 1 => any::<i32>(), 1 => Just(i32::MAX)].boxed()
}

#[derive(Debug, Clone)]
struct RandomAsk {
    priority: i32,
    memory_mb: i64,
    vcores: i32,
    n: i32,
    nodes: Vec<Pick>,
    relax: bool,
}

fn random_asks() -> BoxedStrategy<Vec<RandomAsk>> {
    let one = (
        prop_oneof![3 => 0i32..3, 1 => any::<i32>()],
        memory_mb(),
        vcores(),
        count(),
        prop::collection::vec(pick(), 0..2),
        any::<bool>(),
    )
        .prop_map(|(priority, memory_mb, vcores, n, nodes, relax)| RandomAsk {
            priority,
            memory_mb,
            vcores,
            n,
            nodes,
            relax,
        });
    prop::collection::vec(one, 0..3).boxed()
}

/// A container of application `app`, attempt `attempt`, numbered `n`, in epoch 0 or 1.
#[derive(Debug, Clone)]
struct ContainerPick {
    app: Pick,
    attempt: u8,
    n: u8,
    state: i32,
    exit_status: i32,
}

fn containers() -> BoxedStrategy<Vec<ContainerPick>> {
    let one = (
        pick(),
        1u8..3,
        1u8..6,
        prop_oneof![5 => 1i32..=3, 1 => any::<i32>()],
        prop_oneof![3 => -110i32..3, 1 => any::<i32>()],
    )
        .prop_map(|(app, attempt, n, state, exit_status)| ContainerPick {
            app,
            attempt,
            n,
            state,
            exit_status,
        });
    prop::collection::vec(one, 0..4).boxed()
}

/// One container, as `containers` draws them.
fn container() -> BoxedStrategy<ContainerPick> {
    containers()
        .prop_filter_map("one container", |mut v| v.pop())
        .boxed()
}

/// Mostly the usual log files, sometimes junk.
fn log_file() -> BoxedStrategy<String> {
    prop_oneof![4 => Just("stdout".to_string()), 2 => Just("stderr".to_string()), 1 => junk()]
        .boxed()
}

/// Mostly the first attempt, which exists once its application is submitted.
fn attempt_no() -> BoxedStrategy<u8> {
    prop_oneof![3 => Just(1u8), 1 => Just(2u8)].boxed()
}

/// Mostly none: most Allocates give nothing back.
fn releases() -> BoxedStrategy<Vec<ContainerPick>> {
    prop_oneof![3 => Just(vec![]), 1 => containers()].boxed()
}

#[derive(Debug, Clone)]
enum Op {
    NewApp,
    Submit {
        app: Pick,
        memory_mb: i64,
        vcores: i32,
        max_attempts: i32,
        unmanaged: bool,
    },
    Report(Pick),
    Watch(Pick),
    Kill(Pick),
    ListApps(Vec<i32>),
    ListNodes,
    RegisterAm {
        app: Pick,
        attempt: u8,
        rpc_port: i32,
    },
    Allocate {
        app: Pick,
        attempt: u8,
        asks: Vec<RandomAsk>,
        cancels: Vec<RandomAsk>,
        release: Vec<ContainerPick>,
        progress: f32,
    },
    Finish {
        app: Pick,
        attempt: u8,
        final_status: i32,
    },
    RegisterNode {
        node: Pick,
        memory_mb: i64,
        vcores: i32,
        containers: Vec<ContainerPick>,
    },
    Heartbeat {
        node: Pick,
        containers: Vec<ContainerPick>,
        healthy: bool,
        health_report: String,
    },
    Upload(Vec<u8>, Option<String>, u64),
    /// Log files of some containers, each `(container, file)`, ended or cut short.
    UploadLogs {
        files: Vec<(ContainerPick, String)>,
        node: Pick,
        end: bool,
    },
    ListLogs(Pick, Option<ContainerPick>),
    ReadLog(ContainerPick, String, u64),
    Stat(String),
    Fetch(String),
}

fn op() -> BoxedStrategy<Op> {
    let progress = prop_oneof![
        4 => 0f32..1.0,
        1 => Just(f32::NAN),
        1 => Just(f32::INFINITY),
        1 => any::<f32>()
    ];
    prop_oneof![
        2 => Just(Op::NewApp),
        3 => (pick(), memory_mb(), vcores(), prop_oneof![3 => 0i32..3, 1 => any::<i32>()], prop::bool::weighted(0.1))
            .prop_map(|(app, memory_mb, vcores, max_attempts, unmanaged)| Op::Submit {
                app, memory_mb, vcores, max_attempts, unmanaged,
            }),
        1 => pick().prop_map(Op::Report),
        1 => pick().prop_map(Op::Watch),
        1 => pick().prop_map(Op::Kill),
        1 => prop::collection::vec(prop_oneof![1i32..=8, any::<i32>()], 0..3).prop_map(Op::ListApps),
        1 => Just(Op::ListNodes),
        3 => (pick(), attempt_no(), prop_oneof![3 => 0i32..70000, 1 => any::<i32>()])
            .prop_map(|(app, attempt, rpc_port)| Op::RegisterAm { app, attempt, rpc_port }),
        8 => (pick(), attempt_no(), random_asks(), random_asks(), releases(), progress)
            .prop_map(|(app, attempt, asks, cancels, release, progress)| Op::Allocate {
                app, attempt, asks, cancels, release, progress,
            }),
        2 => (pick(), attempt_no(), prop_oneof![3 => 1i32..=3, 1 => any::<i32>()])
            .prop_map(|(app, attempt, final_status)| Op::Finish { app, attempt, final_status }),
        2 => (pick(), memory_mb(), vcores(), containers())
            .prop_map(|(node, memory_mb, vcores, containers)| Op::RegisterNode {
                node, memory_mb, vcores, containers,
            }),
        4 => (pick(), containers(), any::<bool>(), junk())
            .prop_map(|(node, containers, healthy, health_report)| Op::Heartbeat {
                node, containers, healthy, health_report,
            }),
        1 => (
            prop::collection::vec(any::<u8>(), 0..300),
            prop::option::of(prop_oneof![bad_sha(), "[0-9a-f]{64}"]),
            prop_oneof![Just(0u64), any::<u64>()]
        )
            .prop_map(|(data, sha, size)| Op::Upload(data, sha, size)),
        1 => prop_oneof![bad_sha(), "[0-9a-f]{64}"].prop_map(Op::Stat),
        1 => prop_oneof![bad_sha(), "[0-9a-f]{64}"].prop_map(Op::Fetch),
        2 => (
            prop::collection::vec((container(), log_file()), 0..3),
            pick(),
            prop::bool::weighted(0.8)
        )
            .prop_map(|(files, node, end)| Op::UploadLogs { files, node, end }),
        1 => (pick(), prop::option::of(container()))
            .prop_map(|(app, container)| Op::ListLogs(app, container)),
        1 => (container(), log_file(), prop_oneof![3 => Just(0u64), 1 => any::<u64>()])
            .prop_map(|(c, file, offset)| Op::ReadLog(c, file, offset)),
    ]
    .boxed()
}

/// Turns picks into wire values for one RM and its nodes.
struct Wire {
    ts: u64,
    nodes: Vec<String>,
}

impl Wire {
    fn app(&self, p: &Pick) -> String {
        match p {
            Pick::Nth(n) => format!("application_{}_{:04}", self.ts, u32::from(*n) + 1),
            Pick::Junk(s) => s.clone(),
        }
    }

    fn attempt(&self, p: &Pick, attempt: u8) -> String {
        match p {
            Pick::Nth(n) => format!(
                "appattempt_{}_{:04}_{attempt:06}",
                self.ts,
                u32::from(*n) + 1
            ),
            Pick::Junk(s) => s.clone(),
        }
    }

    fn node(&self, p: &Pick) -> String {
        match p {
            // One past the fake nodes: a well-formed id nobody serves.
            Pick::Nth(n) => self
                .nodes
                .get(usize::from(*n))
                .cloned()
                .unwrap_or_else(|| "127.0.0.1:1".to_string()),
            Pick::Junk(s) => s.clone(),
        }
    }

    fn container(&self, c: &ContainerPick) -> String {
        match &c.app {
            Pick::Nth(n) => format!(
                "container_{}{}_{:04}_{:02}_{:06}",
                if c.n.is_multiple_of(2) { "" } else { "e1_" },
                self.ts,
                u32::from(*n) + 1,
                c.attempt,
                c.n / 2 + 1
            ),
            Pick::Junk(s) => s.clone(),
        }
    }

    fn statuses(&self, containers: &[ContainerPick]) -> Vec<proto::ContainerStatus> {
        containers
            .iter()
            .map(|c| proto::ContainerStatus {
                container_id: self.container(c),
                state: c.state,
                exit_status: c.exit_status,
                diagnostics: String::new(),
            })
            .collect()
    }

    fn requests(&self, asks: &[RandomAsk]) -> Vec<proto::ResourceRequest> {
        asks.iter()
            .map(|a| proto::ResourceRequest {
                priority: a.priority,
                capability: Some(proto::Resource {
                    memory_mb: a.memory_mb,
                    vcores: a.vcores,
                }),
                num_containers: a.n,
                nodes: a.nodes.iter().map(|p| self.node(p)).collect(),
                relax_locality: a.relax,
            })
            .collect()
    }

    fn call(&self, op: Op) -> Call {
        match op {
            Op::NewApp => Call::NewApp,
            Op::Submit {
                app,
                memory_mb,
                vcores,
                max_attempts,
                unmanaged,
            } => {
                let mut r = submission(&self.app(&app), memory_mb);
                r.am_resource.as_mut().expect("a resource").vcores = vcores;
                r.max_attempts = max_attempts;
                r.unmanaged = unmanaged;
                Call::Submit(r)
            }
            Op::Report(app) => Call::Report(self.app(&app)),
            Op::Watch(app) => Call::Watch(self.app(&app)),
            Op::Kill(app) => Call::Kill(self.app(&app)),
            Op::ListApps(states) => Call::ListApps(states),
            Op::ListNodes => Call::ListNodes,
            Op::RegisterAm {
                app,
                attempt,
                rpc_port,
            } => Call::RegisterAm(proto::RegisterApplicationMasterRequest {
                attempt_id: self.attempt(&app, attempt),
                host: "127.0.0.1".into(),
                rpc_port,
                tracking_url: String::new(),
            }),
            Op::Allocate {
                app,
                attempt,
                asks,
                cancels,
                release,
                progress,
            } => Call::Allocate(proto::AllocateRequest {
                attempt_id: self.attempt(&app, attempt),
                asks: self.requests(&asks),
                cancels: self.requests(&cancels),
                release: release.iter().map(|c| self.container(c)).collect(),
                progress,
                wait_ms: 0,
            }),
            Op::Finish {
                app,
                attempt,
                final_status,
            } => Call::FinishAm(proto::FinishApplicationMasterRequest {
                attempt_id: self.attempt(&app, attempt),
                final_status,
                diagnostics: "random".into(),
                tracking_url: String::new(),
            }),
            Op::RegisterNode {
                node,
                memory_mb,
                vcores,
                containers,
            } => Call::RegisterNode(proto::RegisterNodeRequest {
                node_id: self.node(&node),
                hostname: "random".into(),
                http_address: "127.0.0.1:1".into(),
                capability: Some(proto::Resource { memory_mb, vcores }),
                containers: self.statuses(&containers),
            }),
            Op::Heartbeat {
                node,
                containers,
                healthy,
                health_report,
            } => Call::Heartbeat(proto::NodeHeartbeatRequest {
                node_id: self.node(&node),
                containers: self.statuses(&containers),
                healthy,
                health_report,
            }),
            Op::UploadLogs { files, node, end } => {
                let node_id = self.node(&node);
                let mut chunks: Vec<proto::LogUploadChunk> = files
                    .iter()
                    .map(|(c, file)| proto::LogUploadChunk {
                        container_id: self.container(c),
                        file: file.clone(),
                        data: b"log".to_vec(),
                        node_id: node_id.clone(),
                        end: false,
                    })
                    .collect();
                if end {
                    chunks.push(proto::LogUploadChunk {
                        end: true,
                        ..Default::default()
                    });
                }
                Call::UploadLogs(chunks)
            }
            Op::ListLogs(app, container) => Call::ListLogs(proto::ListLogsRequest {
                application_id: self.app(&app),
                container_id: container.map(|c| self.container(&c)).unwrap_or_default(),
            }),
            Op::ReadLog(c, file, offset) => Call::ReadLog(proto::ReadLogRequest {
                container_id: self.container(&c),
                file,
                offset,
            }),
            Op::Upload(data, sha, size) => {
                let sha256 = sha.unwrap_or_else(|| hex::encode(Sha256::digest(&data)));
                Call::Upload(vec![proto::FileChunk { sha256, size, data }])
            }
            Op::Stat(sha) => Call::Stat(sha),
            Op::Fetch(sha) => Call::Fetch(sha),
        }
    }
}

fn valid_submit(n: u8) -> Op {
    Op::Submit {
        app: Pick::Nth(n),
        memory_mb: 512,
        vcores: 1,
        max_attempts: 2,
        unmanaged: false,
    }
}

fn valid_register(n: u8) -> Op {
    Op::RegisterAm {
        app: Pick::Nth(n),
        attempt: 1,
        rpc_port: 0,
    }
}

/// Runs `ops` against a fresh RM with two fake nodes; the RM must neither panic nor stop
/// answering, and a refusal must come with a message.
async fn survive(threads: &str, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let panics_before = panics_on(threads);
    let rm = Rm::start().await;
    let nms = [
        FakeNm::register(&rm, 8192).await,
        FakeNm::register(&rm, 4096).await,
    ];
    let wire = Wire {
        ts: rm.rm.as_ref().unwrap().cluster_timestamp(),
        nodes: nms.iter().map(|nm| nm.node_id.clone()).collect(),
    };
    // Two applications whose AMs run and registered, so that random calls reach deep states.
    let setup = [
        Op::NewApp,
        Op::NewApp,
        Op::NewApp,
        valid_submit(0),
        valid_submit(1),
        valid_register(0),
        valid_register(1),
    ];
    let mut outcome = Ok(());
    for op in setup.into_iter().chain(ops) {
        let call = wire.call(op);
        let described = format!("{call:?}");
        let answered = tokio::time::timeout(HANG_GUARD, send(&rm, call)).await;
        let problem = match answered {
            Err(_) => Some("no answer in time".to_string()),
            Ok(Err(status)) if status.message().is_empty() => Some(format!("{status:?}")),
            Ok(Err(status))
                if !matches!(
                    status.code(),
                    Code::InvalidArgument
                        | Code::NotFound
                        | Code::FailedPrecondition
                        // An AM call for an attempt whose AM did not start (yet): no token
                        // of its own to call with.
                        | Code::PermissionDenied
                        | Code::Unauthenticated
                ) =>
            {
                Some(format!("{status:?}"))
            }
            Ok(_) => None,
        };
        if let Some(problem) = problem {
            outcome = Err(fail(format!("{problem} for {}", cut(&described))));
            break;
        }
        if let Err(e) = check_no_panic(threads, panics_before) {
            outcome = Err(fail(format!("{e} after {}", cut(&described))));
            break;
        }
    }
    if outcome.is_ok() {
        for call in [Call::ListApps(vec![]), Call::ListNodes] {
            if let Err(status) = send(&rm, call).await {
                outcome = Err(fail(format!("the RM stopped answering: {status:?}")));
            }
        }
    }
    drop(nms);
    rm.shutdown().await;
    outcome
}

/// A debug string cut to a readable length.
fn cut(s: &str) -> String {
    let short: String = s.chars().take(600).collect();
    if short.len() < s.len() {
        format!("{short}…")
    } else {
        short
    }
}

#[test]
fn random_calls_of_every_kind_never_panic_the_rm_and_it_keeps_answering() {
    let (rt, threads) = rm_runtime("random");
    let ops = prop::collection::vec(op(), 1..40);
    let result = runner(64).run(&ops, |ops| rt.block_on(survive(&threads, ops)));
    if let Err(e) = result {
        panic!("{}", cut(&e.to_string()));
    }
}
