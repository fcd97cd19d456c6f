//! What the node manager's integration tests share: the fake RM, the cluster's secret and
//! tokens, an HTTP GET, a node manager in a temp dir with a client that carries an NM token for
//! the tests' application, and waiting helpers with generous hang guards (never timing
//! assertions).

#![allow(dead_code)]

pub mod child;
pub mod fake_rm;
pub mod http;
pub mod prometheus;
pub mod tokens;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use spindle_node_manager::{NmConfig, NodeManager};
use spindle_protocol as proto;
use tonic::transport::Channel;

use tokens::NmClient;

#[allow(unused_imports)]
pub use fake_rm::{FakeRm, sha256};

pub const HANG_GUARD: Duration = Duration::from_secs(60);
/// Long enough that a heartbeat the test sees is the out-of-band one a completion sent.
pub const SLOW_HEARTBEAT_MS: u32 = 600_000;
pub const APP: &str = "application_1700000000000_0001";

pub fn container_id(n: u64) -> String {
    format!("container_1700000000000_0001_01_{n:06}")
}

pub async fn guarded<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("hang guard: {what}"))
}

pub struct Node {
    pub nm: Option<NodeManager>,
    /// Carries an NM token for `APP` on this node.
    pub client: NmClient,
    pub channel: Channel,
    pub work_dir: tempfile::TempDir,
}

/// The configuration the tests' node managers start from: loopback, `work_dir`, 4 GB, 4 vcores,
/// the cluster's daemon secret in a file in `work_dir`.
pub fn config(rm: SocketAddr, work_dir: &Path) -> NmConfig {
    NmConfig {
        rm: rm.to_string(),
        bind: "127.0.0.1:0".parse().unwrap(),
        work_dir: work_dir.to_path_buf(),
        memory_mb: Some(4096),
        vcores: Some(4),
        daemon_secret_file: Some(tokens::write_secret(work_dir, tokens::DAEMON_SECRET)),
        ..NmConfig::default()
    }
}

impl Node {
    /// Starts a node manager and waits until it has registered (it can check tokens then).
    pub async fn start(rm: SocketAddr) -> Node {
        Node::start_with(rm, |_| {}).await
    }

    /// Starts a node manager with the tests' configuration as `configure` changes it, and waits
    /// until it has registered.
    pub async fn start_with(rm: SocketAddr, configure: impl FnOnce(&mut NmConfig)) -> Node {
        let node = Node::start_unregistered(rm, configure).await;
        guarded("registration", node.nm().registered()).await;
        node
    }

    /// Starts a node manager and returns at once (its RM may not be up).
    pub async fn start_unregistered(rm: SocketAddr, configure: impl FnOnce(&mut NmConfig)) -> Node {
        let work_dir = tempfile::tempdir().unwrap();
        let mut config = config(rm, work_dir.path());
        configure(&mut config);
        let nm = NodeManager::start(config)
            .await
            .expect("node manager starts");
        let channel = Channel::from_shared(format!("http://{}", nm.rpc_addr()))
            .unwrap()
            .connect()
            .await
            .expect("connects to the container manager");
        let client = tokens::client(
            channel.clone(),
            tokens::nm_token(nm.node_id().as_str(), APP),
        );
        Node {
            nm: Some(nm),
            client,
            channel,
            work_dir,
        }
    }

    pub fn nm(&self) -> &NodeManager {
        self.nm.as_ref().unwrap()
    }

    pub fn node_id(&self) -> String {
        self.nm().node_id().to_string()
    }

    /// A client of this node whose calls carry `token`.
    pub fn client_with(&self, token: String) -> NmClient {
        tokens::client(self.channel.clone(), token)
    }

    pub fn root(&self) -> PathBuf {
        self.nm().work_dir().to_path_buf()
    }

    pub fn container_dir(&self, n: u64) -> PathBuf {
        self.root().join("appcache").join(APP).join(container_id(n))
    }

    pub fn log_dir(&self, n: u64) -> PathBuf {
        self.root().join("logs").join(APP).join(container_id(n))
    }

    /// Starts `requests`, each with the container token the RM would have allocated it (unless
    /// it carries one).
    pub async fn start_containers(
        &mut self,
        requests: Vec<proto::StartContainerRequest>,
    ) -> proto::StartContainersResponse {
        let requests = tokens::with_tokens(requests, &self.node_id());
        self.client
            .start_containers(proto::StartContainersRequest { requests })
            .await
            .expect("StartContainers answers")
            .into_inner()
    }

    pub async fn shutdown(mut self) {
        if let Some(nm) = self.nm.take() {
            guarded("shutdown", nm.shutdown()).await;
        }
    }
}

/// A request to run the staged `program` (as `./prog`) with `args`.
pub fn run_program(
    n: u64,
    digest: &str,
    size: usize,
    args: &[&str],
) -> proto::StartContainerRequest {
    let mut command = vec!["./prog".to_string()];
    command.extend(args.iter().map(|a| a.to_string()));
    proto::StartContainerRequest {
        container_id: container_id(n),
        resource: Some(proto::Resource {
            memory_mb: 512,
            vcores: 1,
        }),
        launch_context: Some(proto::ContainerLaunchContext {
            command,
            environment: [("GREETING".to_string(), "it's $HOME".to_string())].into(),
            local_resources: vec![proto::LocalResource {
                name: "prog".into(),
                sha256: digest.into(),
                size: size as u64,
                executable: true,
            }],
        }),
        container_token: String::new(),
    }
}

/// Like `run_program`, with `memory_mb` of memory.
pub fn run_program_in(
    n: u64,
    digest: &str,
    size: usize,
    args: &[&str],
    memory_mb: i64,
) -> proto::StartContainerRequest {
    let mut request = run_program(n, digest, size, args);
    request.resource = Some(proto::Resource {
        memory_mb,
        vcores: 1,
    });
    request
}

/// Waits for the next heartbeat that reports `id` complete.
pub async fn completion(rm: &mut FakeRm, id: &str) -> proto::ContainerStatus {
    guarded("a heartbeat reporting the completion", async {
        loop {
            let beat = rm.heartbeats.recv().await.expect("heartbeats flow");
            let done = beat.containers.into_iter().find(|c| {
                c.container_id == id && c.state == proto::ContainerState::Complete as i32
            });
            if let Some(status) = done {
                return status;
            }
        }
    })
    .await
}

pub fn pid(text: &str) -> u32 {
    text.trim().parse().expect("a pid")
}

/// Kills the process groups it holds when dropped, so a failing test leaves no container
/// running (containers outlive a killed node manager, by design).
#[derive(Default)]
pub struct GroupReaper(pub Vec<u32>);

impl Drop for GroupReaper {
    fn drop(&mut self) {
        for &group in &self.0 {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(group as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Whether process `pid` still runs (gone or a zombie both count as ended).
pub fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits (bounded) until the kernel has carried out a kill.
pub async fn ended(pid: u32) {
    guarded("the process to end", async {
        while running(pid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// Waits until a program has written a whole line to `path` (its way of saying it is set up).
pub async fn written(path: &Path) -> String {
    guarded("the program to write its file", async {
        loop {
            if let Ok(text) = std::fs::read_to_string(path)
                && text.ends_with('\n')
            {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

/// Every path under `root` (relative, sorted): what a refused request must leave as it was.
pub fn tree(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            out.push(path.strip_prefix(root).unwrap().to_path_buf());
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(root, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}
