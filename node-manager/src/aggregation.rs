//! Log aggregation (YARN's): once an application is over on this node, its containers' log files
//! go to the RM's `LogStore` in one `UploadLogs` stream, so `spindle logs` still finds them after
//! this node is gone. Only when the RM has answered that it kept them are they deleted here; an
//! upload that fails is tried again a few times, then the logs stay on this node (and the next
//! start of the node manager tries again). What was aggregated is read from the RM's log store
//! (`spindle logs`), which asks for the client secret and the application's owner: a node holds
//! neither, so its web pages do not serve aggregated logs.

use std::sync::Arc;
use std::time::Duration;

use spindle_containers::ApplicationId;
use spindle_protocol as proto;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::layout::Layout;
use crate::logs::{self, ContainerLogs, LogError};
use crate::metrics::Aggregation;
use crate::node::Node;

const CHUNK_BYTES: usize = 256 * 1024;
const ATTEMPTS: u32 = 5;
const FIRST_RETRY: Duration = Duration::from_millis(200);
/// A hang guard: an RM that takes this long over one upload has failed it.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum AggregationError {
    #[error(transparent)]
    Logs(#[from] LogError),
    #[error("the RM's log store answered UploadLogs with {code:?}: {message}")]
    Rpc { code: tonic::Code, message: String },
    #[error("the RM's log store did not answer within {UPLOAD_TIMEOUT:?}")]
    TimedOut,
    #[error("the node manager is stopping")]
    Stopping,
}

impl AggregationError {
    /// Whether trying again may help (a missing log store or a refusal will not change).
    fn is_transient(&self) -> bool {
        match self {
            AggregationError::Rpc { code, .. } => matches!(
                code,
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Internal
                    | tonic::Code::Unknown
                    | tonic::Code::Aborted
                    | tonic::Code::Cancelled
            ),
            AggregationError::Logs(LogError::Io { .. }) | AggregationError::TimedOut => true,
            _ => false,
        }
    }
}

/// Uploads `app`'s logs and deletes them here; `Ok(None)` when this node has none.
pub async fn aggregate(
    node: &Arc<Node>,
    app: ApplicationId,
) -> Result<Option<(u64, u64)>, AggregationError> {
    let listed = match logs::list(&node.layout, app, None).await {
        Ok(listed) => listed,
        Err(LogError::NoApplication(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut retry = FIRST_RETRY;
    let mut attempt = 1;
    let (files, bytes) = loop {
        let mut stopping = node.stopping.clone();
        let upload = tokio::time::timeout(UPLOAD_TIMEOUT, upload(node, &listed));
        let outcome = tokio::select! {
            _ = stopping.wait_for(|stop| *stop) => Err(AggregationError::Stopping),
            outcome = upload => outcome.unwrap_or(Err(AggregationError::TimedOut)),
        };
        match outcome {
            Ok(uploaded) => break uploaded,
            Err(e) if attempt < ATTEMPTS && e.is_transient() => {
                tracing::debug!(%app, attempt, "uploading the logs failed, trying again: {e}");
                let mut stopping = node.stopping.clone();
                tokio::select! {
                    _ = stopping.wait_for(|stop| *stop) => return Err(AggregationError::Stopping),
                    () = tokio::time::sleep(retry) => {}
                }
                retry *= 2;
                attempt += 1;
            }
            Err(e) => {
                node.metrics.aggregated(Aggregation::Failed);
                return Err(e);
            }
        }
    };
    node.metrics
        .aggregated(Aggregation::Uploaded { files, bytes });
    let dir = node.layout.app_log_dir(app);
    if let Err(e) = tokio::fs::remove_dir_all(&dir).await {
        tracing::warn!(%app, "uploaded the logs but cannot delete {}: {e}", dir.display());
    }
    Ok(Some((files, bytes)))
}

/// One `UploadLogs` call with every file of `listed`; returns (files, bytes) sent.
async fn upload(node: &Node, listed: &[ContainerLogs]) -> Result<(u64, u64), AggregationError> {
    let mut client = node.rm.log_store();
    let (tx, rx) = mpsc::channel(4);
    let call = client.upload_logs(ReceiverStream::new(rx));
    let produce = send_files(&node.layout, node.node_id.as_str(), listed, tx);
    let (sent, answer) = tokio::join!(produce, call);
    // The RM's answer says more than a send that failed because the call ended.
    let answer = answer.map_err(|status| AggregationError::Rpc {
        code: status.code(),
        message: status.message().to_string(),
    })?;
    let (files, bytes) = sent?;
    let kept = answer.into_inner();
    if u64::from(kept.files) != files || kept.bytes != bytes {
        return Err(AggregationError::Rpc {
            code: tonic::Code::DataLoss,
            message: format!(
                "it kept {} files of {} bytes, but {files} files of {bytes} bytes were sent",
                kept.files, kept.bytes
            ),
        });
    }
    Ok((files, bytes))
}

/// Streams every file, each named in every chunk, then the `end` message. A file that cannot be
/// read ends the stream without `end`, so the RM keeps nothing of this upload.
async fn send_files(
    layout: &Layout,
    node_id: &str,
    listed: &[ContainerLogs],
    tx: mpsc::Sender<proto::LogUploadChunk>,
) -> Result<(u64, u64), AggregationError> {
    let closed = || AggregationError::Rpc {
        code: tonic::Code::Cancelled,
        message: "the upload ended before every file was sent".into(),
    };
    let (mut files, mut bytes) = (0u64, 0u64);
    for container in listed {
        for (name, _) in &container.files {
            let path = layout.log_dir(container.container).join(name);
            let io = |source| LogError::Io {
                path: path.clone(),
                source,
            };
            let file = spindle_containers::no_follow::open_regular(&path).map_err(io)?;
            let mut file = tokio::fs::File::from_std(file);
            let mut first = true;
            loop {
                let mut data = vec![0; CHUNK_BYTES];
                let n = file.read(&mut data).await.map_err(io)?;
                // An empty file is still one chunk, so that it exists at the RM too.
                if n == 0 && !first {
                    break;
                }
                data.truncate(n);
                bytes += n as u64;
                first = false;
                let chunk = proto::LogUploadChunk {
                    container_id: container.container.to_string(),
                    file: name.clone(),
                    data,
                    node_id: node_id.to_string(),
                    end: false,
                };
                tx.send(chunk).await.map_err(|_| closed())?;
            }
            files += 1;
        }
    }
    let end = proto::LogUploadChunk {
        node_id: node_id.to_string(),
        end: true,
        ..Default::default()
    };
    tx.send(end).await.map_err(|_| closed())?;
    Ok((files, bytes))
}
