//! Container exit statuses: a process's own exit code as it is, or one of YARN's negative codes
//! that say why the container ended without its process choosing to.

pub const SUCCESS: i32 = 0;
/// The node was lost, so the container's fate is unknown.
pub const ABORTED: i32 = -100;
pub const DISKS_FAILED: i32 = -101;
pub const PREEMPTED: i32 = -102;
pub const KILLED_EXCEEDED_VMEM: i32 = -103;
pub const KILLED_EXCEEDED_PMEM: i32 = -104;
pub const KILLED_BY_APPMASTER: i32 = -105;
pub const KILLED_BY_RESOURCEMANAGER: i32 = -106;
pub const KILLED_AFTER_APP_COMPLETION: i32 = -107;
pub const INVALID: i32 = -1000;

/// YARN's name for a negative status, or `None` for a process's own code.
pub fn name(status: i32) -> Option<&'static str> {
    Some(match status {
        ABORTED => "ABORTED",
        DISKS_FAILED => "DISKS_FAILED",
        PREEMPTED => "PREEMPTED",
        KILLED_EXCEEDED_VMEM => "KILLED_EXCEEDED_VMEM",
        KILLED_EXCEEDED_PMEM => "KILLED_EXCEEDED_PMEM",
        KILLED_BY_APPMASTER => "KILLED_BY_APPMASTER",
        KILLED_BY_RESOURCEMANAGER => "KILLED_BY_RESOURCEMANAGER",
        KILLED_AFTER_APP_COMPLETION => "KILLED_AFTER_APP_COMPLETION",
        INVALID => "INVALID",
        _ => return None,
    })
}

/// `exit status 3`, or `exit status -100 (ABORTED)`: the phrase diagnostics use.
pub fn describe(status: i32) -> String {
    match name(status) {
        Some(n) => format!("exit status {status} ({n})"),
        None => format!("exit status {status}"),
    }
}
