//! Taking back a container process that an earlier run of the node manager started: it runs in
//! its own session, so it outlived that run. It is named by pid *and* start time (the kernel
//! reuses pids), watched through a pidfd (readable when the process exits, whoever its parent
//! is now), and its status read from the `exit_code` file the launch script writes.

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use super::{ContainerProcess, Exit, Inner, Leftovers};
use crate::cgroup::ContainerCgroup;
use crate::proc_stat;

/// What an earlier run recorded of a container's process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub pid: u32,
    pub start_time: u64,
    /// The container directory, where `exit_code` is written.
    pub working_dir: PathBuf,
    /// Only a cgroup the caller has checked is its own: what is left in it gets killed.
    pub cgroup: Option<ContainerCgroup>,
}

#[derive(Debug)]
pub enum Adopted {
    /// Still running, and now watched like a process this run spawned.
    Running(ContainerProcess),
    /// It ended meanwhile (or could not be watched and was killed): how.
    Ended(Exit),
}

/// A pidfd for `pid`, registered with the runtime (needs Linux 5.3).
fn open_pidfd(pid: u32) -> std::io::Result<AsyncFd<OwnedFd>> {
    let pid = nix::libc::pid_t::try_from(pid)
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { nix::libc::syscall(nix::libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let fd =
        i32::try_from(fd).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: the `OwnedFd` moves into the `AsyncFd`, so it stays open and the same descriptor
    // for as long as the `AsyncFd` lives.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }.map_err(Into::into)
}

/// Takes back the recorded process if it still runs; otherwise says how it ended. Either way
/// nothing is left running unwatched: what cannot be watched is killed. Must be called inside
/// a Tokio runtime.
pub async fn adopt(recorded: Recorded) -> Adopted {
    let Recorded {
        pid,
        start_time,
        working_dir,
        cgroup,
    } = recorded;
    let (inner, exit_tx) = Inner::new(pid, start_time, cgroup);
    if proc_stat::is_running(pid, start_time) {
        match open_pidfd(pid) {
            // Looked at again once the pidfd pins the process: the pid was not reused meanwhile.
            Ok(pidfd) if proc_stat::is_running(pid, start_time) => {
                let watched = Arc::clone(&inner);
                tokio::spawn(async move {
                    if let Err(e) = pidfd.readable().await {
                        tracing::warn!(pid, "waiting on the pidfd failed, taking it as ended: {e}");
                    }
                    let exit = watched
                        .finish(&working_dir, None, Leftovers::GroupAndCgroup)
                        .await;
                    let _ = exit_tx.send(Some(exit));
                });
                return Adopted::Running(ContainerProcess { inner });
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(
                    pid,
                    "cannot watch the container's process (pidfd_open needs Linux 5.3): {e}; \
                     killing it"
                );
                inner.stopping.store(true, Ordering::SeqCst);
                inner.signal_group(nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
    Adopted::Ended(
        inner
            .finish(&working_dir, None, Leftovers::CgroupOnly)
            .await,
    )
}
