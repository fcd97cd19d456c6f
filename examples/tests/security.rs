//! Security end to end, against real `spindle` processes: who may join the cluster, who may
//! call it, whose applications they may touch, and which user a container runs as.
//!
//! - A node manager needs the cluster's daemon secret: with a wrong one, or with the client
//!   secret in its place, it cannot join (a clear error, and the node is never listed).
//! - A client needs the client secret: a wrong one, or none, is refused with one clear line;
//!   a secret file others may read is refused before anything is sent.
//! - Only an application's owner and the cluster's admins may kill it or read its logs.
//! - As root, a container runs as the submitting user when that user exists on the host, and
//!   as `nobody` when root submits.
//! - A cluster started inside `spindle submit --master local-cluster[…]` needs nothing set up.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::{
    COMMAND, Cluster, Running, TempDir, app_id_of, distributed_shell, spindle, wait_until,
};

/// Two nodes of 1024 MB: room for an AM and a few small containers.
const NODE_MEMORY_MB: u64 = 1024;
/// The RM flags of `Cluster::start` (calm expiries).
const CALM: &[&str] = &["--nm-liveness-expiry", "30s", "--am-liveness-expiry", "30s"];

/// A secret file of `mode` holding a random secret of the right length, in `dir`.
fn secret_file(dir: &Path, name: &str, mode: u32) -> PathBuf {
    use std::io::Read as _;
    let path = dir.join(name);
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("random bytes");
    let text: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    fs::write(&path, format!("{text}\n")).expect("write secret");
    fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod secret");
    path
}

/// A copy of `from` with `mode`.
fn copy_with_mode(from: &Path, to: &Path, mode: u32) -> PathBuf {
    fs::copy(from, to).expect("copy secret");
    fs::set_permissions(to, fs::Permissions::from_mode(mode)).expect("chmod copy");
    to.to_path_buf()
}

/// `spindle node-manager` joining `cluster` with `daemon_secret`, left running in the background.
fn rogue_node_manager(cluster: &Cluster, daemon_secret: &Path, work_dir: &Path) -> Running {
    let mut command = spindle();
    command
        .args([
            "node-manager",
            "--rm",
            &cluster.rm_addr,
            "--bind",
            "127.0.0.1:0",
            "--web-bind",
            "127.0.0.1:0",
            "--work-dir",
            work_dir.to_str().unwrap(),
            "--memory-mb",
            "1024",
            "--vcores",
            "2",
            "--daemon-secret-file",
            daemon_secret.to_str().unwrap(),
        ])
        .env("RUST_LOG", "info");
    Running::start(command, "a node manager with the wrong secret")
}

/// Waits until the node manager said (on stdout or in its log) that the RM refused it, and
/// returns the node id it announced, if it got that far.
fn refused_node(nm: &mut Running) -> Option<String> {
    wait_until(COMMAND, "the node manager to be refused", || {
        let said = nm.stderr_so_far().to_lowercase();
        said.contains("daemon secret") || nm.has_ended()
    });
    let log = nm.stderr_so_far();
    assert!(
        log.to_lowercase().contains("daemon secret"),
        "the refusal names the daemon secret:\n{log}"
    );
    nm.stdout_so_far()
        .lines()
        .find_map(|l| l.strip_prefix("node-id: "))
        .map(str::to_string)
}

#[test]
fn only_holders_of_the_right_secrets_may_join_or_call() {
    let cluster = Cluster::start(1, NODE_MEMORY_MB);
    let keys = TempDir::new("keys");

    // Node managers with a wrong daemon secret, or the client secret in its place.
    let wrong_daemon = secret_file(keys.path(), "wrong-daemon.secret", 0o600);
    let client_as_daemon = copy_with_mode(
        &cluster.client_secret,
        &keys.path().join("client-as-daemon.secret"),
        0o600,
    );
    let mut rogue_ids = Vec::new();
    for (i, secret) in [&wrong_daemon, &client_as_daemon].into_iter().enumerate() {
        let work_dir = keys.path().join(format!("rogue-nm-{i}"));
        let mut nm = rogue_node_manager(&cluster, secret, &work_dir);
        rogue_ids.extend(refused_node(&mut nm));
    }
    let nodes = cluster.spindle("nodes", &[]);
    assert!(nodes.ok(), "{nodes}");
    assert_eq!(nodes.stdout.matches("RUNNING").count(), 1, "{nodes}");
    for id in &rogue_ids {
        assert!(!nodes.stdout.contains(id.as_str()), "{id} listed:\n{nodes}");
    }

    // A daemon secret others may read: the node manager refuses it before it starts.
    let loose = copy_with_mode(
        &cluster.daemon_secret,
        &keys.path().join("loose-daemon.secret"),
        0o644,
    );
    let mut nm = rogue_node_manager(&cluster, &loose, &keys.path().join("loose-nm"));
    wait_until(COMMAND, "the node manager to refuse its secret", || {
        nm.has_ended()
    });
    let said = nm.stderr_so_far();
    assert!(
        said.contains("mode 0644") && said.contains("chmod 600"),
        "{said}"
    );

    // Clients: the right secret works; a wrong one, none, or a loose one is one clear line.
    let wrong_client = secret_file(keys.path(), "wrong-client.secret", 0o600);
    let wrong = cluster.spindle_with(
        &[("SPINDLE_SECRET_FILE", wrong_client.to_str().unwrap())],
        "nodes",
        &[],
    );
    assert_eq!(wrong.code, Some(1), "{wrong}");
    assert_refusal(&wrong.stderr, "ListNodes", "SPINDLE_SECRET_FILE");

    let mut bare = spindle();
    bare.args(["apps", "--rm", &cluster.rm_addr])
        .env_remove("SPINDLE_SECRET_FILE");
    let none = support::run_command(bare, "spindle apps without a secret");
    assert_eq!(none.code, Some(1), "{none}");
    assert_refusal(&none.stderr, "ListApplications", "SPINDLE_SECRET_FILE");

    let loose_client = copy_with_mode(
        &cluster.client_secret,
        &keys.path().join("loose-client.secret"),
        0o644,
    );
    let flag = cluster.spindle("nodes", &["--secret-file", loose_client.to_str().unwrap()]);
    assert_eq!(flag.code, Some(1), "{flag}");
    assert!(
        flag.stderr.contains("--secret-file")
            && flag.stderr.contains("mode 0644")
            && flag.stderr.contains("chmod 600"),
        "{flag}"
    );

    let right = cluster.spindle(
        "nodes",
        &["--secret-file", cluster.client_secret.to_str().unwrap()],
    );
    assert!(right.ok(), "{right}");
    assert!(right.stdout.contains(&cluster.node_ids[0]), "{right}");
}

/// One `error:` line naming the refused call and what to set.
fn assert_refusal(stderr: &str, call: &str, what_to_set: &str) {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line:\n{stderr}");
    assert!(errors[0].contains(&format!("refused {call}")), "{stderr}");
    assert!(errors[0].contains(what_to_set), "{stderr}");
}

/// `spindle status`'s `State` field.
fn state_of(cluster: &Cluster, app: &str) -> String {
    let status = cluster.spindle("status", &[app]);
    status
        .stdout
        .lines()
        .find_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.trim() == "State").then(|| value.trim().to_string())
        })
        .unwrap_or_default()
}

#[test]
fn only_the_owner_and_admins_may_kill_an_application_or_read_its_logs() {
    let cluster = Cluster::start_with_rm_config(2, NODE_MEMORY_MB, CALM, "  admins: [carol]\n");
    let as_user = |user: &'static str| [("SPINDLE_USER", user)];

    let submitted = cluster.spindle_with(
        &as_user("alice"),
        "submit",
        &[
            "--no-wait",
            "--",
            distributed_shell(),
            "--container-memory",
            "256",
            "--shell-command",
            "echo working; sleep 600",
        ],
    );
    assert!(submitted.ok(), "{submitted}");
    let app = app_id_of(&submitted);
    wait_until(COMMAND, "the application to run", || {
        state_of(&cluster, &app) == "RUNNING"
    });
    let status = cluster.spindle("status", &[&app]);
    assert!(
        status.stdout.contains("alice"),
        "the owner is alice:\n{status}"
    );

    // Mallory may see that it exists, but not kill it nor read its logs.
    let kill = cluster.spindle_with(&as_user("mallory"), "kill", &[&app]);
    assert_eq!(kill.code, Some(1), "{kill}");
    assert!(
        kill.stderr.contains("refused KillApplication") && kill.stderr.contains("mallory"),
        "{kill}"
    );
    let logs = cluster.spindle_with(&as_user("mallory"), "logs", &[&app]);
    assert_eq!(logs.code, Some(1), "{logs}");
    assert!(
        logs.stderr.contains("refused GetLogTokens") && logs.stderr.contains("mallory"),
        "{logs}"
    );
    assert!(!logs.stdout.contains("working"), "{logs}");

    // Its owner and an admin may read them.
    for user in ["alice", "carol"] {
        wait_until(COMMAND, "a container to have said it works", || {
            let logs = cluster.spindle_with(&as_user(user), "logs", &[&app]);
            assert!(logs.ok() || logs.code == Some(1), "{logs}");
            logs.stdout.contains("working")
        });
    }
    assert_eq!(state_of(&cluster, &app), "RUNNING");

    // An admin may kill it; then only the owner and admins read its (aggregated) logs.
    let kill = cluster.spindle_with(&as_user("carol"), "kill", &[&app]);
    assert!(kill.ok(), "{kill}");
    assert_eq!(state_of(&cluster, &app), "KILLED");
    let logs = cluster.spindle_with(&as_user("mallory"), "logs", &[&app]);
    assert_eq!(logs.code, Some(1), "{logs}");
    assert!(logs.stderr.contains("mallory"), "{logs}");
    let logs = cluster.spindle_with(&as_user("alice"), "logs", &[&app]);
    assert!(logs.stdout.contains("working"), "{logs}");
}

/// A system user made for one test, removed on drop (even when the test fails).
struct TestUser {
    name: String,
}

impl TestUser {
    /// Creates the user, or says why it cannot (not root, no `useradd`).
    fn create() -> Result<TestUser, String> {
        if !nix_is_root() {
            return Err("not running as root".into());
        }
        let name = format!("spe2e{}", std::process::id() % 1_000_000);
        let made = Command::new("useradd")
            // Not --system: a uid below the NM's min-user-id (1000) runs as the fallback user.
            .args(["--no-create-home", "--shell", "/usr/sbin/nologin"])
            .arg(&name)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run useradd: {e}"))?;
        if !made.status.success() {
            return Err(format!(
                "useradd {name} failed: {}",
                String::from_utf8_lossy(&made.stderr)
            ));
        }
        Ok(TestUser { name })
    }

    fn uid(&self) -> String {
        uid_of(&self.name)
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel")
            .arg(&self.name)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn nix_is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

fn uid_of(user: &str) -> String {
    let out = Command::new("id")
        .args(["-u", user])
        .output()
        .expect("run id");
    assert!(out.status.success(), "no user {user}");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The uids the containers of `app` printed: the lines of its logs that are a number.
fn printed_uids(cluster: &Cluster, env: &[(&str, &str)], app: &str) -> Vec<String> {
    let logs = cluster.spindle_with(env, "logs", &[app]);
    assert!(logs.ok(), "{logs}");
    logs.stdout
        .lines()
        .filter(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_container_runs_as_its_submitter_and_roots_as_nobody() {
    let user = match TestUser::create() {
        Ok(user) => user,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let cluster = Cluster::start(1, NODE_MEMORY_MB);
    let shell = ["--container-memory", "256", "--shell-command", "id -u"];

    let as_user = [("SPINDLE_USER", user.name.as_str())];
    let mut line = vec!["--", distributed_shell()];
    line.extend_from_slice(&shell);
    let run = cluster.spindle_with(&as_user, "submit", &line);
    assert!(run.ok(), "{run}");
    let uids = printed_uids(&cluster, &as_user, &app_id_of(&run));
    assert_eq!(uids, [user.uid()], "as {}", user.name);

    let run = cluster.submit_shell(&[], &shell);
    assert!(run.ok(), "{run}");
    let uids = printed_uids(&cluster, &[], &app_id_of(&run));
    assert_eq!(uids, [uid_of("nobody")], "root's container runs as nobody");
    assert_ne!(uids, ["0"]);
}

#[test]
fn a_local_cluster_master_needs_no_secret_set_up() {
    // No SPINDLE_SECRET_FILE, no --secret-file: the cluster made in the command has its own.
    let mut submit = spindle();
    submit
        .args([
            "submit",
            "--master",
            "local-cluster[1,2,1024]",
            "--",
            distributed_shell(),
            "--container-memory",
            "256",
            "--shell-command",
            "true",
        ])
        .env_remove("SPINDLE_SECRET_FILE");
    let run = support::run_command(submit, "spindle submit --master local-cluster");
    assert!(run.ok(), "{run}");
    assert!(run.stderr.contains("FINISHED (SUCCEEDED)"), "{run}");
}
