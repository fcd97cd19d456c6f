//! A container as an OS process: `bash launch_container.sh` in its own session and process group,
//! and in its own cgroup where the host allows it, watched until it exits and stoppable as a
//! whole (SIGTERM, a grace period, SIGKILL). When the script's bash ends, whatever the program
//! left behind (its process group, its cgroup) is killed with it, so nothing outlives the
//! container. A node manager that restarts takes its containers back with `adopt`.
//!
//! When the node manager runs as root, the child becomes the container's user (`RunAs`) last,
//! after it has made its session and joined its cgroup (which takes root on cgroup v2), just
//! before exec; its log files are created by the node manager and given to that user.

mod adopt;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, killpg, sigaction};
use nix::unistd::Pid;
use tokio::sync::watch;

use crate::cgroup::{CgroupError, ContainerCgroup};
use crate::launch_script::EXIT_CODE_FILE;
use crate::run_as::RunAs;
use crate::{no_follow, proc_stat};

pub use adopt::{Adopted, Recorded, adopt};

/// YARN's default pause between SIGTERM and SIGKILL.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_millis(250);

/// Where and how to run one container's launch script.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// The launch script, run as `bash <script>`.
    pub script: PathBuf,
    /// The container directory: the working directory, and where `exit_code` is found.
    pub working_dir: PathBuf,
    /// Log files, opened for appending (created if missing, never through a link).
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    /// The only variables bash inherits; the script exports the container's own on top.
    pub inherited_env: Vec<(String, String)>,
    /// The cgroup bash joins before it runs anything; removed when the container ends.
    pub cgroup: Option<ContainerCgroup>,
    /// The user the program runs as, and who gets its log files; `None`: the caller's own.
    pub run_as: Option<RunAs>,
}

/// Mode of the log files the node manager creates (in a directory only the container's user
/// may enter).
const LOG_FILE_MODE: u32 = 0o640;

/// How a container's process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It ended on its own: the program's exit code, or 128+N when signal N killed it.
    Exited { exit_code: i32 },
    /// It failed after the kernel's OOM killer killed processes of its cgroup (the cgroup's
    /// memory limit was reached).
    OutOfMemory {
        exit_code: i32,
        oom_kills: u64,
        /// The most memory the cgroup used, where the kernel tracks it.
        peak_bytes: Option<u64>,
    },
    /// It ended after `stop` or `kill` was called; the caller knows which status to record.
    Stopped,
    /// It ended while nobody watched it and left no exit code.
    Lost,
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
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
}

/// A running (or ended) container process. Cloning shares the same process.
#[derive(Debug, Clone)]
pub struct ContainerProcess {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    pid: u32,
    start_time: u64,
    cgroup: Option<ContainerCgroup>,
    stopping: AtomicBool,
    exit: watch::Receiver<Option<Exit>>,
}

/// Opens a log file for appending, given to `owner` when there is one.
fn append(path: &Path, owner: Option<&RunAs>) -> Result<std::fs::File, ProcessError> {
    let error = |source| ProcessError::LogFile {
        path: path.to_path_buf(),
        source,
    };
    let file = no_follow::create_append(path, LOG_FILE_MODE).map_err(error)?;
    if let Some(owner) = owner {
        std::os::unix::fs::fchown(&file, Some(owner.uid), Some(owner.gid)).map_err(error)?;
    }
    Ok(file)
}

/// Starts `bash <script>` as the leader of a new session and process group, in the spec's
/// cgroup, as the spec's user. Must be called inside a Tokio runtime: a task watches the
/// process until it exits.
pub fn spawn(spec: &ProcessSpec) -> Result<ContainerProcess, ProcessError> {
    let stdout = append(&spec.stdout, spec.run_as.as_ref())?;
    let stderr = append(&spec.stderr, spec.run_as.as_ref())?;
    // Looked up here: between fork and exec nothing may allocate or read files.
    let ids = spec.run_as.as_ref().map(RunAs::ids);
    // Opened here: between fork and exec the child may only make plain system calls.
    let cgroup_procs = spec
        .cgroup
        .as_ref()
        .map(ContainerCgroup::open_procs)
        .transpose()?;
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
    // SAFETY: between fork and exec only async-signal-safe calls (setsid, sigaction, write,
    // setgroups, setgid, setuid) run, on memory prepared before the fork.
    unsafe {
        command.pre_exec(move || {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            reset_signal_dispositions();
            if let Some(procs) = &cgroup_procs {
                // "0" moves the writer itself in; its children will be born inside.
                nix::unistd::write(procs, b"0").map_err(std::io::Error::from)?;
            }
            // Last, as root could still do the above: groups, then group, then user (after
            // setuid nothing else could be changed).
            if let Some((uid, gid, groups)) = &ids {
                nix::unistd::setgroups(groups).map_err(std::io::Error::from)?;
                nix::unistd::setgid(*gid).map_err(std::io::Error::from)?;
                nix::unistd::setuid(*uid).map_err(std::io::Error::from)?;
            }
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
    // Not reaped until the watcher waits, so the pid is still this child's.
    let start_time = proc_stat::read(pid).map_or(0, |stat| stat.start_time);
    let (inner, exit_tx) = Inner::new(pid, start_time, spec.cgroup.clone());
    let watched = Arc::clone(&inner);
    let working_dir = spec.working_dir.clone();
    tokio::spawn(async move {
        let status = child.wait().await.ok();
        let exit = watched
            .finish(&working_dir, status, Leftovers::GroupAndCgroup)
            .await;
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

/// The status the launch script recorded, if it got to. The file is the container's: it is
/// read only if it is a regular file (never through a link), and only its start.
fn recorded_exit_code(working_dir: &Path) -> Option<i32> {
    let file = no_follow::open_regular(&working_dir.join(EXIT_CODE_FILE)).ok()?;
    let mut text = String::new();
    file.take(64).read_to_string(&mut text).ok()?;
    text.trim().parse::<i32>().ok()
}

/// How the container ended: a stop decides; else the program's own status from the `exit_code`
/// file when the script wrote it, else what the OS says of bash (a code as is, death by signal
/// N as 128+N, like bash reports it); a failure after OOM kills in its cgroup is out of memory.
fn classify(
    stopped: bool,
    recorded: Option<i32>,
    status: Option<ExitStatus>,
    oom: Option<(u64, Option<u64>)>,
) -> Exit {
    if stopped {
        return Exit::Stopped;
    }
    let from_os = status.and_then(|s| s.code().or_else(|| s.signal().map(|n| 128 + n)));
    let Some(exit_code) = recorded.or(from_os) else {
        return Exit::Lost;
    };
    match oom {
        Some((oom_kills, peak_bytes)) if oom_kills > 0 && exit_code != 0 => Exit::OutOfMemory {
            exit_code,
            oom_kills,
            peak_bytes,
        },
        _ => Exit::Exited { exit_code },
    }
}

/// What may be left of a container once its bash is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leftovers {
    /// Its process group (bash just ended: the group id is still the container's) and cgroup.
    GroupAndCgroup,
    /// Only its cgroup: bash ended long ago, and its pid may name another process group by now.
    CgroupOnly,
}

impl Inner {
    fn new(
        pid: u32,
        start_time: u64,
        cgroup: Option<ContainerCgroup>,
    ) -> (Arc<Inner>, watch::Sender<Option<Exit>>) {
        let (exit_tx, exit_rx) = watch::channel(None);
        let inner = Arc::new(Inner {
            pid,
            start_time,
            cgroup,
            stopping: AtomicBool::new(false),
            exit: exit_rx,
        });
        (inner, exit_tx)
    }

    /// Once bash has ended: reads how, kills what the program left behind, removes the cgroup.
    async fn finish(
        &self,
        working_dir: &Path,
        status: Option<ExitStatus>,
        leftovers: Leftovers,
    ) -> Exit {
        let recorded = recorded_exit_code(working_dir);
        let oom = self
            .cgroup
            .as_ref()
            .map(|c| (c.oom_kills(), c.peak_bytes()));
        if leftovers == Leftovers::GroupAndCgroup {
            self.signal_group(Signal::SIGKILL);
        }
        if let Some(cgroup) = &self.cgroup {
            cgroup.remove().await;
        }
        let exit = classify(self.stopping.load(Ordering::SeqCst), recorded, status, oom);
        tracing::debug!(pid = self.pid, ?exit, "container process ended");
        exit
    }

    fn signal_group(&self, signal: Signal) {
        let Ok(group) = i32::try_from(self.pid) else {
            return;
        };
        match killpg(Pid::from_raw(group), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => {
                tracing::warn!(pid = self.pid, %signal, "cannot signal the container's process group: {e}")
            }
        }
    }
}

impl ContainerProcess {
    /// The pid of the launch script's bash, which is also the process group id.
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// When that process started (clock ticks after boot): with the pid, it names the process.
    pub fn start_time(&self) -> u64 {
        self.inner.start_time
    }

    pub fn cgroup(&self) -> Option<&ContainerCgroup> {
        self.inner.cgroup.as_ref()
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
        seen.ok().flatten().unwrap_or(Exit::Lost)
    }

    /// Stops the whole container: SIGTERM to its process group, then up to `grace` for the
    /// program to end, then SIGKILL to whatever is left of the group and of its cgroup
    /// (grandchildren and escapees from the session included). Returns how it ended, as it was
    /// if it had already ended on its own.
    pub async fn stop(&self, grace: Duration) -> Exit {
        if let Some(exit) = self.try_exit() {
            return exit;
        }
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.signal_group(Signal::SIGTERM);
        // The script's bash waits for the program, so its exit means the program is gone.
        let _ = tokio::time::timeout(grace, self.wait()).await;
        self.kill_now();
        self.wait().await
    }

    /// SIGKILL to the whole container at once, without waiting: for when there is no time for
    /// a grace period (the owner is going away without a shutdown).
    pub fn kill(&self) {
        if self.try_exit().is_none() {
            self.inner.stopping.store(true, Ordering::SeqCst);
            self.kill_now();
        }
    }

    fn kill_now(&self) {
        self.inner.signal_group(Signal::SIGKILL);
        if let Some(cgroup) = &self.inner.cgroup {
            cgroup.signal_all(Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests;
