//! What the core asks to be kept across a restart (`Effect::Persist`), and `Image`, the state
//! those records add up to. The server writes records to the state store in the order they come,
//! before it answers the call that caused them; `Core::recover` rebuilds the core from an image.
//!
//! Kept: the cluster timestamp and the epoch, the last application id handed out, every
//! application as submitted with its state, every attempt, and every live container (the NM's
//! container reports do not carry a container's resource, so the RM keeps it itself). Not kept:
//! nodes (they register again), outstanding requests (AMs ask again after RESYNC), and news.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use spindle_containers::{ApplicationId, AttemptId, ContainerId, LaunchContext, NodeId, Resource};

use super::app::{AppState, AttemptState, FinalStatus};

#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// Written at every start: the timestamp that ids carry (the first start's) and this start's
    /// epoch, which new container ids carry.
    Cluster { cluster_timestamp: u64, epoch: u32 },
    /// The sequence number of the last application id handed out.
    AppSequence(u32),
    /// An application as submitted, with its state; written again whenever its state changes.
    App(AppRecord),
    /// An attempt; written when it starts and whenever its state changes.
    Attempt(AttemptRecord),
    /// A container that holds capacity, written when it is allocated.
    Container(ContainerRecord),
    /// The container ended: forget it.
    ContainerEnded(ContainerId),
    /// The application left the retention limit: forget it, its attempts and its containers.
    AppRemoved(ApplicationId),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    #[serde(with = "as_string")]
    pub id: ApplicationId,
    pub name: String,
    pub queue: String,
    pub user: String,
    pub application_type: String,
    pub tags: Vec<String>,
    pub submit_ms: u64,
    /// Its place in the FIFO queue.
    pub order: u64,
    /// Normalized.
    pub am_resource: Resource,
    pub am_launch: LaunchContext,
    pub max_attempts: u32,
    pub unmanaged: bool,
    pub state: AppState,
    pub final_status: FinalStatus,
    pub diagnostics: String,
    pub finish_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    #[serde(with = "as_string")]
    pub id: AttemptId,
    pub state: AttemptState,
    #[serde(with = "as_string::option")]
    pub am_container: Option<ContainerId>,
    pub host: String,
    pub rpc_port: i32,
    pub tracking_url: String,
    pub diagnostics: String,
    pub start_ms: u64,
    pub finish_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    #[serde(with = "as_string")]
    pub id: ContainerId,
    #[serde(with = "as_string")]
    pub node: NodeId,
    pub resource: Resource,
    pub priority: i32,
    pub is_am: bool,
    pub allocated_ms: u64,
}

/// The state a sequence of records adds up to: what a store holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Image {
    /// (cluster timestamp, epoch), once a start has been recorded.
    pub cluster: Option<(u64, u32)>,
    pub last_app_seq: u32,
    pub apps: BTreeMap<ApplicationId, AppRecord>,
    pub attempts: BTreeMap<AttemptId, AttemptRecord>,
    pub containers: BTreeMap<ContainerId, ContainerRecord>,
}

impl Image {
    pub fn from_records(records: impl IntoIterator<Item = Record>) -> Image {
        let mut image = Image::default();
        for record in records {
            image.apply(record);
        }
        image
    }

    pub fn apply(&mut self, record: Record) {
        match record {
            Record::Cluster {
                cluster_timestamp,
                epoch,
            } => self.cluster = Some((cluster_timestamp, epoch)),
            Record::AppSequence(seq) => self.last_app_seq = seq,
            Record::App(app) => {
                self.apps.insert(app.id, app);
            }
            Record::Attempt(attempt) => {
                self.attempts.insert(attempt.id, attempt);
            }
            Record::Container(container) => {
                self.containers.insert(container.id, container);
            }
            Record::ContainerEnded(id) => {
                self.containers.remove(&id);
            }
            Record::AppRemoved(id) => {
                self.apps.remove(&id);
                self.attempts.retain(|a, _| a.application != id);
                self.containers.retain(|c, _| c.application() != id);
            }
        }
    }

    /// The records that rebuild this image from nothing.
    pub fn into_records(self) -> Vec<Record> {
        let mut records = Vec::new();
        if let Some((cluster_timestamp, epoch)) = self.cluster {
            records.push(Record::Cluster {
                cluster_timestamp,
                epoch,
            });
        }
        records.push(Record::AppSequence(self.last_app_seq));
        records.extend(self.apps.into_values().map(Record::App));
        records.extend(self.attempts.into_values().map(Record::Attempt));
        records.extend(self.containers.into_values().map(Record::Container));
        records
    }
}

/// Ids are stored in their YARN string forms, so that a store can be read by eye.
mod as_string {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<T: Display, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(value)
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: FromStr<Err: Display>,
        D: Deserializer<'de>,
    {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }

    pub mod option {
        use super::*;

        pub fn serialize<T: Display, S: Serializer>(
            value: &Option<T>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match value {
                Some(value) => s.collect_str(value),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
        where
            T: FromStr<Err: Display>,
            D: Deserializer<'de>,
        {
            Option::<String>::deserialize(d)?
                .map(|s| s.parse().map_err(D::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_id(seq: u32) -> ApplicationId {
        ApplicationId::new(1_700_000_000_000, seq)
    }

    fn container(app: u32, id: u64) -> ContainerRecord {
        ContainerRecord {
            id: ContainerId::new(AttemptId::new(app_id(app), 1), 0, id),
            node: "n1:8041".parse().unwrap(),
            resource: Resource::new(1024, 1),
            priority: 1,
            is_am: id == 1,
            allocated_ms: 5,
        }
    }

    #[test]
    fn ids_are_stored_in_their_string_forms_and_read_back() {
        let record = AttemptRecord {
            id: AttemptId::new(app_id(3), 2),
            state: AttemptState::Running,
            am_container: Some(ContainerId::new(AttemptId::new(app_id(3), 2), 1, 1)),
            host: "h".into(),
            rpc_port: 7,
            tracking_url: String::new(),
            diagnostics: String::new(),
            start_ms: 1,
            finish_ms: None,
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(
            json.contains("\"appattempt_1700000000000_0003_000002\""),
            "{json}"
        );
        assert!(
            json.contains("\"container_e1_1700000000000_0003_02_000001\""),
            "{json}"
        );
        assert!(json.contains("\"RUNNING\""), "{json}");
        assert_eq!(
            serde_json::from_str::<AttemptRecord>(&json).unwrap(),
            record
        );
        let bad = json.replace("appattempt_", "attempt_");
        let err = serde_json::from_str::<AttemptRecord>(&bad).unwrap_err();
        assert!(
            err.to_string().contains("malformed application attempt id"),
            "{err}"
        );
    }

    #[test]
    fn an_image_is_the_sum_of_its_records_and_gives_them_back() {
        let mut image = Image::default();
        image.apply(Record::Cluster {
            cluster_timestamp: 9,
            epoch: 2,
        });
        image.apply(Record::AppSequence(4));
        for c in [container(1, 1), container(1, 2), container(2, 1)] {
            image.apply(Record::Container(c));
        }
        image.apply(Record::ContainerEnded(container(1, 2).id));
        image.apply(Record::AppRemoved(app_id(2)));
        assert_eq!(image.cluster, Some((9, 2)));
        assert_eq!(image.last_app_seq, 4);
        assert_eq!(
            image.containers.keys().copied().collect::<Vec<_>>(),
            vec![container(1, 1).id]
        );
        assert_eq!(Image::from_records(image.clone().into_records()), image);
    }
}
