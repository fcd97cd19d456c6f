//! The resource manager SIGKILLed while distributed-shell runs, and started again on the same
//! state directory and port: the node managers register again with their running containers,
//! the application master resyncs, and the work goes on. Nothing acknowledged before the kill
//! is lost: finished applications keep their final status, a submission acknowledged just
//! before the kill runs, and application ids go on where they were. Containers allocated after
//! the restart carry epoch 1 (`container_e1_…`).

use std::time::{Duration, Instant};

use crate::common::*;
use crate::support::*;

fn seq_of(app: &str) -> u32 {
    app.rsplit('_')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("app sequence")
}

fn ts_of(app: &str) -> &str {
    app.split('_').nth(1).expect("cluster timestamp")
}

fn apps_row(cluster: &Cluster, app: &str) -> String {
    let apps = cluster.spindle("apps", &[]);
    assert!(apps.ok(), "{apps}");
    apps.stdout
        .lines()
        .find(|l| l.starts_with(app))
        .unwrap_or_else(|| panic!("{app} not listed:\n{apps}"))
        .to_string()
}

#[test]
fn an_rm_killed_mid_application_comes_back_and_the_application_succeeds() {
    let _turn = take_turn();
    let mut cluster = Cluster::start_with_rm_flags(2, 1024, CALM_RM_FLAGS);

    // History that must survive: one application that succeeded, one that failed.
    let ok = cluster.submit_shell(
        &[],
        &["--container-memory", "256", "--shell-command", "true"],
    );
    assert!(ok.ok(), "{ok}");
    let succeeded = app_id_of(&ok);
    let bad = cluster.submit_shell(
        &[],
        &["--container-memory", "256", "--shell-command", "exit 3"],
    );
    assert_eq!(bad.code, Some(1), "{bad}");
    let failed = app_id_of(&bad);

    // Eight 256 MB containers next to a 512 MB AM on 2 × 1024 MB: six run, two wait.
    let submit = cluster.spawn_shell(
        &["--name", "through-a-restart"],
        &[
            "--num-containers",
            "8",
            "--container-memory",
            "256",
            "--shell-command",
            "sleep 3; echo done",
        ],
    );
    let app = submit.first_line();
    wait_until(Duration::from_secs(120), "six sleeping containers", || {
        (0..2)
            .map(|i| sleeping_on(&cluster, i, &app))
            .sum::<usize>()
            == 6
    });
    // Acknowledged, then the RM dies at once: the cluster is full, so its AM is still waiting.
    let late = cluster.submit_shell(
        &["--no-wait"],
        &["--container-memory", "256", "--shell-command", "echo late"],
    );
    assert!(late.ok(), "{late}");
    let late = app_id_of(&late);

    let killed_at = Instant::now();
    cluster.kill_rm();
    cluster.restart_rm(CALM_RM_FLAGS);
    let serving_at = Instant::now();
    measured(
        "RM restart: SIGKILL to the new RM serving",
        serving_at - killed_at,
    );
    let ((), nodes_at) = wait_for(Duration::from_secs(60), "both nodes back", || {
        (0..2)
            .all(|i| cluster.node_state(i).as_deref() == Some("RUNNING"))
            .then_some(())
    });
    measured(
        "RM restart: serving to both NMs registered again",
        nodes_at - serving_at,
    );

    // The user's `spindle submit` follows the application through the restart (its watch is
    // opened again) and ends with the application's success.
    let run = submit.wait();
    measured(
        "RM restart: SIGKILL to the application SUCCEEDED",
        killed_at.elapsed(),
    );
    assert!(run.ok(), "{run}");
    assert!(run.stderr.contains("FINISHED (SUCCEEDED)"), "{run}");
    assert!(
        run.stderr.contains("lost the watch; opening it again"),
        "{run}"
    );
    let all = attempts(&cluster, &app);
    println!("attempts of {app} across the restart: {all:#?}");
    let last = all.last().expect("an attempt");
    assert_eq!(last.state, "FINISHED", "{all:#?}");
    // The AM client retries calls that cannot reach the RM while the RM would still wait for
    // the AM, so distributed-shell's AM normally rides out the restart: it resyncs, finishes in
    // attempt 1 and gets its two waiting containers in epoch 1. Should its retries run out
    // first, the RM sees attempt 1's container end and starts attempt 2, in epoch 1; either way
    // nothing is lost.
    match all.len() {
        1 => assert_eq!(last.am_container, am_container(&app, 1)),
        2 => {
            assert_eq!(all[0].state, "FAILED", "{all:#?}");
            assert!(
                all[0].diagnostics.contains("ended with exit status 1"),
                "{all:#?}"
            );
            assert!(last.am_container.starts_with("container_e1_"), "{all:#?}");
        }
        n => panic!("{n} attempts: {all:#?}"),
    }
    let logs = cluster.spindle("logs", &[&app]);
    assert!(logs.ok(), "{logs}");
    assert!(logs.stdout.matches("\ndone\n").count() >= 8, "{logs}");
    let epoch_1 = format!("container_e1_{}", app.trim_start_matches("application_"));
    assert!(
        logs.stdout.matches(&format!("==> {epoch_1}")).count() >= 2,
        "containers allocated after the restart carry e1:\n{logs}"
    );

    // The submission acknowledged just before the kill was kept, and runs in epoch 1.
    let ((), late_done_at) = wait_for(Duration::from_secs(120), "the late app to finish", || {
        let s = cluster.spindle("status", &[&late]);
        (status_field(&s.stdout, "State") == "FINISHED").then_some(())
    });
    measured(
        "RM restart: SIGKILL to the app submitted just before it FINISHED",
        late_done_at - killed_at,
    );
    let late_status = cluster.spindle("status", &[&late]);
    assert_eq!(
        status_field(&late_status.stdout, "Final-State"),
        "SUCCEEDED",
        "{late_status}"
    );
    let late_attempts = attempt_lines(&late_status.stdout);
    assert_eq!(late_attempts.len(), 1, "{late_status}");
    assert!(
        late_attempts[0].am_container.starts_with("container_e1_"),
        "{late_status}"
    );

    // Finished applications are listed as they ended.
    let row = apps_row(&cluster, &succeeded);
    assert!(
        row.contains("FINISHED") && row.contains("SUCCEEDED"),
        "{row}"
    );
    let row = apps_row(&cluster, &failed);
    assert!(row.contains("FINISHED") && row.contains("FAILED"), "{row}");
    let failed_status = cluster.spindle("status", &[&failed]);
    assert!(
        status_field(&failed_status.stdout, "Diagnostics").contains("exit status 3"),
        "{failed_status}"
    );

    // Application ids go on where they were, with the first start's timestamp.
    let next = cluster.submit_shell(
        &[],
        &["--container-memory", "256", "--shell-command", "true"],
    );
    assert!(next.ok(), "{next}");
    let next = app_id_of(&next);
    assert_eq!(ts_of(&next), ts_of(&app));
    assert_eq!(seq_of(&next), seq_of(&late) + 1, "{next} after {late}");
    let next_attempts = attempts(&cluster, &next);
    assert!(
        next_attempts[0].am_container.starts_with("container_e1_"),
        "{next_attempts:#?}"
    );
    wait_until(
        Duration::from_secs(20),
        "the apps' processes to end",
        || {
            [&app, &late, &next]
                .iter()
                .all(|a| processes_of(a, &cluster.work_dirs).is_empty())
        },
    );
}
