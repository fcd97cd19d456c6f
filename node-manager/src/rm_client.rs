//! The node manager's connection to the RM: one lazily connected gRPC channel for the resource
//! tracker (registration, heartbeats), application watches, the log store, and the staging store,
//! which is where localization fetches the files containers need. Every call on it proves the
//! daemon secret (`CallCredentials`), acting for the node manager's own OS user.

use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use spindle_containers::localize::{ChunkStream, FetchError, FetchSource};
use spindle_protocol as proto;
use spindle_protocol::application_client_client::ApplicationClientClient;
use spindle_protocol::log_store_client::LogStoreClient;
use spindle_protocol::resource_tracker_client::ResourceTrackerClient;
use spindle_protocol::staging_store_client::StagingStoreClient;
use spindle_security::{CallCredentials, Secret, SecretKind};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use crate::error::NmError;

/// How long to wait for a connection to the RM before an attempt counts as failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings on the channel, so a watch on an RM that vanished without a word ends.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// A fetch that delivers nothing for this long has failed (a hung RM must not hang a launch).
const FETCH_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A channel to the RM at `rm` (`host:port`, or a URL with `http://`); it connects on first use
/// and reconnects after failures, so the RM may start later than the node manager.
pub fn channel(rm: &str) -> Result<Channel, NmError> {
    let url = if rm.contains("://") {
        rm.to_string()
    } else {
        format!("http://{rm}")
    };
    let bad = |reason: String| NmError::RmAddress {
        value: rm.to_string(),
        reason,
    };
    if rm.trim().is_empty() {
        return Err(bad("it is empty; expected host:port".into()));
    }
    let endpoint =
        Endpoint::from_shared(url).map_err(|e| bad(format!("{e}; expected host:port")))?;
    Ok(endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// The channel to the RM, every call on it carrying the daemon secret's proof.
pub type RmChannel = InterceptedService<Channel, CallCredentials>;

/// Clients of the RM's services, all on one channel, all proving the daemon secret.
#[derive(Clone, Debug)]
pub struct Rm {
    channel: Channel,
    credentials: CallCredentials,
}

impl Rm {
    /// Calls on `channel` prove `daemon`, acting for this process's OS user.
    pub fn new(channel: Channel, daemon: Secret) -> Rm {
        Rm {
            channel,
            credentials: CallCredentials::with_secret(
                SecretKind::Daemon,
                daemon,
                spindle_security::current_user(),
            ),
        }
    }

    pub fn resource_tracker(&self) -> ResourceTrackerClient<RmChannel> {
        ResourceTrackerClient::with_interceptor(self.channel.clone(), self.credentials.clone())
    }

    pub fn applications(&self) -> ApplicationClientClient<RmChannel> {
        ApplicationClientClient::with_interceptor(self.channel.clone(), self.credentials.clone())
    }

    pub fn log_store(&self) -> LogStoreClient<RmChannel> {
        LogStoreClient::with_interceptor(self.channel.clone(), self.credentials.clone())
    }

    pub fn staging_store(&self) -> StagingStoreClient<RmChannel> {
        StagingStoreClient::with_interceptor(self.channel.clone(), self.credentials.clone())
    }
}

/// Fetches files from the RM's `StagingStore`.
pub struct StagingFetch {
    client: StagingStoreClient<RmChannel>,
}

impl StagingFetch {
    pub fn new(rm: &Rm) -> Self {
        StagingFetch {
            client: rm.staging_store(),
        }
    }
}

impl FetchSource for StagingFetch {
    fn fetch(&self, sha256: &str) -> BoxFuture<'_, Result<ChunkStream, FetchError>> {
        let mut client = self.client.clone();
        let sha256 = sha256.to_string();
        Box::pin(async move {
            let request = proto::FetchRequest {
                sha256: sha256.clone(),
            };
            let response = tokio::time::timeout(FETCH_IDLE_TIMEOUT, client.fetch(request))
                .await
                .map_err(|_| idle())?
                .map_err(|status| {
                    FetchError(format!(
                        "the RM's staging store answered {:?}: {}",
                        status.code(),
                        status.message()
                    ))
                })?;
            let chunks = futures::stream::try_unfold(response.into_inner(), move |mut stream| {
                let sha256 = sha256.clone();
                async move {
                    let next = tokio::time::timeout(FETCH_IDLE_TIMEOUT, stream.next()).await;
                    match next.map_err(|_| idle())? {
                        None => Ok(None),
                        Some(Err(status)) => Err(FetchError(format!(
                            "the RM's staging store failed mid-transfer: {}",
                            status.message()
                        ))),
                        Some(Ok(chunk)) if chunk.sha256.is_empty() || chunk.sha256 == sha256 => {
                            Ok(Some((chunk.data, stream)))
                        }
                        Some(Ok(chunk)) => Err(FetchError(format!(
                            "the RM's staging store sent sha256 {} when {sha256} was asked for",
                            chunk.sha256
                        ))),
                    }
                }
            });
            Ok(chunks.boxed())
        })
    }
}

fn idle() -> FetchError {
    FetchError(format!(
        "the RM's staging store sent nothing for {FETCH_IDLE_TIMEOUT:?}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rm_addresses_are_checked() {
        assert!(channel("127.0.0.1:8032").is_ok());
        assert!(channel("http://rm.example:8032").is_ok());
        for bad in ["", "not a url\n:x"] {
            let err = channel(bad).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("rm {bad:?} is not a usable RM address")),
                "{err}"
            );
        }
    }
}
