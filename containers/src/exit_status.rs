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

/// The class of a status, as metrics label it: `success`, `failed` (the process's own non-zero
/// code), or YARN's name of a negative status in lower case (`killed_exceeded_pmem`, …;
/// `invalid` for a negative status YARN does not name).
pub fn class(status: i32) -> &'static str {
    match status {
        SUCCESS => "success",
        ABORTED => "aborted",
        DISKS_FAILED => "disks_failed",
        PREEMPTED => "preempted",
        KILLED_EXCEEDED_VMEM => "killed_exceeded_vmem",
        KILLED_EXCEEDED_PMEM => "killed_exceeded_pmem",
        KILLED_BY_APPMASTER => "killed_by_appmaster",
        KILLED_BY_RESOURCEMANAGER => "killed_by_resourcemanager",
        KILLED_AFTER_APP_COMPLETION => "killed_after_app_completion",
        s if s < 0 => "invalid",
        _ => "failed",
    }
}

/// Every value `class` returns, so a metric can show each (at 0) from the start.
pub const CLASSES: &[&str] = &[
    "success",
    "failed",
    "aborted",
    "disks_failed",
    "preempted",
    "killed_exceeded_vmem",
    "killed_exceeded_pmem",
    "killed_by_appmaster",
    "killed_by_resourcemanager",
    "killed_after_app_completion",
    "invalid",
];

/// `exit status 3`, or `exit status -100 (ABORTED)`: the phrase diagnostics use.
pub fn describe(status: i32) -> String {
    match name(status) {
        Some(n) => format!("exit status {status} ({n})"),
        None => format!("exit status {status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_has_one_of_the_listed_classes() {
        for status in [
            0, 1, 3, 137, 255, -100, -101, -102, -103, -104, -105, -106, -107, -1000, -5,
        ] {
            assert!(CLASSES.contains(&class(status)), "{status}");
        }
        assert_eq!(class(0), "success");
        assert_eq!(class(143), "failed");
        assert_eq!(class(KILLED_EXCEEDED_PMEM), "killed_exceeded_pmem");
        assert_eq!(class(-5), "invalid");
        // One class per named negative status, plus success, failed and invalid.
        let named = [-100, -101, -102, -103, -104, -105, -106, -107];
        let classes: std::collections::BTreeSet<_> = named.iter().map(|s| class(*s)).collect();
        assert_eq!(classes.len(), named.len());
        assert_eq!(CLASSES.len(), named.len() + 3);
    }
}
