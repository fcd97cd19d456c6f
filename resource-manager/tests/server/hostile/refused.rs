//! Refused, named, unchanged: requests with one bad field, all else right, to every handler.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use sha2::{Digest, Sha256};
use spindle_protocol as proto;
use tonic::Code;

use super::scene::{Ids, Scene};
use super::values::*;
use super::{Call, check_no_panic, fail, rm_runtime, runner, send};
use crate::common::*;

/// A call with one bad field, and the name its refusal must mention.
#[derive(Debug, Clone)]
struct Bad {
    call: Call,
    field: String,
}

fn bad(field: impl Into<String>, call: Call) -> Bad {
    Bad {
        call,
        field: field.into(),
    }
}

/// Sends `bad` and checks the refusal, and that nothing changed.
async fn refused(scene: &Scene, bad: Bad) -> Result<(), TestCaseError> {
    let before = scene.snapshot().await;
    let result = send(&scene.rm, bad.call.clone()).await;
    let after = scene.snapshot().await;
    let status = match result {
        Ok(()) => return Err(fail(format!("accepted: {bad:?}"))),
        Err(status) => status,
    };
    // PermissionDenied: an AM naming an attempt other than its token's.
    let allowed = [
        Code::InvalidArgument,
        Code::NotFound,
        Code::FailedPrecondition,
        Code::PermissionDenied,
    ];
    if !allowed.contains(&status.code()) {
        return Err(fail(format!("{status:?} for {bad:?}")));
    }
    if !status.message().contains(&bad.field) {
        return Err(fail(format!(
            "the refusal {:?} does not name the field {:?} ({bad:?})",
            status.message(),
            bad.field
        )));
    }
    if before != after {
        return Err(fail(format!(
            "{bad:?} changed the state:\nbefore {before:#?}\nafter {after:#?}"
        )));
    }
    check_no_panic(&scene.threads, 0)
}

/// One thing wrong with an otherwise right submission of the fresh id.
#[derive(Debug, Clone)]
enum SubmitFault {
    NoAmResource,
    AmMemory(i64),
    AmVcores(i32),
    AmMemoryAboveMax(i64),
    AmVcoresAboveMax(i32),
    NoAmContainer,
    Command(Vec<String>),
    NulInArgument(String),
    EnvName(String),
    EnvValue(String),
    ResourceName(String),
    ResourceDigest(String),
    MaxAttempts(i32),
}

impl SubmitFault {
    fn on(self, id: &str) -> Bad {
        let mut r = submission(id, 512);
        let resource = r.am_resource.as_mut().expect("a resource");
        let launch = r.am_container.as_mut().expect("a launch context");
        let local = |name: String, sha256: String| proto::LocalResource {
            name,
            sha256,
            size: 1,
            executable: true,
        };
        let field = match self {
            SubmitFault::NoAmResource => {
                r.am_resource = None;
                "am_resource"
            }
            SubmitFault::AmMemory(m) => {
                resource.memory_mb = m;
                "am_resource.memory_mb"
            }
            SubmitFault::AmVcores(v) => {
                resource.vcores = v;
                "am_resource.vcores"
            }
            SubmitFault::AmMemoryAboveMax(m) => {
                resource.memory_mb = m;
                "am_resource memory_mb"
            }
            SubmitFault::AmVcoresAboveMax(v) => {
                resource.vcores = v;
                "am_resource vcores"
            }
            SubmitFault::NoAmContainer => {
                r.am_container = None;
                "am_container"
            }
            SubmitFault::Command(command) => {
                launch.command = command;
                "am_container"
            }
            SubmitFault::NulInArgument(arg) => {
                launch.command.push(arg);
                "am_container"
            }
            SubmitFault::EnvName(name) => {
                launch.environment.insert(name, "v".into());
                "am_container"
            }
            SubmitFault::EnvValue(value) => {
                launch.environment.insert("V".into(), value);
                "am_container.environment[V]"
            }
            SubmitFault::ResourceName(name) => {
                launch.local_resources.push(local(name, "0".repeat(64)));
                "am_container"
            }
            SubmitFault::ResourceDigest(sha256) => {
                launch.local_resources.push(local("prog".into(), sha256));
                "am_container"
            }
            SubmitFault::MaxAttempts(n) => {
                r.max_attempts = n;
                "max_attempts"
            }
        };
        bad(field, Call::Submit(r))
    }
}

fn submit_faults() -> BoxedStrategy<SubmitFault> {
    use SubmitFault::*;
    prop_oneof![
        Just(NoAmResource),
        not_positive_i64().prop_map(AmMemory),
        not_positive_i32().prop_map(AmVcores),
        (8193i64..=i64::MAX).prop_map(AmMemoryAboveMax),
        (33i32..=i32::MAX).prop_map(AmVcoresAboveMax),
        Just(NoAmContainer),
        prop_oneof![Just(vec![]), Just(vec![String::new(), "x".into()])].prop_map(Command),
        ("[a-z]{0,5}", "[a-z]{0,5}").prop_map(|(a, b)| NulInArgument(format!("{a}\0{b}"))),
        prop_oneof![
            Just(String::new()),
            "[0-9][A-Z_]{0,5}",
            "[A-Z]{1,3}[-=. ][A-Z]{0,3}"
        ]
        .prop_map(EnvName),
        ("[a-z]{0,5}", "[a-z]{0,5}").prop_map(|(a, b)| EnvValue(format!("{a}\0{b}"))),
        prop_oneof![
            Just(String::new()),
            Just("..".to_string()),
            "[a-z]{0,3}/[a-z]{0,3}"
        ]
        .prop_map(ResourceName),
        bad_sha().prop_map(ResourceDigest),
        prop_oneof![i32::MIN..0, 11..=i32::MAX].prop_map(MaxAttempts),
    ]
    .boxed()
}

fn bad_submissions(ids: &Ids) -> BoxedStrategy<Bad> {
    let fresh = ids.fresh.clone();
    let running = ids.running_app.clone();
    prop_oneof![
        bad_app_id().prop_map(|id| bad("application_id", Call::Submit(submission(&id, 512)))),
        unknown_app_id(ids.ts)
            .prop_map(|id| bad("application_id", Call::Submit(submission(&id, 512)))),
        Just(bad(
            "application_id",
            Call::Submit(submission(&running, 512))
        )),
        submit_faults().prop_map(move |fault| fault.on(&fresh)),
    ]
    .boxed()
}

fn bad_client_calls(ids: &Ids) -> BoxedStrategy<Bad> {
    let ts = ids.ts;
    prop_oneof![
        4 => bad_submissions(ids),
        1 => bad_app_id().prop_map(|id| bad("application_id", Call::Report(id))),
        1 => unknown_app_id(ts).prop_map(|id| bad("application_id", Call::Report(id))),
        1 => bad_app_id().prop_map(|id| bad("application_id", Call::Watch(id))),
        1 => unknown_app_id(ts).prop_map(|id| bad("application_id", Call::Watch(id))),
        1 => bad_app_id().prop_map(|id| bad("application_id", Call::Kill(id))),
        1 => unknown_app_id(ts).prop_map(|id| bad("application_id", Call::Kill(id))),
        1 => (
            prop::collection::vec(1..=8i32, 0..3),
            prop_oneof![Just(0i32), 9..=i32::MAX, i32::MIN..0],
            prop::collection::vec(1..=8i32, 0..3),
        )
            .prop_map(|(before, wrong, after)| {
                let field = format!("states[{}]", before.len());
                let states = [before, vec![wrong], after].concat();
                bad(field, Call::ListApps(states))
            }),
    ]
    .boxed()
}

fn ask_with(memory_mb: i64, vcores: i32, n: i32) -> proto::ResourceRequest {
    ask(memory_mb, vcores, n)
}

/// One bad resource request, at index `i` among good ones; the field it breaks.
fn bad_request_list(list: &'static str) -> BoxedStrategy<(Vec<proto::ResourceRequest>, String)> {
    let wrong = prop_oneof![
        not_positive_i64().prop_map(|m| (ask_with(m, 1, 1), "capability.memory_mb")),
        not_positive_i32().prop_map(|v| (ask_with(512, v, 1), "capability.vcores")),
        (8193i64..=i64::MAX).prop_map(|m| (ask_with(m, 1, 1), "capability")),
        (33i32..=i32::MAX).prop_map(|v| (ask_with(512, v, 1), "capability")),
        (i32::MIN..0).prop_map(|n| (ask_with(512, 1, n), "num_containers")),
        Just(()).prop_map(|()| {
            let mut r = ask_with(512, 1, 1);
            r.capability = None;
            (r, "capability")
        }),
    ];
    (0usize..3, wrong, 0usize..3)
        .prop_map(move |(before, (r, field), after)| {
            let good = ask_with(256, 1, 0);
            let mut all = vec![good.clone(); before];
            all.push(r);
            all.extend(vec![good; after]);
            (all, format!("{list}[{before}].{field}"))
        })
        .boxed()
}

fn allocate_for(attempt: &str) -> proto::AllocateRequest {
    allocate_request(attempt, vec![], 0)
}

fn bad_am_calls(ids: &Ids) -> BoxedStrategy<Bad> {
    let register = |attempt: &str, rpc_port: i32| {
        Call::RegisterAm(proto::RegisterApplicationMasterRequest {
            attempt_id: attempt.to_string(),
            host: "127.0.0.1".into(),
            rpc_port,
            tracking_url: String::new(),
        })
    };
    let finish = |attempt: &str, final_status: i32| {
        Call::FinishAm(proto::FinishApplicationMasterRequest {
            attempt_id: attempt.to_string(),
            final_status,
            diagnostics: String::new(),
            tracking_url: String::new(),
        })
    };
    let (running, over) = (ids.running_attempt.clone(), ids.finished_attempt.clone());
    let (r1, r2, r3, r4, r5) = (
        running.clone(),
        running.clone(),
        running.clone(),
        running.clone(),
        running.clone(),
    );
    let (own_am, foreign) = (ids.own_am.clone(), ids.foreign.clone());
    let over_for_register = over.clone();
    let over_attempt = over.clone();
    prop_oneof![
        bad_attempt_id().prop_map(move |a| bad("attempt_id", register(&a, 0))),
        unknown_attempt_id(ids).prop_map(move |a| bad("attempt_id", register(&a, 0))),
        Just(bad("attempt_id", register(&over_for_register, 0))),
        prop_oneof![i32::MIN..0, 65536..=i32::MAX]
            .prop_map(move |port| bad("rpc_port", register(&r1, port))),
        bad_attempt_id().prop_map(|a| bad("attempt_id", Call::Allocate(allocate_for(&a)))),
        unknown_attempt_id(ids).prop_map(|a| bad("attempt_id", Call::Allocate(allocate_for(&a)))),
        (bad_request_list("asks"), any::<bool>()).prop_map(move |((asks, field), over)| {
            // Refused even when the attempt is over (an over attempt is otherwise told
            // SHUTDOWN).
            let mut r = allocate_for(if over { &over_attempt } else { &r2 });
            r.asks = asks;
            bad(field, Call::Allocate(r))
        }),
        bad_request_list("cancels").prop_map(move |(cancels, field)| {
            let mut r = allocate_for(&r3);
            r.cancels = cancels;
            bad(field, Call::Allocate(r))
        }),
        (bad_container_id(), Just(own_am), Just(foreign), 0usize..3).prop_map(
            move |(malformed, own, foreign, which)| {
                let mut r = allocate_for(&r4);
                r.release = vec![[malformed, own, foreign][which].clone()];
                bad("release[0]", Call::Allocate(r))
            }
        ),
        bad_attempt_id().prop_map(move |a| bad("attempt_id", finish(&a, 1))),
        unknown_attempt_id(ids).prop_map(move |a| bad("attempt_id", finish(&a, 1))),
        prop_oneof![Just(0i32), 4..=i32::MAX, i32::MIN..0]
            .prop_map(move |s| bad("final_status", finish(&r5, s))),
    ]
    .boxed()
}

fn status_of(container_id: String, state: i32) -> proto::ContainerStatus {
    proto::ContainerStatus {
        container_id,
        state,
        exit_status: 0,
        diagnostics: String::new(),
    }
}

/// One bad container status among good ones; the field it breaks.
fn bad_statuses(good_id: String) -> BoxedStrategy<(Vec<proto::ContainerStatus>, String)> {
    let wrong = prop_oneof![
        bad_container_id().prop_map(|id| (status_of(id, 2), "container_id")),
        prop_oneof![Just(0i32), 4..=i32::MAX, i32::MIN..0]
            .prop_map(|s| (status_of("container_1_0001_01_000001".into(), s), "state")),
    ];
    (0usize..3, wrong)
        .prop_map(move |(before, (s, field))| {
            let mut all = vec![status_of(good_id.clone(), 2); before];
            all.push(s);
            (all, format!("containers[{before}].{field}"))
        })
        .boxed()
}

fn bad_tracker_calls(ids: &Ids) -> BoxedStrategy<Bad> {
    let register =
        |node_id: &str, capability: Option<proto::Resource>| proto::RegisterNodeRequest {
            node_id: node_id.to_string(),
            hostname: "hostile".into(),
            http_address: "127.0.0.1:1".into(),
            capability,
            containers: vec![],
        };
    let heartbeat = |node_id: &str| proto::NodeHeartbeatRequest {
        node_id: node_id.to_string(),
        containers: vec![],
        healthy: true,
        health_report: String::new(),
    };
    let good = Some(proto::Resource {
        memory_mb: 4096,
        vcores: 4,
    });
    let (n1, n2, n3, n4) = (
        ids.node.clone(),
        ids.node.clone(),
        ids.node.clone(),
        ids.node.clone(),
    );
    let (own1, own2) = (ids.own_am.clone(), ids.own_am.clone());
    prop_oneof![
        bad_node_id().prop_map(move |n| bad("node_id", Call::RegisterNode(register(&n, good)))),
        Just(bad("capability", Call::RegisterNode(register(&n1, None)))),
        not_positive_i64().prop_map(move |m| bad(
            "capability.memory_mb",
            Call::RegisterNode(register(
                &n2,
                Some(proto::Resource {
                    memory_mb: m,
                    vcores: 4
                })
            ))
        )),
        not_positive_i32().prop_map(move |v| bad(
            "capability.vcores",
            Call::RegisterNode(register(
                &n3,
                Some(proto::Resource {
                    memory_mb: 4096,
                    vcores: v
                })
            ))
        )),
        bad_statuses(own1).prop_map(move |(containers, field)| {
            let mut r = register(&n4, good);
            r.containers = containers;
            bad(field, Call::RegisterNode(r))
        }),
        bad_node_id().prop_map(move |n| bad("node_id", Call::Heartbeat(heartbeat(&n)))),
        bad_statuses(own2).prop_map({
            let node = ids.node.clone();
            move |(containers, field)| {
                let mut r = heartbeat(&node);
                r.containers = containers;
                bad(field, Call::Heartbeat(r))
            }
        }),
    ]
    .boxed()
}

fn bad_staging_calls(ids: &Ids) -> BoxedStrategy<Bad> {
    let staged_sha = ids.staged_sha.clone();
    let staged = ids.staged.clone();
    let other_content = prop::collection::vec(any::<u8>(), 0..2000)
        .prop_filter("other content", move |d| *d != staged);
    let chunk = |sha256: String, size: u64, data: Vec<u8>| proto::FileChunk { sha256, size, data };
    prop_oneof![
        Just(bad("sha256", Call::Upload(vec![]))),
        (bad_sha(), prop::collection::vec(any::<u8>(), 0..100))
            .prop_map(move |(sha, data)| bad("sha256", Call::Upload(vec![chunk(sha, 0, data)]))),
        // Content that is not what it claims to be: the staged file's sha, or another's.
        (other_content, any::<bool>(), "[0-9a-f]{64}").prop_map(
            move |(data, claim_staged, sha)| {
                let claimed = if claim_staged {
                    staged_sha.clone()
                } else {
                    sha
                };
                let half = data.len() / 2;
                let chunks = vec![
                    chunk(claimed, 0, data[..half].to_vec()),
                    chunk(String::new(), 0, data[half..].to_vec()),
                ];
                bad("sha256", Call::Upload(chunks))
            }
        ),
        // The right sha256, the wrong size.
        (prop::collection::vec(any::<u8>(), 0..500), 1u64..u64::MAX).prop_map(
            move |(data, delta)| {
                let sha = hex::encode(Sha256::digest(&data));
                let size = (data.len() as u64).wrapping_add(delta).max(1);
                let size = if size == data.len() as u64 {
                    size + 1
                } else {
                    size
                };
                bad("size", Call::Upload(vec![chunk(sha, size, data)]))
            }
        ),
        bad_sha().prop_map(|sha| bad("sha256", Call::Stat(sha))),
        bad_sha().prop_map(|sha| bad("sha256", Call::Fetch(sha))),
        "[0-9a-f]{64}".prop_map(|sha| bad("sha256", Call::Fetch(sha))),
    ]
    .boxed()
}

fn log_chunk(container_id: &str, file: &str, node_id: &str) -> proto::LogUploadChunk {
    proto::LogUploadChunk {
        container_id: container_id.to_string(),
        file: file.to_string(),
        data: b"log".to_vec(),
        node_id: node_id.to_string(),
        end: false,
    }
}

fn log_end() -> proto::LogUploadChunk {
    proto::LogUploadChunk {
        end: true,
        ..Default::default()
    }
}

/// One bad chunk after a good one (of a container with no logs yet), then the end: nothing of
/// the upload may be kept.
fn upload_with(ids: &Ids, bad: proto::LogUploadChunk) -> Call {
    let fresh_container = format!(
        "{}_01_000077",
        ids.finished_app.replace("application", "container")
    );
    Call::UploadLogs(vec![
        log_chunk(&fresh_container, "stdout", &ids.node),
        bad,
        log_end(),
    ])
}

fn bad_log_calls(ids: &Ids) -> BoxedStrategy<Bad> {
    let list = |application_id: &str, container_id: &str| {
        Call::ListLogs(proto::ListLogsRequest {
            application_id: application_id.to_string(),
            container_id: container_id.to_string(),
        })
    };
    let read = |container_id: &str, file: &str| {
        Call::ReadLog(proto::ReadLogRequest {
            container_id: container_id.to_string(),
            file: file.to_string(),
            offset: 0,
        })
    };
    let logged = ids.foreign.clone();
    let app = ids.finished_app.clone();
    let (i1, i2, i3, i4) = (ids.clone(), ids.clone(), ids.clone(), ids.clone());
    let (a1, a2, a3) = (app.clone(), app.clone(), app.clone());
    let (l1, l2) = (logged.clone(), logged.clone());
    let unlogged = format!("{}_01_000099", app.replace("application", "container"));
    let other_apps = ids.own_am.clone();
    prop_oneof![
        Just(bad("end", Call::UploadLogs(vec![]))),
        Just(bad(
            "end",
            Call::UploadLogs(vec![log_chunk(&unlogged, "stdout", &ids.node)])
        )),
        bad_container_id().prop_map(move |c| bad(
            "container_id",
            upload_with(&i1, log_chunk(&c, "stdout", &i1.node))
        )),
        bad_file_name().prop_map(move |f| bad(
            "file",
            upload_with(&i2, log_chunk(&i2.foreign, &f, &i2.node))
        )),
        prop_oneof!["[a-z]{0,3}[\\x00-\\x1f][a-z]{0,3}", "[a-z]{1025,1100}"].prop_map(
            move |n| bad(
                "node_id",
                upload_with(&i3, log_chunk(&i3.foreign, "stdout", &n))
            )
        ),
        // A file's chunks must come one after another.
        Just(()).prop_map(move |()| {
            let (c, node) = (&i4.foreign, &i4.node);
            let chunks = vec![
                log_chunk(c, "stderr", node),
                log_chunk(c, "stdout", node),
                log_chunk(c, "stderr", node),
                log_end(),
            ];
            bad("file", Call::UploadLogs(chunks))
        }),
        bad_app_id().prop_map(move |a| bad("application_id", list(&a, ""))),
        unknown_app_id(ids.ts).prop_map(move |a| bad("application_id", list(&a, ""))),
        bad_container_id()
            .prop_filter("empty lists every container", |c| !c.is_empty())
            .prop_map(move |c| bad("container_id", list(&a1, &c))),
        Just(bad("container_id", list(&a2, &other_apps))),
        Just(bad("container_id", list(&a3, &unlogged))),
        bad_container_id().prop_map(move |c| bad("container_id", read(&c, "stdout"))),
        bad_file_name().prop_map(move |f| bad("file", read(&l1, &f))),
        "[a-z]{1,8}"
            .prop_filter("not the stored file", |f| f != "stdout")
            .prop_map(move |f| bad("file", read(&l2, &f))),
    ]
    .boxed()
}

/// Runs `cases` refused-call cases from `strategy` against one scene.
fn throw_bad_calls(test: &str, cases: u32, strategy: impl Fn(&Ids) -> BoxedStrategy<Bad>) {
    let (rt, threads) = rm_runtime(test);
    let scene = rt.block_on(Scene::build(threads));
    let strategy = strategy(&scene.ids);
    let result = runner(cases).run(&strategy, |bad| rt.block_on(refused(&scene, bad)));
    rt.block_on(scene.rm.shutdown());
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn application_client_refuses_bad_input_by_name_and_changes_nothing() {
    throw_bad_calls("client", 300, bad_client_calls);
}

#[test]
fn application_master_refuses_bad_input_by_name_and_changes_nothing() {
    throw_bad_calls("am", 300, bad_am_calls);
}

#[test]
fn resource_tracker_refuses_bad_input_by_name_and_changes_nothing() {
    throw_bad_calls("tracker", 300, bad_tracker_calls);
}

#[test]
fn log_store_refuses_bad_input_by_name_and_changes_nothing() {
    throw_bad_calls("logs", 200, bad_log_calls);
}

#[test]
fn staging_store_refuses_bad_input_by_name_and_changes_nothing() {
    throw_bad_calls("staging", 200, bad_staging_calls);
}
