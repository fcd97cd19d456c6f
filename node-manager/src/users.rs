//! Which host user a container runs as (the security contract). A node manager running as root
//! runs each container as its application's owner (the container token's user) when the host
//! has that user, it is not root and its uid is at least `min-user-id`; else as `fallback-user` ("nobody" by default, YARN's
//! non-secure-mode local user); as root only with `allow-root`. A node manager that is not root
//! cannot switch users: its containers run as itself.
//!
//! At start, a root node manager checks that the fallback user exists and can pass through every
//! directory down to the work dir: a container that cannot reach its own directory would fail
//! in a way nobody could read.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use spindle_containers::RunAs;
use spindle_security::validate_user;

use crate::config::NmConfig;
use crate::error::{LaunchError, NmError};

/// The user one container runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerUser {
    /// Who the process is: names its file cache (`usercache/<name>`).
    pub name: String,
    /// `USER` in its environment: who it runs as when the node switches users, else the
    /// application's owner (as YARN's default executor says).
    pub env_user: String,
    /// Set when the node switches to this user.
    pub run_as: Option<RunAs>,
}

#[derive(Debug, Clone)]
pub struct UserPolicy {
    mode: Mode,
}

#[derive(Debug, Clone)]
enum Mode {
    /// Not root: every container runs as the node manager's user.
    AsItself { user: String },
    /// Root: containers run as their owners, or as the fallback.
    Switching {
        fallback: RunAs,
        allow_root: bool,
        min_user_id: u32,
    },
}

impl UserPolicy {
    /// The policy for a node manager running as `running_as_root`, checked against the host.
    pub fn new(config: &NmConfig, running_as_root: bool) -> Result<UserPolicy, NmError> {
        if !running_as_root {
            return Ok(UserPolicy {
                mode: Mode::AsItself {
                    user: spindle_security::current_user(),
                },
            });
        }
        let user = &config.fallback_user;
        let refuse = |problem: String| NmError::FallbackUser {
            user: user.clone(),
            problem,
        };
        validate_user(user).map_err(|e| refuse(e.to_string()))?;
        let fallback = RunAs::lookup(user)
            .map_err(|e| refuse(e.to_string()))?
            .ok_or_else(|| refuse("no such user on this host".to_string()))?;
        if fallback.is_root() && !config.allow_root {
            return Err(refuse(
                "is root, and containers run as root only with allow-root: true".to_string(),
            ));
        }
        Ok(UserPolicy {
            mode: Mode::Switching {
                fallback,
                allow_root: config.allow_root,
                min_user_id: config.min_user_id,
            },
        })
    }

    /// The fallback user, when this node switches users.
    pub fn fallback(&self) -> Option<&RunAs> {
        match &self.mode {
            Mode::Switching { fallback, .. } => Some(fallback),
            Mode::AsItself { .. } => None,
        }
    }

    /// The user a container of an application owned by `owner` (a checked user name) runs as.
    pub fn resolve(&self, owner: &str) -> Result<ContainerUser, LaunchError> {
        match &self.mode {
            Mode::AsItself { user } => Ok(ContainerUser {
                name: user.clone(),
                env_user: owner.to_string(),
                run_as: None,
            }),
            Mode::Switching {
                fallback,
                allow_root,
                min_user_id,
            } => {
                let run_as = match RunAs::lookup(owner)? {
                    Some(user) if user.is_root() && *allow_root => user,
                    Some(user) if !user.is_root() && user.uid >= *min_user_id => user,
                    _ => fallback.clone(),
                };
                Ok(ContainerUser {
                    name: run_as.name.clone(),
                    env_user: run_as.name.clone(),
                    run_as: Some(run_as),
                })
            }
        }
    }

    /// Makes sure a container of this node can reach `work_dir`: gives the work dir itself
    /// the search bits it lacks, then refuses a directory above it that the fallback user cannot
    /// pass through. Nothing to do when the node does not switch users.
    pub fn check_reachable(&self, work_dir: &Path) -> Result<(), NmError> {
        let Some(fallback) = self.fallback() else {
            return Ok(());
        };
        let io = |source| NmError::WorkDir {
            path: work_dir.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(work_dir).map_err(io)?;
        if meta.mode() & 0o111 != 0o111 {
            let mode = (meta.mode() & 0o7777) | 0o111;
            std::fs::set_permissions(work_dir, std::fs::Permissions::from_mode(mode))
                .map_err(io)?;
        }
        for dir in work_dir.ancestors() {
            let meta = std::fs::metadata(dir).map_err(io)?;
            if !fallback.can_traverse(&meta) {
                return Err(NmError::WorkDirUnreachable {
                    work_dir: work_dir.to_path_buf(),
                    user: fallback.name.clone(),
                    dir: dir.to_path_buf(),
                    mode: meta.mode() & 0o7777,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_policy(fallback: &str, allow_root: bool) -> Result<UserPolicy, NmError> {
        let config = NmConfig {
            fallback_user: fallback.into(),
            allow_root,
            ..NmConfig::default()
        };
        UserPolicy::new(&config, true)
    }

    #[test]
    fn not_root_runs_everything_as_itself_with_the_owner_as_user() {
        let policy = UserPolicy::new(&NmConfig::default(), false).unwrap();
        let user = policy.resolve("alice").unwrap();
        assert_eq!(user.name, spindle_security::current_user());
        assert_eq!((user.env_user.as_str(), user.run_as), ("alice", None));
        let dir = tempfile::tempdir().unwrap();
        policy.check_reachable(dir.path()).unwrap();
    }

    #[test]
    fn as_root_system_accounts_run_as_the_fallback_unless_the_minimum_allows_them() {
        let Some(daemon) = RunAs::lookup("daemon").unwrap() else {
            return; // a host without the `daemon` account has nothing to show here
        };
        let nobody = RunAs::lookup("nobody").unwrap().unwrap();
        let policy = root_policy("nobody", false).unwrap();
        assert_eq!(policy.resolve("daemon").unwrap().run_as, Some(nobody));
        let config = NmConfig {
            min_user_id: 0,
            ..NmConfig::default()
        };
        let lenient = UserPolicy::new(&config, true).unwrap();
        assert_eq!(lenient.resolve("daemon").unwrap().run_as, Some(daemon));
    }

    #[test]
    fn as_root_owners_run_as_themselves_root_and_strangers_as_the_fallback() {
        // Looks users up only; switching needs no privilege here.
        let policy = root_policy("nobody", false).unwrap();
        let nobody = RunAs::lookup("nobody").unwrap().unwrap();
        assert_eq!(policy.resolve("root").unwrap().run_as, Some(nobody.clone()));
        assert_eq!(
            policy.resolve("no-such-user-spindle").unwrap().run_as,
            Some(nobody.clone())
        );
        assert_eq!(policy.resolve("nobody").unwrap().env_user, "nobody");
        let permissive = root_policy("nobody", true).unwrap();
        assert!(
            permissive
                .resolve("root")
                .unwrap()
                .run_as
                .unwrap()
                .is_root()
        );
    }

    #[test]
    fn a_fallback_that_is_root_missing_or_malformed_is_refused() {
        let err = root_policy("root", false).unwrap_err().to_string();
        assert!(err.contains("allow-root"), "{err}");
        assert!(root_policy("root", true).is_ok());
        let err = root_policy("no-such-user-spindle", false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "fallback-user \"no-such-user-spindle\": no such user on this host"
        );
        assert!(root_policy("../x", false).is_err());
    }

    #[test]
    fn a_closed_directory_above_the_work_dir_is_named() {
        // The directories are the test's own: the fallback must be someone else.
        let me = nix::unistd::geteuid().as_raw();
        let fallback = ["nobody", "daemon"]
            .into_iter()
            .find(|name| RunAs::lookup(name).unwrap().is_some_and(|u| u.uid != me))
            .expect("the host has nobody or daemon");
        let policy = root_policy(fallback, false).unwrap();
        let top = tempfile::tempdir().unwrap();
        std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let work = top.path().join("work");
        std::fs::create_dir(&work).unwrap();
        std::fs::set_permissions(&work, std::fs::Permissions::from_mode(0o700)).unwrap();
        let err = policy.check_reachable(&work).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "cannot pass through {} (mode 0700)",
                top.path().display()
            )),
            "{err}"
        );
        // The work dir itself was opened up: it is the node's own.
        let mode = std::fs::metadata(&work).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o711);
        std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
        policy.check_reachable(&work).unwrap();
    }
}
