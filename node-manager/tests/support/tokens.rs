//! The cluster's secrets and tokens as the tests' RM holds them: a fixed daemon secret (written
//! to a file of mode 0600 for each node manager), the node key the fake RM announces first, and
//! the NM and container tokens the RM would hand out, minted with that key. A test that wants a
//! forged, expired or misdirected token mints it here with other values.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use spindle_protocol as proto;
use spindle_security::{CallCredentials, Key, NM_TOKEN_HEADER, Secret, derive_node_key, issue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use spindle_protocol::container_manager_client::ContainerManagerClient;

/// The tests' daemon secret (64 hex digits, as the RM generates them).
pub const DAEMON_SECRET: &str = "5d1cb0139a4e8f0d7c2b6a9e1f3d5c7b9a0e2d4f6c8b0a1e3d5f7c9b2a4e6d8f";
/// How long the tokens minted here last (the RM's container-token expiry).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(600);
/// Whom the tests' applications belong to; no such user exists on a test host.
pub const OWNER: &str = "spindle-test-owner";

pub fn daemon_secret() -> Secret {
    Secret::from_text(DAEMON_SECRET)
}

/// Writes `text` as a secret file (mode 0600) at `dir/daemon.secret`.
pub fn write_secret(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("daemon.secret");
    std::fs::write(&path, format!("{text}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// The node key the fake RM announces unless a test rolls it.
pub fn first_node_key() -> proto::NodeKey {
    proto::NodeKey {
        key_id: 1,
        seed: vec![7; 32],
    }
}

/// The key `announced` stands for in this cluster.
pub fn key(announced: &proto::NodeKey) -> Key {
    derive_node_key(&daemon_secret(), announced)
}

pub fn now_ms() -> u64 {
    spindle_security::now_ms()
}

fn expiry() -> u64 {
    now_ms() + TOKEN_LIFETIME.as_millis() as u64
}

/// An NM token for `app` on `node`, signed with `key`, expiring at `expiry_ms`.
pub fn nm_token_with(key: &Key, node: &str, app: &str, expiry_ms: u64) -> String {
    issue(
        proto::NmTokenIdentifier {
            application_id: app.to_string(),
            node_id: node.to_string(),
            user: OWNER.to_string(),
            expiry_ms,
            key_id: 0,
        },
        key,
    )
}

/// The NM token the RM would give for `app` on `node`.
pub fn nm_token(node: &str, app: &str) -> String {
    nm_token_with(&key(&first_node_key()), node, app, expiry())
}

/// What a container token says, as the RM would allocate it.
#[derive(Debug, Clone)]
pub struct Grant {
    pub container_id: String,
    pub node_id: String,
    pub resource: Option<proto::Resource>,
    pub application_id: String,
    pub user: String,
    pub expiry_ms: u64,
}

impl Grant {
    /// The grant for `request` on `node`, owned by `user`.
    pub fn for_request(request: &proto::StartContainerRequest, node: &str, user: &str) -> Grant {
        let application_id = request
            .container_id
            .parse::<spindle_containers::ContainerId>()
            .map(|id| id.application().to_string())
            .unwrap_or_default();
        Grant {
            container_id: request.container_id.clone(),
            node_id: node.to_string(),
            resource: request.resource,
            application_id,
            user: user.to_string(),
            expiry_ms: expiry(),
        }
    }

    pub fn sign(&self, key: &Key) -> String {
        issue(
            proto::ContainerTokenIdentifier {
                container_id: self.container_id.clone(),
                node_id: self.node_id.clone(),
                resource: self.resource,
                application_id: self.application_id.clone(),
                user: self.user.clone(),
                expiry_ms: self.expiry_ms,
                key_id: 0,
            },
            key,
        )
    }
}

/// `requests` with the container tokens the RM would have allocated them for `user` on `node`
/// (a request that carries one keeps it).
pub fn with_tokens_for(
    mut requests: Vec<proto::StartContainerRequest>,
    node: &str,
    user: &str,
) -> Vec<proto::StartContainerRequest> {
    let key = key(&first_node_key());
    for request in &mut requests {
        if request.container_token.is_empty() {
            request.container_token = Grant::for_request(request, node, user).sign(&key);
        }
    }
    requests
}

/// `with_tokens_for` the tests' application owner.
pub fn with_tokens(
    requests: Vec<proto::StartContainerRequest>,
    node: &str,
) -> Vec<proto::StartContainerRequest> {
    with_tokens_for(requests, node, OWNER)
}

/// A container manager client whose every call carries `token`.
pub type NmClient = ContainerManagerClient<InterceptedService<Channel, CallCredentials>>;

pub fn client(channel: Channel, token: String) -> NmClient {
    ContainerManagerClient::with_interceptor(
        channel,
        CallCredentials::with_token(NM_TOKEN_HEADER, token, OWNER.to_string()),
    )
}

/// A client of the node manager at `addr` (node id `node`) for application `app`.
pub async fn connect(addr: std::net::SocketAddr, node: &str, app: &str) -> NmClient {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("connects to the container manager");
    client(channel, nm_token(node, app))
}

/// The user the tests' containers run as: the fallback when the tests run as root (the owner is
/// no user of the host), else the tests' own user.
pub fn container_user() -> String {
    if nix::unistd::geteuid().is_root() {
        "nobody".to_string()
    } else {
        spindle_security::current_user()
    }
}
