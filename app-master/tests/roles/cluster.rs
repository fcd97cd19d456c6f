//! A one-node cluster for the roles test: a resource manager and a node manager on loopback in
//! temporary directories, this test program staged once in the RM's staging store, and the
//! client calls a launcher makes (submit, follow to the final report, read container logs),
//! proving the client secret the RM generated; the NM joins with the daemon secret beside it.

use std::collections::HashMap;
use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};
use spindle_app_master::am::app_config::{APP_CONFIG_ENV, ROLE_AM, ROLE_ENV};
use spindle_containers::{LocalResource, Resource};
use spindle_node_manager::{NmConfig, NodeManager};
use spindle_protocol as proto;
use spindle_protocol::application_client_client::ApplicationClientClient;
use spindle_protocol::staging_store_client::StagingStoreClient;
use spindle_resource_manager::{ResourceManager, RmConfig};
use spindle_security::{CallCredentials, Secret, SecretKind, current_user};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Authenticated = InterceptedService<Channel, CallCredentials>;

/// Generous: only a guard against hanging forever, never a measure of speed.
pub const HANG_GUARD: Duration = Duration::from_secs(120);
/// The largest container the RM grants.
pub const MAXIMUM_MB: u64 = 2048;
const STAGING_CHUNK: usize = 1 << 20;

pub async fn guarded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("hang guard: {what} did not finish"))
}

pub struct Cluster {
    rm: Option<ResourceManager>,
    nm: Option<NodeManager>,
    pub client: ApplicationClientClient<Authenticated>,
    /// This program, staged: the AM's and the executors' only local resource.
    pub program: LocalResource,
    nm_dir: tempfile::TempDir,
    _rm_dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start() -> Cluster {
        let rm_dir = tempfile::tempdir().unwrap();
        let rm = ResourceManager::start(RmConfig {
            bind: "127.0.0.1:0".parse().unwrap(),
            web_bind: None,
            state_dir: rm_dir.path().to_path_buf(),
            minimum_allocation: Resource::new(128, 1),
            maximum_allocation: Resource::new(MAXIMUM_MB, 8),
            ..RmConfig::default()
        })
        .await
        .expect("the RM starts");
        let rm_addr = rm.rpc_addr();
        let nm_dir = tempfile::tempdir().unwrap();
        // Containers may run as another user (nobody, when the test runs as root), who must
        // reach the work dir.
        std::fs::set_permissions(nm_dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let nm = NodeManager::start(NmConfig {
            rm: rm_addr.to_string(),
            bind: "127.0.0.1:0".parse().unwrap(),
            work_dir: nm_dir.path().to_path_buf(),
            memory_mb: Some(4096),
            vcores: Some(8),
            daemon_secret_file: Some(rm_dir.path().join(SecretKind::Daemon.file_name())),
            ..NmConfig::default()
        })
        .await
        .expect("the NM starts");
        let channel = Channel::from_shared(format!("http://{rm_addr}"))
            .unwrap()
            .connect()
            .await
            .expect("the RM accepts connections");
        let secret = Secret::read(&rm_dir.path().join(SecretKind::Client.file_name()))
            .expect("the RM generated its client secret");
        let credentials = CallCredentials::with_secret(SecretKind::Client, secret, current_user());
        let client =
            ApplicationClientClient::with_interceptor(channel.clone(), credentials.clone());
        let program =
            stage_this_program(StagingStoreClient::with_interceptor(channel, credentials)).await;
        Cluster {
            rm: Some(rm),
            nm: Some(nm),
            client,
            program,
            nm_dir,
            _rm_dir: rm_dir,
        }
    }

    /// A new application id.
    pub async fn new_application(&self) -> String {
        self.client
            .clone()
            .get_new_application(proto::GetNewApplicationRequest {})
            .await
            .unwrap()
            .into_inner()
            .application_id
    }

    /// Submits this program as a Spark-shaped application: `./<program> ARGS...` in the AM
    /// role with `app_config` (JSON) as its `SPINDLE_APP_CONFIG`.
    pub async fn submit(&self, name: &str, args: &[&str], app_config: &str) -> String {
        let id = self.new_application().await;
        self.submit_as(&id, name, args, app_config).await;
        id
    }

    /// [`Cluster::submit`] under an id taken before. One attempt only, so that a failure is
    /// final at once.
    pub async fn submit_as(&self, id: &str, name: &str, args: &[&str], app_config: &str) {
        let mut client = self.client.clone();
        let mut command = vec![format!("./{}", self.program.name)];
        command.extend(args.iter().map(|a| a.to_string()));
        let environment: HashMap<String, String> = [
            (ROLE_ENV, ROLE_AM.to_string()),
            (APP_CONFIG_ENV, app_config.to_string()),
            (
                "SPINDLE_LOCAL_RESOURCES",
                serde_json::to_string(&[&self.program]).unwrap(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let launch = spindle_containers::LaunchContext {
            command,
            env: environment.into_iter().collect(),
            local_resources: vec![self.program.clone()],
        };
        client
            .submit_application(proto::SubmitApplicationRequest {
                application_id: id.to_string(),
                name: name.to_string(),
                queue: "default".into(),
                application_type: "SPINDLE".into(),
                tags: vec![],
                am_resource: Some(Resource::new(256, 1).to_proto()),
                am_container: Some(launch.to_proto()),
                max_attempts: 1,
                user: current_user(),
                unmanaged: false,
            })
            .await
            .expect("the submission is accepted");
    }

    /// Follows the application until its final report.
    pub async fn final_report(&self, app: &str) -> proto::ApplicationReport {
        let mut reports = self
            .client
            .clone()
            .watch_application(proto::GetApplicationReportRequest {
                application_id: app.to_string(),
            })
            .await
            .unwrap()
            .into_inner();
        guarded("the application to end", async {
            let mut last = None;
            while let Some(report) = reports.message().await.unwrap() {
                last = Some(report);
            }
            last.expect("at least one report")
        })
        .await
    }

    /// Every log file of the application's containers, `container/file` → content, for
    /// assertions and for the story a failing scenario prints.
    pub fn logs(&self, app: &str) -> Vec<(String, String)> {
        let dir: PathBuf = self.nm_dir.path().join("logs").join(app);
        let mut logs = Vec::new();
        let Ok(containers) = std::fs::read_dir(&dir) else {
            return logs;
        };
        let mut containers: Vec<_> = containers.flatten().map(|e| e.path()).collect();
        containers.sort();
        for container in containers {
            for file in ["stdout", "stderr"] {
                let content = std::fs::read_to_string(container.join(file)).unwrap_or_default();
                let name = container.file_name().unwrap().to_string_lossy().to_string();
                logs.push((format!("{name}/{file}"), content));
            }
        }
        logs
    }

    pub fn print_logs(&self, app: &str) {
        for (name, content) in self.logs(app) {
            eprintln!("----- {name}\n{content}");
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(nm) = self.nm.take() {
            guarded("the NM to shut down", nm.shutdown()).await;
        }
        if let Some(rm) = self.rm.take() {
            guarded("the RM to shut down", rm.shutdown()).await;
        }
    }
}

/// Uploads this very program (Stat first, as the client does) and returns it as a resource.
async fn stage_this_program(mut staging: StagingStoreClient<Authenticated>) -> LocalResource {
    let path = std::env::current_exe().expect("the test knows its own path");
    let data = std::fs::read(&path).expect("the test reads its own program");
    let sha256 = hex::encode(Sha256::digest(&data));
    let stat = staging
        .stat(proto::StatRequest {
            sha256: sha256.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    if !stat.exists {
        let mut chunks: Vec<proto::FileChunk> = data
            .chunks(STAGING_CHUNK)
            .map(|c| proto::FileChunk {
                data: c.to_vec(),
                ..Default::default()
            })
            .collect();
        chunks[0].sha256 = sha256.clone();
        chunks[0].size = data.len() as u64;
        staging
            .upload(tokio_stream::iter(chunks))
            .await
            .expect("the program uploads");
    }
    LocalResource {
        name: path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a UTF-8 program name")
            .to_string(),
        sha256,
        size: data.len() as u64,
        executable: true,
    }
}
