//! The two places `spindle logs` reads from: the node manager that ran a container
//! (`ListContainerLogs`, `ReadContainerLog`) and the RM's log store (`ListLogs`, `ReadLog`). Each
//! lists a selection's files as `LogEntry`s and opens or copies one; "not there" is an answer
//! (`None`, `Copied::Missing`), not an error, so the caller can look in the other place.
//!
//! A node lets a reader in only with an NM token for that node and the application, which the
//! RM hands to the application's owner and the cluster's admins (`GetLogTokens`, kept in
//! `LogAccess`); the log store takes the client's own proof and applies the same rule.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use spindle_containers::ApplicationId;
use spindle_protocol as proto;
use spindle_protocol::container_manager_client::ContainerManagerClient;
use spindle_protocol::log_store_client::LogStoreClient;
use spindle_security::{CallCredentials, NM_TOKEN_HEADER};
use tokio::io::AsyncWrite;
use tonic::Streaming;

use super::{LogEntry, LogSelection, Origin, write_out};
use crate::error::{ClientError, is_refusal, one_line, status_reason};
use crate::rm_client::{Authenticated, DEFAULT_CONNECT_TIMEOUT, RmClient, connect_channel, unary};

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
        code if is_refusal(code) => ClientError::Refused {
            call,
            server: format!("node {node}"),
            code,
            message: one_line(status.message()),
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

/// What lets this reader at an application's logs: the NM tokens the RM handed out for it, per
/// node, and the client's own credentials for the RM's log store. Cheap to clone.
#[derive(Clone)]
pub struct LogAccess {
    rm: RmClient,
    app: ApplicationId,
    tokens: Arc<tokio::sync::Mutex<HashMap<String, String>>>,
}

impl LogAccess {
    /// Asks the RM for the application's NM tokens. A reader who may not see the logs gets the
    /// RM's refusal; an application the RM has forgotten has no tokens (its logs, if any, are
    /// in the store).
    pub async fn fetch(rm: &RmClient, app: ApplicationId) -> Result<LogAccess, ClientError> {
        let access = LogAccess {
            rm: rm.clone(),
            app,
            tokens: Arc::default(),
        };
        access.refresh().await?;
        Ok(access)
    }

    async fn refresh(&self) -> Result<(), ClientError> {
        let tokens = match self.rm.clone().log_tokens(self.app).await {
            Ok(tokens) => tokens,
            Err(ClientError::Rpc {
                code: tonic::Code::NotFound,
                ..
            }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut known = self.tokens.lock().await;
        for token in tokens {
            known.insert(token.node_id, token.token);
        }
        Ok(())
    }

    /// What a call to `node` carries: its NM token (asked for again when the node is new, as
    /// when a followed application grows), or only the user, which the node refuses, saying so.
    async fn for_node(&self, node: &str) -> CallCredentials {
        let user = self.rm.user().to_string();
        if let Some(token) = self.tokens.lock().await.get(node) {
            return CallCredentials::with_token(NM_TOKEN_HEADER, token.clone(), user);
        }
        if let Err(e) = self.refresh().await {
            tracing::debug!(%node, "no new log tokens: {e}");
        }
        match self.tokens.lock().await.get(node) {
            Some(token) => CallCredentials::with_token(NM_TOKEN_HEADER, token.clone(), user),
            None => CallCredentials::user_only(user),
        }
    }

    /// The RM's log store, called with the client's credentials.
    pub async fn store(&self) -> Result<Store, ClientError> {
        Store::connect(&self.rm).await
    }

    pub fn rm_addr(&self) -> &str {
        self.rm.addr()
    }
}

/// One node manager's logs.
#[derive(Clone)]
pub struct NodeLogs {
    node: String,
    client: ContainerManagerClient<Authenticated>,
}

impl NodeLogs {
    /// Connects to `node`; every call carries `credentials` (the NM token for it).
    pub async fn connect(
        node: &str,
        credentials: CallCredentials,
    ) -> Result<NodeLogs, ClientError> {
        let channel = connect_channel(node, NODE_CONNECT_TIMEOUT)
            .await
            .map_err(|reason| ClientError::NodeUnreachable {
                addr: node.to_string(),
                reason,
            })?;
        Ok(NodeLogs {
            node: node.to_string(),
            client: ContainerManagerClient::with_interceptor(channel, credentials),
        })
    }

    /// Connects to `node` and lists the selection's files there.
    pub async fn list(
        node: &str,
        access: &LogAccess,
        selection: &LogSelection,
    ) -> Result<(NodeLogs, Vec<LogEntry>), ClientError> {
        let mut logs = NodeLogs::connect(node, access.for_node(node).await).await?;
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
    client: LogStoreClient<Authenticated>,
}

impl Store {
    /// A connection of its own to `rm`'s address (the store is served on the same port), with
    /// `rm`'s credentials.
    pub async fn connect(rm: &RmClient) -> Result<Store, ClientError> {
        let addr = rm.addr().to_string();
        let channel = connect_channel(&addr, DEFAULT_CONNECT_TIMEOUT)
            .await
            .map_err(|reason| ClientError::Unreachable {
                addr: addr.clone(),
                reason,
            })?;
        Ok(Store {
            addr,
            client: LogStoreClient::with_interceptor(channel, rm.credentials().clone()),
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
