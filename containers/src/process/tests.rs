//! The process layer against real processes: exit codes, sessions, whole-group stops, cgroup
//! membership, limits and kills where the host has writable cgroups, and adoption by pid.

use super::*;
use crate::cgroup::tests::node_cgroups_for_test;
use crate::launch_script::{SCRIPT_FILE, render};
use std::collections::BTreeMap;

const HANG_GUARD: Duration = Duration::from_secs(60);

struct Container {
    dir: tempfile::TempDir,
    process: ContainerProcess,
}

fn start(command: &[&str]) -> Container {
    start_in(command, None)
}

/// Renders the launch script for `command` into a new container dir.
fn prepare(command: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    let script = render(&command, &BTreeMap::new()).unwrap();
    std::fs::write(dir.path().join(SCRIPT_FILE), script).unwrap();
    dir
}

fn start_in(command: &[&str], cgroup: Option<ContainerCgroup>) -> Container {
    let dir = prepare(command);
    let spec = ProcessSpec {
        script: dir.path().join(SCRIPT_FILE),
        working_dir: dir.path().to_path_buf(),
        stdout: dir.path().join("stdout"),
        stderr: dir.path().join("stderr"),
        inherited_env: vec![("PATH".into(), std::env::var("PATH").unwrap_or_default())],
        cgroup,
        run_as: None,
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
        while std::fs::read_to_string(c.dir.path().join(file)).map_or(true, |s| !s.ends_with('\n'))
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
fn a_stop_decides_else_the_file_else_the_os_status_mapped_like_bash() {
    let (three, killed) = (ExitStatus::from_raw(3 << 8), ExitStatus::from_raw(9));
    assert_eq!(
        classify(false, None, Some(three), None),
        Exit::Exited { exit_code: 3 }
    );
    assert_eq!(
        classify(false, None, Some(killed), None),
        Exit::Exited { exit_code: 137 }
    );
    assert_eq!(
        classify(false, Some(42), Some(killed), None),
        Exit::Exited { exit_code: 42 }
    );
    assert_eq!(classify(false, None, None, None), Exit::Lost);
    assert_eq!(classify(true, Some(42), Some(killed), None), Exit::Stopped);
}

#[test]
fn a_failure_after_oom_kills_is_out_of_memory_and_a_success_is_not() {
    let oom = Some((2, Some(64 << 20)));
    assert_eq!(
        classify(false, Some(137), None, oom),
        Exit::OutOfMemory {
            exit_code: 137,
            oom_kills: 2,
            peak_bytes: Some(64 << 20)
        }
    );
    // The program survived the kill of one of its helpers and succeeded.
    assert_eq!(
        classify(false, Some(0), None, oom),
        Exit::Exited { exit_code: 0 }
    );
    assert_eq!(
        classify(false, Some(137), None, Some((0, None))),
        Exit::Exited { exit_code: 137 }
    );
    assert_eq!(classify(true, Some(137), None, oom), Exit::Stopped);
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
        cgroup: None,
        run_as: None,
    };
    let err = spawn(&spec).unwrap_err();
    assert!(err.to_string().contains("no/such/stdout"), "{err}");
}

#[tokio::test]
async fn a_log_file_planted_as_a_link_is_refused_and_its_target_untouched() {
    let dir = prepare(&["true"]);
    let target = dir.path().join("target");
    std::fs::write(&target, "keep\n").unwrap();
    std::os::unix::fs::symlink(&target, dir.path().join("stdout")).unwrap();
    let spec = ProcessSpec {
        script: dir.path().join(SCRIPT_FILE),
        working_dir: dir.path().to_path_buf(),
        stdout: dir.path().join("stdout"),
        stderr: dir.path().join("stderr"),
        inherited_env: vec![],
        cgroup: None,
        run_as: None,
    };
    let err = spawn(&spec).unwrap_err();
    assert!(err.to_string().contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep\n");
}

#[tokio::test]
async fn as_root_the_program_runs_as_the_given_user_with_its_groups_and_owns_its_logs() {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("not root: running a container as another user is not tested");
        return;
    }
    let nobody = RunAs::lookup("nobody")
        .unwrap()
        .expect("the host has the user nobody");
    let dir = prepare(&["bash", "-c", "id -u; id -g; id -G"]);
    nobody.own_dir(dir.path(), 0o700).unwrap();
    nobody.own(&dir.path().join(SCRIPT_FILE)).unwrap();
    let cgroups = node_cgroups_for_test("run-as");
    let cgroup = cgroups
        .as_ref()
        .map(|c| c.container("container_run_as", 64 << 20).unwrap());
    let spec = ProcessSpec {
        script: dir.path().join(SCRIPT_FILE),
        working_dir: dir.path().to_path_buf(),
        stdout: dir.path().join("stdout"),
        stderr: dir.path().join("stderr"),
        inherited_env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        cgroup,
        run_as: Some(nobody.clone()),
    };
    let process = spawn(&spec).unwrap();
    assert_eq!(guarded(process.wait()).await, Exit::Exited { exit_code: 0 });
    let out = std::fs::read_to_string(dir.path().join("stdout")).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], nobody.uid.to_string(), "{out}");
    assert_eq!(lines[1], nobody.gid.to_string(), "{out}");
    let mut groups: Vec<u32> = lines[2].split(' ').map(|g| g.parse().unwrap()).collect();
    groups.sort();
    let mut expected = nobody.groups.clone();
    expected.sort();
    expected.dedup();
    assert_eq!(groups, expected, "no group of root's is kept");
    for log in ["stdout", "stderr"] {
        let meta = std::fs::metadata(dir.path().join(log)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (nobody.uid, nobody.gid), "{log}");
    }
    // The script wrote its exit code as that user.
    let meta = std::fs::metadata(dir.path().join(EXIT_CODE_FILE)).unwrap();
    assert_eq!(meta.uid(), nobody.uid);
    if let Some(cgroups) = cgroups {
        cgroups.remove_if_empty();
    }
}

/// Holds a line that never ends in `tail`: memory grows to `size` and stays until it is killed,
/// and the writer's loop ends (by SIGPIPE) once `tail` is gone, so the pipeline ends too.
pub(crate) fn memory_hog(size: &str) -> Vec<String> {
    let script =
        format!("{{ head -c {size} /dev/zero; while printf '\\0'; do sleep 0.1; done; }} | tail");
    vec!["bash".into(), "-c".into(), script]
}

#[tokio::test]
async fn the_kernel_enforces_the_cgroup_limit_and_the_oom_kill_is_reported() {
    let Some(node) = node_cgroups_for_test("oom") else {
        return;
    };
    let cgroup = node.container("hog", 32 << 20).unwrap();
    let command = memory_hog("256M");
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    let c = start_in(&command, Some(cgroup.clone()));
    match guarded(c.process.wait()).await {
        Exit::OutOfMemory {
            exit_code,
            oom_kills,
            peak_bytes,
        } => {
            assert_eq!(exit_code, 137);
            assert!(oom_kills >= 1);
            assert!(peak_bytes.is_none_or(|p| p <= 33 << 20), "{peak_bytes:?}");
        }
        other => panic!("expected an OOM kill, got {other:?}"),
    }
    assert!(!cgroup.path.exists(), "the container's cgroup is removed");
    node.remove_if_empty();
}

#[tokio::test]
async fn what_leaves_the_session_is_still_killed_with_the_container() {
    let Some(node) = node_cgroups_for_test("escape") else {
        return;
    };
    let escape = "setsid bash -c 'echo $$ > escapee.pid.tmp; mv escapee.pid.tmp escapee.pid; exec sleep 600' &";
    // One container is stopped, the other ends on its own: neither leaves its escapee behind.
    let stopped = start_in(
        &["bash", "-c", &format!("{escape} sleep 600")],
        Some(node.container("stopped", 64 << 20).unwrap()),
    );
    let finished = start_in(
        &[
            "bash",
            "-c",
            &format!("{escape} while [ ! -e escapee.pid ]; do sleep 0.01; done"),
        ],
        Some(node.container("finished", 64 << 20).unwrap()),
    );
    written(&stopped, "escapee.pid").await;
    let escapees = [read_pid(&stopped, "escapee.pid")];
    assert!(running(escapees[0]));
    let stat = proc_stat::read(escapees[0]).unwrap();
    assert_ne!(
        stat.session,
        stopped.process.pid(),
        "it did leave the session"
    );
    assert_eq!(
        guarded(stopped.process.stop(DEFAULT_KILL_GRACE)).await,
        Exit::Stopped
    );
    ended(escapees[0]).await;

    assert_eq!(
        guarded(finished.process.wait()).await,
        Exit::Exited { exit_code: 0 }
    );
    ended(read_pid(&finished, "escapee.pid")).await;
    node.remove_if_empty();
    assert!(!node.dir().exists(), "both container cgroups are gone");
}

/// Starts `command`'s launch script the way an earlier node manager would have, not as a child
/// this runtime watches.
fn start_elsewhere(command: &[&str]) -> (tempfile::TempDir, std::process::Child) {
    use std::os::unix::process::CommandExt;
    let dir = prepare(command);
    let child = std::process::Command::new("bash")
        .arg(dir.path().join(SCRIPT_FILE))
        .current_dir(dir.path())
        .process_group(0)
        .spawn()
        .unwrap();
    (dir, child)
}

#[tokio::test]
async fn a_running_process_is_adopted_and_watched_until_it_exits() {
    let (dir, mut child) =
        start_elsewhere(&["bash", "-c", "echo $$ > fg.pid; read line < go; exit 5"]);
    let fifo = dir.path().join("go");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let start_time = proc_stat::read(child.id()).unwrap().start_time;
    let recorded = Recorded {
        pid: child.id(),
        start_time,
        working_dir: dir.path().to_path_buf(),
        cgroup: None,
    };
    let Adopted::Running(process) = adopt(recorded).await else {
        panic!("the process runs");
    };
    assert_eq!(
        (process.pid(), process.start_time()),
        (child.id(), start_time)
    );
    assert_eq!(process.try_exit(), None);
    // Let it go on: the exit comes through the pidfd, and the status from `exit_code`.
    let writer = std::thread::spawn(move || std::fs::write(fifo, "go\n").unwrap());
    assert_eq!(guarded(process.wait()).await, Exit::Exited { exit_code: 5 });
    writer.join().unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(5));
}

#[tokio::test]
async fn an_adopted_process_can_be_stopped_as_a_group() {
    let (dir, mut child) = start_elsewhere(&["bash", "-c", "sleep 600 & echo $! > bg.pid; wait"]);
    let bg = dir.path().join("bg.pid");
    guarded(async {
        while std::fs::read_to_string(&bg).map_or(true, |s| !s.ends_with('\n')) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let background: u32 = std::fs::read_to_string(&bg)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let recorded = Recorded {
        pid: child.id(),
        start_time: proc_stat::read(child.id()).unwrap().start_time,
        working_dir: dir.path().to_path_buf(),
        cgroup: None,
    };
    let Adopted::Running(process) = adopt(recorded).await else {
        panic!("the process runs");
    };
    assert_eq!(
        guarded(process.stop(DEFAULT_KILL_GRACE)).await,
        Exit::Stopped
    );
    ended(background).await;
    child.wait().unwrap();
}

#[tokio::test]
async fn a_process_that_ended_or_was_replaced_is_reported_from_its_exit_code_file() {
    let (dir, mut child) = start_elsewhere(&["bash", "-c", "exit 7"]);
    let pid = child.id();
    let start_time = proc_stat::read(pid).unwrap().start_time;
    assert_eq!(child.wait().unwrap().code(), Some(7));
    let recorded = Recorded {
        pid,
        start_time,
        working_dir: dir.path().to_path_buf(),
        cgroup: None,
    };
    assert!(matches!(
        adopt(recorded.clone()).await,
        Adopted::Ended(Exit::Exited { exit_code: 7 })
    ));

    // The pid of a process that runs, with another start time: not ours, left alone.
    let me = Recorded {
        pid: std::process::id(),
        ..recorded.clone()
    };
    assert!(matches!(
        adopt(me).await,
        Adopted::Ended(Exit::Exited { exit_code: 7 })
    ));

    // No exit code written (bash was killed, say): lost.
    std::fs::remove_file(dir.path().join(EXIT_CODE_FILE)).unwrap();
    assert!(matches!(adopt(recorded).await, Adopted::Ended(Exit::Lost)));
}
