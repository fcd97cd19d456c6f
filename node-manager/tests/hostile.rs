//! Random and malformed input thrown at every RPC handler of the node manager (StartContainers,
//! StopContainers, GetContainerStatuses, ListContainerLogs, ReadContainerLog) and at its HTTP
//! log page, with proptest. Three properties:
//!
//! - **Refused, named, unchanged.** A request with one bad field, all else right (a valid NM
//!   token included), is refused with a message that names the field; afterwards the node's
//!   files, its containers and their statuses are exactly as before: nothing admitted, no
//!   directory made.
//! - **No escape.** Whatever a request names (log files, container ids, resource names with
//!   `../`, absolute paths, NUL, `.`, empty, long or unicode names), what is read back is one of
//!   the container's own log files, or nothing.
//! - **Nothing panics.** Random calls of every kind, with good, bad and missing tokens, in
//!   random order: no thread of the node manager panics, and it still answers.
//!
//! Each test's node manager runs on a runtime of its own whose threads carry a name, so that a
//! panic anywhere in it is counted, even one that tonic or tokio would swallow.

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, Once};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use spindle_containers::ContainerId;
use spindle_containers::launch_context::is_plain_file_name;
use spindle_protocol as proto;
use support::tokens::{self, NmClient};
use support::{APP, FakeRm, Node, SLOW_HEARTBEAT_MS, completion, container_id, http, run_program};
use tonic::{Code, Status};

/// Writes to both logs and exits: the scene's one complete container.
const CHATTY: &[u8] = b"#!/bin/bash
printf 'line1\\nline2\\n'
echo err >&2
";

/// Panics so far, by the name of the thread they happened on.
static PANICS: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

fn runtime(test: &str) -> (tokio::runtime::Runtime, String) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(name) = std::thread::current().name() {
                let mut panics = PANICS.lock().unwrap_or_else(|p| p.into_inner());
                *panics.entry(name.to_string()).or_default() += 1;
            }
            default(info);
        }));
    });
    let threads = format!("nm-{test}");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(threads.clone())
        .enable_all()
        .build()
        .expect("a runtime");
    (runtime, threads)
}

fn panics_on(threads: &str) -> usize {
    let panics = PANICS.lock().unwrap_or_else(|p| p.into_inner());
    panics.get(threads).copied().unwrap_or(0) + panics.get("nm-state-store").copied().unwrap_or(0)
}

fn runner(cases: u32) -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

/// A node manager that has run one container of `APP` (complete, with logs), and a client
/// with an NM token for `APP`.
struct Scene {
    _rm: FakeRm,
    node: Node,
    digest: String,
    threads: String,
}

/// What a refused request must leave as it was.
#[derive(Debug, PartialEq)]
struct Snapshot {
    files: Vec<PathBuf>,
    statuses: Vec<proto::ContainerStatus>,
    node_info: serde_json::Value,
}

impl Scene {
    async fn start(threads: String) -> Scene {
        let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
        let digest = rm.stage(CHATTY);
        let mut node = Node::start(rm.addr).await;
        let answer = node
            .start_containers(vec![run_program(1, &digest, CHATTY.len(), &[])])
            .await;
        assert_eq!(answer.started, vec![container_id(1)]);
        completion(&mut rm, &container_id(1)).await;
        Scene {
            _rm: rm,
            node,
            digest,
            threads,
        }
    }

    fn client(&self) -> NmClient {
        self.node.client.clone()
    }

    async fn snapshot(&self) -> Snapshot {
        let statuses = self
            .client()
            .get_container_statuses(proto::GetContainerStatusesRequest {
                container_ids: (1..=3).map(container_id).collect(),
            })
            .await
            .expect("statuses answer")
            .into_inner()
            .statuses;
        let info = http::get(self.node.nm().web_addr(), "/ws/v1/node/info").await;
        Snapshot {
            files: support::tree(&self.node.root()),
            statuses,
            node_info: serde_json::from_str(&info.body).expect("node info is JSON"),
        }
    }

    /// A request to start container `n` that is right in every way.
    fn good_start(&self, n: u64) -> proto::StartContainerRequest {
        let request = run_program(n, &self.digest, CHATTY.len(), &[]);
        tokens::with_tokens(vec![request], &self.node.node_id()).remove(0)
    }

    /// Re-signs `request`'s container token for what it now says (so that only the field the
    /// test broke is wrong, not the token).
    fn resign(&self, request: &mut proto::StartContainerRequest) {
        request.container_token = String::new();
        *request = tokens::with_tokens(vec![request.clone()], &self.node.node_id()).remove(0);
    }
}

/// Strings a request might use to get out of a directory, and some that are only odd.
fn hostile_text() -> BoxedStrategy<String> {
    prop_oneof![
        Just(String::new()),
        Just(".".to_string()),
        Just("..".to_string()),
        "(\\.\\./){1,4}[a-z]{0,8}",
        "/[a-z]{1,8}(/[a-z]{1,8}){0,3}",
        "[a-z]{1,5}/\\.\\./\\.\\./[a-z]{1,5}",
        "[a-z]{0,5}\\x00[a-z]{0,5}",
        "[a-z]{256,300}",
        "\\PC{1,16}",
        ".{0,40}",
        "container_[0-9e_./]{0,30}",
        "application_[0-9_./]{0,20}",
        "(\\.\\./)*state/containers\\.redb",
    ]
    .boxed()
}

fn not_a_container_id() -> BoxedStrategy<String> {
    hostile_text()
        .prop_filter("must not be a container id", |s| {
            s.parse::<ContainerId>().is_err()
        })
        .boxed()
}

/// One thing wrong with an otherwise right StartContainers entry, and the field its refusal
/// must name.
#[derive(Debug, Clone)]
enum StartFault {
    ContainerId(String),
    NoResource,
    Memory(i64),
    Vcores(i32),
    NoLaunchContext,
    NoCommand,
    NulInArgument(String),
    EnvName(String),
    NulInEnvValue,
    ResourceName(String),
    ResourceDigest(String),
    Token(String),
}

fn start_faults() -> BoxedStrategy<StartFault> {
    use StartFault::*;
    prop_oneof![
        not_a_container_id().prop_map(ContainerId),
        Just(NoResource),
        (i64::MIN..=0).prop_map(Memory),
        (i32::MIN..=0).prop_map(Vcores),
        Just(NoLaunchContext),
        Just(NoCommand),
        "[a-z]{0,4}\\x00[a-z]{0,4}".prop_map(NulInArgument),
        "([0-9][A-Z]{0,4}|[A-Z]{0,3}[=./ -][A-Z]{0,3}|)".prop_map(EnvName),
        Just(NulInEnvValue),
        hostile_text()
            .prop_filter("a name that escapes", |n| !is_plain_file_name(n))
            .prop_map(ResourceName),
        "([0-9A-F]{64}|[0-9a-f]{0,63}|[0-9a-f]{65,70}|[g-z]{64})".prop_map(ResourceDigest),
        hostile_text().prop_map(Token),
    ]
    .boxed()
}

impl StartFault {
    /// The faulty request (built from a right one for container 2) and the field to name.
    fn apply(self, scene: &Scene) -> (proto::StartContainerRequest, &'static str) {
        let mut r = scene.good_start(2);
        let launch = r.launch_context.as_mut().expect("a launch context");
        let field = match self {
            StartFault::ContainerId(id) => {
                r.container_id = id;
                "container_id"
            }
            StartFault::NoResource => {
                r.resource = None;
                "resource"
            }
            StartFault::Memory(m) => {
                r.resource.as_mut().unwrap().memory_mb = m;
                "resource.memory_mb"
            }
            StartFault::Vcores(v) => {
                r.resource.as_mut().unwrap().vcores = v;
                "resource.vcores"
            }
            StartFault::NoLaunchContext => {
                r.launch_context = None;
                "launch_context"
            }
            StartFault::NoCommand => {
                launch.command.clear();
                "launch_context"
            }
            StartFault::NulInArgument(arg) => {
                launch.command.push(arg);
                "launch_context"
            }
            StartFault::EnvName(name) => {
                launch.environment.insert(name, "v".into());
                "launch_context"
            }
            StartFault::NulInEnvValue => {
                launch.environment.insert("V".into(), "a\0b".into());
                "launch_context"
            }
            StartFault::ResourceName(name) => {
                launch.local_resources[0].name = name;
                "launch_context"
            }
            StartFault::ResourceDigest(sha256) => {
                launch.local_resources[0].sha256 = sha256;
                "launch_context"
            }
            StartFault::Token(token) => {
                r.container_token = token;
                return (r, "container_token");
            }
        };
        // Signed for what it now says, except where the id itself is the fault.
        if !matches!(field, "container_id") {
            scene.resign(&mut r);
        }
        (r, field)
    }
}

/// Checks that `before` and the node's state now are the same, and that nothing panicked.
async fn unchanged(scene: &Scene, before: &Snapshot, what: &str) -> Result<(), TestCaseError> {
    let after = scene.snapshot().await;
    if &after != before {
        return Err(fail(format!(
            "{what} changed the node:\nbefore {before:#?}\nafter {after:#?}"
        )));
    }
    match panics_on(&scene.threads) {
        0 => Ok(()),
        n => Err(fail(format!("{n} panic(s) in the node manager's threads"))),
    }
}

#[test]
fn a_start_with_one_bad_field_is_refused_naming_it_and_changes_nothing() {
    let (runtime, threads) = runtime("start-faults");
    let scene = runtime.block_on(Scene::start(threads));
    runner(96)
        .run(&start_faults(), |fault| {
            runtime.block_on(async {
                let (request, field) = fault.clone().apply(&scene);
                let before = scene.snapshot().await;
                let answer = scene
                    .client()
                    .start_containers(proto::StartContainersRequest {
                        requests: vec![request],
                    })
                    .await
                    .map_err(|s| fail(format!("{fault:?}: {s:?}")))?
                    .into_inner();
                if !answer.started.is_empty() || answer.failed.len() != 1 {
                    return Err(fail(format!("{fault:?} answered {answer:?}")));
                }
                let message = &answer.failed[0].message;
                if !message.contains(field) {
                    return Err(fail(format!(
                        "the refusal {message:?} does not name {field:?} ({fault:?})"
                    )));
                }
                unchanged(&scene, &before, &format!("{fault:?}")).await
            })
        })
        .unwrap();
    runtime.block_on(scene.node.shutdown());
}

/// A call that reads back or touches containers, with one field from `hostile_text`.
#[derive(Debug, Clone)]
enum Probe {
    Stop(String, i32),
    Statuses(String),
    ListApp(String),
    ListContainer(String),
    ReadContainer(String),
    ReadFile(String, u64, bool),
    HttpContainer(String),
    HttpFile(String),
}

fn probes() -> BoxedStrategy<Probe> {
    use Probe::*;
    prop_oneof![
        (not_a_container_id(), any::<i32>()).prop_map(|(id, s)| Stop(id, s)),
        not_a_container_id().prop_map(Statuses),
        hostile_text()
            .prop_filter("not an application id", |s| {
                s.parse::<spindle_containers::ApplicationId>().is_err()
            })
            .prop_map(ListApp),
        not_a_container_id()
            .prop_filter("not empty (every container)", |s| !s.is_empty())
            .prop_map(ListContainer),
        not_a_container_id().prop_map(ReadContainer),
        (hostile_text(), 0u64..64, any::<bool>()).prop_map(|(f, o, follow)| ReadFile(f, o, follow)),
        not_a_container_id().prop_map(HttpContainer),
        hostile_text().prop_map(HttpFile),
    ]
    .boxed()
}

/// `text` with everything but letters and digits percent-encoded, as one path segment.
fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn read_all(
    client: &mut NmClient,
    request: proto::ReadContainerLogRequest,
) -> Result<Vec<u8>, Status> {
    let mut stream = client.read_container_log(request).await?.into_inner();
    let mut data = Vec::new();
    while let Some(chunk) = stream.message().await? {
        data.extend(chunk.data);
    }
    Ok(data)
}

/// What the probe got back: an error naming `field`, or content that must be one of the
/// container's logs.
enum Outcome {
    Refused {
        field: &'static str,
        message: String,
    },
    Content(String, Vec<u8>),
}

async fn probe(scene: &Scene, probe: Probe) -> Result<Outcome, TestCaseError> {
    let mut client = scene.client();
    let refused = |field, status: Status| {
        Ok(Outcome::Refused {
            field,
            message: status.message().to_string(),
        })
    };
    let unexpected = |what: &str| Err(fail(format!("{what} was not refused")));
    let web = scene.node.nm().web_addr();
    let bearer = format!("Bearer {}", tokens::nm_token(&scene.node.node_id(), APP));
    match probe {
        Probe::Stop(id, exit_status) => {
            let answer = client
                .stop_containers(proto::StopContainersRequest {
                    container_ids: vec![id],
                    exit_status,
                })
                .await
                .map_err(|s| fail(format!("{s:?}")))?
                .into_inner();
            match (answer.stopped.is_empty(), answer.failed.first()) {
                (true, Some(f)) => Ok(Outcome::Refused {
                    field: "container_id",
                    message: f.message.clone(),
                }),
                _ => unexpected("a stop"),
            }
        }
        Probe::Statuses(id) => {
            let answer = client
                .get_container_statuses(proto::GetContainerStatusesRequest {
                    container_ids: vec![id],
                })
                .await
                .map_err(|s| fail(format!("{s:?}")))?
                .into_inner();
            match (answer.statuses.is_empty(), answer.failed.first()) {
                (true, Some(f)) => Ok(Outcome::Refused {
                    field: "container_id",
                    message: f.message.clone(),
                }),
                _ => unexpected("a status query"),
            }
        }
        Probe::ListApp(app) => match client
            .list_container_logs(proto::ListContainerLogsRequest {
                application_id: app,
                container_id: String::new(),
            })
            .await
        {
            Err(s) => refused("application_id", s),
            Ok(_) => unexpected("a listing"),
        },
        Probe::ListContainer(id) => match client
            .list_container_logs(proto::ListContainerLogsRequest {
                application_id: APP.into(),
                container_id: id,
            })
            .await
        {
            Err(s) => refused("container_id", s),
            Ok(_) => unexpected("a listing"),
        },
        Probe::ReadContainer(id) => {
            let request = proto::ReadContainerLogRequest {
                container_id: id,
                file: "stdout".into(),
                offset: 0,
                follow: false,
            };
            match read_all(&mut client, request).await {
                Err(s) => refused("container_id", s),
                Ok(_) => unexpected("a read"),
            }
        }
        Probe::ReadFile(file, offset, follow) => {
            let request = proto::ReadContainerLogRequest {
                container_id: container_id(1),
                file: file.clone(),
                offset,
                follow,
            };
            match read_all(&mut client, request).await {
                Err(s) => refused("log file", s),
                Ok(data) => Ok(Outcome::Content(file, data)),
            }
        }
        Probe::HttpContainer(id) => {
            let path = format!("/node/containerlogs/{}/stdout", segment(&id));
            let page = http::get_with(web, &path, &[("Authorization", &bearer)]).await;
            match page.status {
                // An empty segment does not reach the route at all.
                404 if id.is_empty() => Ok(Outcome::Refused {
                    field: "",
                    message: page.body,
                }),
                400 | 404 => Ok(Outcome::Refused {
                    field: "container_id",
                    message: page.body,
                }),
                _ => unexpected(&format!("GET {path} ({})", page.status)),
            }
        }
        Probe::HttpFile(file) => {
            let path = format!("/node/containerlogs/{}/{}", container_id(1), segment(&file));
            let page = http::get_with(web, &path, &[("Authorization", &bearer)]).await;
            match page.status {
                200 => Ok(Outcome::Content(file, page.body.into_bytes())),
                // An empty segment does not reach the route at all.
                404 if file.is_empty() => Ok(Outcome::Refused {
                    field: "",
                    message: page.body,
                }),
                400 | 404 => Ok(Outcome::Refused {
                    field: "log file",
                    message: page.body,
                }),
                status => Err(fail(format!("GET {path} answered {status}: {}", page.body))),
            }
        }
    }
}

#[test]
fn reads_and_stops_never_reach_outside_a_containers_own_files() {
    let (runtime, threads) = runtime("probes");
    let scene = runtime.block_on(Scene::start(threads));
    let logs: BTreeMap<&str, &[u8]> =
        [("stdout", &b"line1\nline2\n"[..]), ("stderr", b"err\n")].into();
    runner(128)
        .run(&probes(), |probe_| {
            runtime.block_on(async {
                let before = scene.snapshot().await;
                match probe(&scene, probe_.clone()).await? {
                    Outcome::Refused { field, message } => {
                        if !message.contains(field) {
                            return Err(fail(format!(
                                "the refusal {message:?} does not name {field:?} ({probe_:?})"
                            )));
                        }
                    }
                    Outcome::Content(file, data) => {
                        let Some(log) = logs.get(file.as_str()) else {
                            return Err(fail(format!("{probe_:?} read {data:?} from {file:?}")));
                        };
                        if !log.ends_with(&data) {
                            return Err(fail(format!("{probe_:?} read {data:?}, not its log")));
                        }
                    }
                }
                unchanged(&scene, &before, &format!("{probe_:?}")).await
            })
        })
        .unwrap();
    runtime.block_on(scene.node.shutdown());
}

/// Any call, with any token: the node must keep answering and never panic.
#[derive(Debug, Clone)]
enum AnyCall {
    Start(Vec<proto::StartContainerRequest>),
    Stop(Vec<String>, i32),
    Statuses(Vec<String>),
    List(String, String),
    Read(proto::ReadContainerLogRequest),
}

#[derive(Debug, Clone)]
enum Token {
    Good,
    OtherApp,
    Missing,
    Garbage(String),
}

fn some_id() -> BoxedStrategy<String> {
    prop_oneof![
        (1u64..4).prop_map(container_id),
        Just("container_1700000000000_0002_01_000001".to_string()),
        hostile_text(),
    ]
    .boxed()
}

fn any_start() -> BoxedStrategy<proto::StartContainerRequest> {
    (
        some_id(),
        proptest::option::of((any::<i64>(), any::<i32>())),
        proptest::collection::vec(hostile_text(), 0..3),
        proptest::collection::btree_map("[A-Za-z_0-9=]{0,6}", ".{0,8}", 0..3),
        proptest::collection::vec(
            (hostile_text(), hostile_text(), any::<u64>(), any::<bool>()),
            0..3,
        ),
        hostile_text(),
    )
        .prop_map(
            |(id, resource, command, env, resources, token)| proto::StartContainerRequest {
                container_id: id,
                resource: resource.map(|(memory_mb, vcores)| proto::Resource { memory_mb, vcores }),
                launch_context: Some(proto::ContainerLaunchContext {
                    command,
                    environment: env.into_iter().collect(),
                    local_resources: resources
                        .into_iter()
                        .map(|(name, sha256, size, executable)| proto::LocalResource {
                            name,
                            sha256,
                            size,
                            executable,
                        })
                        .collect(),
                }),
                container_token: token,
            },
        )
        .boxed()
}

fn any_call() -> BoxedStrategy<(Token, AnyCall)> {
    let token = prop_oneof![
        Just(Token::Good),
        Just(Token::OtherApp),
        Just(Token::Missing),
        hostile_text().prop_map(Token::Garbage),
    ];
    let call = prop_oneof![
        proptest::collection::vec(any_start(), 0..3).prop_map(AnyCall::Start),
        (proptest::collection::vec(some_id(), 0..3), any::<i32>())
            .prop_map(|(ids, s)| AnyCall::Stop(ids, s)),
        proptest::collection::vec(some_id(), 0..3).prop_map(AnyCall::Statuses),
        (
            prop_oneof![Just(APP.to_string()), hostile_text()],
            prop_oneof![Just(String::new()), some_id()]
        )
            .prop_map(|(a, c)| AnyCall::List(a, c)),
        (some_id(), hostile_text(), any::<u64>()).prop_map(|(container_id, file, offset)| {
            AnyCall::Read(proto::ReadContainerLogRequest {
                container_id,
                file,
                offset,
                follow: false,
            })
        }),
    ];
    (token, call).boxed()
}

#[test]
fn random_calls_with_any_token_never_panic_the_node() {
    let (runtime, threads) = runtime("random");
    let scene = runtime.block_on(Scene::start(threads));
    let node_id = scene.node.node_id();
    runner(128)
        .run(&proptest::collection::vec(any_call(), 1..6), |calls| {
            runtime.block_on(async {
                for (token, call) in calls {
                    let mut client = match &token {
                        Token::Good => scene.client(),
                        Token::OtherApp => scene.node.client_with(tokens::nm_token(
                            &node_id,
                            "application_1700000000000_0002",
                        )),
                        Token::Missing => scene.node.client_with(String::new()),
                        Token::Garbage(text) => scene
                            .node
                            .client_with(text.chars().filter(|c| c.is_ascii_graphic()).collect()),
                    };
                    let answered = match call {
                        AnyCall::Start(requests) => client
                            .start_containers(proto::StartContainersRequest { requests })
                            .await
                            .map(drop),
                        AnyCall::Stop(container_ids, exit_status) => client
                            .stop_containers(proto::StopContainersRequest {
                                container_ids,
                                exit_status,
                            })
                            .await
                            .map(drop),
                        AnyCall::Statuses(container_ids) => client
                            .get_container_statuses(proto::GetContainerStatusesRequest {
                                container_ids,
                            })
                            .await
                            .map(drop),
                        AnyCall::List(application_id, container_id) => client
                            .list_container_logs(proto::ListContainerLogsRequest {
                                application_id,
                                container_id,
                            })
                            .await
                            .map(drop),
                        AnyCall::Read(request) => read_all(&mut client, request).await.map(drop),
                    };
                    if let Err(status) = answered
                        && matches!(status.code(), Code::Internal | Code::Unknown)
                    {
                        return Err(fail(format!("{status:?}")));
                    }
                }
                if panics_on(&scene.threads) > 0 {
                    return Err(fail("the node manager panicked".into()));
                }
                // Still answering.
                scene.snapshot().await;
                Ok(())
            })
        })
        .unwrap();
    runtime.block_on(scene.node.shutdown());
}
