//! How a client-mode AM hears from the driver, which lives in the submitting process: it holds
//! one `Driver.Session` open without ever registering, as Spark's ExecutorLauncher holds an RPC
//! connection to the driver. Over it come the driver's executor target (Spark's
//! `RequestExecutors`) and the driver's end (Spark's `onDisconnected`).
//!
//! Why this signal: it is the driver's own word. A driver that shuts down in order sends
//! `Shutdown` on sessions that never registered, then ends them (`Stopped`); a driver whose
//! process dies sends no such message, whether its connection fails or its stream happens to
//! end (`Lost`), and HTTP/2 keep-alive pings notice a host that vanished without closing
//! anything. The other candidate, executors' containers completing, is indirect: executors
//! also exit when they fail, and the allocator replaces them, so "no executors left" never
//! clearly means "no driver".

use std::time::Duration;

use spindle_protocol::driver_client::DriverClient;
use spindle_protocol::{DriverMessage, ExecutorMessage, driver_message};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Streaming;
use tracing::{debug, warn};

use crate::endpoint;

/// Attempts to open the watch before giving up on a driver that should already be listening
/// (in client mode the driver is up before the application is even submitted).
const OPEN_ATTEMPTS: u32 = 8;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot reach the driver at {url} after {attempts} attempt(s): {reason}")]
pub struct WatchError {
    pub url: String,
    pub attempts: u32,
    pub reason: String,
}

/// What the driver said or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverEvent {
    /// It wants this many executors in all (its `request_total_executors`).
    ExecutorTarget(u32),
    /// It went away; nothing follows.
    Ended(DriverEnd),
}

/// How the driver went away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverEnd {
    /// It said Shutdown: the application's driver has finished and stopped its endpoint.
    Stopped,
    /// Its connection failed: the driver's process died or its host became unreachable.
    Lost(String),
}

/// An open, unregistered session with the driver.
pub struct DriverWatch {
    url: String,
    /// Held so the session's request stream stays open: closing it would end the session.
    _outbox: mpsc::UnboundedSender<ExecutorMessage>,
    inbound: Streaming<DriverMessage>,
}

impl DriverWatch {
    /// Opens the watch, retrying briefly with back-off.
    pub async fn open(driver_url: &str) -> Result<DriverWatch, WatchError> {
        DriverWatch::open_within(driver_url, OPEN_ATTEMPTS).await
    }

    async fn open_within(driver_url: &str, attempts: u32) -> Result<DriverWatch, WatchError> {
        let failed = |attempts: u32, reason: String| WatchError {
            url: driver_url.to_string(),
            attempts,
            reason,
        };
        let channel = endpoint::lazy_channel(driver_url).map_err(|e| failed(0, e.to_string()))?;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let (outbox, outbound) = mpsc::unbounded_channel();
            let call = DriverClient::new(channel.clone())
                .session(UnboundedReceiverStream::new(outbound))
                .await;
            match call {
                Ok(response) => {
                    return Ok(DriverWatch {
                        url: driver_url.to_string(),
                        _outbox: outbox,
                        inbound: response.into_inner(),
                    });
                }
                Err(status) if attempt >= attempts => {
                    return Err(failed(attempt, status.to_string()));
                }
                Err(status) => {
                    debug!(attempt, %status, ?backoff, "driver not reachable yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
            }
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Waits for the driver's next word: a new executor target, or its end (after which
    /// the watch must not be asked again). Cancel-safe: dropping the future loses nothing.
    pub async fn next_event(&mut self) -> DriverEvent {
        loop {
            let message = match self.inbound.message().await {
                Ok(Some(DriverMessage { message })) => message,
                Ok(None) => {
                    return DriverEvent::Ended(DriverEnd::Lost(
                        "its session ended without Shutdown (it did not stop in order)".into(),
                    ));
                }
                Err(status) => return DriverEvent::Ended(DriverEnd::Lost(status.to_string())),
            };
            match message {
                Some(driver_message::Message::Shutdown(_)) => {
                    return DriverEvent::Ended(DriverEnd::Stopped);
                }
                Some(driver_message::Message::ExecutorTarget(target)) => {
                    return DriverEvent::ExecutorTarget(target.total);
                }
                other => warn!(message = ?other, "ignored a message from the driver"),
            }
        }
    }

    /// Waits until the driver goes away, passing over its executor targets.
    pub async fn ended(&mut self) -> DriverEnd {
        loop {
            if let DriverEvent::Ended(end) = self.next_event().await {
                return end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use super::*;
    use crate::sdk::{DriverConfig, DriverEndpoint, TaskRegistry};

    const HANG_GUARD: Duration = Duration::from_secs(60);

    async fn guarded<F: Future>(what: &str, future: F) -> F::Output {
        tokio::time::timeout(HANG_GUARD, future)
            .await
            .unwrap_or_else(|_| panic!("hang guard: {what} did not finish"))
    }

    #[tokio::test]
    async fn a_driver_that_shuts_down_in_order_is_stopped_and_the_watch_is_no_executor() {
        let endpoint = DriverEndpoint::start(DriverConfig::default(), TaskRegistry::default())
            .await
            .unwrap();
        let mut watch = guarded("open", DriverWatch::open(endpoint.url()))
            .await
            .unwrap();
        assert_eq!(watch.url(), endpoint.url());
        let executors = endpoint.executors();
        let shutdown = tokio::spawn(endpoint.shutdown());
        assert_eq!(guarded("end", watch.ended()).await, DriverEnd::Stopped);
        guarded("shutdown", shutdown).await.unwrap();
        assert!(executors.borrow().is_empty(), "a watch never registers");
    }

    #[tokio::test]
    async fn the_watch_hears_the_drivers_executor_target_then_its_end() {
        let endpoint = DriverEndpoint::start(DriverConfig::default(), TaskRegistry::default())
            .await
            .unwrap();
        let context = endpoint.context();
        // Requested before the watch opens: sent when it starts.
        context.request_total_executors(3);
        let mut watch = guarded("open", DriverWatch::open(endpoint.url()))
            .await
            .unwrap();
        assert_eq!(
            guarded("first target", watch.next_event()).await,
            DriverEvent::ExecutorTarget(3)
        );
        // The same total again is no change; the next word is the new total.
        context.request_total_executors(3);
        context.request_total_executors(5);
        assert_eq!(
            guarded("changed target", watch.next_event()).await,
            DriverEvent::ExecutorTarget(5)
        );
        let shutdown = tokio::spawn(endpoint.shutdown());
        assert_eq!(
            guarded("end", watch.next_event()).await,
            DriverEvent::Ended(DriverEnd::Stopped)
        );
        guarded("shutdown", shutdown).await.unwrap();
    }

    #[test]
    fn a_driver_whose_process_dies_is_lost() {
        // The driver gets its own runtime; dropping that runtime drops its server without an
        // orderly stop, as the end of its process would.
        let driver_runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let endpoint = driver_runtime
            .block_on(DriverEndpoint::start(
                DriverConfig::default(),
                TaskRegistry::default(),
            ))
            .unwrap();
        let url = endpoint.url().to_string();
        let am_runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut watch = am_runtime
            .block_on(guarded("open", DriverWatch::open(&url)))
            .unwrap();
        drop(endpoint);
        driver_runtime.shutdown_background();
        let end = am_runtime.block_on(guarded("end", watch.ended()));
        assert!(matches!(end, DriverEnd::Lost(_)), "{end:?}");
    }

    #[tokio::test]
    async fn a_driver_that_is_not_there_is_named() {
        // Bind then free a port, so nothing listens on it.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{port}");
        let err = guarded("open", DriverWatch::open_within(&url, 2))
            .await
            .err()
            .expect("nothing listens there");
        assert_eq!(err.attempts, 2);
        assert!(
            err.to_string().starts_with(&format!(
                "cannot reach the driver at {url} after 2 attempt(s)"
            )),
            "{err}"
        );
    }
}
