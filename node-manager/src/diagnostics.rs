//! The diagnostics a container's completion carries to its application master and the user:
//! what ended it, in YARN's words where YARN has them, with numbers a user can act on.

use spindle_containers::memory::TreeMemory;
use spindle_containers::{ContainerId, exit_status};

const MB: u64 = 1 << 20;

/// Whole MB, rounded up: usage just over a limit must not print as equal to it.
fn mb_ceil(bytes: u64) -> u64 {
    bytes.div_ceil(MB)
}

pub fn exited(id: ContainerId, exit_code: i32, stderr_tail: &str) -> String {
    let mut text = format!(
        "Container {id} exited with {}",
        exit_status::describe(exit_code)
    );
    if !stderr_tail.is_empty() {
        text.push_str(&format!(".\nLast lines of stderr:\n{stderr_tail}"));
    }
    text
}

pub fn stopped(id: ContainerId, status: i32) -> String {
    let by = match status {
        exit_status::KILLED_BY_APPMASTER => " by the application master",
        exit_status::KILLED_BY_RESOURCEMANAGER => " by the resource manager",
        exit_status::KILLED_AFTER_APP_COMPLETION => " because its application completed",
        _ => "",
    };
    format!(
        "Container {id} was stopped{by}: {}",
        exit_status::describe(status)
    )
}

/// The memory monitor's verdict, as YARN words it, with the process tree it sampled.
pub fn beyond_memory(id: ContainerId, usage: &TreeMemory, limit_mb: u64) -> String {
    let mut text = format!(
        "Container {id} is running beyond physical memory limits. Current usage: {} MB of \
         {limit_mb} MB physical memory used. Killing container.\n\
         Dump of the process-tree for {id}:\n\t|- PID RSS_MB NAME",
        mb_ceil(usage.rss_bytes)
    );
    for process in &usage.processes {
        text.push_str(&format!(
            "\n\t|- {} {} {}",
            process.pid,
            mb_ceil(process.rss_bytes),
            process.name
        ));
    }
    text
}

/// The kernel's OOM killer got there first, at the cgroup's limit.
pub fn oom_killed(
    id: ContainerId,
    exit_code: i32,
    oom_kills: u64,
    peak_bytes: Option<u64>,
    limit_mb: u64,
) -> String {
    let usage_mb = peak_bytes.map_or(limit_mb, mb_ceil);
    let processes = if oom_kills == 1 {
        "1 process".to_string()
    } else {
        format!("{oom_kills} processes")
    };
    format!(
        "Container {id} is running beyond physical memory limits. Current usage: {usage_mb} MB \
         of {limit_mb} MB physical memory used. The kernel's OOM killer killed {processes} of \
         it at its cgroup's memory limit, and it exited with {}.",
        exit_status::describe(exit_code)
    )
}

/// It ended while no node manager watched it, and left no exit code behind.
pub fn lost(id: ContainerId) -> String {
    format!(
        "Container {id} ended while the node manager was not running, without recording its \
         exit code: {}",
        exit_status::describe(exit_status::ABORTED)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use spindle_containers::memory::ProcessMemory;

    fn cid() -> ContainerId {
        "container_1700000000000_0001_01_000002".parse().unwrap()
    }

    #[test]
    fn exits_and_stops_name_the_container_the_status_and_quote_stderr() {
        assert_eq!(
            exited(cid(), 3, "boom\nbad input"),
            "Container container_1700000000000_0001_01_000002 exited with exit status 3.\n\
             Last lines of stderr:\nboom\nbad input"
        );
        assert_eq!(
            exited(cid(), 0, ""),
            "Container container_1700000000000_0001_01_000002 exited with exit status 0"
        );
        assert_eq!(
            stopped(cid(), exit_status::KILLED_BY_APPMASTER),
            "Container container_1700000000000_0001_01_000002 was stopped by the application \
             master: exit status -105 (KILLED_BY_APPMASTER)"
        );
    }

    #[test]
    fn memory_verdicts_say_usage_and_limit_like_yarn() {
        let usage = TreeMemory {
            rss_bytes: 812 * MB - 5,
            processes: vec![
                ProcessMemory {
                    pid: 10,
                    rss_bytes: 3 * MB,
                    name: "bash".into(),
                },
                ProcessMemory {
                    pid: 11,
                    rss_bytes: 809 * MB - 5,
                    name: "tail".into(),
                },
            ],
        };
        assert_eq!(
            beyond_memory(cid(), &usage, 512),
            "Container container_1700000000000_0001_01_000002 is running beyond physical memory \
             limits. Current usage: 812 MB of 512 MB physical memory used. Killing container.\n\
             Dump of the process-tree for container_1700000000000_0001_01_000002:\n\
             \t|- PID RSS_MB NAME\n\t|- 10 3 bash\n\t|- 11 809 tail"
        );
        assert_eq!(
            oom_killed(cid(), 137, 1, Some(512 * MB), 512),
            "Container container_1700000000000_0001_01_000002 is running beyond physical memory \
             limits. Current usage: 512 MB of 512 MB physical memory used. The kernel's OOM \
             killer killed 1 process of it at its cgroup's memory limit, and it exited with exit \
             status 137."
        );
        assert!(oom_killed(cid(), 137, 2, None, 64).contains("Current usage: 64 MB of 64 MB"));
        assert!(oom_killed(cid(), 137, 2, None, 64).contains("killed 2 processes"));
    }
}
