//! The web port's refusals, answered as YARN's REST API answers them: an HTTP status and a
//! `RemoteException` naming the exception, the message and its Java class, so that YARN clients
//! report them as they would a YARN RM's. Core refusals map here once, by their class.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tonic::Status;

use crate::core::{CoreError, ErrorClass};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebError {
    /// An unknown application, attempt, node or path.
    NotFound(String),
    /// A malformed id, query parameter or body, or one the core refused.
    BadRequest(String),
    /// No secret, the wrong secret, or no user for a call that changes something.
    Unauthorized(String),
    /// A user the ACLs do not let do what was asked.
    Forbidden(String),
    UnsupportedMediaType(String),
    /// The RM is stopping.
    Unavailable(String),
}

impl WebError {
    pub fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound(_) => StatusCode::NOT_FOUND,
            WebError::BadRequest(_) => StatusCode::BAD_REQUEST,
            WebError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            WebError::Forbidden(_) => StatusCode::FORBIDDEN,
            WebError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            WebError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            WebError::NotFound(m)
            | WebError::BadRequest(m)
            | WebError::Unauthorized(m)
            | WebError::Forbidden(m)
            | WebError::UnsupportedMediaType(m)
            | WebError::Unavailable(m) => m,
        }
    }

    /// YARN's exception name and Java class for this refusal.
    fn exception(&self) -> (&'static str, &'static str) {
        match self {
            WebError::NotFound(_) => (
                "NotFoundException",
                "org.apache.hadoop.yarn.webapp.NotFoundException",
            ),
            WebError::BadRequest(_) => (
                "BadRequestException",
                "org.apache.hadoop.yarn.webapp.BadRequestException",
            ),
            WebError::Unauthorized(_) => (
                "AuthorizationException",
                "org.apache.hadoop.security.authorize.AuthorizationException",
            ),
            WebError::Forbidden(_) => (
                "ForbiddenException",
                "org.apache.hadoop.yarn.webapp.ForbiddenException",
            ),
            WebError::UnsupportedMediaType(_) | WebError::Unavailable(_) => (
                "WebApplicationException",
                "javax.ws.rs.WebApplicationException",
            ),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (exception, java_class_name) = self.exception();
        let body = serde_json::json!({
            "RemoteException": {
                "exception": exception,
                "message": self.message(),
                "javaClassName": java_class_name,
            }
        });
        let mut response = (self.status(), Json(body)).into_response();
        if matches!(self, WebError::Unauthorized(_)) {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"spindle\""),
            );
        }
        response
    }
}

impl From<CoreError> for WebError {
    fn from(err: CoreError) -> Self {
        let message = err.to_string();
        match err.class() {
            ErrorClass::NotFound => WebError::NotFound(message),
            // YARN's REST API answers a refused submission (a duplicate, say) with 400, too.
            ErrorClass::InvalidArgument | ErrorClass::FailedPrecondition => {
                WebError::BadRequest(message)
            }
        }
    }
}

impl From<crate::server::acl::Denied> for WebError {
    fn from(denied: crate::server::acl::Denied) -> Self {
        WebError::Forbidden(denied.to_string())
    }
}

/// The core task hands back a `Status` only when it is gone: the RM is stopping.
impl From<Status> for WebError {
    fn from(status: Status) -> Self {
        WebError::Unavailable(status.message().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_refusals_keep_their_message_and_find_their_status() {
        let app: spindle_containers::ApplicationId = "application_1_0001".parse().unwrap();
        let unknown = WebError::from(CoreError::UnknownApplication(app));
        assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
        assert!(unknown.message().contains("application_1_0001"));
        let twice = WebError::from(CoreError::AlreadySubmitted(app));
        assert_eq!(twice.status(), StatusCode::BAD_REQUEST);
    }
}
