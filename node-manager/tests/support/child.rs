//! A node manager in a process of its own, so that a test can kill it with SIGKILL: nothing of
//! it runs after that, no destructor, no shutdown. The process is the test binary itself, run
//! with a filter that selects only `child_node_manager` and the configuration in its
//! environment; it prints its address once it serves and has registered, and shuts down on
//! SIGTERM.

use std::net::SocketAddr;
use std::process::Stdio;

use spindle_node_manager::{NmConfig, NodeManager};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::signal::unix::SignalKind;

use super::guarded;

/// The child's configuration, as JSON.
const CONFIG_ENV: &str = "SPINDLE_TEST_CHILD_NODE_MANAGER";
/// What the child prints before its address.
const READY: &str = "child node manager serving at ";
/// The test function the child runs.
pub const CHILD_TEST: &str = "child_node_manager";

/// The body of the `child_node_manager` test: when the environment asks for one, serves a node
/// manager until SIGTERM (then shuts it down) or SIGKILL; returns at once otherwise (in an
/// ordinary test run).
pub fn serve_if_asked() {
    let Ok(config) = std::env::var(CONFIG_ENV) else {
        return;
    };
    let config: NmConfig = serde_json::from_str(&config).expect("the child's configuration");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime.block_on(async {
        let mut terminate = tokio::signal::unix::signal(SignalKind::terminate()).unwrap();
        let nm = NodeManager::start(config).await.expect("the child starts");
        nm.registered().await;
        println!("{READY}{}", nm.rpc_addr());
        terminate.recv().await;
        nm.shutdown().await;
    });
}

pub struct ChildNodeManager {
    child: tokio::process::Child,
    pub rpc_addr: SocketAddr,
}

impl ChildNodeManager {
    pub async fn start(config: &NmConfig) -> ChildNodeManager {
        let exe = std::env::current_exe().expect("the test binary's path");
        let mut child = tokio::process::Command::new(exe)
            .args([CHILD_TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CONFIG_ENV, serde_json::to_string(config).unwrap())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the child node manager starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let rpc_addr = guarded("the child node manager to serve", async {
            while let Some(line) = lines.next_line().await.unwrap() {
                // The test harness may have started the line with the test's name.
                if let Some((_, addr)) = line.split_once(READY) {
                    return addr.parse().unwrap();
                }
            }
            panic!("the child node manager ended before it served");
        })
        .await;
        // The harness reports on stdout as the child ends: someone must read it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ChildNodeManager { child, rpc_addr }
    }

    /// SIGTERM: the child shuts its node manager down (stopping its containers) and exits.
    pub async fn terminate(mut self) {
        let pid = self.child.id().expect("the child runs") as i32;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let status = guarded("the child node manager to shut down", self.child.wait())
            .await
            .unwrap();
        assert!(status.success(), "{status}");
    }

    /// SIGKILL, and waits until it is gone.
    pub async fn kill(mut self) {
        self.child.start_kill().unwrap();
        let status = guarded("the child node manager to die", self.child.wait())
            .await
            .unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
    }
}
