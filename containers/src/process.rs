//! A container as an OS process: `bash launch_container.sh` in its own session and process group,
//! watched until it exits, and stoppable as a whole group (SIGTERM, a grace period, SIGKILL), so
//! that nothing the program started outlives the container.

use std::fs::OpenOptions;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, killpg, sigaction};
use nix::unistd::Pid;
use tokio::sync::watch;

use crate::launch_script::EXIT_CODE_FILE;

/// YARN's default pause between SIGTERM and SIGKILL.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_millis(250);

/// Where and how to run one container's launch script.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// The launch script, run as `bash <script>`.
    pub script: PathBuf,
    /// The container directory: the working directory, and where `exit_code` is found.
    pub working_dir: PathBuf,
    /// Log files, opened for appending (created if missing).
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// The only variables bash inherits; the script exports the container's own on top.
    pub inherited_env: Vec<(String, String)>,
}

/// How a container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It ended on its own: the program's exit code, or 128+N when signal N killed it.
    Exited { exit_code: i32 },
    /// It ended after `stop` was called; the caller knows which status to record.
    Stopped,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot open log file {path}: {source}")]
    LogFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start bash for {script}: {source}")]
    Spawn {
        script: PathBuf,
        source: std::io::Error,
    },
    #[error("started bash for {script} but the OS gave no process id")]
    NoPid { script: PathBuf },
}

/// A running (or ended) container process. Cloning shares the same process.
#[derive(Debug, Clone)]
pub struct ContainerProcess {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pid: u32,
    stopping: AtomicBool,
    exit: watch::Receiver<Option<Exit>>,
}

fn append(path: &Path) -> Result<std::fs::File, ProcessError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| ProcessError::LogFile {
            path: path.to_path_buf(),
            source,
        })
}

/// Starts `bash <script>` as the leader of a new session and process group. Must be called
/// inside a Tokio runtime: a task watches the process until it exits.
pub fn spawn(spec: &ProcessSpec) -> Result<ContainerProcess, ProcessError> {
    let stdout = append(&spec.stdout)?;
    let stderr = append(&spec.stderr)?;
    let mut command = tokio::process::Command::new("bash");
    command
        .arg(&spec.script)
        .current_dir(&spec.working_dir)
        .env_clear()
        .envs(spec.inherited_env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        // A dropped handle must not kill the container: the NM decides when it ends.
        .kill_on_drop(false);
    // SAFETY: between fork and exec only async-signal-safe calls (setsid, sigaction) run, and
    // they touch no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            reset_signal_dispositions();
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|source| ProcessError::Spawn {
        script: spec.script.clone(),
        source,
    })?;
    let pid = child.id().ok_or_else(|| ProcessError::NoPid {
        script: spec.script.clone(),
    })?;
    let (exit_tx, exit_rx) = watch::channel(None);
    let inner = Arc::new(Inner {
        pid,
        stopping: AtomicBool::new(false),
        exit: exit_rx,
    });
    let watcher = Arc::clone(&inner);
    let working_dir = spec.working_dir.clone();
    tokio::spawn(async move {
        let status = child.wait().await;
        let exit = if watcher.stopping.load(Ordering::SeqCst) {
            Exit::Stopped
        } else {
            Exit::Exited {
                exit_code: exit_code(&working_dir, status.ok()),
            }
        };
        tracing::debug!(pid, ?exit, "container process ended");
        let _ = exit_tx.send(Some(exit));
    });
    Ok(ContainerProcess { inner })
}

/// Ignored signals survive `exec`: whatever the daemon ignores (SIGHUP under nohup, say) must not
/// be ignored by containers, so every standard signal gets its default action back.
fn reset_signal_dispositions() {
    let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
    for signal in Signal::iterator() {
        if !matches!(signal, Signal::SIGKILL | Signal::SIGSTOP) {
            // SAFETY: the default disposition runs no code of ours.
            let _ = unsafe { sigaction(signal, &default) };
        }
    }
}

/// The program's own status from the `exit_code` file when the script wrote it, else what the
/// OS says of bash (a code as is, death by signal N as 128+N, like bash reports it).
fn exit_code(working_dir: &Path, status: Option<ExitStatus>) -> i32 {
    let recorded = std::fs::read_to_string(working_dir.join(EXIT_CODE_FILE))
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    if let Some(code) = recorded {
        return code;
    }
    match status {
        Some(s) => s
            .code()
            .or_else(|| s.signal().map(|n| 128 + n))
            .unwrap_or(crate::exit_status::INVALID),
        None => crate::exit_status::INVALID,
    }
}

impl ContainerProcess {
    /// The pid of the launch script's bash, which is also the process group id.
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// How it ended, if it has.
    pub fn try_exit(&self) -> Option<Exit> {
        *self.inner.exit.borrow()
    }

    /// Waits until the process has ended.
    pub async fn wait(&self) -> Exit {
        let mut exit = self.inner.exit.clone();
        let seen = exit.wait_for(Option::is_some).await.map(|seen| *seen);
        // The watcher ends without a word only when the runtime shuts down under it.
        seen.ok().flatten().unwrap_or(Exit::Exited {
            exit_code: crate::exit_status::INVALID,
        })
    }

    /// Stops the whole process group: SIGTERM, then up to `grace` for the program to end, then
    /// SIGKILL to whatever is left of the group (grandchildren included). Returns how it ended,
    /// `Exit::Exited` if it had already ended on its own.
    pub async fn stop(&self, grace: Duration) -> Exit {
        if let Some(exit) = self.try_exit() {
            return exit;
        }
        self.inner.stopping.store(true, Ordering::SeqCst);
        let group = Pid::from_raw(self.inner.pid as i32);
        self.signal_group(group, Signal::SIGTERM);
        // The script's bash waits for the program, so its exit means the program is gone;
        // anything still in the group after that, or after the grace, gets SIGKILL.
        let _ = tokio::time::timeout(grace, self.wait()).await;
        self.signal_group(group, Signal::SIGKILL);
        self.wait().await
    }

    /// SIGKILL to the whole group at once, without waiting: for when there is no time for a
    /// grace period (the owner is going away without a shutdown).
    pub fn kill(&self) {
        if self.try_exit().is_none() {
            self.inner.stopping.store(true, Ordering::SeqCst);
            self.signal_group(Pid::from_raw(self.inner.pid as i32), Signal::SIGKILL);
        }
    }

    fn signal_group(&self, group: Pid, signal: Signal) {
        match killpg(group, signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => {
                tracing::warn!(pid = self.inner.pid, %signal, "cannot signal the container's process group: {e}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch_script::{SCRIPT_FILE, render};
    use std::collections::BTreeMap;

    const HANG_GUARD: Duration = Duration::from_secs(60);

    struct Container {
        dir: tempfile::TempDir,
        process: ContainerProcess,
    }

    fn start(command: &[&str]) -> Container {
        let dir = tempfile::tempdir().unwrap();
        let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        let script = render(&command, &BTreeMap::new()).unwrap();
        std::fs::write(dir.path().join(SCRIPT_FILE), script).unwrap();
        let spec = ProcessSpec {
            script: dir.path().join(SCRIPT_FILE),
            working_dir: dir.path().to_path_buf(),
            stdout: dir.path().join("stdout"),
            stderr: dir.path().join("stderr"),
            inherited_env: vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())],
        };
        let process = spawn(&spec).unwrap();
        Container { dir, process }
    }

    async fn guarded<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(HANG_GUARD, f)
            .await
            .expect("hang guard")
    }

    /// Whether process `pid` still runs: gone, or a zombie waiting to be reaped by whoever
    /// adopted it, both count as ended.
    fn running(pid: u32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z')),
            Err(_) => false,
        }
    }

    /// The kill was sent; waits (bounded) for the kernel to carry it out.
    async fn ended(pid: u32) {
        guarded(async {
            while running(pid) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }

    fn read_pid(c: &Container, file: &str) -> u32 {
        std::fs::read_to_string(c.dir.path().join(file))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Waits for the program to write `file` (its way of saying it is set up).
    async fn written(c: &Container, file: &str) {
        guarded(async {
            while std::fs::read_to_string(c.dir.path().join(file))
                .map_or(true, |s| !s.ends_with('\n'))
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
    }

    #[tokio::test]
    async fn captures_the_exit_code_and_the_output() {
        let c = start(&["bash", "-c", "echo out; echo err >&2; exit 3"]);
        assert_eq!(
            guarded(c.process.wait()).await,
            Exit::Exited { exit_code: 3 }
        );
        assert_eq!(
            std::fs::read_to_string(c.dir.path().join("stdout")).unwrap(),
            "out\n"
        );
        assert_eq!(
            std::fs::read_to_string(c.dir.path().join("stderr")).unwrap(),
            "err\n"
        );
        // Stopping an ended process changes nothing.
        assert_eq!(
            guarded(c.process.stop(DEFAULT_KILL_GRACE)).await,
            Exit::Exited { exit_code: 3 }
        );
    }

    #[tokio::test]
    async fn a_program_killed_by_a_signal_reports_128_plus_n() {
        let c = start(&["bash", "-c", "kill -KILL $$"]);
        assert_eq!(
            guarded(c.process.wait()).await,
            Exit::Exited { exit_code: 137 }
        );
    }

    #[tokio::test]
    async fn runs_in_its_own_session_and_process_group() {
        let c = start(&["bash", "-c", "cat /proc/$$/stat"]);
        guarded(c.process.wait()).await;
        let stat = std::fs::read_to_string(c.dir.path().join("stdout")).unwrap();
        // Fields after the command name: state, ppid, pgrp, session.
        let (_, rest) = stat.rsplit_once(") ").unwrap();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let leader = c.process.pid().to_string();
        assert_eq!(fields[1], leader, "parent is the script's bash");
        assert_eq!(fields[2], leader, "process group");
        assert_eq!(fields[3], leader, "session");
    }

    #[tokio::test]
    async fn stop_takes_the_whole_group_grandchildren_included() {
        let c = start(&[
            "bash",
            "-c",
            "sleep 600 & echo $! > bg.pid; echo $$ > fg.pid; sleep 600",
        ]);
        written(&c, "fg.pid").await;
        let (background, program) = (read_pid(&c, "bg.pid"), read_pid(&c, "fg.pid"));
        assert!(running(background) && running(program));
        assert_eq!(
            guarded(c.process.stop(DEFAULT_KILL_GRACE)).await,
            Exit::Stopped
        );
        ended(program).await;
        ended(background).await;
    }

    #[tokio::test]
    async fn stop_kills_a_program_that_ignores_sigterm() {
        let c = start(&[
            "bash",
            "-c",
            "trap '' TERM; echo $$ > fg.pid; sleep 600 & wait",
        ]);
        written(&c, "fg.pid").await;
        let program = read_pid(&c, "fg.pid");
        assert_eq!(
            guarded(c.process.stop(Duration::from_millis(50))).await,
            Exit::Stopped
        );
        ended(program).await;
    }

    #[tokio::test]
    async fn the_program_gets_its_grace_to_shut_down() {
        let c = start(&[
            "bash",
            "-c",
            "trap 'echo cleaned up; exit 0' TERM; echo $$ > fg.pid; sleep 600 & wait",
        ]);
        written(&c, "fg.pid").await;
        // A generous grace: the program's handler must run before the SIGKILL.
        assert_eq!(
            guarded(c.process.stop(Duration::from_secs(30))).await,
            Exit::Stopped
        );
        let out = std::fs::read_to_string(c.dir.path().join("stdout")).unwrap();
        assert_eq!(out, "cleaned up\n");
    }

    #[tokio::test]
    async fn the_program_starts_with_no_signal_ignored_or_blocked() {
        // The daemon's own dispositions (Rust ignores SIGPIPE) must not leak into containers.
        // SAFETY: ignoring SIGHUP runs no code; the test process never needs SIGHUP.
        let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
        let _ = unsafe { sigaction(Signal::SIGHUP, &ignore) };
        let c = start(&["bash", "-c", "grep -E '^Sig(Ign|Blk)' /proc/$$/status"]);
        guarded(c.process.wait()).await;
        let out = std::fs::read_to_string(c.dir.path().join("stdout")).unwrap();
        let masks: Vec<u64> = out
            .lines()
            .map(|l| u64::from_str_radix(l.split_whitespace().nth(1).unwrap(), 16).unwrap())
            .collect();
        // Standard signals are 1..=31 (bits 0..=30); glibc reserves the real-time ones above.
        let standard = 0x7fff_ffff;
        assert_eq!(masks.len(), 2, "{out}");
        assert!(masks.iter().all(|m| m & standard == 0), "{out}");
    }

    #[tokio::test]
    async fn kill_takes_the_group_at_once() {
        let c = start(&[
            "bash",
            "-c",
            "trap '' TERM; sleep 600 & echo $! > bg.pid; wait",
        ]);
        written(&c, "bg.pid").await;
        let background = read_pid(&c, "bg.pid");
        c.process.kill();
        assert_eq!(guarded(c.process.wait()).await, Exit::Stopped);
        ended(background).await;
    }

    #[test]
    fn without_the_file_the_os_status_is_mapped_like_bash_does() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(exit_code(dir.path(), Some(ExitStatus::from_raw(3 << 8))), 3);
        assert_eq!(exit_code(dir.path(), Some(ExitStatus::from_raw(9))), 137);
        assert_eq!(exit_code(dir.path(), None), crate::exit_status::INVALID);
        std::fs::write(dir.path().join(EXIT_CODE_FILE), "42\n").unwrap();
        assert_eq!(exit_code(dir.path(), Some(ExitStatus::from_raw(9))), 42);
    }

    #[tokio::test]
    async fn a_missing_log_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ProcessSpec {
            script: dir.path().join(SCRIPT_FILE),
            working_dir: dir.path().to_path_buf(),
            stdout: dir.path().join("no/such/stdout"),
            stderr: dir.path().join("stderr"),
            inherited_env: vec![],
        };
        let err = spawn(&spec).unwrap_err();
        assert!(err.to_string().contains("no/such/stdout"), "{err}");
    }
}
