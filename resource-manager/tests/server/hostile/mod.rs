//! Random and malformed input thrown at every RPC handler of the RM (ApplicationClient,
//! ApplicationMaster, ResourceTracker, StagingStore, LogStore), with proptest. Two properties:
//!
//! - **Refused, named, unchanged.** A request with one bad field, all else right, is refused
//!   with InvalidArgument, NotFound or FailedPrecondition and a message that names the field;
//!   afterwards every application's report, every node and the staging store are exactly as
//!   before.
//! - **Nothing panics.** Random requests of every kind, valid or not, in random order: no
//!   thread of the RM panics and it still answers.
//! - **No door opens to forged credentials.** Junk and near-miss proofs and tokens on right
//!   requests are refused as unauthenticated, and change nothing (`guards`).
//!
//! Each test's RM runs on a runtime of its own whose threads carry a name, so that a panic
//! anywhere in it (a handler, the core task) is counted, even one that tonic or tokio would
//! swallow.

mod guards;
mod random;
mod refused;
mod scene;
mod values;

use std::collections::BTreeMap;
use std::sync::{Mutex, Once};

use proptest::test_runner::{Config, TestCaseError, TestRunner};
use spindle_protocol as proto;
use tonic::Status;

use crate::common::{Am, Rm};

/// Panics so far, by the name of the thread they happened on.
static PANICS: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());

/// A runtime for one test's RM, its threads named `rm-<test>` so that their panics are
/// counted for that test alone.
fn rm_runtime(test: &str) -> (tokio::runtime::Runtime, String) {
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
    let threads = format!("rm-{test}");
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
    panics.get(threads).copied().unwrap_or(0)
}

/// Fails if the RM's threads panicked more than `before` times.
fn check_no_panic(threads: &str, before: usize) -> Result<(), TestCaseError> {
    match panics_on(threads) - before {
        0 => Ok(()),
        n => Err(fail(format!("{n} panic(s) in the RM's threads"))),
    }
}

/// A runner for `cases` cases, or as many as `PROPTEST_CASES` says (for a longer hunt).
fn runner(cases: u32) -> TestRunner {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    TestRunner::new(Config {
        cases,
        // Shrunk failures are printed; they are not written next to the sources.
        failure_persistence: None,
        ..Config::default()
    })
}

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

/// One call to one of the RM's services.
#[derive(Debug, Clone)]
enum Call {
    Submit(proto::SubmitApplicationRequest),
    Report(String),
    Watch(String),
    ListApps(Vec<i32>),
    Kill(String),
    RegisterAm(proto::RegisterApplicationMasterRequest),
    Allocate(proto::AllocateRequest),
    FinishAm(proto::FinishApplicationMasterRequest),
    RegisterNode(proto::RegisterNodeRequest),
    Heartbeat(proto::NodeHeartbeatRequest),
    Upload(Vec<proto::FileChunk>),
    Stat(String),
    Fetch(String),
    UploadLogs(Vec<proto::LogUploadChunk>),
    ListLogs(proto::ListLogsRequest),
    ReadLog(proto::ReadLogRequest),
    NewApp,
    ListNodes,
}

/// The ApplicationMaster service as `attempt`'s AM when the RM handed one a token, else as
/// some other attempt's AM (or, before any AM started, with a token no RM signed): so that a
/// call for an unknown attempt is refused as a real AM's would be.
fn am_client(rm: &Rm, attempt: &str) -> Am {
    let token = rm
        .am_tokens
        .get(attempt)
        .or_else(|| rm.am_tokens.any())
        .unwrap_or_else(|| "00.00".to_string());
    rm.am_with_token(&token)
}

/// Sends `call` and waits for its whole answer (a fetch is read to its end).
async fn send(rm: &Rm, call: Call) -> Result<(), Status> {
    let (mut client, mut tracker, mut staging, mut logs, mut log_uploads) = (
        rm.client.clone(),
        rm.tracker.clone(),
        rm.staging.clone(),
        rm.logs.clone(),
        rm.log_uploads.clone(),
    );
    match call {
        Call::Submit(r) => client.submit_application(r).await.map(drop),
        Call::Report(id) => client
            .get_application_report(proto::GetApplicationReportRequest { application_id: id })
            .await
            .map(drop),
        Call::Watch(id) => client
            .watch_application(proto::GetApplicationReportRequest { application_id: id })
            .await
            .map(drop),
        Call::ListApps(states) => client
            .list_applications(proto::ListApplicationsRequest {
                states,
                queue: String::new(),
            })
            .await
            .map(drop),
        Call::Kill(id) => client
            .kill_application(proto::KillApplicationRequest {
                application_id: id,
                diagnostics: "hostile".into(),
            })
            .await
            .map(drop),
        Call::RegisterAm(r) => am_client(rm, &r.attempt_id)
            .register_application_master(r)
            .await
            .map(drop),
        Call::Allocate(r) => am_client(rm, &r.attempt_id).allocate(r).await.map(drop),
        Call::FinishAm(r) => am_client(rm, &r.attempt_id)
            .finish_application_master(r)
            .await
            .map(drop),
        Call::RegisterNode(r) => tracker.register_node_manager(r).await.map(drop),
        Call::Heartbeat(r) => tracker.node_heartbeat(r).await.map(drop),
        Call::UploadLogs(chunks) => log_uploads
            .upload_logs(tokio_stream::iter(chunks))
            .await
            .map(drop),
        Call::ListLogs(r) => logs.list_logs(r).await.map(drop),
        Call::ReadLog(r) => {
            let mut stream = logs.read_log(r).await?.into_inner();
            while stream.message().await?.is_some() {}
            Ok(())
        }
        Call::Upload(chunks) => staging.upload(tokio_stream::iter(chunks)).await.map(drop),
        Call::Stat(sha256) => staging.stat(proto::StatRequest { sha256 }).await.map(drop),
        Call::Fetch(sha256) => {
            let mut stream = staging
                .fetch(proto::FetchRequest { sha256 })
                .await?
                .into_inner();
            while stream.message().await?.is_some() {}
            Ok(())
        }
        Call::NewApp => client
            .get_new_application(proto::GetNewApplicationRequest {})
            .await
            .map(drop),
        Call::ListNodes => client
            .list_nodes(proto::ListNodesRequest {})
            .await
            .map(drop),
    }
}
