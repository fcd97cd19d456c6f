//! `CoreError`: every way an event from outside can be refused by the core. Each message names
//! the field and value that was wrong and what was allowed; the gRPC edge maps each variant to
//! one status code (see `server::status`). A refused event changes nothing.

use spindle_containers::{
    ApplicationId, AttemptId, ContainerId, IdError, LaunchContextError, NodeId, ResourceError,
};

use super::app::AttemptState;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CoreError {
    #[error("{field}: {error}")]
    MalformedId { field: String, error: IdError },
    #[error(transparent)]
    BadResource(#[from] ResourceError),
    #[error("{field}: {error}")]
    BadLaunchContext {
        field: String,
        error: LaunchContextError,
    },
    #[error("{field} is missing")]
    Missing { field: String },
    #[error("{field}={value} is not allowed: expected {allowed}")]
    NotAllowed {
        field: String,
        value: String,
        allowed: &'static str,
    },
    #[error("{field}.memory_mb={value} must be at least 1")]
    MemoryNotPositive { field: String, value: i64 },
    #[error("{field}.vcores={value} must be at least 1")]
    VcoresNotPositive { field: String, value: i32 },
    #[error("{what} memory_mb={value} exceeds the maximum allocation of {maximum} MB")]
    MemoryAboveMaximum {
        what: String,
        value: i64,
        maximum: u64,
    },
    #[error("{what} vcores={value} exceeds the maximum allocation of {maximum} vcores")]
    VcoresAboveMaximum {
        what: String,
        value: i32,
        maximum: u32,
    },
    #[error("{field}={value} must not be negative")]
    Negative { field: String, value: i64 },
    #[error("max_attempts={value} exceeds the limit of {limit} attempts per application")]
    TooManyAttempts { value: i32, limit: u32 },
    #[error(
        "final_status={value} is not allowed: expected SUCCEEDED (1), FAILED (2) or KILLED (3)"
    )]
    BadFinalStatus { value: i32 },
    // The messages below name the request field that holds the id: every RPC calls an
    // application's id `application_id`, an attempt's `attempt_id` and a node's `node_id`.
    #[error(
        "application_id={0} was not handed out by GetNewApplication of this resource manager; \
         ask for a new application id first"
    )]
    NotIssued(ApplicationId),
    #[error("application_id={0} was already submitted")]
    AlreadySubmitted(ApplicationId),
    #[error("application_id={0} is not known to this resource manager")]
    UnknownApplication(ApplicationId),
    #[error("attempt_id={0} is not known to this resource manager")]
    UnknownAttempt(AttemptId),
    #[error(
        "attempt_id={attempt} has not registered (it is {state}): call \
         RegisterApplicationMaster first"
    )]
    NotRegistered {
        attempt: AttemptId,
        state: AttemptState,
    },
    #[error("attempt_id={0} has no AM container running yet")]
    NotLaunched(AttemptId),
    #[error("attempt_id={attempt} is already over ({state}); it cannot {action}")]
    AttemptOver {
        attempt: AttemptId,
        state: AttemptState,
        action: &'static str,
    },
    #[error("{field}={container} does not belong to application attempt {attempt}")]
    ForeignContainer {
        field: String,
        container: ContainerId,
        attempt: AttemptId,
    },
    #[error("{field}={container} is the application master's own container; it cannot be released")]
    ReleaseOwnContainer {
        field: String,
        container: ContainerId,
    },
    #[error("node_id={0} is not registered with this resource manager")]
    UnknownNode(NodeId),
}

/// How the gRPC edge should answer a refusal; kept beside the enum so that a new variant cannot
/// be added without choosing its class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    InvalidArgument,
    NotFound,
    FailedPrecondition,
}

impl CoreError {
    pub fn class(&self) -> ErrorClass {
        use CoreError::*;
        match self {
            MalformedId { .. }
            | BadResource(_)
            | BadLaunchContext { .. }
            | Missing { .. }
            | NotAllowed { .. }
            | MemoryNotPositive { .. }
            | VcoresNotPositive { .. }
            | MemoryAboveMaximum { .. }
            | VcoresAboveMaximum { .. }
            | Negative { .. }
            | TooManyAttempts { .. }
            | BadFinalStatus { .. }
            | NotIssued(_)
            | ForeignContainer { .. }
            | ReleaseOwnContainer { .. } => ErrorClass::InvalidArgument,
            UnknownApplication(_) | UnknownAttempt(_) | UnknownNode(_) => ErrorClass::NotFound,
            AlreadySubmitted(_) | NotLaunched(_) | NotRegistered { .. } | AttemptOver { .. } => {
                ErrorClass::FailedPrecondition
            }
        }
    }
}
