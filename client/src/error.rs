//! The client's one error type: everything that can go wrong between a user's request and the
//! cluster, each message naming the address, id, file or value at fault so the user can act on it.

use std::path::PathBuf;

use spindle_containers::Resource;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid {what} address {value:?}: expected HOST:PORT, e.g. 127.0.0.1:8032")]
    BadAddress { what: &'static str, value: String },
    #[error(
        "invalid master URL {0:?}: expected spindle://HOST:PORT, local-cluster[NODES,VCORES,MEMORY_MB], \
         local, local[N], local[*] or local[N,MAX_TASK_FAILURES]"
    )]
    BadMaster(String),
    #[error("cannot reach the resource manager at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("cannot reach the node manager at {addr}: {reason}")]
    NodeUnreachable { addr: String, reason: String },
    /// The server would not believe or allow the caller (Unauthenticated, PermissionDenied);
    /// its message says what to set or who may.
    #[error("{server} refused {call}: {message}")]
    Refused {
        call: &'static str,
        /// `the resource manager at HOST:PORT`, `node HOST:PORT`.
        server: String,
        code: tonic::Code,
        message: String,
    },
    #[error("cannot use the client secret named by {from}: {source}")]
    Secret {
        from: &'static str,
        #[source]
        source: spindle_security::SecretError,
    },
    #[error("{0}")]
    User(String),
    /// The server answered, and said no; its message names what was wrong.
    #[error("{call} failed: {message} ({code:?})")]
    Rpc {
        call: &'static str,
        code: tonic::Code,
        message: String,
    },
    #[error("program {program:?} not found: {reason}")]
    ProgramNotFound { program: String, reason: String },
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("two files would both be named {0:?} in the container directory; rename one")]
    DuplicateName(String),
    #[error(
        "AM resource memory_mb={} exceeds the maximum allocation of {} MB",
        asked.memory_mb, maximum.memory_mb
    )]
    AmMemoryAboveMaximum { asked: Resource, maximum: Resource },
    #[error(
        "AM resource vcores={} exceeds the maximum allocation of {} vcores",
        asked.vcores, maximum.vcores
    )]
    AmVcoresAboveMaximum { asked: Resource, maximum: Resource },
    #[error("container {container} does not belong to application {application}")]
    ForeignContainer {
        container: String,
        application: String,
    },
    /// The RM answered with something that is not what the protocol promises.
    #[error("the resource manager sent a malformed {what}: {detail}")]
    Protocol { what: &'static str, detail: String },
}

impl ClientError {
    /// Maps a failed call to the RM: a server that is gone is "cannot reach", anything else is
    /// the server's own answer.
    pub(crate) fn from_status(call: &'static str, addr: &str, status: tonic::Status) -> Self {
        match status.code() {
            tonic::Code::Unavailable => ClientError::Unreachable {
                addr: addr.to_string(),
                reason: status_reason(&status),
            },
            // tonic reports its own client-side deadline as Cancelled("Timeout expired").
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
                if status.message().contains("Timeout expired")
                    || status.code() == tonic::Code::DeadlineExceeded =>
            {
                ClientError::Unreachable {
                    addr: addr.to_string(),
                    reason: format!("no answer to {call} in time: {}", status.message()),
                }
            }
            code if is_refusal(code) => ClientError::Refused {
                call,
                server: format!("the resource manager at {addr}"),
                code,
                message: one_line(status.message()),
            },
            code => ClientError::Rpc {
                call,
                code,
                message: status.message().to_string(),
            },
        }
    }

    /// Whether the server refused the caller (rather than the request).
    pub fn is_refusal(&self) -> bool {
        matches!(self, ClientError::Refused { .. })
    }
}

/// Unauthenticated or PermissionDenied: the caller was not believed, or may not do this.
pub(crate) fn is_refusal(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
    )
}

/// A server's message on one line, so a refusal reads as one line of error.
pub(crate) fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The status's message and, for transport failures, the cause beneath it.
pub(crate) fn status_reason(status: &tonic::Status) -> String {
    use std::error::Error as _;
    match status.source() {
        Some(cause) => {
            let cause = chain(cause);
            if cause.contains(status.message()) {
                cause
            } else {
                format!("{}: {cause}", status.message())
            }
        }
        None => status.message().to_string(),
    }
}

/// `a: b: c` from an error and its sources, since transport errors hide the useful part
/// ("connection refused") a few levels down.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_server_reads_as_unreachable() {
        let err = ClientError::from_status(
            "ListNodes",
            "rm:1",
            tonic::Status::cancelled("Timeout expired"),
        );
        assert_eq!(
            err.to_string(),
            "cannot reach the resource manager at rm:1: no answer to ListNodes in time: Timeout expired"
        );
        let refused = ClientError::from_status(
            "GetApplicationReport",
            "rm:1",
            tonic::Status::not_found("application application_1_0009 is not known"),
        );
        assert!(matches!(refused, ClientError::Rpc { .. }), "{refused}");
    }

    #[test]
    fn a_refusal_is_one_line_naming_the_server_and_the_call() {
        let err = ClientError::from_status(
            "KillApplication",
            "rm:1",
            tonic::Status::permission_denied("user mallory may not kill\napplication_1_0001"),
        );
        assert!(err.is_refusal());
        assert_eq!(
            err.to_string(),
            "the resource manager at rm:1 refused KillApplication: user mallory may not kill \
             application_1_0001"
        );
        let err = ClientError::from_status(
            "ListNodes",
            "rm:1",
            tonic::Status::unauthenticated("this call needs proof of the cluster's client secret"),
        );
        assert!(err.is_refusal(), "{err}");
    }
}
