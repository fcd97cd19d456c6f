//! The node's side of cluster security, against the tests' RM: a node proves the daemon secret
//! (a wrong one cannot register, and says why); it starts only the containers the RM allocated
//! (a forged, expired, misdirected or resized container token starts nothing); an NM token
//! opens one application's containers and no other's; keys the RM rolls are taken from its
//! heartbeat answers; a container's environment holds no secret. As root, containers run as
//! their owner (a user the test creates), or as `nobody` for an owner that is root, in
//! directories that are theirs alone; and a work dir the containers could not reach is refused.

mod support;

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use spindle_node_manager::{NmConfig, NodeManager};
use spindle_protocol as proto;
use support::tokens::{self, Grant, OWNER};
use support::{
    APP, FakeRm, Node, SLOW_HEARTBEAT_MS, completion, container_id, guarded, http, run_program,
    tree,
};
use tonic::Code;

/// Prints who it runs as, its groups, and its environment.
const WHOAMI: &[u8] = b"#!/bin/bash
id -u
id -g
env
";

/// Runs until stopped; says it is up by writing `up`.
const SLEEPER: &[u8] = b"#!/bin/bash
echo up > up
exec sleep 600
";

const OTHER_APP: &str = "application_1700000000000_0002";

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The directories a start would have made for container `n` (of `APP`).
fn made_for(node: &Node, n: u64) -> Vec<std::path::PathBuf> {
    vec![
        node.container_dir(n),
        node.log_dir(n),
        node.root().join("nmprivate").join(container_id(n)),
    ]
}

#[tokio::test]
async fn only_the_container_its_token_names_starts_and_a_bad_token_starts_nothing() {
    let rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let digest = rm.stage(WHOAMI);
    let mut node = Node::start(rm.addr).await;
    let key = tokens::key(&tokens::first_node_key());
    let node_id = node.node_id();
    let request = |n| run_program(n, &digest, WHOAMI.len(), &[]);
    let grant = |n| Grant::for_request(&request(n), &node_id, OWNER);

    let rogue = spindle_security::derive_node_key(
        &spindle_security::Secret::from_text(&"r".repeat(64)),
        &tokens::first_node_key(),
    );
    let forged = grant(1).sign(&rogue);
    let expired = Grant {
        expiry_ms: tokens::now_ms() - 5_000,
        ..grant(2)
    }
    .sign(&key);
    let wrong_node = Grant {
        node_id: "10.9.9.9:8041".into(),
        ..grant(3)
    }
    .sign(&key);
    let wrong_resource = Grant {
        resource: Some(proto::Resource {
            memory_mb: 128,
            vcores: 1,
        }),
        ..grant(4)
    }
    .sign(&key);
    let wrong_container = grant(50).sign(&key);
    let other_app_container = "container_1700000000000_0002_01_000006";
    let mut of_other_app = request(6);
    of_other_app.container_id = other_app_container.into();
    let other_app_token = Grant::for_request(&of_other_app, &node_id, OWNER).sign(&key);

    let with = |n, token: String| proto::StartContainerRequest {
        container_token: token,
        ..request(n)
    };
    let mut none = request(7);
    none.container_token = String::new();
    let requests = vec![
        with(1, forged),
        with(2, expired),
        with(3, wrong_node),
        with(4, wrong_resource),
        with(5, wrong_container),
        proto::StartContainerRequest {
            container_token: other_app_token,
            ..of_other_app
        },
        with(8, grant(8).sign(&key)),
    ];
    let before = tree(&node.root());
    let answer = node
        .client
        .start_containers(proto::StartContainersRequest { requests })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.started, vec![container_id(8)]);
    let failed: HashMap<String, String> = answer
        .failed
        .into_iter()
        .map(|f| (f.container_id, f.message))
        .collect();
    let expect = |id: &str, phrase: &str| {
        let message = &failed[id];
        assert!(
            message.starts_with("container_token: ") && message.contains(phrase),
            "{id}: {message:?} should say {phrase:?}"
        );
    };
    expect(&container_id(1), "forged or altered");
    expect(&container_id(2), "expired");
    expect(
        &container_id(3),
        "it is for node 10.9.9.9:8041, and this is node",
    );
    expect(&container_id(4), "it allows memory_mb=128");
    expect(&container_id(5), "is for container");
    expect(
        other_app_container,
        &format!("it is for application {OTHER_APP}, and the NM token for application {APP}"),
    );
    assert_eq!(failed.len(), 6);
    for n in 1..=5 {
        for dir in made_for(&node, n) {
            assert!(!dir.exists(), "{} was made", dir.display());
        }
    }
    // Only container 8's own directories (and its user's file cache) appeared.
    let app_dirs = [
        std::path::Path::new("appcache").join(APP),
        std::path::Path::new("logs").join(APP),
    ];
    let appeared: Vec<_> = tree(&node.root())
        .into_iter()
        .filter(|p| !before.contains(p))
        .filter(|p| !p.starts_with("usercache") && !p.starts_with("state"))
        .filter(|p| !app_dirs.contains(p))
        .filter(|p| !p.to_string_lossy().contains(&container_id(8)))
        .collect();
    assert_eq!(appeared, Vec::<std::path::PathBuf>::new());
    let statuses = node
        .client
        .get_container_statuses(proto::GetContainerStatusesRequest {
            container_ids: (1..=5).map(container_id).collect(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(statuses.statuses.is_empty());
    assert_eq!(statuses.failed.len(), 5);

    // A request without a token is refused too, naming what is missing.
    let answer = node
        .client
        .start_containers(proto::StartContainersRequest {
            requests: vec![none],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        answer.failed[0]
            .message
            .starts_with("container_token: missing"),
        "{:?}",
        answer.failed
    );
    node.shutdown().await;
}

#[tokio::test]
async fn an_nm_token_opens_its_own_application_only() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let digest = rm.stage(SLEEPER);
    let mut node = Node::start(rm.addr).await;
    let answer = node
        .start_containers(vec![run_program(1, &digest, SLEEPER.len(), &[])])
        .await;
    assert_eq!(answer.started, vec![container_id(1)]);
    support::written(&node.container_dir(1).join("up")).await;

    let mut other = node.client_with(tokens::nm_token(&node.node_id(), OTHER_APP));
    let stopped = other
        .stop_containers(proto::StopContainersRequest {
            container_ids: vec![container_id(1)],
            exit_status: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(stopped.stopped.is_empty());
    assert!(
        stopped.failed[0].message.contains(&format!(
            "belongs to application {APP}, and the NM token allows application {OTHER_APP} only"
        )),
        "{:?}",
        stopped.failed
    );
    let statuses = other
        .get_container_statuses(proto::GetContainerStatusesRequest {
            container_ids: vec![container_id(1)],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(statuses.statuses.is_empty() && statuses.failed.len() == 1);
    let read = other
        .read_container_log(proto::ReadContainerLogRequest {
            container_id: container_id(1),
            file: "stdout".into(),
            offset: 0,
            follow: false,
        })
        .await
        .unwrap_err();
    assert_eq!(read.code(), Code::PermissionDenied, "{read:?}");
    let listed = other
        .list_container_logs(proto::ListContainerLogsRequest {
            application_id: APP.into(),
            container_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(listed.code(), Code::PermissionDenied, "{listed:?}");
    let page = http::get(
        node.nm().web_addr(),
        &format!(
            "/node/containerlogs/{}/stdout?nm.token={}",
            container_id(1),
            tokens::nm_token(&node.node_id(), OTHER_APP)
        ),
    )
    .await;
    assert_eq!(page.status, 403, "{}", page.body);

    // Without a token, with a forged one, or one for another node: not even heard.
    let forged = tokens::nm_token_with(
        &spindle_security::Key::random(1).unwrap(),
        &node.node_id(),
        APP,
        tokens::now_ms() + 60_000,
    );
    let elsewhere = tokens::nm_token("10.9.9.9:8041", APP);
    for token in [forged, elsewhere] {
        let err = node
            .client_with(token)
            .get_container_statuses(proto::GetContainerStatusesRequest {
                container_ids: vec![container_id(1)],
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");
    }
    let mut anonymous = spindle_protocol::container_manager_client::ContainerManagerClient::new(
        node.channel.clone(),
    );
    let err = anonymous
        .stop_containers(proto::StopContainersRequest {
            container_ids: vec![container_id(1)],
            exit_status: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("NM token"), "{}", err.message());

    // Still running: only its own application's token stops it.
    let statuses = node
        .client
        .get_container_statuses(proto::GetContainerStatusesRequest {
            container_ids: vec![container_id(1)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        statuses.statuses[0].state,
        proto::ContainerState::Running as i32
    );
    node.client
        .stop_containers(proto::StopContainersRequest {
            container_ids: vec![container_id(1)],
            exit_status: 0,
        })
        .await
        .unwrap();
    assert_eq!(
        completion(&mut rm, &container_id(1)).await.exit_status,
        -105
    );
    node.shutdown().await;
}

#[tokio::test]
async fn before_it_has_keys_a_node_answers_unavailable() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = free.local_addr().unwrap();
    drop(free);
    let mut node = Node::start_unregistered(nowhere, |_| {}).await;
    let err = node
        .client
        .start_containers(proto::StartContainersRequest { requests: vec![] })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(
        err.message().contains("not registered"),
        "{}",
        err.message()
    );
    node.shutdown().await;
}

#[tokio::test]
async fn keys_the_rm_rolls_are_taken_from_its_heartbeat_answers() {
    let rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), 20).await;
    let digest = rm.stage(WHOAMI);
    let mut node = Node::start(rm.addr).await;
    let node_id = node.node_id();
    let request = |n| run_program(n, &digest, WHOAMI.len(), &[]);
    let second = proto::NodeKey {
        key_id: 2,
        seed: vec![8; 32],
    };
    let new_key = tokens::key(&second);
    let signed_with_new = |n| proto::StartContainerRequest {
        container_token: Grant::for_request(&request(n), &node_id, OWNER).sign(&new_key),
        ..request(n)
    };
    let answer = node.start_containers(vec![signed_with_new(1)]).await;
    assert!(
        answer.failed[0].message.contains("not among the keys"),
        "{:?}",
        answer.failed
    );

    // The new key signs; the old one still checks what it signed.
    rm.announce(vec![second.clone(), tokens::first_node_key()]);
    guarded("the node to hear of the new key", rm.keys_heard()).await;
    let answer = node
        .start_containers(vec![signed_with_new(2), request(3)])
        .await;
    assert_eq!(answer.failed, vec![]);
    assert_eq!(answer.started.len(), 2);

    // Rolled out: what the old key signed is refused from then on, NM tokens too.
    rm.announce(vec![second]);
    guarded("the node to hear the old key is gone", rm.keys_heard()).await;
    let old_token = node
        .client
        .start_containers(proto::StartContainersRequest { requests: vec![] })
        .await
        .unwrap_err();
    assert_eq!(old_token.code(), Code::Unauthenticated);
    assert!(
        old_token.message().contains("key 1"),
        "{}",
        old_token.message()
    );
    let new_nm_token = tokens::nm_token_with(&new_key, &node_id, APP, tokens::now_ms() + 60_000);
    let requests = tokens::with_tokens(vec![request(4)], &node_id);
    let answer = node
        .client_with(new_nm_token)
        .start_containers(proto::StartContainersRequest { requests })
        .await
        .unwrap()
        .into_inner();
    assert!(
        answer.failed[0].message.contains("not among the keys"),
        "{:?}",
        answer.failed
    );
    node.shutdown().await;
}

#[tokio::test]
async fn a_node_with_the_wrong_daemon_secret_cannot_register_and_says_why() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let work_dir = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let config = NmConfig {
        daemon_secret_file: Some(tokens::write_secret(secrets.path(), &"w".repeat(64))),
        ..support::config(rm.addr, work_dir.path())
    };
    let nm = NodeManager::start(config).await.unwrap();
    let err = guarded("the refusal", nm.failed()).await.to_string();
    assert!(
        err.starts_with(&format!("the RM at {} refused to register", rm.addr)),
        "{err}"
    );
    assert!(
        err.contains("does not match") && err.contains("SPINDLE_DAEMON_SECRET_FILE"),
        "{err}"
    );
    assert!(rm.registrations.try_recv().is_err(), "nothing registered");
    guarded("shutdown", nm.shutdown()).await;
}

#[tokio::test]
async fn a_node_without_a_daemon_secret_does_not_start_and_says_where_to_find_it() {
    let work_dir = tempfile::tempdir().unwrap();
    let config = NmConfig {
        daemon_secret_file: None,
        ..support::config("127.0.0.1:1".parse().unwrap(), work_dir.path())
    };
    let err = NodeManager::start(config).await.err().unwrap().to_string();
    for phrase in [
        "--daemon-secret-file",
        "SPINDLE_DAEMON_SECRET_FILE",
        "daemon-secret-file",
        "<state-dir>/daemon.secret",
    ] {
        assert!(err.contains(phrase), "{err:?} should name {phrase}");
    }
    let open = work_dir.path().join("open.secret");
    std::fs::write(&open, "x".repeat(64)).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let config = NmConfig {
        daemon_secret_file: Some(open),
        ..support::config("127.0.0.1:1".parse().unwrap(), work_dir.path())
    };
    let err = NodeManager::start(config).await.err().unwrap().to_string();
    assert!(
        err.starts_with("daemon-secret-file: ") && err.contains("chmod 600"),
        "{err}"
    );
}

#[tokio::test]
async fn a_container_environment_holds_no_secret() {
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let digest = rm.stage(WHOAMI);
    let mut node = Node::start(rm.addr).await;
    let requests = tokens::with_tokens(
        vec![run_program(1, &digest, WHOAMI.len(), &[])],
        &node.node_id(),
    );
    let container_token = requests[0].container_token.clone();
    let answer = node.start_containers(requests).await;
    assert_eq!(answer.started, vec![container_id(1)]);
    assert_eq!(completion(&mut rm, &container_id(1)).await.exit_status, 0);
    let out = std::fs::read_to_string(node.log_dir(1).join("stdout")).unwrap();
    let nm_token = tokens::nm_token(&node.node_id(), APP);
    for secret in [
        tokens::DAEMON_SECRET,
        container_token.as_str(),
        &nm_token[..nm_token.find('.').unwrap()],
        "SPINDLE_DAEMON_SECRET_FILE",
        "daemon.secret",
    ] {
        assert!(
            !out.contains(secret),
            "the environment shows {secret:?}:\n{out}"
        );
    }
    // The variables it has are the contract's, the launch context's and the allowed ones.
    assert!(
        out.contains(&format!("CONTAINER_ID={}", container_id(1))),
        "{out}"
    );
    node.shutdown().await;
}

/// A host user made for one test, deleted when dropped (whether the test passed or not).
struct TestUser {
    name: String,
}

impl TestUser {
    fn create() -> TestUser {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("spindle-test-{:x}{:x}", std::process::id(), nanos % 0xffff);
        let status = std::process::Command::new("useradd")
            // Not --system: a uid below min-user-id (1000) would run as the fallback user.
            .args(["--no-create-home", &name])
            .status()
            .expect("useradd runs");
        assert!(status.success(), "useradd {name}: {status}");
        TestUser { name }
    }

    fn uid(&self) -> u32 {
        nix::unistd::User::from_name(&self.name)
            .unwrap()
            .expect("the user exists")
            .uid
            .as_raw()
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel")
            .arg(&self.name)
            .status();
    }
}

/// The first line of a completed container's stdout: `id -u`.
fn uid_of(node: &Node, n: u64) -> u32 {
    let out = std::fs::read_to_string(node.log_dir(n).join("stdout")).unwrap();
    out.lines().next().unwrap().parse().unwrap()
}

fn mode_and_owner(path: &std::path::Path) -> (u32, u32) {
    let meta = std::fs::metadata(path).unwrap();
    (meta.mode() & 0o7777, meta.uid())
}

#[tokio::test]
async fn as_root_a_container_runs_as_its_owner_in_directories_of_its_own() {
    if !is_root() {
        eprintln!("not root: running containers as other users is not tested");
        return;
    }
    let user = TestUser::create();
    let uid = user.uid();
    let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
    let digest = rm.stage(WHOAMI);
    let mut node = Node::start(rm.addr).await;
    let requests = tokens::with_tokens_for(
        vec![run_program(1, &digest, WHOAMI.len(), &[])],
        &node.node_id(),
        &user.name,
    );
    let answer = node.start_containers(requests).await;
    assert_eq!(answer.failed, vec![]);
    assert_eq!(completion(&mut rm, &container_id(1)).await.exit_status, 0);
    assert_eq!(uid_of(&node, 1), uid);
    let out = std::fs::read_to_string(node.log_dir(1).join("stdout")).unwrap();
    assert!(out.contains(&format!("USER={}\n", user.name)), "{out}");

    let app_dir = node.root().join("appcache").join(APP);
    assert_eq!(mode_and_owner(&app_dir), (0o700, uid));
    assert_eq!(mode_and_owner(&node.container_dir(1)), (0o700, uid));
    assert_eq!(mode_and_owner(&node.log_dir(1)), (0o700, uid));
    assert_eq!(mode_and_owner(&node.log_dir(1).join("stdout")).1, uid);
    let cached = node
        .root()
        .join("usercache")
        .join(&user.name)
        .join("filecache")
        .join(&digest);
    assert!(cached.is_file(), "{} is cached", cached.display());
    // Nobody but the node manager enters the caches; the node's directories are passable only.
    assert_eq!(mode_and_owner(&node.root().join("usercache")), (0o700, 0));
    assert_eq!(mode_and_owner(&node.root().join("appcache")), (0o711, 0));
    node.shutdown().await;
    drop(user);
}

#[tokio::test]
async fn as_root_an_application_of_root_runs_as_the_fallback_unless_root_is_allowed() {
    if !is_root() {
        eprintln!("not root: running containers as other users is not tested");
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("the host has nobody")
        .uid
        .as_raw();
    for (allow_root, expected) in [(false, nobody), (true, 0)] {
        let mut rm = FakeRm::start("127.0.0.1:0".parse().unwrap(), SLOW_HEARTBEAT_MS).await;
        let digest = rm.stage(WHOAMI);
        let mut node = Node::start_with(rm.addr, |c| c.allow_root = allow_root).await;
        let requests = tokens::with_tokens_for(
            vec![run_program(1, &digest, WHOAMI.len(), &[])],
            &node.node_id(),
            "root",
        );
        assert_eq!(node.start_containers(requests).await.failed, vec![]);
        assert_eq!(completion(&mut rm, &container_id(1)).await.exit_status, 0);
        assert_eq!(uid_of(&node, 1), expected, "allow-root: {allow_root}");
        node.shutdown().await;
    }
}

#[tokio::test]
async fn as_root_a_work_dir_below_a_closed_directory_is_refused_naming_it() {
    if !is_root() {
        eprintln!("not root: containers run as the node manager's user, who reaches its work dir");
        return;
    }
    let closed = tempfile::tempdir().unwrap();
    std::fs::set_permissions(closed.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let work_dir = closed.path().join("nm");
    let config = support::config("127.0.0.1:1".parse().unwrap(), closed.path());
    let config = NmConfig { work_dir, ..config };
    let err = NodeManager::start(config).await.err().unwrap().to_string();
    assert!(
        err.contains(&format!(
            "containers run as \"nobody\", who cannot pass through {} (mode 0700)",
            std::fs::canonicalize(closed.path()).unwrap().display()
        )),
        "{err}"
    );
    let err = NodeManager::start(NmConfig {
        fallback_user: "no-such-user-spindle".into(),
        ..support::config("127.0.0.1:1".parse().unwrap(), closed.path())
    })
    .await
    .err()
    .unwrap()
    .to_string();
    assert_eq!(
        err,
        "fallback-user \"no-such-user-spindle\": no such user on this host"
    );
}
