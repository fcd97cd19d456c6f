//! Following an application to its end through `WatchApplication` (the RM pushes a report on
//! every change; nothing here polls). A watch cut by a lost connection is picked up again with
//! back-off for a while, so an RM restart does not lose the user's view of their app.

use std::time::Duration;

use spindle_containers::ApplicationId;
use spindle_protocol::{ApplicationReport, ApplicationState};

use crate::error::ClientError;
use crate::rm_client::RmClient;

/// How long to keep trying to get a lost watch back before giving up.
const RECONNECT_FOR: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// FINISHED, FAILED and KILLED: the states an application never leaves.
pub fn is_final(state: ApplicationState) -> bool {
    matches!(
        state,
        ApplicationState::Finished | ApplicationState::Failed | ApplicationState::Killed
    )
}

/// Calls `on_report` with every report the RM sends about `id` and returns the final one.
/// A watch that is cut (connection lost, RM restarting) is opened again, with back-off, for up
/// to a minute without news.
pub async fn follow(
    rm: &mut RmClient,
    id: ApplicationId,
    mut on_report: impl FnMut(&ApplicationReport),
) -> Result<ApplicationReport, ClientError> {
    let mut backoff = FIRST_BACKOFF;
    let mut quiet_since = tokio::time::Instant::now();
    loop {
        let mut received = false;
        let outcome = watch_once(rm, id, &mut |report: &ApplicationReport| {
            received = true;
            on_report(report);
        })
        .await;
        let reason = match outcome {
            Ok(Some(last)) => return Ok(last),
            Ok(None) => format!("the watch of {id} ended before a final state"),
            Err(ClientError::Unreachable { reason, .. }) => reason,
            Err(other) => return Err(other),
        };
        if received {
            backoff = FIRST_BACKOFF;
            quiet_since = tokio::time::Instant::now();
        }
        if quiet_since.elapsed() >= RECONNECT_FOR {
            return Err(ClientError::Unreachable {
                addr: rm.addr().to_string(),
                reason: format!("gave up following {id} after {RECONNECT_FOR:?}: {reason}"),
            });
        }
        tracing::warn!(app = %id, addr = %rm.addr(), %reason, "lost the watch; opening it again");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        match rm.reconnect().await {
            Ok(client) => *rm = client,
            // Still away: the next round waits longer, until the minute is up.
            Err(ClientError::Unreachable { .. }) => {}
            Err(other) => return Err(other),
        }
    }
}

/// One watch stream: `Some(final report)`, or `None` if it ended before the final state.
async fn watch_once(
    rm: &mut RmClient,
    id: ApplicationId,
    on_report: &mut impl FnMut(&ApplicationReport),
) -> Result<Option<ApplicationReport>, ClientError> {
    let mut stream = rm.watch_application(id).await?;
    loop {
        match stream.message().await {
            Ok(Some(report)) => {
                on_report(&report);
                if is_final(report.state()) {
                    return Ok(Some(report));
                }
            }
            Ok(None) => return Ok(None),
            Err(status) => {
                return Err(ClientError::from_status(
                    "WatchApplication",
                    rm.addr(),
                    transport_as_unavailable(status),
                ));
            }
        }
    }
}

/// A stream cut by the transport surfaces as `Unknown`/`Cancelled` with an I/O source; for
/// the caller that is the RM being unreachable.
fn transport_as_unavailable(status: tonic::Status) -> tonic::Status {
    match status.code() {
        tonic::Code::Unknown | tonic::Code::Cancelled | tonic::Code::Internal
            if status.message().contains("transport")
                || status.message().contains("connection")
                || status.message().contains("h2 protocol error")
                || status.message().contains("broken pipe") =>
        {
            tonic::Status::unavailable(status.message().to_string())
        }
        _ => status,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_states() {
        assert!(is_final(ApplicationState::Finished));
        assert!(is_final(ApplicationState::Failed));
        assert!(is_final(ApplicationState::Killed));
        assert!(!is_final(ApplicationState::Running));
        assert!(!is_final(ApplicationState::Accepted));
        assert!(!is_final(ApplicationState::Unspecified));
    }

    #[test]
    fn cut_streams_count_as_unreachable() {
        let cut = tonic::Status::unknown("transport error");
        assert_eq!(
            transport_as_unavailable(cut).code(),
            tonic::Code::Unavailable
        );
        let refused = tonic::Status::not_found("unknown application");
        assert_eq!(
            transport_as_unavailable(refused).code(),
            tonic::Code::NotFound
        );
    }
}
