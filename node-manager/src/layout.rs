//! Where a container's files live under the node manager's work dir (the shared contract):
//! `appcache/<app>/<container>/` (working dir), `logs/<app>/<container>/` (stdout, stderr),
//! `filecache/<sha256>` (localized files), and `state/containers.redb` (what a restarted node
//! manager needs to take its containers back). Everything is derived from ids, so logs stay findable
//! after the container is forgotten.

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

    pub fn file_cache(&self) -> PathBuf {
        self.root.join("filecache")
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
        assert_eq!(layout.file_cache(), Path::new("/w/filecache"));
        assert_eq!(layout.state_file(), Path::new("/w/state/containers.redb"));
    }
}
