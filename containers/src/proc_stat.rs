//! What `/proc/<pid>/stat` says of a process: whether it still runs, and when it started. A pid
//! alone does not name a process for long (the kernel reuses pids), so a container's process is
//! recorded as its pid and its start time, and both must match before it is taken back.

/// The fields of `/proc/<pid>/stat` Spindle uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// `R`, `S`, `D`, `Z` (zombie), ….
    pub state: char,
    pub parent: u32,
    pub process_group: u32,
    pub session: u32,
    /// Clock ticks after boot at which the process started.
    pub start_time: u64,
}

impl ProcStat {
    /// Ended, though not yet reaped by its parent (or being torn down).
    pub fn has_ended(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) is in parentheses and may
/// itself hold spaces and parentheses, so fields are counted from the last `)`.
pub fn parse(text: &str) -> Option<ProcStat> {
    let (_, rest) = text.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); starttime is field 22.
    let field = |n: usize| fields.get(n - 3).copied();
    Some(ProcStat {
        state: field(3)?.chars().next()?,
        parent: field(4)?.parse().ok()?,
        process_group: field(5)?.parse().ok()?,
        session: field(6)?.parse().ok()?,
        start_time: field(22)?.parse().ok()?,
    })
}

/// The process `pid` as the kernel sees it now, `None` if there is none.
pub fn read(pid: u32) -> Option<ProcStat> {
    parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Whether `pid` is still the process that started at `start_time`, and has not ended.
pub fn is_running(pid: u32, start_time: u64) -> bool {
    read(pid).is_some_and(|stat| stat.start_time == start_time && !stat.has_ended())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_counted_from_the_last_parenthesis() {
        let text = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                    987654 2048000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";
        assert_eq!(
            parse(text),
            Some(ProcStat {
                state: 'S',
                parent: 1,
                process_group: 4242,
                session: 4242,
                start_time: 987654,
            })
        );
        assert_eq!(parse("4242 (truncated) S 1 2"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn this_process_runs_and_a_wrong_start_time_is_another_process() {
        let me = std::process::id();
        let stat = read(me).unwrap();
        assert!(!stat.has_ended());
        assert!(is_running(me, stat.start_time));
        assert!(!is_running(me, stat.start_time + 1));
        assert!(!is_running(u32::MAX, stat.start_time));
    }

    #[test]
    fn an_unreaped_child_has_ended() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let start_time = read(pid).unwrap().start_time;
        // Wait for the exit without reaping it: the zombie still has a stat file.
        assert!(wait_without_reaping(pid));
        assert!(read(pid).unwrap().has_ended());
        assert!(!is_running(pid, start_time));
        child.wait().unwrap();
        assert!(read(pid).is_none());
    }

    /// Blocks until child `pid` has exited, leaving it unreaped (`waitid` with `WNOWAIT`).
    fn wait_without_reaping(pid: u32) -> bool {
        use nix::sys::wait::{Id, WaitPidFlag, waitid};
        let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT;
        waitid(Id::Pid(nix::unistd::Pid::from_raw(pid as i32)), flags).is_ok()
    }
}
