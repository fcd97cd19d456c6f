//! Who may do what to an application, as YARN's ACLs say it: its owner (the user who submitted
//! it) and the cluster's admins may kill it, read its logs and get the tokens to read them; a
//! queue listed in `queue-acls` takes submissions only from the users it names (and admins);
//! only an admin may submit on another user's behalf. Users are the names callers give (simple
//! authentication: believed, not proven). The gRPC services and the REST API ask the same `Acl`.
//! `Denied` is every refusal of a caller the RM believes but does not let do what it asked.

use std::collections::{BTreeMap, BTreeSet};

use spindle_containers::ApplicationId;

use crate::config::{ANYONE, RmConfig};

/// The queue a submission that names none goes to.
pub const DEFAULT_QUEUE: &str = "default";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    admins: BTreeSet<String>,
    /// Queue → the users who may submit to it (`*`: anyone).
    submitters: BTreeMap<String, BTreeSet<String>>,
}

/// A refused action, naming the user, the application, its owner and who may.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error(
        "user {caller} may not submit application {app} on behalf of user {requested}: only \
         admins ({admins}) may submit for another user"
    )]
    OnBehalf {
        caller: String,
        requested: String,
        app: ApplicationId,
        admins: String,
    },
    #[error(
        "user {user} may not submit application {app} to queue {queue}: its submit ACL allows \
         {allowed}, and admins ({admins})"
    )]
    Queue {
        user: String,
        app: ApplicationId,
        queue: String,
        allowed: String,
        admins: String,
    },
    #[error(
        "user {user} may not {action} application {app}, owned by {owner}: only its owner and \
         admins ({admins}) may"
    )]
    NotOwner {
        user: String,
        action: &'static str,
        app: ApplicationId,
        owner: String,
        admins: String,
    },
    #[error(
        "user {user} may not {action} application {app}: this resource manager no longer knows \
         the application, so not its owner either; only admins ({admins}) may"
    )]
    OwnerUnknown {
        user: String,
        action: &'static str,
        app: ApplicationId,
        admins: String,
    },
    #[error("{call} needs proof of the client secret; this call proved the {proved} (user {user})")]
    ClientOnly {
        call: &'static str,
        proved: &'static str,
        user: String,
    },
    #[error("{call} needs proof of the daemon secret; this call proved the {proved} (user {user})")]
    DaemonOnly {
        call: &'static str,
        proved: &'static str,
        user: String,
    },
    #[error(
        "the AM token is for attempt {token}, and this call names attempt_id={requested}: an \
         AM acts for its own attempt only"
    )]
    OtherAttempt { token: String, requested: String },
}

impl From<Denied> for tonic::Status {
    fn from(denied: Denied) -> tonic::Status {
        tonic::Status::permission_denied(denied.to_string())
    }
}

impl Acl {
    /// The ACLs of `config`, with `rm_user` (the RM's own OS user) among the admins.
    pub fn new(config: &RmConfig, rm_user: &str) -> Acl {
        let mut admins: BTreeSet<String> = config.admins.iter().cloned().collect();
        admins.insert(rm_user.to_string());
        let submitters = config
            .queue_acls
            .iter()
            .map(|(queue, acl)| (queue.clone(), acl.submit.iter().cloned().collect()))
            .collect();
        Acl { admins, submitters }
    }

    pub fn is_admin(&self, user: &str) -> bool {
        self.admins.contains(user)
    }

    fn admins(&self) -> String {
        self.admins.iter().cloned().collect::<Vec<_>>().join(", ")
    }

    /// The owner of application `app`, submitted by `caller` to `queue` (empty: the default
    /// queue) naming `requested` as its user (empty: none, the caller). Refused when the caller
    /// names another user and is not an admin, or the queue does not take the caller's
    /// submissions.
    pub fn submission_owner(
        &self,
        caller: &str,
        requested: &str,
        queue: &str,
        app: ApplicationId,
    ) -> Result<String, Denied> {
        let admin = self.is_admin(caller);
        if !requested.is_empty() && requested != caller && !admin {
            return Err(Denied::OnBehalf {
                caller: caller.to_string(),
                requested: requested.to_string(),
                app,
                admins: self.admins(),
            });
        }
        let queue = if queue.is_empty() {
            DEFAULT_QUEUE
        } else {
            queue
        };
        if let Some(allowed) = self.submitters.get(queue)
            && !admin
            && !allowed.contains(ANYONE)
            && !allowed.contains(caller)
        {
            return Err(Denied::Queue {
                user: caller.to_string(),
                app,
                queue: queue.to_string(),
                allowed: if allowed.is_empty() {
                    "no one".to_string()
                } else {
                    allowed.iter().cloned().collect::<Vec<_>>().join(", ")
                },
                admins: self.admins(),
            });
        }
        Ok(if requested.is_empty() {
            caller.to_string()
        } else {
            requested.to_string()
        })
    }

    /// Whether `user` may `action` application `app`, owned by `owner` (None: the application
    /// is no longer known).
    pub fn check_owner(
        &self,
        user: &str,
        action: &'static str,
        app: ApplicationId,
        owner: Option<&str>,
    ) -> Result<(), Denied> {
        if self.is_admin(user) || owner == Some(user) {
            return Ok(());
        }
        Err(match owner {
            Some(owner) => Denied::NotOwner {
                user: user.to_string(),
                action,
                app,
                owner: owner.to_string(),
                admins: self.admins(),
            },
            None => Denied::OwnerUnknown {
                user: user.to_string(),
                action,
                app,
                admins: self.admins(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QueueAcl;

    fn acl() -> Acl {
        let config = RmConfig {
            admins: vec!["boss".into()],
            queue_acls: [
                (
                    "prod".to_string(),
                    QueueAcl {
                        submit: vec!["alice".into()],
                    },
                ),
                (
                    "open".to_string(),
                    QueueAcl {
                        submit: vec![ANYONE.into()],
                    },
                ),
                ("closed".to_string(), QueueAcl { submit: vec![] }),
            ]
            .into(),
            ..RmConfig::default()
        };
        Acl::new(&config, "yarn")
    }

    fn app() -> ApplicationId {
        "application_1700000000000_0007".parse().unwrap()
    }

    #[test]
    fn the_owner_is_the_caller_unless_an_admin_names_another() {
        let acl = acl();
        assert_eq!(acl.submission_owner("bob", "", "", app()), Ok("bob".into()));
        assert_eq!(
            acl.submission_owner("bob", "bob", "default", app()),
            Ok("bob".into())
        );
        let err = acl
            .submission_owner("bob", "alice", "", app())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("user bob may not submit application application_1700000000000_0007 on behalf of user alice")
                && err.contains("boss, yarn"),
            "{err}"
        );
        assert_eq!(
            acl.submission_owner("yarn", "alice", "", app()),
            Ok("alice".into()),
            "the RM's own user is an admin"
        );
        assert_eq!(
            acl.submission_owner("boss", "alice", "", app()),
            Ok("alice".into())
        );
    }

    #[test]
    fn a_listed_queue_takes_its_users_and_admins_only() {
        let acl = acl();
        assert!(acl.submission_owner("alice", "", "prod", app()).is_ok());
        assert!(acl.submission_owner("boss", "", "prod", app()).is_ok());
        let err = acl
            .submission_owner("bob", "", "prod", app())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("user bob may not submit")
                && err.contains("queue prod")
                && err.contains("allows alice"),
            "{err}"
        );
        assert!(acl.submission_owner("bob", "", "open", app()).is_ok());
        assert!(acl.submission_owner("bob", "", "unlisted", app()).is_ok());
        let err = acl
            .submission_owner("alice", "", "closed", app())
            .unwrap_err();
        assert!(err.to_string().contains("allows no one"), "{err}");
    }

    #[test]
    fn only_the_owner_and_admins_may_act_on_an_application() {
        let acl = acl();
        assert!(
            acl.check_owner("alice", "kill", app(), Some("alice"))
                .is_ok()
        );
        assert!(
            acl.check_owner("boss", "kill", app(), Some("alice"))
                .is_ok()
        );
        let err = acl
            .check_owner("bob", "kill", app(), Some("alice"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "user bob may not kill application application_1700000000000_0007, owned by alice: \
             only its owner and admins (boss, yarn) may"
        );
        assert!(
            acl.check_owner("yarn", "read the logs of", app(), None)
                .is_ok()
        );
        let err = acl
            .check_owner("alice", "read the logs of", app(), None)
            .unwrap_err();
        assert!(err.to_string().contains("no longer knows"), "{err}");
        let status = tonic::Status::from(err);
        assert_eq!(status.code(), tonic::Code::PermissionDenied);
    }
}
