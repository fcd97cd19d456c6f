//! How much physical memory a container uses, sampled as YARN's process-tree monitor does: the
//! resident set of the launch script's bash and every descendant, read with `sysinfo`, plus any
//! process of the container's cgroup that left the tree (a double fork re-parents it to init).

use std::collections::{BTreeSet, HashMap};

use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// One process of a sampled tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessMemory {
    pub pid: u32,
    pub rss_bytes: u64,
    pub name: String,
}

/// A container's processes at one sample, and their resident memory summed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeMemory {
    pub rss_bytes: u64,
    /// By pid.
    pub processes: Vec<ProcessMemory>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot read the process table: {0}")]
pub struct SamplerError(String);

/// A snapshot of the host's processes, refreshed before each round of checks.
pub struct MemorySampler {
    system: System,
    children: HashMap<u32, Vec<u32>>,
}

impl MemorySampler {
    pub fn new() -> Result<MemorySampler, SamplerError> {
        let system = System::new().map_err(|e| SamplerError(e.to_string()))?;
        Ok(MemorySampler {
            system,
            children: HashMap::new(),
        })
    }

    /// Reads every process's parent and resident memory afresh (threads are not processes here).
    pub fn refresh(&mut self) {
        self.system.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing().with_memory().without_tasks(),
        );
        self.children.clear();
        for (pid, process) in self.system.processes() {
            if let Some(parent) = process.parent() {
                self.children
                    .entry(parent.as_u32())
                    .or_default()
                    .push(pid.as_u32());
            }
        }
    }

    /// The tree below `root` (itself included) together with `members`, as of the last refresh.
    pub fn tree(&self, root: u32, members: &[u32]) -> TreeMemory {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<u32> = members.to_vec();
        stack.push(root);
        while let Some(pid) = stack.pop() {
            if seen.insert(pid)
                && let Some(children) = self.children.get(&pid)
            {
                stack.extend(children);
            }
        }
        let processes: Vec<ProcessMemory> = seen
            .into_iter()
            .filter_map(|pid| {
                let process = self.system.process(Pid::from_u32(pid))?;
                Some(ProcessMemory {
                    pid,
                    rss_bytes: process.memory(),
                    name: process.name().to_string_lossy().into_owned(),
                })
            })
            .collect();
        TreeMemory {
            rss_bytes: processes.iter().map(|p| p.rss_bytes).sum(),
            processes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    const MB: u64 = 1 << 20;

    /// Starts `bash -c script` as a process group of its own; the script says it is ready by
    /// writing a line to fd 3.
    fn start(script: &str) -> std::process::Child {
        let mut child = Command::new("bash")
            .args(["-c", &format!("exec 3>&1 >/dev/null; {script}")])
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut byte = [0u8; 1];
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut byte)
            .unwrap();
        child
    }

    #[test]
    fn the_tree_counts_descendants_and_extra_members() {
        // `tail` keeps a line that never ends in memory: 64 MB of it, in a grandchild.
        let mut holder =
            start("{ head -c 64M /dev/zero; echo ready >&3; exec sleep 600; } | tail; wait");
        let mut outsider = start("echo ready >&3; exec sleep 600");
        let mut sampler = MemorySampler::new().unwrap();
        sampler.refresh();
        let tree = sampler.tree(holder.id(), &[]);
        assert!(tree.processes.len() >= 3, "{tree:?}");
        assert!(tree.processes.iter().any(|p| p.name == "tail"), "{tree:?}");
        assert!(tree.rss_bytes >= 60 * MB, "{tree:?}");
        assert!(!tree.processes.iter().any(|p| p.pid == outsider.id()));

        let with_member = sampler.tree(holder.id(), &[outsider.id()]);
        assert!(with_member.processes.iter().any(|p| p.pid == outsider.id()));
        assert_eq!(with_member.processes.len(), tree.processes.len() + 1);

        let gone = sampler.tree(u32::MAX, &[]);
        assert_eq!(gone, TreeMemory::default());
        for child in [&mut holder, &mut outsider] {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            child.wait().unwrap();
        }
    }
}
