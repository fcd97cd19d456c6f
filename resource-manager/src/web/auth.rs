//! Who may call the web port. A call that changes something (an application id handed out, a
//! submission, a kill) must present the client secret as `Authorization: Bearer <secret>` and
//! name the user it acts for with the `user.name` query parameter, as YARN's simple
//! authentication names it; reads are anonymous unless `anonymous-reads` is off. What the named
//! user may then do is the ACLs' to say (`server::acl`), as on the gRPC port.
//!
//! The secret is the RM's client secret (`server::secrets`); a presented one is compared by
//! digest in constant time (`Secret::matches`), so neither its bytes nor its length leak
//! through timing.

use std::collections::HashMap;

use axum::extract::{Query, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use spindle_security::{AuthError, validate_user};

use super::WebState;
use super::error::WebError;

/// The user a changing call acts for, as `user.name` named it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: String,
}

/// Lets reads through (when anonymous reads are allowed) and checks everything else: the
/// bearer secret, and for calls that change something, the user. A passed changing call
/// carries its `Caller` to the handler.
pub async fn guard(State(web): State<WebState>, mut request: Request, next: Next) -> Response {
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    if !changes && web.anonymous_reads {
        return next.run(request).await;
    }
    if let Err(refused) = check_bearer(&web, &request) {
        return refused.into_response();
    }
    if changes {
        match caller(&request) {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
            }
            Err(refused) => return refused.into_response(),
        }
    }
    next.run(request).await
}

fn check_bearer(web: &WebState, request: &Request) -> Result<(), WebError> {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(secret) if web.secret.matches(secret) => Ok(()),
        Some(_) => Err(WebError::Unauthorized(
            "the bearer secret in the Authorization header is not this resource manager's \
             client secret"
                .into(),
        )),
        None => Err(WebError::Unauthorized(
            "this call needs the header 'Authorization: Bearer <client secret>' (the \
             resource manager's client.secret)"
                .into(),
        )),
    }
}

fn caller(request: &Request) -> Result<Caller, WebError> {
    let query: HashMap<String, String> = Query::try_from_uri(request.uri())
        .map(|Query(q)| q)
        .unwrap_or_default();
    let Some(user) = query.get("user.name").filter(|u| !u.is_empty()) else {
        return Err(WebError::Unauthorized(
            "this call changes the cluster: name the user it acts for with the user.name query \
             parameter (?user.name=<user>)"
                .into(),
        ));
    };
    if let Err(e) = validate_user(user) {
        let problem = match e {
            AuthError::BadUser(problem) => problem,
            other => other.to_string(),
        };
        return Err(WebError::BadRequest(format!("user.name: {problem}")));
    }
    Ok(Caller { user: user.clone() })
}
