//! The one place where a core refusal becomes a gRPC status, and where values from the wire are
//! cut down before a refusal echoes them: a status message travels in an HTTP/2 header, so a
//! client that sent a megabyte of junk gets its field named and a glimpse of the value, not an
//! HTTP/2 protocol error in place of the answer.

use tonic::Status;

use crate::core::{CoreError, ErrorClass};

/// How much of a value from the wire a refusal quotes.
const ECHO_CHARS: usize = 64;
/// The longest refusal message, in bytes: well under HTTP/2's header limits even once
/// percent-encoded.
const MESSAGE_BYTES: usize = 1024;

/// `value` as a refusal may quote it: whole if short, else its start and its length.
pub fn shorten(value: &str) -> String {
    match value.char_indices().nth(ECHO_CHARS) {
        None => value.to_string(),
        Some((cut, _)) => format!("{}… ({} bytes in all)", &value[..cut], value.len()),
    }
}

/// A refusal with `message`, cut to `MESSAGE_BYTES` should it still be longer.
fn bounded(message: String) -> String {
    if message.len() <= MESSAGE_BYTES {
        return message;
    }
    let mut cut = MESSAGE_BYTES;
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}… (message cut)", &message[..cut])
}

pub fn to_status(err: CoreError) -> Status {
    let message = bounded(err.to_string());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_quoted_whole_and_long_ones_cut_on_a_char_boundary() {
        assert_eq!(shorten("application_x"), "application_x");
        let long = "é".repeat(100);
        let cut = shorten(&long);
        assert!(cut.starts_with(&"é".repeat(ECHO_CHARS)), "{cut}");
        assert!(cut.ends_with("… (200 bytes in all)"), "{cut}");
    }

    #[test]
    fn long_messages_are_bounded() {
        let status = to_status(CoreError::Missing {
            field: "ü".repeat(5000),
        });
        assert!(status.message().len() <= MESSAGE_BYTES + 20);
        assert!(status.message().ends_with("… (message cut)"));
    }
}
