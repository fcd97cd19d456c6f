//! What the end-to-end tests share: the `spindle` binary (built if missing or older than this
//! test) and the examples' binaries, a cluster of separate `spindle resource-manager` /
//! `spindle node-manager` processes on loopback with their own temp dirs, stopped by a guard on
//! drop so a failing test leaves nothing behind, commands run in the background and killed on
//! drop, and a look into /proc for the processes an application left.
//!
//! Security is on as a user would have it: the RM generates the cluster's secrets in its state
//! dir and prints the `export` lines naming them; node managers get `--daemon-secret-file`, and
//! every `spindle` command and example program a test thread runs gets `SPINDLE_SECRET_FILE` of
//! the cluster that thread started last (as after pasting the lines into a shell).

#![allow(dead_code)]

use std::cell::RefCell;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Hang guards only: each is far above what the step takes on a loaded machine.
pub const DAEMON_START: Duration = Duration::from_secs(60);
pub const COMMAND: Duration = Duration::from_secs(180);

/// A directory under the system temp dir, open to containers as /tmp is, removed with
/// everything in it on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("spindle-e2e-{label}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temp dir");
        // As /tmp (mode 1777): containers run as their owner or `nobody`, not as the test's
        // user, and must reach the node managers' work dirs under it and write the files a
        // test hands them a dir for (gates, marks); only a file's owner may remove it.
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
            .expect("open the temp dir to containers");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `target/<profile>/spindle`, next to this test's own `target/<profile>/deps/` dir; built with
/// cargo when it is missing or older than this test (then the client changed since).
pub fn spindle_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let test_exe = std::env::current_exe().expect("current exe");
        let profile_dir = test_exe
            .parent()
            .and_then(Path::parent)
            .expect("test exe in target/<profile>/deps");
        let bin = profile_dir.join("spindle");
        let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
        let stale = match (modified(&bin), modified(&test_exe)) {
            (Some(bin_time), Some(test_time)) => bin_time < test_time,
            _ => true,
        };
        if stale {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
            let target_dir = profile_dir.parent().expect("target dir");
            let mut build = Command::new(cargo);
            build
                .args(["build", "-p", "spindle-client", "--bin", "spindle"])
                .arg("--target-dir")
                .arg(target_dir);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            let status = build.status().expect("run cargo build");
            assert!(status.success(), "building the spindle binary failed");
        }
        assert!(bin.exists(), "no spindle binary at {}", bin.display());
        bin
    })
}

pub fn distributed_shell() -> &'static str {
    env!("CARGO_BIN_EXE_distributed-shell")
}

pub fn pi() -> &'static str {
    env!("CARGO_BIN_EXE_pi")
}

pub fn flaky() -> &'static str {
    env!("CARGO_BIN_EXE_flaky")
}

/// The variables a user's shell or a test's own process may have that would change what a
/// command does; every command starts without them.
const CALLERS_VARIABLES: &[&str] = &[
    "SPINDLE_RM",
    "SPINDLE_MASTER",
    "SPINDLE_CONFIG",
    "SPINDLE_SECRET_FILE",
    "SPINDLE_DAEMON_SECRET_FILE",
    "SPINDLE_USER",
];

thread_local! {
    /// The `export` lines of the RM this test thread started last: (variable, path).
    static CLUSTER_SECRETS: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

fn cluster_secret(var: &str) -> Option<PathBuf> {
    CLUSTER_SECRETS.with(|secrets| {
        secrets
            .borrow()
            .iter()
            .find(|(name, _)| name == var)
            .map(|(_, path)| PathBuf::from(path))
    })
}

/// The client secret of the cluster this thread started last, if it started one.
pub fn client_secret() -> Option<PathBuf> {
    cluster_secret("SPINDLE_SECRET_FILE")
}

/// Gives `command` the client secret of this thread's cluster, as a user's shell would have it.
fn with_cluster_secret(command: &mut Command) {
    for var in CALLERS_VARIABLES {
        command.env_remove(var);
    }
    if let Some(path) = client_secret() {
        command.env("SPINDLE_SECRET_FILE", path);
    }
}

/// A `spindle` command with a clean environment: no SPINDLE_* from the caller's shell, the
/// client secret of this thread's cluster.
pub fn spindle() -> Command {
    spindle_in(None)
}

/// `spindle`, run inside the network namespace `netns` when one is given (`ip netns exec`
/// execs it, so the child's pid is the daemon's own).
pub fn spindle_in(netns: Option<&str>) -> Command {
    let mut command = match netns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns]).arg(spindle_bin());
            c
        }
        None => Command::new(spindle_bin()),
    };
    with_cluster_secret(&mut command);
    command.stdin(Stdio::null());
    command
}

/// What a finished `spindle` command did.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} after {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.elapsed, self.stdout, self.stderr
        )
    }
}

/// Runs `spindle ARGS` to its end (output to files, so a large log never blocks it).
pub fn run(args: &[&str]) -> Run {
    run_in(None, args)
}

/// Runs `spindle ARGS` to its end inside `netns` (or here, given none).
pub fn run_in(netns: Option<&str>, args: &[&str]) -> Run {
    let mut command = spindle_in(netns);
    command.args(args);
    run_command(command, &format!("spindle {args:?}"))
}

/// `PROGRAM ARGS` (an example's binary, run as its own launcher) with a clean environment and
/// the client secret of this thread's cluster.
pub fn program(path: &str, args: &[&str]) -> Command {
    let mut command = Command::new(path);
    with_cluster_secret(&mut command);
    for var in ["SPINDLE_ROLE", "SPINDLE_APP_CONFIG", "SPINDLE_DRIVER_HOST"] {
        command.env_remove(var);
    }
    command.args(args).stdin(Stdio::null());
    command
}

/// Runs `command` to its end (output to files, so a large log never blocks it).
pub fn run_command(command: Command, what: &str) -> Run {
    let running = Running::start(command, what);
    running.wait()
}

/// A command running in the background, killed on drop if it is still running.
pub struct Running {
    child: Child,
    what: String,
    dir: TempDir,
    start: Instant,
    done: bool,
}

impl Running {
    pub fn start(mut command: Command, what: &str) -> Running {
        let dir = TempDir::new("run");
        let start = Instant::now();
        let child = command
            .stdout(fs::File::create(dir.path().join("stdout")).expect("stdout file"))
            .stderr(fs::File::create(dir.path().join("stderr")).expect("stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        Running {
            child,
            what: what.to_string(),
            dir,
            start,
            done: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (hang guard [`COMMAND`]) and collects what it printed.
    pub fn wait(mut self) -> Run {
        let status = wait_with_guard(&mut self.child, COMMAND, &self.what);
        self.done = true;
        Run {
            code: status.code(),
            stdout: fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default(),
            stderr: fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default(),
            elapsed: self.start.elapsed(),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_with_guard(child: &mut Child, guard: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + guard;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {guard:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A daemon process, stopped on drop: SIGTERM (it stops its containers), then SIGKILL if it
/// does not end.
pub struct Daemon {
    name: String,
    child: Child,
    stderr_path: PathBuf,
    /// Once waited for, its pid may belong to someone else: never signal it again.
    stopped: bool,
    /// The `key: value` lines it printed on start.
    pub announced: Vec<(String, String)>,
    /// The `export NAME=VALUE` lines it printed on start (an RM's secrets).
    pub exports: Vec<(String, String)>,
}

impl Daemon {
    /// Starts `spindle ARGS` and reads its announcement until `last_key` appears. An RM's
    /// `export` lines become this thread's cluster secrets; a node manager not told its daemon
    /// secret gets the one of this thread's cluster (beside its client secret).
    pub fn start(name: &str, args: &[&str], log_dir: &Path, last_key: &str) -> Daemon {
        Daemon::start_in(None, name, args, log_dir, last_key)
    }

    /// `start`, inside the network namespace `netns` when one is given.
    pub fn start_in(
        netns: Option<&str>,
        name: &str,
        args: &[&str],
        log_dir: &Path,
        last_key: &str,
    ) -> Daemon {
        let stderr_path = log_dir.join(format!("{name}.log"));
        let mut command = spindle_in(netns);
        if args.contains(&"resource-manager") {
            // An RM makes (or finds) its own secrets; another cluster's are not for it.
            command.env_remove("SPINDLE_SECRET_FILE");
        }
        if args.contains(&"node-manager")
            && !args.contains(&"--daemon-secret-file")
            && let Some(daemon) = cluster_secret("SPINDLE_DAEMON_SECRET_FILE")
        {
            command.env("SPINDLE_DAEMON_SECRET_FILE", daemon);
        }
        let mut child = command
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&stderr_path).expect("daemon log"))
            .spawn()
            .expect("spawn daemon");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut daemon = Daemon {
            name: name.to_string(),
            child,
            stderr_path,
            stopped: false,
            announced: Vec::new(),
            exports: Vec::new(),
        };
        let deadline = Instant::now() + DAEMON_START;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some((name, value)) = export_line(&line) {
                        daemon.exports.push((name, value));
                        CLUSTER_SECRETS.with(|secrets| {
                            *secrets.borrow_mut() = daemon.exports.clone();
                        });
                    } else if let Some((key, value)) = line.split_once(": ") {
                        daemon.announced.push((key.to_string(), value.to_string()));
                        if key == last_key {
                            return daemon;
                        }
                    }
                }
                Err(_) => panic!(
                    "{name} did not announce {last_key:?}; its log:\n{}",
                    fs::read_to_string(&daemon.stderr_path).unwrap_or_default()
                ),
            }
        }
    }

    /// The value of the `export NAME=…` line it printed.
    pub fn export(&self, name: &str) -> String {
        self.exports
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{} printed no export of {name}", self.name))
    }

    pub fn get(&self, key: &str) -> String {
        self.announced
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{} announced no {key}", self.name))
    }

    /// SIGTERM, only to a child that is still ours. `try_wait` reaps it if it has ended (and
    /// then it is never signalled again); while it is not reaped its pid cannot be handed to
    /// another process, so the signal reaches this daemon or, if it died just now, its zombie.
    fn terminate(&mut self) {
        if self.stopped {
            return;
        }
        match self.child.try_wait() {
            Ok(None) => signal(self.child.id(), "TERM"),
            Ok(Some(_)) | Err(_) => self.stopped = true,
        }
    }

    fn wait_or_kill(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
        self.wait_or_kill();
        if std::thread::panicking() {
            eprintln!(
                "--- log of {}:\n{}",
                self.name,
                fs::read_to_string(&self.stderr_path).unwrap_or_default()
            );
        }
    }
}

/// `export NAME=VALUE` (the value as one shell word, single-quoted or plain) → (NAME, VALUE).
fn export_line(line: &str) -> Option<(String, String)> {
    let (name, value) = line.strip_prefix("export ")?.split_once('=')?;
    let value = match value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        Some(quoted) => quoted.replace("'\\''", "'"),
        None => value.to_string(),
    };
    Some((name.to_string(), value))
}

/// An RM and its NMs as separate processes, each with its own dirs under one temp dir.
pub struct Cluster {
    pub nms: Vec<Daemon>,
    pub rm: Daemon,
    pub rm_addr: String,
    /// The secrets the RM generated in its state dir (`SPINDLE_SECRET_FILE`,
    /// `SPINDLE_DAEMON_SECRET_FILE` of its export lines).
    pub client_secret: PathBuf,
    pub daemon_secret: PathBuf,
    pub node_ids: Vec<String>,
    pub work_dirs: Vec<PathBuf>,
    pub dir: TempDir,
}

impl Cluster {
    /// An RM (minimum allocation 128 MB) and `nodes` NMs of `memory_mb` and 4 vcores each,
    /// returned once `spindle nodes` shows them all RUNNING.
    pub fn start(nodes: usize, memory_mb: u64) -> Cluster {
        Cluster::start_with_rm_flags(nodes, memory_mb, CALM_RM_FLAGS)
    }

    /// `spindle nodes` until every NM is RUNNING; NMs register with back-off, so this asks
    /// again a few times (a hang guard bounds it).
    fn wait_for_nodes(&self) {
        let deadline = Instant::now() + DAEMON_START;
        loop {
            let run = self.spindle("nodes", &[]);
            let running = self
                .node_ids
                .iter()
                .filter(|id| {
                    run.stdout
                        .lines()
                        .any(|l| l.starts_with(id.as_str()) && l.contains("RUNNING"))
                })
                .count();
            if running == self.node_ids.len() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node managers did not all register:\n{run}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A `spindle` command for this cluster: a clean environment with its client secret.
    pub fn command(&self) -> Command {
        let mut command = spindle();
        command.env("SPINDLE_SECRET_FILE", &self.client_secret);
        command
    }

    /// `spindle COMMAND --rm <this cluster> ARGS`, with the cluster's client secret.
    pub fn spindle(&self, command: &str, args: &[&str]) -> Run {
        self.spindle_with(&[], command, args)
    }

    /// `spindle COMMAND --rm <this cluster> ARGS` with `env` on top of the cluster's client
    /// secret (another `SPINDLE_USER`, another secret …).
    pub fn spindle_with(&self, env: &[(&str, &str)], command: &str, args: &[&str]) -> Run {
        let mut line = vec![command, "--rm", &self.rm_addr];
        line.extend_from_slice(args);
        let mut process = self.command();
        process.args(&line);
        for (name, value) in env {
            process.env(name, value);
        }
        run_command(process, &format!("spindle {line:?} with {env:?}"))
    }

    /// `spindle submit --rm <this cluster> FLAGS -- PROGRAM ARGS`.
    pub fn submit(&self, submit_flags: &[&str], program: &str, args: &[&str]) -> Run {
        let mut line = submit_flags.to_vec();
        line.push("--");
        line.push(program);
        line.extend_from_slice(args);
        self.spindle("submit", &line)
    }

    /// `spindle submit` of distributed-shell with these flags; `submit_flags` go before `--`.
    pub fn submit_shell(&self, submit_flags: &[&str], shell_flags: &[&str]) -> Run {
        let mut line = submit_flags.to_vec();
        line.push("--");
        line.push(distributed_shell());
        line.extend_from_slice(shell_flags);
        self.spindle("submit", &line)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // NMs first, all at once: each stops its containers while the RM is still up.
        for nm in &mut self.nms {
            nm.terminate();
        }
        for nm in &mut self.nms {
            nm.wait_or_kill();
        }
    }
}

/// The application id a `spindle submit` printed first on stdout.
pub fn app_id_of(run: &Run) -> String {
    let first = run
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(
        first.starts_with("application_"),
        "no app id printed:\n{run}"
    );
    first
}

/// Live processes (not zombies) of an application: those whose environment has its
/// `APPLICATION_ID` or whose working directory is under one of its container dirs.
pub fn processes_of(app: &str, work_dirs: &[PathBuf]) -> Vec<(u32, String)> {
    let needle = format!("APPLICATION_ID={app}");
    let app_dirs: Vec<PathBuf> = work_dirs
        .iter()
        .map(|w| w.join("appcache").join(app))
        .collect();
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let proc_dir = entry.path();
        let in_env = fs::read(proc_dir.join("environ"))
            .map(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
            .unwrap_or(false);
        let in_dir = fs::read_link(proc_dir.join("cwd"))
            .map(|cwd| app_dirs.iter().any(|d| cwd.starts_with(d)))
            .unwrap_or(false);
        if in_env || in_dir {
            let comm = fs::read_to_string(proc_dir.join("comm")).unwrap_or_default();
            found.push((pid, comm.trim().to_string()));
        }
    }
    found
}

/// Waits (hang guard `guard`) until `done` holds, checking every few milliseconds.
pub fn wait_until(guard: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + guard;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGKILLs node manager `index` of `cluster`, as a crash would: it cleans nothing up.
pub fn kill_node_manager(cluster: &mut Cluster, index: usize) {
    cluster.nms[index].kill_hard();
}

impl Running {
    /// What it has printed on stdout so far.
    pub fn stdout_so_far(&self) -> String {
        fs::read_to_string(self.dir.path().join("stdout")).unwrap_or_default()
    }

    /// What it has printed on stderr so far.
    pub fn stderr_so_far(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr")).unwrap_or_default()
    }

    /// Whether it has ended (reaping it if so).
    pub fn has_ended(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

// What the failure tests add: daemons killed as a crash would, a cluster with chosen RM flags
// whose RM can be killed and started again on the same state and port, whole hosts that die,
// commands left running in the background, and signals to container processes.

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, as a crash or a power cut: the daemon gets no chance to clean up or to stop its
    /// containers. Returns once the process is reaped.
    pub fn kill_hard(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The RM flags of `Cluster::start`: expiries long enough that nothing expires by accident.
pub const CALM_RM_FLAGS: &[&str] = &["--nm-liveness-expiry", "30s", "--am-liveness-expiry", "30s"];

impl Cluster {
    /// `start`, with `rm_flags` (e.g. short liveness expiries) in place of `CALM_RM_FLAGS`.
    pub fn start_with_rm_flags(nodes: usize, memory_mb: u64, rm_flags: &[&str]) -> Cluster {
        Cluster::start_with_rm_config(nodes, memory_mb, rm_flags, "")
    }

    /// `start_with_rm_flags`, with `rm_yaml` (keys of the `resource-manager:` section, each
    /// line indented by two spaces, e.g. `  admins: [carol]\n`) in the RM's spindle.yaml.
    pub fn start_with_rm_config(
        nodes: usize,
        memory_mb: u64,
        rm_flags: &[&str],
        rm_yaml: &str,
    ) -> Cluster {
        let dir = TempDir::new("cluster");
        fs::write(
            dir.path().join("spindle.yaml"),
            format!(
                "resource-manager:\n  minimum-allocation: {{memory_mb: 128, vcores: 1}}\n{rm_yaml}"
            ),
        )
        .expect("write config");
        let rm = start_rm(dir.path(), "127.0.0.1:0", rm_flags);
        let rm_addr = rm.get("rpc-address");
        let client_secret = PathBuf::from(rm.export("SPINDLE_SECRET_FILE"));
        let daemon_secret = PathBuf::from(rm.export("SPINDLE_DAEMON_SECRET_FILE"));
        let mut nms = Vec::new();
        let mut work_dirs = Vec::new();
        for index in 0..nodes {
            let work_dir = dir.path().join(format!("nm-{index}"));
            nms.push(start_nm(
                dir.path(),
                index,
                &rm_addr,
                &work_dir,
                memory_mb,
                &daemon_secret,
            ));
            work_dirs.push(work_dir);
        }
        let node_ids = nms.iter().map(|nm| nm.get("node-id")).collect();
        let cluster = Cluster {
            nms,
            rm,
            rm_addr,
            client_secret,
            daemon_secret,
            node_ids,
            work_dirs,
            dir,
        };
        cluster.wait_for_nodes();
        cluster
    }

    /// SIGKILLs the RM; its state directory and port stay for `restart_rm`.
    pub fn kill_rm(&mut self) {
        self.rm.kill_hard();
    }

    /// Starts an RM again on the same state directory and gRPC port, with `rm_flags`.
    pub fn restart_rm(&mut self, rm_flags: &[&str]) {
        self.rm = start_rm(self.dir.path(), &self.rm_addr, rm_flags);
        assert_eq!(self.rm.get("rpc-address"), self.rm_addr, "same port again");
    }

    /// A host that dies: SIGKILL of node manager `index`, then of every process of its
    /// containers (they run in sessions of their own, so the NM's death alone leaves them).
    /// Returns how many container processes were killed.
    pub fn kill_node(&mut self, index: usize) -> usize {
        self.nms[index].kill_hard();
        let mut killed = std::collections::BTreeSet::new();
        // A launch script may be between fork and exec: go round until nothing is left.
        wait_until(COMMAND, "the node's container processes to die", || {
            let left = node_processes(&self.node_ids[index], &self.work_dirs[index]);
            for &pid in &left {
                signal(pid, "KILL");
                killed.insert(pid);
            }
            left.is_empty()
        });
        killed.len()
    }

    /// `spindle nodes`' state for node `index` (RUNNING, LOST, …), if it is listed.
    pub fn node_state(&self, index: usize) -> Option<String> {
        let nodes = self.spindle("nodes", &[]);
        let id = &self.node_ids[index];
        nodes
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id.as_str()))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(str::to_string)
    }

    /// `spindle submit` of distributed-shell left running in the background.
    pub fn spawn_shell(&self, submit_flags: &[&str], shell_flags: &[&str]) -> Running {
        let mut line = vec!["submit", "--rm", &self.rm_addr];
        line.extend_from_slice(submit_flags);
        line.push("--");
        line.push(distributed_shell());
        line.extend_from_slice(shell_flags);
        let mut command = self.command();
        command.args(&line);
        Running::start(command, &format!("spindle {line:?}"))
    }
}

fn start_rm(dir: &Path, bind: &str, rm_flags: &[&str]) -> Daemon {
    let config = dir.join("spindle.yaml");
    let state_dir = dir.join("rm");
    let mut args = vec![
        "--config",
        config.to_str().unwrap(),
        "resource-manager",
        "--bind",
        bind,
        "--web-bind",
        "127.0.0.1:0",
        "--state-dir",
        state_dir.to_str().unwrap(),
    ];
    args.extend_from_slice(rm_flags);
    // A restarted RM logs to a file of its own, so the first one's log is kept.
    static STARTS: AtomicUsize = AtomicUsize::new(0);
    let name = match STARTS.fetch_add(1, Ordering::Relaxed) {
        0 => "resource-manager".to_string(),
        n => format!("resource-manager-{n}"),
    };
    Daemon::start(&name, &args, dir, "cluster-timestamp")
}

fn start_nm(
    dir: &Path,
    index: usize,
    rm_addr: &str,
    work_dir: &Path,
    memory_mb: u64,
    daemon_secret: &Path,
) -> Daemon {
    let memory = memory_mb.to_string();
    Daemon::start(
        &format!("node-manager-{index}"),
        &[
            "node-manager",
            "--rm",
            rm_addr,
            "--daemon-secret-file",
            daemon_secret.to_str().unwrap(),
            "--bind",
            "127.0.0.1:0",
            "--web-bind",
            "127.0.0.1:0",
            "--work-dir",
            work_dir.to_str().unwrap(),
            "--memory-mb",
            &memory,
            "--vcores",
            "4",
        ],
        dir,
        "web-address",
    )
}

/// Sends `SIGNAL` (a name as `kill -s` takes it: KILL, STOP, CONT, TERM) to one process.
pub fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// Whether `pid` is a live process (not a zombie).
pub fn alive(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // The state follows the parenthesised command name, which may hold spaces.
            let after = stat.rsplit_once(") ")?.1;
            after.chars().next()
        })
        .is_some_and(|state| state != 'Z' && state != 'X')
}

/// Processes one of a node's containers started: those with its `NM_ADDRESS` in their
/// environment, or a working directory under its `appcache`.
pub fn node_processes(node_id: &str, work_dir: &Path) -> Vec<u32> {
    let needle = format!("NM_ADDRESS={node_id}");
    let appcache = work_dir.join("appcache");
    pids_where(|proc_dir| {
        let in_env = fs::read(proc_dir.join("environ"))
            .map(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
            .unwrap_or(false);
        in_env
            || fs::read_link(proc_dir.join("cwd"))
                .map(|cwd| cwd.starts_with(&appcache))
                .unwrap_or(false)
    })
}

/// Live processes whose environment has `CONTAINER_ID=<container>` and whose command name is
/// `comm` (as /proc shows it: at most 15 bytes).
pub fn container_processes(container: &str, comm: &str) -> Vec<u32> {
    let needle = format!("CONTAINER_ID={container}");
    let comm: String = comm.chars().take(15).collect();
    pids_where(|proc_dir| {
        fs::read_to_string(proc_dir.join("comm")).is_ok_and(|c| c.trim() == comm)
            && fs::read(proc_dir.join("environ"))
                .map(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
                .unwrap_or(false)
    })
}

fn pids_where(mut wanted: impl FnMut(&Path) -> bool) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            (wanted(&e.path()) && alive(pid)).then_some(pid)
        })
        .collect()
}

impl Running {
    /// Waits for the first line on stdout (a submission's application id).
    pub fn first_line(&self) -> String {
        let mut line = String::new();
        wait_until(COMMAND, "the first line of output", || {
            match self.stdout_so_far().split_once('\n') {
                Some((first, _)) => {
                    line = first.trim().to_string();
                    true
                }
                None => false,
            }
        });
        line
    }
}
