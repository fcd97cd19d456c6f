//! The OS user a container runs as when the node manager runs as root: its uid, primary gid and
//! supplementary groups, looked up once in the host's user database, so that the child can
//! switch to them between fork and exec with plain system calls (`setgroups`, `setgid`,
//! `setuid`). Which user that is (the application's owner, a fallback, never root unless
//! allowed) is the node manager's decision; this module only knows how to be that user.

use std::ffi::CString;
use std::fs::Metadata;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::unistd::{Gid, Uid, User};

/// A host user to run as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (the primary one included), as `initgroups` would set them.
    pub groups: Vec<u32>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot look up user {name:?} in the host's user database: {source}")]
pub struct LookupError {
    pub name: String,
    pub source: nix::Error,
}

impl RunAs {
    /// The host's user `name` with its groups; `None` when the host has no such user.
    pub fn lookup(name: &str) -> Result<Option<RunAs>, LookupError> {
        let error = |source| LookupError {
            name: name.to_string(),
            source,
        };
        // A name with a NUL in it names nobody.
        let Ok(c_name) = CString::new(name) else {
            return Ok(None);
        };
        let Some(user) = User::from_name(name).map_err(error)? else {
            return Ok(None);
        };
        let groups = nix::unistd::getgrouplist(&c_name, user.gid).map_err(error)?;
        Ok(Some(RunAs {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
            groups: groups.into_iter().map(Gid::as_raw).collect(),
        }))
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// Gives `path` (not what a link there points to) to this user and its primary group.
    pub fn own(&self, path: &Path) -> std::io::Result<()> {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
    }

    /// Gives `dir` to this user with `mode`, as a directory the container may use alone.
    pub fn own_dir(&self, dir: &Path, mode: u32) -> std::io::Result<()> {
        self.own(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
    }

    /// Whether this user may pass through (search) a directory with these metadata.
    pub fn can_traverse(&self, dir: &Metadata) -> bool {
        let mode = dir.mode();
        if self.is_root() {
            return true;
        }
        if dir.uid() == self.uid {
            return mode & 0o100 != 0;
        }
        if self.groups.contains(&dir.gid()) || dir.gid() == self.gid {
            return mode & 0o010 != 0;
        }
        mode & 0o001 != 0
    }

    /// The ids the child switches to.
    pub(crate) fn ids(&self) -> (Uid, Gid, Vec<Gid>) {
        (
            Uid::from_raw(self.uid),
            Gid::from_raw(self.gid),
            self.groups.iter().copied().map(Gid::from_raw).collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_with_its_groups_and_nobody_is_not_invented() {
        let root = RunAs::lookup("root").unwrap().expect("every host has root");
        assert!(root.is_root() && root.gid == 0 && root.groups.contains(&0));
        assert_eq!(RunAs::lookup("no-such-user-spindle").unwrap(), None);
        assert_eq!(RunAs::lookup("a\0b").unwrap(), None);
    }

    #[test]
    fn traversal_follows_the_owner_group_and_other_bits() {
        let dir = tempfile::tempdir().unwrap();
        let user = RunAs {
            name: "u".into(),
            uid: 4242,
            gid: 4242,
            groups: vec![4242, 77],
        };
        let set = |mode| {
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(mode)).unwrap();
            std::fs::metadata(dir.path()).unwrap()
        };
        let owner_is_us = std::fs::metadata(dir.path()).unwrap().uid() == user.uid;
        assert!(!owner_is_us);
        assert!(!user.can_traverse(&set(0o700)));
        assert!(user.can_traverse(&set(0o701)));
        assert!(user.can_traverse(&set(0o711)));
        let root = RunAs {
            name: "root".into(),
            uid: 0,
            gid: 0,
            groups: vec![0],
        };
        assert!(root.can_traverse(&set(0o700)));
    }
}
