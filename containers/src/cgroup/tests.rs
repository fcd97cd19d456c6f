//! The cgroup layer against the host's real cgroups where they are writable (the tests say so and
//! stop when they are not), and the parsing and choices against fixed texts and directories.

use super::*;

/// This host's cgroups for a test, or `None` (and a note on stderr) where none is writable.
pub(crate) fn node_cgroups_for_test(name: &str) -> Option<NodeCgroups> {
    match NodeCgroups::create(&format!("test-{name}-{}", std::process::id())) {
        Ok(cgroups) => Some(cgroups),
        Err(e) => {
            eprintln!("no writable cgroup on this host, the cgroup part is not tested: {e}");
            None
        }
    }
}

#[test]
fn flat_keyed_files_are_read_by_key() {
    let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
    assert_eq!(keyed(v1, "oom_kill"), Some(3));
    let v2 = "low 0\nhigh 0\nmax 12\noom 2\noom_kill 1\noom_group_kill 0\n";
    assert_eq!(keyed(v2, "oom_kill"), Some(1));
    assert_eq!(keyed(v2, "absent"), None);
}

#[test]
fn v2_is_chosen_only_where_its_cgroup_offers_memory() {
    let v2 = tempfile::tempdir().unwrap();
    let v1 = PathBuf::from("/sys/fs/cgroup/memory/x");
    let found = Candidates {
        v2: Some(v2.path().to_path_buf()),
        v1_memory: Some(v1.clone()),
    };
    // A hybrid host's unified mount lists other controllers only.
    std::fs::write(v2.path().join("cgroup.controllers"), "hugetlb\n").unwrap();
    assert_eq!(
        choose(&found),
        Ok(Hierarchy {
            version: CgroupVersion::V1,
            own: v1
        })
    );
    std::fs::write(
        v2.path().join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    )
    .unwrap();
    assert_eq!(
        choose(&found),
        Ok(Hierarchy {
            version: CgroupVersion::V2,
            own: v2.path().to_path_buf()
        })
    );
    let without_memory = Candidates {
        v2: Some(PathBuf::from("/nonexistent")),
        v1_memory: None,
    };
    let err = choose(&without_memory).unwrap_err();
    assert!(
        err.contains("/nonexistent does not offer the memory controller"),
        "{err}"
    );
    assert_eq!(
        choose(&Candidates::default()).unwrap_err(),
        "neither cgroup2 nor a cgroup v1 memory hierarchy is mounted"
    );
}

#[test]
fn an_unwritable_hierarchy_is_a_clear_error() {
    let err = NodeCgroups::create_in(
        &Hierarchy {
            version: CgroupVersion::V1,
            own: PathBuf::from("/proc/no-such-cgroup"),
        },
        "x",
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot create cgroup /proc/no-such-cgroup/spindle-x: "),
        "{err}"
    );
}

#[tokio::test]
async fn a_container_cgroup_is_limited_owned_listed_and_removed() {
    let Some(node) = node_cgroups_for_test("lifecycle") else {
        return;
    };
    let cgroup = node.container("c1", 48 << 20).unwrap();
    let limit_file = match cgroup.version {
        CgroupVersion::V1 => "memory.limit_in_bytes",
        CgroupVersion::V2 => "memory.max",
    };
    let limit = std::fs::read_to_string(cgroup.path.join(limit_file)).unwrap();
    assert_eq!(limit.trim(), (48u64 << 20).to_string());
    assert!(node.owns(&cgroup));
    let stranger = ContainerCgroup {
        version: cgroup.version,
        path: PathBuf::from("/sys/fs/cgroup/memory/elsewhere"),
    };
    assert!(!node.owns(&stranger));
    assert_eq!(node.children(), vec![("c1".to_string(), cgroup.clone())]);
    assert_eq!(cgroup.pids(), Vec::<u32>::new());
    assert_eq!(cgroup.oom_kills(), 0);

    // A process put in it is killed with it, even one in a session of its own.
    let mut command = std::process::Command::new("setsid");
    command.args(["sleep", "600"]);
    let procs = cgroup.open_procs().unwrap();
    // SAFETY: only `write` runs between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
            nix::unistd::write(&procs, b"0")
                .map(|_| ())
                .map_err(std::io::Error::from)
        });
    }
    let mut child = command.spawn().unwrap();
    assert_eq!(cgroup.pids(), vec![child.id()]);
    cgroup.remove().await;
    assert!(!child.wait().unwrap().success());
    assert!(!cgroup.path.exists());
    node.remove_if_empty();
    assert!(!node.dir().exists());
}

/// No cgroup v2 host to test on here: a plain directory stands in for the v2 files, so that
/// which file gets what is checked (cgroupfs itself would create the files and refuse bad
/// writes).
#[tokio::test]
async fn on_v2_the_memory_controller_is_delegated_and_v2_files_are_used() {
    let own = tempfile::tempdir().unwrap();
    let hierarchy = Hierarchy {
        version: CgroupVersion::V2,
        own: own.path().to_path_buf(),
    };
    std::fs::write(own.path().join("cgroup.subtree_control"), "").unwrap();
    let node_dir = own.path().join("spindle-x");
    std::fs::create_dir(&node_dir).unwrap();
    std::fs::write(node_dir.join("cgroup.subtree_control"), "memory pids\n").unwrap();

    let node = NodeCgroups::create_in(&hierarchy, "x").unwrap();
    let read = |path: PathBuf| std::fs::read_to_string(path).unwrap();
    assert_eq!(read(own.path().join("cgroup.subtree_control")), "+memory");
    // Already delegated below the node's cgroup: left as it was.
    assert_eq!(
        read(node_dir.join("cgroup.subtree_control")),
        "memory pids\n"
    );

    let cgroup = node.container("c", 64 << 20).unwrap();
    assert_eq!(
        read(cgroup.path.join("memory.max")),
        (64u64 << 20).to_string()
    );
    assert_eq!(read(cgroup.path.join("memory.swap.max")), "0");
    std::fs::write(cgroup.path.join("memory.events"), "oom 3\noom_kill 2\n").unwrap();
    std::fs::write(cgroup.path.join("memory.peak"), "67108864\n").unwrap();
    assert_eq!(cgroup.oom_kills(), 2);
    assert_eq!(cgroup.peak_bytes(), Some(64 << 20));
}

#[test]
fn a_v2_cgroup_without_its_control_files_is_a_clear_error() {
    let hierarchy = Hierarchy {
        version: CgroupVersion::V2,
        own: PathBuf::from("/proc/self"),
    };
    let err = NodeCgroups::create_in(&hierarchy, "x").unwrap_err();
    // /proc/self has no cgroup.subtree_control to read.
    assert!(
        err.to_string()
            .starts_with("cannot read /proc/self/cgroup.subtree_control: "),
        "{err}"
    );
}
