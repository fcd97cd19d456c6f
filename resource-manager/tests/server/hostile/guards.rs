//! Random and near-miss credentials at every door: junk metadata (user, proof, AM token, NM
//! token), proofs of a wrong secret, of the right secret for another user or outside the clock
//! window or with one byte changed, and AM tokens no RM signed, on otherwise right calls to every
//! service of a running scene. Every call is refused as unauthenticated, nothing changes, and
//! nothing panics.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use spindle_protocol as proto;
use spindle_protocol::application_client_client::ApplicationClientClient;
use spindle_protocol::application_master_client::ApplicationMasterClient;
use spindle_protocol::log_store_client::LogStoreClient;
use spindle_protocol::resource_tracker_client::ResourceTrackerClient;
use spindle_protocol::staging_store_client::StagingStoreClient;
use spindle_security::{
    AM_TOKEN_HEADER, Key, NM_TOKEN_HEADER, PROOF_HEADER, PROOF_WINDOW, Secret, SecretKind,
    USER_HEADER, sign_proof,
};
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

use super::scene::{Ids, Scene};
use super::values::junk;
use super::{check_no_panic, fail, rm_runtime, runner};
use crate::common::*;

/// Sends exactly the metadata it was given (what cannot be sent as metadata is left out).
#[derive(Clone)]
struct Raw(Vec<(&'static str, String)>);

impl Interceptor for Raw {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        for (header, value) in &self.0 {
            if let Ok(value) = MetadataValue::try_from(value.as_str()) {
                request.metadata_mut().insert(*header, value);
            }
        }
        Ok(request)
    }
}

/// Credentials that must not open any door.
#[derive(Debug, Clone)]
enum Forged {
    /// Anything in any header.
    Junk {
        user: Option<String>,
        proof: Option<String>,
        am_token: Option<String>,
        nm_token: Option<String>,
    },
    /// A proof of a secret that is not the cluster's.
    WrongSecret { daemon: bool, secret: String },
    /// A proof of the client secret made outside the clock window.
    Skewed { minutes: u64, future: bool },
    /// A proof of the client secret made for another user than the one named.
    OtherUser { named: String, signed_for: String },
    /// A proof of the client secret with one byte changed.
    Tampered { at: usize, byte: u8 },
    /// An AM token for a real attempt, signed with a key the RM never had.
    AmTokenOfNoRm { key: [u8; 32], key_id: u32 },
}

fn user() -> BoxedStrategy<String> {
    prop_oneof![Just(USER.to_string()), "[a-z]{1,8}"].boxed()
}

fn forged() -> BoxedStrategy<Forged> {
    let maybe = || prop::option::of(junk());
    prop_oneof![
        (maybe(), maybe(), maybe(), maybe()).prop_map(|(user, proof, am_token, nm_token)| {
            Forged::Junk {
                user,
                proof,
                am_token,
                nm_token,
            }
        }),
        (any::<bool>(), "[a-z0-9]{32,64}")
            .prop_map(|(daemon, secret)| Forged::WrongSecret { daemon, secret }),
        (6u64..100_000, any::<bool>())
            .prop_map(|(minutes, future)| Forged::Skewed { minutes, future }),
        (user(), user())
            .prop_filter("another user", |(a, b)| a != b)
            .prop_map(|(named, signed_for)| Forged::OtherUser { named, signed_for }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Forged::Tampered { at, byte }),
        (any::<[u8; 32]>(), 0u32..4)
            .prop_map(|(key, key_id)| Forged::AmTokenOfNoRm { key, key_id }),
    ]
    .boxed()
}

/// The door a call knocks at: a right request, which a right caller would have had answered.
#[derive(Debug, Clone, Copy)]
enum Door {
    NewApp,
    Submit,
    Kill,
    Report,
    LogTokens,
    RegisterNode,
    Heartbeat,
    RegisterAm,
    Allocate,
    FinishAm,
    Stat,
    Upload,
    UploadLogs,
    ListLogs,
}

fn door() -> BoxedStrategy<Door> {
    use Door::*;
    prop::sample::select(vec![
        NewApp,
        Submit,
        Kill,
        Report,
        LogTokens,
        RegisterNode,
        Heartbeat,
        RegisterAm,
        Allocate,
        FinishAm,
        Stat,
        Upload,
        UploadLogs,
        ListLogs,
    ])
    .boxed()
}

/// The metadata `forged` stands for, in `scene`; None when the case would be a right one.
fn metadata(forged: &Forged, ids: &Ids, client: &Secret) -> Option<Vec<(&'static str, String)>> {
    let now = spindle_security::now_ms();
    let proof = |user: &str, secret: &Secret, kind, at| {
        vec![
            (USER_HEADER, user.to_string()),
            (PROOF_HEADER, sign_proof(secret, kind, user, at)),
        ]
    };
    Some(match forged.clone() {
        Forged::Junk {
            user,
            proof,
            am_token,
            nm_token,
        } => [
            (USER_HEADER, user),
            (PROOF_HEADER, proof),
            (AM_TOKEN_HEADER, am_token),
            (NM_TOKEN_HEADER, nm_token),
        ]
        .into_iter()
        .filter_map(|(header, value)| Some((header, value?)))
        .collect(),
        Forged::WrongSecret { daemon, secret } => {
            let kind = if daemon {
                SecretKind::Daemon
            } else {
                SecretKind::Client
            };
            proof(USER, &Secret::from_text(&secret), kind, now)
        }
        Forged::Skewed { minutes, future } => {
            let off = PROOF_WINDOW.as_millis() as u64 + minutes * 60_000;
            let at = if future {
                now + off
            } else {
                now.saturating_sub(off)
            };
            proof(USER, client, SecretKind::Client, at)
        }
        Forged::OtherUser { named, signed_for } => {
            let mut headers = proof(&signed_for, client, SecretKind::Client, now);
            headers[0].1 = named;
            headers
        }
        Forged::Tampered { at, byte } => {
            let mut headers = proof(USER, client, SecretKind::Client, now);
            let right = headers[1].1.clone();
            let mut bytes = right.clone().into_bytes();
            let at = at % bytes.len();
            bytes[at] = byte;
            let changed = String::from_utf8_lossy(&bytes).into_owned();
            // Hex is read in either case: an upper-case letter for a lower-case one is the same
            // proof.
            if changed.eq_ignore_ascii_case(&right) {
                return None;
            }
            headers[1].1 = changed;
            headers
        }
        Forged::AmTokenOfNoRm { key, key_id } => {
            let token = spindle_security::issue(
                proto::AmTokenIdentifier {
                    attempt_id: ids.running_attempt.clone(),
                    expiry_ms: now + 3_600_000,
                    key_id: 0,
                },
                &Key::from_bytes(key_id, key),
            );
            vec![(USER_HEADER, USER.to_string()), (AM_TOKEN_HEADER, token)]
        }
    })
}

/// Knocks at `door` with `metadata`.
async fn knock(channel: Channel, ids: &Ids, door: Door, metadata: Raw) -> Result<(), Status> {
    let service = || InterceptedService::new(channel.clone(), metadata.clone());
    let mut client = ApplicationClientClient::new(service());
    let mut am = ApplicationMasterClient::new(service());
    let mut tracker = ResourceTrackerClient::new(service());
    let mut staging = StagingStoreClient::new(service());
    let mut logs = LogStoreClient::new(service());
    let node = proto::RegisterNodeRequest {
        node_id: "127.0.0.1:9".into(),
        hostname: "rogue".into(),
        http_address: "127.0.0.1:1".into(),
        capability: Some(proto::Resource {
            memory_mb: 65536,
            vcores: 64,
        }),
        containers: vec![],
    };
    match door {
        Door::NewApp => client
            .get_new_application(proto::GetNewApplicationRequest {})
            .await
            .map(drop),
        Door::Submit => client
            .submit_application(submission(&ids.fresh, 512))
            .await
            .map(drop),
        Door::Kill => client
            .kill_application(proto::KillApplicationRequest {
                application_id: ids.running_app.clone(),
                diagnostics: "forged".into(),
            })
            .await
            .map(drop),
        Door::Report => client
            .get_application_report(proto::GetApplicationReportRequest {
                application_id: ids.running_app.clone(),
            })
            .await
            .map(drop),
        Door::LogTokens => client
            .get_log_tokens(proto::GetLogTokensRequest {
                application_id: ids.finished_app.clone(),
            })
            .await
            .map(drop),
        Door::RegisterNode => tracker.register_node_manager(node).await.map(drop),
        Door::Heartbeat => tracker
            .node_heartbeat(proto::NodeHeartbeatRequest {
                node_id: ids.node.clone(),
                containers: vec![completed(&ids.own_am, 1)],
                healthy: false,
                health_report: "forged".into(),
            })
            .await
            .map(drop),
        Door::RegisterAm => am
            .register_application_master(proto::RegisterApplicationMasterRequest {
                attempt_id: ids.running_attempt.clone(),
                host: "evil".into(),
                rpc_port: 1,
                tracking_url: "http://evil".into(),
            })
            .await
            .map(drop),
        Door::Allocate => am
            .allocate(allocate_request(
                &ids.running_attempt,
                vec![ask(512, 1, 3)],
                0,
            ))
            .await
            .map(drop),
        Door::FinishAm => am
            .finish_application_master(proto::FinishApplicationMasterRequest {
                attempt_id: ids.running_attempt.clone(),
                final_status: proto::FinalStatus::Failed as i32,
                diagnostics: "forged".into(),
                tracking_url: String::new(),
            })
            .await
            .map(drop),
        Door::Stat => staging
            .stat(proto::StatRequest {
                sha256: ids.staged_sha.clone(),
            })
            .await
            .map(drop),
        Door::Upload => {
            let data = b"a program no one may stage".to_vec();
            let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&data));
            staging
                .upload(tokio_stream::iter(vec![proto::FileChunk {
                    sha256,
                    size: data.len() as u64,
                    data,
                }]))
                .await
                .map(drop)
        }
        Door::UploadLogs => logs
            .upload_logs(tokio_stream::iter(vec![
                proto::LogUploadChunk {
                    container_id: ids.foreign.clone(),
                    file: "stdout".into(),
                    data: b"overwritten".to_vec(),
                    node_id: ids.node.clone(),
                    end: false,
                },
                proto::LogUploadChunk {
                    end: true,
                    ..Default::default()
                },
            ]))
            .await
            .map(drop),
        Door::ListLogs => logs
            .list_logs(proto::ListLogsRequest {
                application_id: ids.finished_app.clone(),
                container_id: String::new(),
            })
            .await
            .map(drop),
    }
}

async fn refused_at_the_door(
    scene: &Scene,
    channel: Channel,
    client: &Secret,
    forged: Forged,
    door: Door,
) -> Result<(), TestCaseError> {
    let Some(metadata) = metadata(&forged, &scene.ids, client) else {
        return Ok(());
    };
    let before = scene.snapshot().await;
    let result = knock(channel, &scene.ids, door, Raw(metadata)).await;
    let after = scene.snapshot().await;
    match result {
        Ok(()) => return Err(fail(format!("{door:?} opened to {forged:?}"))),
        Err(status) if status.code() != Code::Unauthenticated || status.message().is_empty() => {
            return Err(fail(format!("{door:?} with {forged:?}: {status:?}")));
        }
        Err(_) => {}
    }
    if before != after {
        return Err(fail(format!(
            "{door:?} with {forged:?} changed the state:\nbefore {before:#?}\nafter {after:#?}"
        )));
    }
    check_no_panic(&scene.threads, 0)
}

#[test]
fn forged_credentials_open_no_door_and_change_nothing() {
    let (rt, threads) = rm_runtime("guards");
    let scene = rt.block_on(Scene::build(threads));
    let addr = scene.rm.rm.as_ref().unwrap().rpc_addr();
    let channel = rt.block_on(async {
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap()
    });
    let client = scene.rm.secret(SecretKind::Client);
    let result = runner(200).run(&(forged(), door()), |(forged, door)| {
        rt.block_on(refused_at_the_door(
            &scene,
            channel.clone(),
            &client,
            forged,
            door,
        ))
    });
    rt.block_on(scene.rm.shutdown());
    if let Err(e) = result {
        panic!("{e}");
    }
}
