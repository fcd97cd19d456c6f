//! The one place where a core refusal becomes a gRPC status.

use tonic::Status;

use crate::core::{CoreError, ErrorClass};

pub fn to_status(err: CoreError) -> Status {
    let message = err.to_string();
    match err.class() {
        ErrorClass::InvalidArgument => Status::invalid_argument(message),
        ErrorClass::NotFound => Status::not_found(message),
        ErrorClass::FailedPrecondition => Status::failed_precondition(message),
    }
}

impl From<CoreError> for Status {
    fn from(err: CoreError) -> Status {
        to_status(err)
    }
}

pub fn shutting_down() -> Status {
    Status::unavailable("the resource manager is shutting down")
}
