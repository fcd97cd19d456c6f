//! `spindle logs`: an application's container logs, read from the node managers that ran its
//! containers (`ListContainerLogs`, then `ReadContainerLog` streams), each file under a
//! `==> container_… on node H: stdout <==` header and otherwise byte for byte as written.

use std::collections::BTreeSet;
use std::time::Duration;

use spindle_containers::{ApplicationId, ContainerId};
use spindle_protocol as proto;
use spindle_protocol::container_manager_client::ContainerManagerClient;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tonic::transport::Channel;

use crate::error::ClientError;
use crate::rm_client::{RmClient, connect_channel, unary};

const NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// What `write_logs` managed: files written, and the nodes it could not read from (their logs
/// are missing from the output, so the command should say so and fail).
#[derive(Debug, Default)]
pub struct LogsOutcome {
    pub files: usize,
    pub problems: Vec<ClientError>,
}

/// One log file of one container, as a node listed it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogEntry {
    container: String,
    node: String,
    file: String,
}

/// Writes the logs of `app` (only `container`'s when given) to `out`.
pub async fn write_logs(
    rm: &mut RmClient,
    app: ApplicationId,
    container: Option<ContainerId>,
    out: &mut (impl AsyncWrite + Unpin),
) -> Result<LogsOutcome, ClientError> {
    if let Some(container) = container
        && container.application() != app
    {
        return Err(ClientError::ForeignContainer {
            container: container.to_string(),
            application: app.to_string(),
        });
    }
    let report = rm.application_report(app).await?;
    let wanted = container.map(|c| c.to_string());
    let nodes = nodes_to_ask(&report, wanted.as_deref());

    let mut outcome = LogsOutcome::default();
    let mut entries = Vec::new();
    let mut clients = Vec::new();
    for node in nodes {
        match list_on_node(&node, app, wanted.as_deref()).await {
            Ok((client, listed)) => {
                entries.extend(listed);
                clients.push((node, client));
            }
            Err(problem) => outcome.problems.push(problem),
        }
    }
    sort_entries(&mut entries);

    for entry in &entries {
        let Some((_, client)) = clients.iter_mut().find(|(node, _)| *node == entry.node) else {
            continue;
        };
        let header = format!(
            "{}==> {} on node {}: {} <==\n",
            if outcome.files == 0 { "" } else { "\n" },
            entry.container,
            entry.node,
            entry.file
        );
        write_out(out, header.as_bytes()).await?;
        if let Err(problem) = copy_file(client, entry, out).await {
            outcome.problems.push(problem);
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

async fn list_on_node(
    node: &str,
    app: ApplicationId,
    wanted: Option<&str>,
) -> Result<(ContainerManagerClient<Channel>, Vec<LogEntry>), ClientError> {
    let unreachable = |reason: String| ClientError::NodeUnreachable {
        addr: node.to_string(),
        reason,
    };
    let channel = connect_channel(node, NODE_CONNECT_TIMEOUT)
        .await
        .map_err(unreachable)?;
    let mut client = ContainerManagerClient::new(channel);
    let answer = client
        .list_container_logs(unary(proto::ListContainerLogsRequest {
            application_id: app.to_string(),
            container_id: wanted.unwrap_or_default().to_string(),
        }))
        .await;
    let listing = match answer {
        Ok(listing) => listing.into_inner(),
        // This node never ran the wanted container: nothing to show from here.
        Err(status) if status.code() == tonic::Code::NotFound => {
            return Ok((client, Vec::new()));
        }
        Err(status) => return Err(node_error(node, "ListContainerLogs", status)),
    };
    let entries = listing
        .containers
        .into_iter()
        .flat_map(|c| {
            let container = c.container_id;
            c.files.into_iter().map(move |f| LogEntry {
                container: container.clone(),
                node: node.to_string(),
                file: f.name,
            })
        })
        .collect();
    Ok((client, entries))
}

fn node_error(node: &str, call: &'static str, status: tonic::Status) -> ClientError {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => ClientError::NodeUnreachable {
            addr: node.to_string(),
            reason: crate::error::status_reason(&status),
        },
        code => ClientError::Rpc {
            call,
            code,
            message: format!("{} (node {node})", status.message()),
        },
    }
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

async fn copy_file(
    client: &mut ContainerManagerClient<Channel>,
    entry: &LogEntry,
    out: &mut (impl AsyncWrite + Unpin),
) -> Result<(), ClientError> {
    let fail = |status| node_error(&entry.node, "ReadContainerLog", status);
    let mut stream = client
        .read_container_log(proto::ReadContainerLogRequest {
            container_id: entry.container.clone(),
            file: entry.file.clone(),
            offset: 0,
        })
        .await
        .map_err(fail)?
        .into_inner();
    while let Some(chunk) = stream.message().await.map_err(fail)? {
        write_out(out, &chunk.data).await?;
    }
    Ok(())
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
}
