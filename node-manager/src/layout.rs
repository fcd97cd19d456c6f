//! Where a container's files live under the node manager's work dir (the shared contract):
//! `appcache/<app>/<container>/` (working dir), `logs/<app>/<container>/` (stdout, stderr),
//! `usercache/<user>/filecache/<sha256>` (localized files, one cache per user as in YARN),
//! `nmprivate/<container>/` (where a container dir is prepared before the container's user can
//! see it), and `state/containers.redb` (what a restarted node manager needs to take its
//! containers back). Everything is derived from ids and checked user names, so logs stay
//! findable after the container is forgotten and no name can lead outside the work dir.
//!
//! The node manager's own directories (`appcache`, `logs`: passable but not listable;
//! `usercache`, `nmprivate`, `state`: its alone) are set to their modes at every start, so that
//! containers, which may run as other users, can reach their own directories and nothing else.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use spindle_containers::{ApplicationId, ContainerId};

#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// `root` should be absolute: containers receive these paths in their environment.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Layout { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates the node manager's own directories, each with its mode, and empties
    /// `nmprivate` of launches an earlier run did not finish.
    pub fn prepare(&self) -> std::io::Result<()> {
        for (name, mode) in [
            ("appcache", 0o711),
            ("logs", 0o711),
            ("usercache", 0o700),
            ("nmprivate", 0o700),
            ("state", 0o700),
        ] {
            let dir = self.root.join(name);
            match std::fs::DirBuilder::new().mode(mode).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            // Also when it existed (an earlier version made it 0755), and whatever the umask.
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode))?;
        }
        for entry in std::fs::read_dir(self.root.join("nmprivate"))? {
            let path = entry?.path();
            tracing::info!(
                "removing {}: a launch the last run did not finish",
                path.display()
            );
            std::fs::remove_dir_all(&path)?;
        }
        Ok(())
    }

    /// The cache of localized files for containers running as `user` (a checked name).
    pub fn user_file_cache(&self, user: &str) -> PathBuf {
        self.root.join("usercache").join(user).join("filecache")
    }

    /// Where `id`'s directory is prepared before it moves to `container_dir`.
    pub fn private_dir(&self, id: ContainerId) -> PathBuf {
        self.root.join("nmprivate").join(id.to_string())
    }

    /// The node manager's record of its containers.
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state").join("containers.redb")
    }

    pub fn app_dir(&self, app: ApplicationId) -> PathBuf {
        self.root.join("appcache").join(app.to_string())
    }

    pub fn container_dir(&self, id: ContainerId) -> PathBuf {
        self.app_dir(id.application()).join(id.to_string())
    }

    pub fn app_log_dir(&self, app: ApplicationId) -> PathBuf {
        self.root.join("logs").join(app.to_string())
    }

    pub fn log_dir(&self, id: ContainerId) -> PathBuf {
        self.app_log_dir(id.application()).join(id.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_contract() {
        let layout = Layout::new("/w");
        let id: ContainerId = "container_1700000000000_0007_01_000002".parse().unwrap();
        assert_eq!(
            layout.container_dir(id),
            Path::new(
                "/w/appcache/application_1700000000000_0007/container_1700000000000_0007_01_000002"
            )
        );
        assert_eq!(
            layout.log_dir(id),
            Path::new(
                "/w/logs/application_1700000000000_0007/container_1700000000000_0007_01_000002"
            )
        );
        assert_eq!(
            layout.user_file_cache("alice"),
            Path::new("/w/usercache/alice/filecache")
        );
        assert_eq!(
            layout.private_dir(id),
            Path::new("/w/nmprivate/container_1700000000000_0007_01_000002")
        );
        assert_eq!(layout.state_file(), Path::new("/w/state/containers.redb"));
    }

    #[test]
    fn its_own_directories_get_their_modes_even_when_they_existed() {
        let work = tempfile::tempdir().unwrap();
        std::fs::create_dir(work.path().join("appcache")).unwrap();
        std::fs::set_permissions(
            work.path().join("appcache"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        let layout = Layout::new(work.path());
        layout.prepare().unwrap();
        let unfinished = work.path().join("nmprivate/container_1_0001_01_000001");
        std::fs::create_dir(&unfinished).unwrap();
        std::fs::write(unfinished.join("launch_container.sh"), "").unwrap();
        layout.prepare().unwrap();
        assert!(!unfinished.exists());
        let mode = |name: &str| {
            std::fs::metadata(work.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("appcache"), 0o711);
        assert_eq!(mode("logs"), 0o711);
        assert_eq!(mode("usercache"), 0o700);
        assert_eq!(mode("nmprivate"), 0o700);
        assert_eq!(mode("state"), 0o700);
    }
}
