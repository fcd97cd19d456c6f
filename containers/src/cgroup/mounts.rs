//! Finding the memory controller: which cgroup version carries it and where this process's own
//! cgroup lies inside that mount, from `/proc/self/mountinfo` and `/proc/self/cgroup`. The mounts
//! decide the version: `/proc/self/cgroup` shows a `0::/` line even where no cgroup2 is mounted,
//! and a hybrid host mounts cgroup2 (`/sys/fs/cgroup/unified`) without the memory controller,
//! which stays with its v1 hierarchy.

use std::path::PathBuf;

/// One line of `/proc/self/mountinfo`, the fields that matter here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The path inside the filesystem that is mounted (`/` unless a subtree is).
    pub root: String,
    pub mount_point: PathBuf,
    pub fs_type: String,
    /// For a v1 `cgroup` mount, its controllers (`memory`, `cpu`, …) are among these.
    pub super_options: Vec<String>,
}

/// Where this process's own cgroup is, per version that mounts something usable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Candidates {
    /// The own cgroup's directory in the (first) cgroup2 mount; whether it has the memory
    /// controller is for its `cgroup.controllers` to say.
    pub v2: Option<PathBuf>,
    /// The own cgroup's directory in the v1 hierarchy that carries `memory`.
    pub v1_memory: Option<PathBuf>,
}

/// Mount points escape space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mounts in `text` (the format of `/proc/self/mountinfo`); malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            let (root, mount_point) = (fields.get(3)?, fields.get(4)?);
            let mut rest = after.split(' ');
            let fs_type = rest.next()?;
            let _source = rest.next()?;
            let super_options = rest.next().unwrap_or("");
            Some(Mount {
                root: unescape(root),
                mount_point: PathBuf::from(unescape(mount_point)),
                fs_type: fs_type.to_string(),
                super_options: super_options.split(',').map(str::to_string).collect(),
            })
        })
        .collect()
}

/// The directory of cgroup `path` (as `/proc/self/cgroup` names it) under `mount`; `None` when
/// the path is outside what is mounted there.
fn dir_in(mount: &Mount, path: &str) -> Option<PathBuf> {
    let root = mount.root.trim_end_matches('/');
    let inside = path.strip_prefix(root)?;
    if !(inside.is_empty() || inside.starts_with('/')) {
        return None;
    }
    let inside = inside.trim_start_matches('/');
    Some(if inside.is_empty() {
        mount.mount_point.clone()
    } else {
        mount.mount_point.join(inside)
    })
}

/// This process's cgroup directories from `mountinfo` and `self_cgroup` (the text of
/// `/proc/self/cgroup`: `id:controllers:path` per line).
pub fn candidates(mountinfo: &str, self_cgroup: &str) -> Candidates {
    let mounts = parse_mountinfo(mountinfo);
    let mut v2_path = None;
    let mut v1_memory_path = None;
    for line in self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            v2_path = Some(path);
        } else if controllers.split(',').any(|c| c == "memory") {
            v1_memory_path = Some(path);
        }
    }
    let v2 = mounts
        .iter()
        .find(|m| m.fs_type == "cgroup2")
        .and_then(|m| dir_in(m, v2_path?));
    let v1_memory = mounts
        .iter()
        .find(|m| m.fs_type == "cgroup" && m.super_options.iter().any(|o| o == "memory"))
        .and_then(|m| dir_in(m, v1_memory_path?));
    Candidates { v2, v1_memory }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hybrid host: v1 controllers, and cgroup2 mounted with none of them.
    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const HYBRID_SELF: &str = "\
8:pids:/
4:memory:/user.slice/session-4.scope
1:cpu:/
0::/
";

    #[test]
    fn a_hybrid_host_offers_both_and_the_mounts_say_where() {
        let found = candidates(HYBRID, HYBRID_SELF);
        assert_eq!(
            found.v1_memory,
            Some(PathBuf::from(
                "/sys/fs/cgroup/memory/user.slice/session-4.scope"
            ))
        );
        // The v2 mount exists (the caller then finds no memory in its cgroup.controllers).
        assert_eq!(found.v2, Some(PathBuf::from("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn a_0_line_without_a_cgroup2_mount_is_not_v2() {
        let v1_only = HYBRID
            .lines()
            .filter(|l| !l.contains("cgroup2"))
            .collect::<Vec<_>>();
        let found = candidates(&v1_only.join("\n"), HYBRID_SELF);
        assert_eq!(found.v2, None);
        assert!(found.v1_memory.is_some());
    }

    #[test]
    fn a_pure_v2_host_with_a_nested_cgroup() {
        let mountinfo = "\
30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
";
        let found = candidates(mountinfo, "0::/system.slice/spindle-nm.service\n");
        assert_eq!(
            found.v2,
            Some(PathBuf::from(
                "/sys/fs/cgroup/system.slice/spindle-nm.service"
            ))
        );
        assert_eq!(found.v1_memory, None);
    }

    #[test]
    fn a_mounted_subtree_is_stripped_and_paths_outside_it_are_refused() {
        // A container runtime mounts only the container's own subtree.
        let mountinfo =
            "40 31 0:32 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n";
        let inside = candidates(mountinfo, "4:memory:/docker/abc/job\n");
        assert_eq!(
            inside.v1_memory,
            Some(PathBuf::from("/sys/fs/cgroup/memory/job"))
        );
        let at_root = candidates(mountinfo, "4:memory:/docker/abc\n");
        assert_eq!(
            at_root.v1_memory,
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        for outside in ["4:memory:/docker/abcdef\n", "4:memory:/\n"] {
            assert_eq!(candidates(mountinfo, outside).v1_memory, None, "{outside}");
        }
    }

    #[test]
    fn escaped_mount_points_and_optional_fields_parse() {
        let mounts = parse_mountinfo(
            "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 shared:2 - ext3 /dev/root rw,errors=continue\n\
             garbage line\n",
        );
        assert_eq!(
            mounts,
            vec![Mount {
                root: "/mnt1".into(),
                mount_point: PathBuf::from("/mnt two"),
                fs_type: "ext3".into(),
                super_options: vec!["rw".into(), "errors=continue".into()],
            }]
        );
    }
}
