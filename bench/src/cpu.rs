//! CPU time per process, as the kernel counts it (`/proc/<pid>/stat`): what lets a scenario say
//! where a missed target went (the RM, the NM, the containers it runs, or the bench itself)
//! rather than only that it was missed.

use std::time::Duration;

use anyhow::Context;

/// The kernel reports these times in USER_HZ ticks, which Linux fixes at 100 per second.
const TICKS_PER_SECOND: u64 = 100;

/// CPU time used so far (user + system).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// By the process itself, all its threads.
    pub own: Duration,
    /// By its children that have ended and been waited for (and, through them, theirs).
    pub children: Duration,
}

impl CpuTimes {
    /// The process `pid` (`"self"` for this one).
    pub fn of(pid: &str) -> anyhow::Result<CpuTimes> {
        let path = format!("/proc/{pid}/stat");
        let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        parse(&stat).with_context(|| format!("{path} does not have the expected fields"))
    }

    /// What was used since `earlier`.
    pub fn since(self, earlier: CpuTimes) -> CpuTimes {
        CpuTimes {
            own: self.own.saturating_sub(earlier.own),
            children: self.children.saturating_sub(earlier.children),
        }
    }
}

/// utime, stime, cutime and cstime are fields 14 to 17; the command name (field 2) is in
/// parentheses and may itself hold spaces, so fields are counted after its closing one.
fn parse(stat: &str) -> Option<CpuTimes> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `fields[0]` is field 3 (the state).
    let ticks = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let to_duration = |t: u64| Duration::from_millis(t * 1000 / TICKS_PER_SECOND);
    Some(CpuTimes {
        own: to_duration(ticks(14)? + ticks(15)?),
        children: to_duration(ticks(16)? + ticks(17)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_and_children_times_past_a_name_with_spaces() {
        let stat = "4242 (tokio rt (x)) S 1 4242 4242 0 -1 4194560 500 0 0 0 \
                    120 30 7 3 20 0 3 0 100 1000000 300 18446744073709551615";
        let times = parse(stat).unwrap();
        assert_eq!(times.own, Duration::from_millis(1500));
        assert_eq!(times.children, Duration::from_millis(100));
        assert_eq!(parse("4242 (x) S 1"), None);
    }

    #[test]
    fn this_process_uses_cpu() {
        let before = CpuTimes::of("self").unwrap();
        let mut x: u64 = 0;
        for i in 0..50_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let used = CpuTimes::of("self").unwrap().since(before);
        assert!(used.own > Duration::ZERO, "{used:?}");
    }
}
