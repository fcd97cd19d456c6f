//! The client library against a real embedded cluster: `LocalCluster` starts an RM and NMs in
//! this process, and a program submitted through `submit` runs as a real AM container.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use spindle_client::logs::write_logs;
use spindle_client::{ClientError, LocalCluster, Submission, follow, submit};
use spindle_containers::{LocalResource, Resource};
use spindle_protocol::{ApplicationState, FinalStatus, NodeState};

/// Hang guard for a whole test; each step normally takes milliseconds.
const GUARD: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_cluster_has_every_node_running_and_cleans_up() {
    let cluster = tokio::time::timeout(GUARD, LocalCluster::start(2, 3, 1536))
        .await
        .expect("hang guard")
        .expect("start");
    assert!(cluster.rm_addr().ip().is_loopback());
    let mut rm = cluster.client().await.unwrap();
    let mut nodes = rm.list_nodes().await.unwrap();
    nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    let mut expected: Vec<String> = cluster.node_ids().iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(
        nodes.iter().map(|n| n.node_id.clone()).collect::<Vec<_>>(),
        expected
    );
    for node in &nodes {
        assert_eq!(node.state(), NodeState::Running);
        let capability = node.capability.unwrap();
        assert_eq!((capability.memory_mb, capability.vcores), (1536, 3));
    }
    let dirs = cluster.work_dirs();
    assert!(dirs.iter().all(|d| d.is_dir()));
    cluster.shutdown().await;
    assert!(dirs.iter().all(|d| !d.exists()), "temp dirs removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submitted_program_runs_with_the_contracts_launch_context() {
    let cluster = LocalCluster::start(1, 2, 1024).await.expect("start");
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("show-context");
    std::fs::write(
        &program,
        "#!/bin/bash\n\
         echo \"argc=$# args=$*\"\n\
         echo \"resources=$SPINDLE_LOCAL_RESOURCES\"\n\
         echo \"greeting=$GREETING\"\n\
         cat notes.txt\n\
         exit 0\n",
    )
    .unwrap();
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "shipped notes\n").unwrap();

    let mut submission = Submission::new(
        program.to_str().unwrap(),
        vec!["one".into(), "two words".into()],
    );
    submission.files = vec![notes];
    submission.env.insert("GREETING".into(), "a=b c".into());
    submission.max_attempts = 1;
    submission.am_resource = Resource::new(256, 1);
    let prepared = submission.prepare().unwrap();

    let mut rm = cluster.client().await.unwrap();
    let id = submit(&mut rm, &prepared).await.unwrap();
    let mut seen = Vec::new();
    let last = tokio::time::timeout(GUARD, follow(&mut rm, id, |r| seen.push(r.state())))
        .await
        .expect("hang guard")
        .unwrap();
    // The program never registers as an AM, so its attempt fails when it exits.
    assert_eq!(last.state(), ApplicationState::Failed);
    assert_eq!(last.final_status(), FinalStatus::Failed);
    assert!(
        last.diagnostics.contains("exit status 0"),
        "{}",
        last.diagnostics
    );
    assert_eq!(seen.last(), Some(&ApplicationState::Failed));

    let mut out = Vec::new();
    let outcome = write_logs(&mut rm, id, None, &mut out).await.unwrap();
    assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("argc=2 args=one two words"), "{text}");
    assert!(text.contains("greeting=a=b c"), "{text}");
    assert!(text.contains("shipped notes"), "{text}");
    let json = text
        .lines()
        .find_map(|l| l.strip_prefix("resources="))
        .expect("resources line");
    let resources: Vec<LocalResource> = serde_json::from_str(json).unwrap();
    let names: Vec<&str> = resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["show-context", "notes.txt"]);
    assert!(resources[0].executable);
    assert!(!resources[1].executable);
    assert!(text.contains(&format!(
        "==> container_{}",
        &id.to_string()["application_".len()..]
    )));

    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_am_larger_than_a_node_is_refused_before_anything_is_submitted() {
    let cluster = LocalCluster::start(1, 1, 1024).await.expect("start");
    let mut submission = Submission::new("/bin/true", Vec::new());
    submission.am_resource = Resource::new(2048, 1);
    let prepared = submission.prepare().unwrap();
    let mut rm = cluster.client().await.unwrap();
    let err = submit(&mut rm, &prepared).await.unwrap_err();
    assert!(
        matches!(err, ClientError::AmMemoryAboveMaximum { .. }),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "AM resource memory_mb=2048 exceeds the maximum allocation of 1024 MB"
    );
    let submitted = rm.list_applications(&[]).await.unwrap();
    assert!(
        submitted
            .iter()
            .all(|app| app.state() == ApplicationState::New),
        "nothing beyond NEW: {submitted:?}"
    );
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_cluster_of_nothing_is_refused() {
    let err = LocalCluster::start(0, 1, 1024).await.unwrap_err();
    assert!(err.to_string().contains("nodes=0"), "{err}");
}
