//! Memory limits and whole-container kills through cgroups, where the host lets us write them.
//!
//! A node manager gets a cgroup of its own below the one it runs in (`<own>/spindle-<name>`), and
//! each container one below that, with a memory limit. The container's processes join it before
//! the program runs, so it holds every one of them, even those that left the container's session
//! with `setsid`: the container can be killed as a whole, and the kernel's OOM kills in it are
//! counted. cgroup v2 and the v1 `memory` hierarchy are both handled; where neither is writable
//! the caller falls back to sampling memory (see `memory`).

mod mounts;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use mounts::{Candidates, Mount, candidates, parse_mountinfo};

/// How many times `kill_all` reads the cgroup's members and kills them before giving up.
const KILL_ROUNDS: u32 = 100;
/// Killed processes leave the cgroup only once the kernel has torn them down, and v1 sends no
/// event when a cgroup empties: between rounds `kill_all` waits a little, more each time.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const MAX_PAUSE: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CgroupVersion {
    V1,
    V2,
}

impl std::fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CgroupVersion::V1 => "cgroup v1",
            CgroupVersion::V2 => "cgroup v2",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no usable memory cgroup: {0}")]
    Unavailable(String),
    #[error(
        "cannot enable the memory controller for the cgroups below {}: {source} (cgroup v2 \
         allows it only in a cgroup without processes of its own: run the node manager in a \
         cgroup delegated to it, e.g. a systemd unit with Delegate=yes)",
        path.display()
    )]
    Delegate {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError {
    let path = path.to_path_buf();
    move |source| CgroupError::Io {
        action,
        path,
        source,
    }
}

/// Where this process can place cgroups with the memory controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub version: CgroupVersion,
    /// This process's own cgroup directory in that hierarchy.
    pub own: PathBuf,
}

/// Finds the memory controller from the mounts; the answer is kept for the life of the process
/// (a daemon's mounts do not change under it).
pub fn detect() -> Result<Hierarchy, String> {
    static DETECTED: OnceLock<Result<Hierarchy, String>> = OnceLock::new();
    DETECTED
        .get_or_init(|| {
            let read = |path: &str| {
                std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
            };
            let found = candidates(&read("/proc/self/mountinfo")?, &read("/proc/self/cgroup")?);
            choose(&found)
        })
        .clone()
}

/// v2 when this process's cgroup2 cgroup offers `memory`, else the v1 memory hierarchy.
fn choose(found: &Candidates) -> Result<Hierarchy, String> {
    if let Some(own) = &found.v2 {
        let controllers =
            std::fs::read_to_string(own.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "memory") {
            return Ok(Hierarchy {
                version: CgroupVersion::V2,
                own: own.clone(),
            });
        }
    }
    if let Some(own) = &found.v1_memory {
        return Ok(Hierarchy {
            version: CgroupVersion::V1,
            own: own.clone(),
        });
    }
    Err(match &found.v2 {
        Some(own) => format!(
            "cgroup2 is mounted but {} does not offer the memory controller, and no cgroup v1 \
             memory hierarchy is mounted",
            own.display()
        ),
        None => "neither cgroup2 nor a cgroup v1 memory hierarchy is mounted".to_string(),
    })
}

/// Makes `memory` available to the cgroups below `dir` (v2 only: v1 has no such switch).
fn enable_memory_below(dir: &Path) -> Result<(), CgroupError> {
    let control = dir.join("cgroup.subtree_control");
    let current = std::fs::read_to_string(&control).map_err(io("read", &control))?;
    if current.split_whitespace().any(|c| c == "memory") {
        return Ok(());
    }
    std::fs::write(&control, "+memory").map_err(|source| CgroupError::Delegate {
        path: dir.to_path_buf(),
        source,
    })
}

fn make_dir(path: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io("create cgroup", path)(e)),
    }
}

/// One node manager's cgroup, the parent of its containers'.
#[derive(Debug, Clone)]
pub struct NodeCgroups {
    version: CgroupVersion,
    dir: PathBuf,
}

impl NodeCgroups {
    /// Creates (or reuses, after a restart) `spindle-<name>` below this process's own cgroup.
    pub fn create(name: &str) -> Result<NodeCgroups, CgroupError> {
        let hierarchy = detect().map_err(CgroupError::Unavailable)?;
        NodeCgroups::create_in(&hierarchy, name)
    }

    /// Like `create`, below `hierarchy.own`.
    pub fn create_in(hierarchy: &Hierarchy, name: &str) -> Result<NodeCgroups, CgroupError> {
        let dir = hierarchy.own.join(format!("spindle-{name}"));
        if hierarchy.version == CgroupVersion::V2 {
            enable_memory_below(&hierarchy.own)?;
        }
        make_dir(&dir)?;
        if hierarchy.version == CgroupVersion::V2 {
            enable_memory_below(&dir)?;
        }
        Ok(NodeCgroups {
            version: hierarchy.version,
            dir,
        })
    }

    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new cgroup `name` limited to `memory_limit_bytes` of memory (swap included where the
    /// host accounts for it).
    pub fn container(
        &self,
        name: &str,
        memory_limit_bytes: u64,
    ) -> Result<ContainerCgroup, CgroupError> {
        let cgroup = ContainerCgroup {
            version: self.version,
            path: self.dir.join(name),
        };
        make_dir(&cgroup.path)?;
        if let Err(e) = cgroup.limit_memory(memory_limit_bytes) {
            let _ = std::fs::remove_dir(&cgroup.path);
            return Err(e);
        }
        Ok(cgroup)
    }

    /// Whether `cgroup` is one of this node's (a path read back from disk must be, before any
    /// process in it is killed).
    pub fn owns(&self, cgroup: &ContainerCgroup) -> bool {
        cgroup.version == self.version
            && cgroup.path.parent() == Some(self.dir.as_path())
            && cgroup.path.file_name().is_some()
    }

    /// The container cgroups below this node's, by name (left over from an earlier run, say).
    pub fn children(&self) -> Vec<(String, ContainerCgroup)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                Some((
                    name,
                    ContainerCgroup {
                        version: self.version,
                        path: e.path(),
                    },
                ))
            })
            .collect()
    }

    /// Removes the node's cgroup if no container cgroup is left in it.
    pub fn remove_if_empty(&self) {
        if self.children().is_empty() {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// One container's cgroup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContainerCgroup {
    pub version: CgroupVersion,
    pub path: PathBuf,
}

/// The number after `key` in a flat-keyed cgroup file (`oom_kill 3`).
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

impl ContainerCgroup {
    fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn limit_memory(&self, bytes: u64) -> Result<(), CgroupError> {
        let (limit, swap, swap_value) = match self.version {
            CgroupVersion::V1 => (
                "memory.limit_in_bytes",
                "memory.memsw.limit_in_bytes",
                bytes.to_string(),
            ),
            CgroupVersion::V2 => ("memory.max", "memory.swap.max", "0".to_string()),
        };
        let path = self.file(limit);
        std::fs::write(&path, bytes.to_string()).map_err(io("set the memory limit in", &path))?;
        // Only where the host accounts for swap: without it the file is missing, which is fine.
        let _ = std::fs::write(self.file(swap), swap_value);
        Ok(())
    }

    /// `cgroup.procs`, opened for writing: writing `0` to it moves the writer in. Opened before a
    /// fork so that the child only has to `write`.
    pub fn open_procs(&self) -> Result<std::fs::File, CgroupError> {
        let path = self.file("cgroup.procs");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(io("open", &path))
    }

    /// The processes in it now (none once it is gone).
    pub fn pids(&self) -> Vec<u32> {
        std::fs::read_to_string(self.file("cgroup.procs"))
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Sends `signal` to every process in it, once.
    pub fn signal_all(&self, signal: Signal) {
        for pid in self.pids() {
            if let Ok(pid) = i32::try_from(pid) {
                let _ = kill(Pid::from_raw(pid), signal);
            }
        }
    }

    /// SIGKILLs every process in it until none is left (a process forking meanwhile included);
    /// `false` if some were still there after every round.
    pub async fn kill_all(&self) -> bool {
        if self.version == CgroupVersion::V2 {
            // Atomic where the kernel has it (5.14+); the rounds below still confirm.
            let _ = std::fs::write(self.file("cgroup.kill"), "1");
        }
        let mut pause = FIRST_PAUSE;
        for _ in 0..KILL_ROUNDS {
            if self.pids().is_empty() {
                return true;
            }
            self.signal_all(Signal::SIGKILL);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_PAUSE);
        }
        self.pids().is_empty()
    }

    /// How many processes the kernel's OOM killer has killed in it.
    pub fn oom_kills(&self) -> u64 {
        let file = match self.version {
            CgroupVersion::V1 => "memory.oom_control",
            CgroupVersion::V2 => "memory.events",
        };
        std::fs::read_to_string(self.file(file))
            .ok()
            .and_then(|text| keyed(&text, "oom_kill"))
            .unwrap_or(0)
    }

    /// The most memory it has used, where the kernel tracks it.
    pub fn peak_bytes(&self) -> Option<u64> {
        let file = match self.version {
            CgroupVersion::V1 => "memory.max_usage_in_bytes",
            CgroupVersion::V2 => "memory.peak",
        };
        std::fs::read_to_string(self.file(file))
            .ok()
            .and_then(|text| text.trim().parse().ok())
    }

    /// Kills whatever is left in it and removes it; a cgroup already gone is fine.
    pub async fn remove(&self) {
        self.kill_all().await;
        let mut pause = FIRST_PAUSE;
        for round in 1..=KILL_ROUNDS {
            match std::fs::remove_dir(&self.path) {
                Ok(()) => return,
                Err(e) if e.kind() == ErrorKind::NotFound => return,
                Err(e) if round == KILL_ROUNDS => {
                    tracing::warn!(cgroup = %self.path.display(), "cannot remove the container's cgroup: {e}");
                }
                // Busy: a killed process is still being torn down, or one slipped in.
                Err(_) => {
                    self.signal_all(Signal::SIGKILL);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
