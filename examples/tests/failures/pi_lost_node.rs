//! Pi (the SDK's SparkPi, in cluster mode: its driver in the AM) loses a node while its
//! executors compute on both nodes: either the node manager alone is SIGKILLed (its
//! containers live on, orphaned) or the whole host dies (the NM and every process of its
//! containers). Either way the RM marks the node LOST after the NM expiry and reports its
//! executors' containers to the AM as -100, the AM asks for replacements, which the live node
//! gets, the driver runs the lost executors' tasks again, and Pi SUCCEEDS with the right
//! estimate. Orphaned executors are forgotten by the driver and told to shut down at its end.

use std::fs;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::support::*;

const SHORT_EXPIRIES: &[&str] = &["--nm-liveness-expiry", "2s", "--am-liveness-expiry", "5s"];

/// 8 tasks of 200 million samples, several seconds of CPU each: the executors on the lost
/// node are caught computing, and their tasks still run when the RM reports them lost.
const SAMPLES: &str = "1600000000";

/// Pi's executor processes of `app` on node `index`.
fn executors_on(cluster: &Cluster, index: usize, app: &str) -> Vec<u32> {
    let needle = format!("APPLICATION_ID={app}");
    node_processes(&cluster.node_ids[index], &cluster.work_dirs[index])
        .into_iter()
        .filter(|pid| {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let env = fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            cmdline.split(|b| *b == 0).nth(1) == Some(b"executor".as_slice())
                && env.split(|b| *b == 0).any(|v| v == needle.as_bytes())
        })
        .collect()
}

/// CPU time (user + system) a process has used, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the parenthesised command name come the state (field 3) … utime (14), stime (15).
    let fields: Vec<u64> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    fields.iter().sum()
}

/// `(executor id, node)` of every `launched executor` line of the AM's log.
fn launched(am_log: &str) -> Vec<(u32, String)> {
    am_log
        .lines()
        .filter(|l| l.contains("launched executor "))
        .filter_map(|l| {
            let field = |key: &str| {
                l.split_whitespace()
                    .find_map(|w| w.strip_prefix(key))
                    .map(str::to_string)
            };
            Some((field("executor_id=")?.parse().ok()?, field("node=")?))
        })
        .collect()
}

/// How the node is lost.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Loss {
    /// SIGKILL of the node manager alone: its containers live on, orphaned.
    NodeManager,
    /// SIGKILL of the node manager and of every process of its containers.
    Host,
}

fn pi_loses_a_node(loss: Loss) {
    let _turn = take_turn();
    let label = match loss {
        Loss::NodeManager => "pi, NM killed",
        Loss::Host => "pi, host dies",
    };
    // Two nodes of 2048 MB: the 512 MB AM on one, spread placement puts four 512 MB executors
    // on both (at least one beside the AM, at least two on the other), and the live node
    // has room for a replacement.
    let mut cluster = Cluster::start_with_rm_flags(2, 2048, SHORT_EXPIRIES);
    let mut submit = spindle();
    submit.args([
        "submit",
        "--rm",
        &cluster.rm_addr,
        "--num-executors",
        "4",
        "--",
        pi(),
        SAMPLES,
    ]);
    let submitted = Running::start(submit, "spindle submit pi");
    let app = submitted.first_line();
    let am_node = attempts(&cluster, &app)[0].node.clone();
    let victim = if cluster.node_ids[0] == am_node { 1 } else { 0 };
    let (victim_id, live_id) = (
        cluster.node_ids[victim].clone(),
        cluster.node_ids[1 - victim].clone(),
    );
    let on_victim = wait_for(COMMAND, "executors computing on both nodes", || {
        let on_victim = executors_on(&cluster, victim, &app);
        let computing = !on_victim.is_empty() && on_victim.iter().all(|p| cpu_ticks(*p) > 10);
        (computing && !executors_on(&cluster, 1 - victim, &app).is_empty()).then_some(on_victim)
    })
    .0;

    let killed_at = Instant::now();
    match loss {
        Loss::NodeManager => kill_node_manager(&mut cluster, victim),
        Loss::Host => {
            cluster.kill_node(victim);
        }
    }
    let orphans_alive = on_victim.iter().filter(|p| alive(**p)).count();
    match loss {
        Loss::NodeManager => assert_eq!(orphans_alive, on_victim.len(), "they live on"),
        Loss::Host => assert_eq!(orphans_alive, 0, "they died with the host"),
    }

    let ((), lost_at) = wait_for(Duration::from_secs(60), "the node to be LOST", || {
        (cluster.node_state(victim).as_deref() == Some("LOST")).then_some(())
    });
    measured(
        &format!("{label}: SIGKILL to LOST (NM expiry 2 s)"),
        lost_at - killed_at,
    );
    let am = am_container(&app, 1);
    let am_log = || cluster.spindle("logs", &[&app, "--container", &am]).stdout;
    let ((), told_at) = wait_for(Duration::from_secs(60), "the AM to hear of -100", || {
        let aborted = am_log()
            .lines()
            .filter(|l| l.contains("executor exited") && l.contains("exit status -100 (ABORTED)"))
            .count();
        (aborted == on_victim.len()).then_some(())
    });
    measured(
        &format!("{label}: SIGKILL to the AM told (-100)"),
        told_at - killed_at,
    );
    let (replacement, replaced_at) =
        wait_for(Duration::from_secs(60), "a replacement executor", || {
            launched(&am_log()).into_iter().find(|(id, _)| *id > 4)
        });
    measured(
        &format!("{label}: SIGKILL to a replacement launched"),
        replaced_at - killed_at,
    );
    assert_eq!(
        replacement.1, live_id,
        "the replacement is on the live node"
    );

    let run = submitted.wait();
    measured(&format!("{label}: SIGKILL to Pi done"), killed_at.elapsed());
    assert!(run.ok(), "{run}");
    let status = cluster.spindle("status", &[&app]);
    assert_eq!(
        status_field(&status.stdout, "Final-State"),
        "SUCCEEDED",
        "{status}"
    );
    let log = am_log();
    let estimate: f64 = log
        .lines()
        .find_map(|l| l.strip_prefix("Pi is roughly "))
        .unwrap_or_else(|| panic!("no estimate:\n{log}"))
        .trim()
        .parse()
        .expect("a number");
    assert!((estimate - std::f64::consts::PI).abs() < 0.01, "{estimate}");
    // The lost executors' tasks ran again: the driver says how many each held. Orphans keep
    // their sessions, so the RM's word (through the AM) is what drops them; a dead host's
    // executors' sessions break at once.
    let why = match loss {
        Loss::NodeManager => "lost executor: its container ended",
        Loss::Host => "lost executor: its session ended",
    };
    let rerun: u32 = log
        .lines()
        .filter(|l| l.contains(why))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("running="))
                .and_then(|n| n.parse::<u32>().ok())
        })
        .sum();
    assert!(rerun >= 1, "no task of the lost node ran again:\n{log}");

    let nodes = cluster.spindle("nodes", &[]);
    let lost_row = nodes
        .stdout
        .lines()
        .find(|l| l.starts_with(&victim_id))
        .unwrap_or_else(|| panic!("the lost node is still listed:\n{nodes}"));
    assert!(lost_row.contains("LOST"), "{lost_row}");
    // Orphans too: the driver told them to shut down as it ended.
    wait_until(
        Duration::from_secs(30),
        "the app's processes to end",
        || processes_of(&app, &cluster.work_dirs).is_empty(),
    );
}

#[test]
fn pi_whose_node_manager_is_killed_gets_replacements_reruns_the_lost_tasks_and_succeeds() {
    pi_loses_a_node(Loss::NodeManager);
}

#[test]
fn pi_on_a_host_that_dies_gets_replacements_reruns_the_lost_tasks_and_succeeds() {
    pi_loses_a_node(Loss::Host);
}
