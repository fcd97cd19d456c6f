//! `spindle logs`: an application's container logs, each file under a
//! `==> container_… on node H: stdout <==` header and otherwise byte for byte as written.
//!
//! A container's logs are read from the node manager that ran it when that node answers
//! (`ListContainerLogs`, then `ReadContainerLog` streams); once the application is over the nodes
//! upload them to the RM's log store, so a container the node no longer has (or a node that is
//! gone) is read from there (`ListLogs`, `ReadLog`; its header says `(aggregated)`). `follow`
//! tails a running application's logs until it ends. Both places show an application's logs to
//! its owner and the cluster's admins only.

mod follow;
mod sources;

use std::collections::{BTreeSet, HashSet};

use spindle_containers::{ApplicationId, ContainerId};
use spindle_protocol as proto;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::error::ClientError;
use crate::rm_client::RmClient;

pub use follow::follow_logs;
use sources::{LogAccess, NodeLogs};

/// Which logs to show: an application's, one container's, and of those only one file's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSelection {
    pub app: ApplicationId,
    pub container: Option<ContainerId>,
    pub file: Option<String>,
}

impl LogSelection {
    /// Checks that `container` belongs to `app`. (A `file` that no container has matches
    /// nothing: the command checks its form.)
    pub fn new(
        app: ApplicationId,
        container: Option<ContainerId>,
        file: Option<String>,
    ) -> Result<LogSelection, ClientError> {
        if let Some(container) = container
            && container.application() != app
        {
            return Err(ClientError::ForeignContainer {
                container: container.to_string(),
                application: app.to_string(),
            });
        }
        Ok(LogSelection {
            app,
            container,
            file,
        })
    }

    fn wants_file(&self, file: &str) -> bool {
        self.file.as_deref().is_none_or(|f| f == file)
    }

    fn container_filter(&self) -> String {
        self.container.map(|c| c.to_string()).unwrap_or_default()
    }

    /// What the selection names, for "no logs found for …".
    pub fn describe(&self) -> String {
        let what = match self.container {
            Some(container) => format!("container {container}"),
            None => format!("application {}", self.app),
        };
        match &self.file {
            Some(file) => format!("{what} (file {file})"),
            None => what,
        }
    }
}

/// What `write_logs` managed: files written, and what it could not read (those logs are missing
/// from the output, so the command should say so and fail).
#[derive(Debug, Default)]
pub struct LogsOutcome {
    pub files: usize,
    pub problems: Vec<ClientError>,
}

/// Where a log file is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Origin {
    /// The node manager that ran the container.
    Node,
    /// The RM's log store.
    Store,
}

/// One log file of one container.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LogEntry {
    container: String,
    node: String,
    file: String,
    origin: Origin,
}

impl LogEntry {
    fn header(&self) -> String {
        let aggregated = match self.origin {
            Origin::Node => "",
            Origin::Store => " (aggregated)",
        };
        format!(
            "==> {} on node {}{aggregated}: {} <==\n",
            self.container, self.node, self.file
        )
    }
}

/// Writes the logs of `app` (only `container`'s when given) to `out`.
pub async fn write_logs(
    rm: &mut RmClient,
    app: ApplicationId,
    container: Option<ContainerId>,
    out: &mut (impl AsyncWrite + Unpin),
) -> Result<LogsOutcome, ClientError> {
    let selection = LogSelection::new(app, container, None)?;
    write_selected(rm, &selection, out).await
}

/// Writes the selected logs to `out`: from the nodes that answer, the rest from the RM's log
/// store.
pub async fn write_selected(
    rm: &mut RmClient,
    selection: &LogSelection,
    out: &mut (impl AsyncWrite + Unpin),
) -> Result<LogsOutcome, ClientError> {
    // An application the RM has forgotten may still have its logs in the store.
    let report = match rm.application_report(selection.app).await {
        Ok(report) => Some(report),
        Err(ClientError::Rpc {
            code: tonic::Code::NotFound,
            ..
        }) => None,
        Err(e) => return Err(e),
    };
    // The owner's or an admin's only: anyone else hears the RM's refusal here.
    let access = LogAccess::fetch(rm, selection.app).await?;
    let wanted = selection.container.map(|c| c.to_string());
    let nodes = report
        .as_ref()
        .map(|r| nodes_to_ask(r, wanted.as_deref()))
        .unwrap_or_default();

    let mut outcome = LogsOutcome::default();
    let mut entries = Vec::new();
    let mut clients = Vec::new();
    let mut silent = Vec::new();
    for node in nodes {
        match NodeLogs::list(&node, &access, selection).await {
            Ok((client, listed)) => {
                entries.extend(listed);
                clients.push(client);
            }
            Err(problem) => silent.push((node, problem)),
        }
    }
    let mut store = access.store().await?;
    // Every file, so that a node's aggregated logs are seen even when none is the wanted file.
    let every_file = LogSelection {
        file: None,
        ..selection.clone()
    };
    let stored = store.list(&every_file).await?;
    // A node that does not answer loses nothing if its logs were aggregated.
    let aggregated_nodes: HashSet<&str> = stored.iter().map(|e| e.node.as_str()).collect();
    for (node, problem) in silent {
        if !aggregated_nodes.contains(node.as_str()) {
            outcome.problems.push(problem);
        }
    }
    let from_nodes: HashSet<String> = entries.iter().map(|e| e.container.clone()).collect();
    entries.extend(
        stored
            .into_iter()
            .filter(|e| !from_nodes.contains(&e.container) && selection.wants_file(&e.file)),
    );
    sort_entries(&mut entries);

    for entry in &entries {
        let separator = if outcome.files == 0 { "" } else { "\n" };
        write_out(out, format!("{separator}{}", entry.header()).as_bytes()).await?;
        let copied = match entry.origin {
            Origin::Node => match clients.iter_mut().find(|c| c.node() == entry.node) {
                Some(client) => client.copy(entry, out).await,
                None => Ok(sources::Copied::Missing),
            },
            Origin::Store => store.copy(entry, 0, out).await,
        };
        // Aggregated and deleted on the node between its listing and this read: the store has it.
        let copied = match copied {
            Ok(sources::Copied::Missing) => store.copy(entry, 0, out).await,
            other => other,
        };
        match copied {
            Ok(sources::Copied::All) => {}
            Ok(sources::Copied::Missing) => outcome.problems.push(ClientError::Rpc {
                call: "ReadLog",
                code: tonic::Code::NotFound,
                message: format!(
                    "log {} of {} is neither on node {} nor in the RM's log store",
                    entry.file, entry.container, entry.node
                ),
            }),
            Err(problem) => outcome.problems.push(problem),
        }
        outcome.files += 1;
    }
    out.flush().await.map_err(stdout_error)?;
    Ok(outcome)
}

/// The nodes that ran the app's containers (only the wanted one's, if it is known there).
fn nodes_to_ask(report: &proto::ApplicationReport, wanted: Option<&str>) -> BTreeSet<String> {
    let all: BTreeSet<String> = report
        .containers
        .iter()
        .filter(|c| !c.node_id.is_empty())
        .map(|c| c.node_id.clone())
        .collect();
    let matching: BTreeSet<String> = report
        .containers
        .iter()
        .filter(|c| wanted.is_none_or(|w| c.container_id == w) && !c.node_id.is_empty())
        .map(|c| c.node_id.clone())
        .collect();
    if matching.is_empty() { all } else { matching }
}

/// Containers in id order (the AM's first), and in each stdout, then stderr, then the rest.
fn sort_entries(entries: &mut [LogEntry]) {
    fn file_rank(name: &str) -> (u8, &str) {
        match name {
            "stdout" => (0, name),
            "stderr" => (1, name),
            _ => (2, name),
        }
    }
    entries.sort_by(|a, b| {
        let key = |e: &LogEntry| e.container.parse::<ContainerId>().ok();
        key(a)
            .cmp(&key(b))
            .then_with(|| a.container.cmp(&b.container))
            .then_with(|| file_rank(&a.file).cmp(&file_rank(&b.file)))
    });
}

async fn write_out(out: &mut (impl AsyncWrite + Unpin), bytes: &[u8]) -> Result<(), ClientError> {
    out.write_all(bytes).await.map_err(stdout_error)
}

fn stdout_error(source: std::io::Error) -> ClientError {
    ClientError::Io {
        path: "standard output".into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(container: &str, file: &str) -> LogEntry {
        LogEntry {
            container: container.into(),
            node: "n:1".into(),
            file: file.into(),
            origin: Origin::Node,
        }
    }

    #[test]
    fn containers_in_id_order_stdout_first() {
        let mut entries = vec![
            entry("container_1_0001_01_000010", "stdout"),
            entry("container_1_0001_01_000002", "zlog"),
            entry("container_1_0001_01_000002", "stderr"),
            entry("container_1_0001_01_000002", "stdout"),
        ];
        sort_entries(&mut entries);
        let order: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (&e.container[20..], e.file.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("000002", "stdout"),
                ("000002", "stderr"),
                ("000002", "zlog"),
                ("000010", "stdout")
            ]
        );
    }

    #[test]
    fn only_the_wanted_containers_nodes_are_asked() {
        let report = proto::ApplicationReport {
            containers: vec![
                proto::ContainerReport {
                    container_id: "c1".into(),
                    node_id: "a:1".into(),
                    ..Default::default()
                },
                proto::ContainerReport {
                    container_id: "c2".into(),
                    node_id: "b:1".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(nodes_to_ask(&report, None).len(), 2);
        assert_eq!(
            nodes_to_ask(&report, Some("c2"))
                .into_iter()
                .collect::<Vec<_>>(),
            ["b:1"]
        );
        // Unknown to the RM: every node of the app may still hold it.
        assert_eq!(nodes_to_ask(&report, Some("c9")).len(), 2);
    }

    #[test]
    fn a_selection_names_its_own_containers_and_files() {
        let app: ApplicationId = "application_1700000000000_0001".parse().unwrap();
        let other: ContainerId = "container_1700000000000_0002_01_000001".parse().unwrap();
        assert!(matches!(
            LogSelection::new(app, Some(other), None),
            Err(ClientError::ForeignContainer { .. })
        ));
        let selection = LogSelection::new(app, None, Some("stderr".into())).unwrap();
        assert!(selection.wants_file("stderr") && !selection.wants_file("stdout"));
        assert_eq!(
            selection.describe(),
            "application application_1700000000000_0001 (file stderr)"
        );
    }

    #[test]
    fn aggregated_logs_say_so_in_their_header() {
        let mut e = entry("container_1_0001_01_000002", "stdout");
        assert_eq!(
            e.header(),
            "==> container_1_0001_01_000002 on node n:1: stdout <==\n"
        );
        e.origin = Origin::Store;
        assert_eq!(
            e.header(),
            "==> container_1_0001_01_000002 on node n:1 (aggregated): stdout <==\n"
        );
    }
}
