//! YARN's ids, as newtypes that print and parse in YARN's formats:
//! `application_<cluster-ts>_<seq:04>`, `appattempt_<cluster-ts>_<app:04>_<attempt:06>`,
//! `container_[e<epoch>_]<cluster-ts>_<app:04>_<attempt:02>_<id:06>`.
//! Anything else is rejected with an error that quotes the string and the expected form.

use std::fmt;
use std::str::FromStr;

/// A string that is not the id it was meant to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed {kind} id {value:?}: expected {expected}")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
}

const APP_FORM: &str =
    "application_<cluster-timestamp>_<sequence>, e.g. application_1700000000000_0001";
const ATTEMPT_FORM: &str =
    "appattempt_<cluster-timestamp>_<app>_<attempt>, e.g. appattempt_1700000000000_0001_000001";
const CONTAINER_FORM: &str = "container_[e<epoch>_]<cluster-timestamp>_<app>_<attempt>_<id>, \
     e.g. container_1700000000000_0001_01_000001";
const NODE_FORM: &str = "host:port, e.g. 10.0.0.5:8041";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApplicationId {
    pub cluster_timestamp: u64,
    pub sequence: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttemptId {
    pub application: ApplicationId,
    pub attempt: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContainerId {
    pub attempt: AttemptId,
    /// The RM's restart count when it allocated the container (0 before any restart).
    pub epoch: u32,
    pub id: u64,
}

/// A node is named by the address of its container manager, as YARN's `host:port` NodeId.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(String);

impl ApplicationId {
    pub fn new(cluster_timestamp: u64, sequence: u32) -> Self {
        ApplicationId {
            cluster_timestamp,
            sequence,
        }
    }
}

impl AttemptId {
    pub fn new(application: ApplicationId, attempt: u32) -> Self {
        AttemptId {
            application,
            attempt,
        }
    }
    pub fn application(&self) -> ApplicationId {
        self.application
    }
}

impl ContainerId {
    pub fn new(attempt: AttemptId, epoch: u32, id: u64) -> Self {
        ContainerId { attempt, epoch, id }
    }
    pub fn application(&self) -> ApplicationId {
        self.attempt.application
    }
}

impl NodeId {
    /// The node id of a container manager listening at `address` (`host:port`).
    pub fn new(address: impl Into<String>) -> Result<Self, IdError> {
        address.into().parse()
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The host part, for locality and display.
    pub fn host(&self) -> &str {
        self.0.rsplit_once(':').map_or(&self.0, |(host, _)| host)
    }
}

impl fmt::Display for ApplicationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "application_{}_{:04}",
            self.cluster_timestamp, self.sequence
        )
    }
}

impl fmt::Display for AttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let app = self.application;
        write!(
            f,
            "appattempt_{}_{:04}_{:06}",
            app.cluster_timestamp, app.sequence, self.attempt
        )
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let app = self.attempt.application;
        f.write_str("container_")?;
        if self.epoch > 0 {
            write!(f, "e{}_", self.epoch)?;
        }
        write!(
            f,
            "{}_{:04}_{:02}_{:06}",
            app.cluster_timestamp, app.sequence, self.attempt.attempt, self.id
        )
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Splits `prefix_a_b_c` into its numeric fields, all of which must be plain decimal digits.
fn numeric_fields<'a>(value: &'a str, prefix: &str) -> Option<Vec<&'a str>> {
    let rest = value.strip_prefix(prefix)?;
    let fields: Vec<&str> = rest.split('_').collect();
    let all_digits = fields
        .iter()
        .all(|f| !f.is_empty() && f.len() <= 20 && f.bytes().all(|b| b.is_ascii_digit()));
    all_digits.then_some(fields)
}

fn error(kind: &'static str, value: &str, expected: &'static str) -> IdError {
    IdError {
        kind,
        value: value.to_string(),
        expected,
    }
}

impl FromStr for ApplicationId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let bad = || error("application", s, APP_FORM);
        match numeric_fields(s, "application_").as_deref() {
            Some([ts, seq]) => Ok(ApplicationId::new(
                ts.parse().map_err(|_| bad())?,
                seq.parse().map_err(|_| bad())?,
            )),
            _ => Err(bad()),
        }
    }
}

impl FromStr for AttemptId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let bad = || error("application attempt", s, ATTEMPT_FORM);
        match numeric_fields(s, "appattempt_").as_deref() {
            Some([ts, seq, attempt]) => Ok(AttemptId::new(
                ApplicationId::new(
                    ts.parse().map_err(|_| bad())?,
                    seq.parse().map_err(|_| bad())?,
                ),
                attempt.parse().map_err(|_| bad())?,
            )),
            _ => Err(bad()),
        }
    }
}

impl FromStr for ContainerId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let bad = || error("container", s, CONTAINER_FORM);
        let (epoch, rest) = match s.strip_prefix("container_e") {
            Some(tail) => {
                let (epoch, rest) = tail.split_once('_').ok_or_else(bad)?;
                if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                (
                    epoch.parse::<u32>().map_err(|_| bad())?,
                    format!("container_{rest}"),
                )
            }
            None => (0, s.to_string()),
        };
        match numeric_fields(&rest, "container_").as_deref() {
            Some([ts, seq, attempt, id]) => {
                let app = ApplicationId::new(
                    ts.parse().map_err(|_| bad())?,
                    seq.parse().map_err(|_| bad())?,
                );
                Ok(ContainerId::new(
                    AttemptId::new(app, attempt.parse().map_err(|_| bad())?),
                    epoch,
                    id.parse().map_err(|_| bad())?,
                ))
            }
            _ => Err(bad()),
        }
    }
}

impl FromStr for NodeId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let bad = || error("node", s, NODE_FORM);
        let (host, port) = s.rsplit_once(':').ok_or_else(bad)?;
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_[]:".contains(&b));
        if !host_ok || port.parse::<u16>().is_err() {
            return Err(bad());
        }
        Ok(NodeId(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn formats_match_yarn() {
        let app = ApplicationId::new(1700000000000, 7);
        let attempt = AttemptId::new(app, 1);
        assert_eq!(app.to_string(), "application_1700000000000_0007");
        assert_eq!(attempt.to_string(), "appattempt_1700000000000_0007_000001");
        assert_eq!(
            ContainerId::new(attempt, 0, 3).to_string(),
            "container_1700000000000_0007_01_000003"
        );
        assert_eq!(
            ContainerId::new(attempt, 2, 3).to_string(),
            "container_e2_1700000000000_0007_01_000003"
        );
    }

    #[test]
    fn rejects_malformed_ids_with_the_expected_form() {
        for bad in [
            "",
            "application_",
            "application_1_x",
            "app_1_1",
            "application_1_2_3",
            "application_-1_2",
        ] {
            let err = bad.parse::<ApplicationId>().unwrap_err();
            assert!(err.to_string().contains("expected application_"), "{err}");
        }
        assert!("container_e_1_1_1_1".parse::<ContainerId>().is_err());
        assert!("container_1_1_1".parse::<ContainerId>().is_err());
        assert!("appattempt_1_1".parse::<AttemptId>().is_err());
        assert!("nohost".parse::<NodeId>().is_err());
        assert!("host:99999".parse::<NodeId>().is_err());
        assert!("../etc:80".parse::<NodeId>().is_err());
    }

    proptest! {
        #[test]
        fn ids_round_trip(ts in 0u64..u64::MAX, seq in 0u32..100_000, attempt in 1u32..1000, epoch in 0u32..50, id in 0u64..10_000_000) {
            let app = ApplicationId::new(ts, seq);
            let attempt = AttemptId::new(app, attempt);
            let container = ContainerId::new(attempt, epoch, id);
            prop_assert_eq!(app.to_string().parse::<ApplicationId>().unwrap(), app);
            prop_assert_eq!(attempt.to_string().parse::<AttemptId>().unwrap(), attempt);
            prop_assert_eq!(container.to_string().parse::<ContainerId>().unwrap(), container);
        }

        /// The node manager names a container's directories by its parsed id: whatever a
        /// request sends, an id that parses is one plain file name of letters, digits and '_'.
        #[test]
        fn a_container_id_that_parses_is_a_plain_directory_name(
            s in prop_oneof![
                Just(String::new()),
                Just(".".to_string()),
                Just("..".to_string()),
                "container_[0-9]{1,3}_[0-9]{1,4}_[0-9]{1,2}_[0-9]{1,6}(/\\.\\.){0,2}",
                "container_(e[0-9])?[0-9./_]{0,24}",
                "(\\.\\./){1,3}container_1_0001_01_000001",
                "/container_1_0001_01_00000[0-9]",
                "container_1_0001_01_00000[0-9]\\x00[a-z./]{0,5}",
                "container_[0-9]{300,400}",
                "container_\\PC{0,16}",
            ]
        ) {
            if let Ok(id) = s.parse::<ContainerId>() {
                let name = id.to_string();
                prop_assert!(
                    name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                    "{s:?} parsed as {name:?}"
                );
                prop_assert!(name.len() <= 255);
            }
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".*") {
            let _ = s.parse::<ApplicationId>();
            let _ = s.parse::<AttemptId>();
            let _ = s.parse::<ContainerId>();
            let _ = s.parse::<NodeId>();
        }
    }
}
