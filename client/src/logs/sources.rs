//! The two places `spindle logs` reads from: the node manager that ran a container
//! (`ListContainerLogs`, `ReadContainerLog`) and the RM's log store (`ListLogs`, `ReadLog`). Each
//! lists a selection's files as `LogEntry`s and opens or copies one; "not there" is an answer
//! (`None`, `Copied::Missing`), not an error, so the caller can look in the other place.

use std::time::Duration;

use spindle_protocol as proto;
use spindle_protocol::container_manager_client::ContainerManagerClient;
use spindle_protocol::log_store_client::LogStoreClient;
use tokio::io::AsyncWrite;
use tonic::Streaming;
use tonic::transport::Channel;

use super::{LogEntry, LogSelection, Origin, write_out};
use crate::error::{ClientError, status_reason};
use crate::rm_client::{DEFAULT_CONNECT_TIMEOUT, RmClient, connect_channel, unary};

const NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How a copy went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Copied {
    All,
    /// The source does not have the file (nothing was written).
    Missing,
}

fn is_absent(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        tonic::Code::NotFound | tonic::Code::Unimplemented
    )
}

fn node_error(node: &str, call: &'static str, status: tonic::Status) -> ClientError {
    match status.code() {
        tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => ClientError::NodeUnreachable {
            addr: node.to_string(),
            reason: status_reason(&status),
        },
        code => ClientError::Rpc {
            call,
            code,
            message: format!("{} (node {node})", status.message()),
        },
    }
}

/// Writes every chunk of `stream` to `out`.
async fn drain(
    mut stream: Streaming<proto::LogChunk>,
    out: &mut (impl AsyncWrite + Unpin),
    fail: impl Fn(tonic::Status) -> ClientError,
) -> Result<(), ClientError> {
    while let Some(chunk) = stream.message().await.map_err(&fail)? {
        write_out(out, &chunk.data).await?;
    }
    Ok(())
}

fn entries(
    listed: Vec<proto::ContainerLogFiles>,
    selection: &LogSelection,
    origin: Origin,
    node: Option<&str>,
) -> Vec<LogEntry> {
    listed
        .into_iter()
        .flat_map(|c| {
            let node = node.map_or(c.node_id, str::to_string);
            let container = c.container_id;
            c.files
                .into_iter()
                .filter(|f| selection.wants_file(&f.name))
                .map(move |f| LogEntry {
                    container: container.clone(),
                    node: node.clone(),
                    file: f.name,
                    origin,
                })
        })
        .collect()
}

/// One node manager's logs.
#[derive(Clone)]
pub struct NodeLogs {
    node: String,
    client: ContainerManagerClient<Channel>,
}

impl NodeLogs {
    pub async fn connect(node: &str) -> Result<NodeLogs, ClientError> {
        let channel = connect_channel(node, NODE_CONNECT_TIMEOUT)
            .await
            .map_err(|reason| ClientError::NodeUnreachable {
                addr: node.to_string(),
                reason,
            })?;
        Ok(NodeLogs {
            node: node.to_string(),
            client: ContainerManagerClient::new(channel),
        })
    }

    /// Connects to `node` and lists the selection's files there.
    pub async fn list(
        node: &str,
        selection: &LogSelection,
    ) -> Result<(NodeLogs, Vec<LogEntry>), ClientError> {
        let mut logs = NodeLogs::connect(node).await?;
        let listed = logs.list_files(selection).await?;
        Ok((logs, listed))
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// The selection's files on this node; none if it has none (or never ran the container).
    pub async fn list_files(
        &mut self,
        selection: &LogSelection,
    ) -> Result<Vec<LogEntry>, ClientError> {
        let answer = self
            .client
            .list_container_logs(unary(proto::ListContainerLogsRequest {
                application_id: selection.app.to_string(),
                container_id: selection.container_filter(),
            }))
            .await;
        match answer {
            Ok(listing) => Ok(entries(
                listing.into_inner().containers,
                selection,
                Origin::Node,
                Some(&self.node),
            )),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(Vec::new()),
            Err(status) => Err(node_error(&self.node, "ListContainerLogs", status)),
        }
    }

    /// The file's content from `offset`; with `follow`, and what is appended until the
    /// container completes. `None` if the node does not have it.
    pub async fn open(
        &mut self,
        entry: &LogEntry,
        offset: u64,
        follow: bool,
    ) -> Result<Option<Streaming<proto::LogChunk>>, ClientError> {
        let request = proto::ReadContainerLogRequest {
            container_id: entry.container.clone(),
            file: entry.file.clone(),
            offset,
            follow,
        };
        match self.client.read_container_log(request).await {
            Ok(stream) => Ok(Some(stream.into_inner())),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(node_error(&self.node, "ReadContainerLog", status)),
        }
    }

    pub async fn copy(
        &mut self,
        entry: &LogEntry,
        out: &mut (impl AsyncWrite + Unpin),
    ) -> Result<Copied, ClientError> {
        let Some(stream) = self.open(entry, 0, false).await? else {
            return Ok(Copied::Missing);
        };
        let node = self.node.clone();
        drain(stream, out, |s| node_error(&node, "ReadContainerLog", s)).await?;
        Ok(Copied::All)
    }
}

/// The RM's log store.
pub struct Store {
    addr: String,
    client: LogStoreClient<Channel>,
}

impl Store {
    /// A connection of its own to `rm`'s address (the store is served on the same port).
    pub async fn connect(rm: &RmClient) -> Result<Store, ClientError> {
        Store::connect_to(rm.addr()).await
    }

    /// A connection to the RM at `addr` (`HOST:PORT`).
    pub async fn connect_to(addr: &str) -> Result<Store, ClientError> {
        let addr = addr.to_string();
        let channel = connect_channel(&addr, DEFAULT_CONNECT_TIMEOUT)
            .await
            .map_err(|reason| ClientError::Unreachable {
                addr: addr.clone(),
                reason,
            })?;
        Ok(Store {
            addr,
            client: LogStoreClient::new(channel),
        })
    }

    fn fail(&self, call: &'static str) -> impl Fn(tonic::Status) -> ClientError + use<> {
        let addr = self.addr.clone();
        move |status| ClientError::from_status(call, &addr, status)
    }

    /// The selection's aggregated files; none if the store has none.
    pub async fn list(&mut self, selection: &LogSelection) -> Result<Vec<LogEntry>, ClientError> {
        let answer = self
            .client
            .list_logs(unary(proto::ListLogsRequest {
                application_id: selection.app.to_string(),
                container_id: selection.container_filter(),
            }))
            .await;
        match answer {
            Ok(listing) => Ok(entries(
                listing.into_inner().containers,
                selection,
                Origin::Store,
                None,
            )),
            Err(status) if is_absent(&status) => Ok(Vec::new()),
            Err(status) => Err(self.fail("ListLogs")(status)),
        }
    }

    /// The aggregated file from `offset`; `None` if the store does not have it.
    pub async fn open(
        &mut self,
        entry: &LogEntry,
        offset: u64,
    ) -> Result<Option<Streaming<proto::LogChunk>>, ClientError> {
        let request = proto::ReadLogRequest {
            container_id: entry.container.clone(),
            file: entry.file.clone(),
            offset,
        };
        match self.client.read_log(request).await {
            Ok(stream) => Ok(Some(stream.into_inner())),
            Err(status) if is_absent(&status) => Ok(None),
            Err(status) => Err(self.fail("ReadLog")(status)),
        }
    }

    pub async fn copy(
        &mut self,
        entry: &LogEntry,
        offset: u64,
        out: &mut (impl AsyncWrite + Unpin),
    ) -> Result<Copied, ClientError> {
        let Some(stream) = self.open(entry, offset).await? else {
            return Ok(Copied::Missing);
        };
        drain(stream, out, self.fail("ReadLog")).await?;
        Ok(Copied::All)
    }
}
