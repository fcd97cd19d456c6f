//! The changing side of YARN's REST API: `POST /ws/v1/cluster/apps/new-application`,
//! `POST /ws/v1/cluster/apps` (a submission in YARN's JSON shape) and
//! `PUT /ws/v1/cluster/apps/{appid}/state` (kill). Each becomes the same core command the gRPC
//! ApplicationClient sends: the submission is turned into the wire request and checked by the
//! same `convert::submission`, so there is no second way into the state.
//!
//! Where YARN's shape does not fit Spindle: a local resource's `resource` is the file's sha256
//! in the RM's staging store (not a URL), with Spindle's `executable` flag; `commands.command`
//! is a shell command line as in YARN (run with `bash -c`, with YARN's `<LOG_DIR>`, `<CPS>` and
//! `{{VAR}}` expanded), or a JSON array taken as the argv exactly.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use spindle_protocol as proto;
use tracing::Instrument;

use super::WebState;
use super::auth::Caller;
use super::error::WebError;
use super::rest::application_id;
use crate::core::CoreError;
use crate::server::convert;
use crate::server::handle::Command;

pub async fn new_application(
    State(web): State<WebState>,
) -> Result<Json<serde_json::Value>, WebError> {
    let id = web.core.request(Command::NewApplication).await??;
    Ok(Json(json!({
        "application-id": id.to_string(),
        "maximum-resource-capability": {
            "memory": web.maximum.memory_mb,
            "vCores": web.maximum.vcores,
        },
    })))
}

pub async fn submit(
    State(web): State<WebState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    require_json(&headers)?;
    let context: SubmissionContext = parse_body(&body)?;
    let request = context.into_request(caller.user.clone())?;
    let app = request.application_id.clone();
    let mut submission = convert::submission(request, web.minimum)?;
    submission.user =
        web.acl
            .submission_owner(&caller.user, "", &submission.queue, submission.id)?;
    web.core
        .request(|reply| Command::Submit(submission, reply))
        .instrument(tracing::info_span!("rest_submit", %app))
        .await??;
    tracing::info!(%app, "application submitted through the REST API");
    let location = match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => format!("http://{host}/ws/v1/cluster/apps/{app}"),
        None => format!("/ws/v1/cluster/apps/{app}"),
    };
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)]).into_response())
}

/// YARN's `appstate` body.
#[derive(Debug, Deserialize)]
struct TargetState {
    state: String,
    #[serde(default)]
    diagnostics: String,
}

/// Kills the application; answers 200 with its state once it is final (at once: the core ends
/// a killed application in the same step), 202 while it is not. Killing an application that
/// already ended changes nothing and answers its state, as YARN does.
pub async fn kill(
    State(web): State<WebState>,
    Extension(caller): Extension<Caller>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, WebError> {
    let id = application_id(&app)?;
    require_json(&headers)?;
    let target: TargetState = parse_body(&body)?;
    if !target.state.eq_ignore_ascii_case("KILLED") {
        return Err(WebError::BadRequest(format!(
            "state={:?} is not allowed: only 'KILLED' is allowed as a target state",
            target.state
        )));
    }
    let owner = web
        .core
        .read(move |core, _| core.app(id).map(|a| a.user.clone()))
        .await?
        .ok_or(CoreError::UnknownApplication(id))?;
    web.acl
        .check_owner(&caller.user, "kill", id, Some(&owner))?;
    let diagnostics = if target.diagnostics.is_empty() {
        format!("by {} through the REST API", caller.user)
    } else {
        format!(
            "by {} through the REST API: {}",
            caller.user, target.diagnostics
        )
    };
    web.core
        .request(|reply| Command::Kill(id, diagnostics, reply))
        .instrument(tracing::info_span!("rest_kill", app = %id, user = %caller.user))
        .await??;
    let state = web
        .core
        .read(move |core, _| {
            core.app(id)
                .map(|a| (a.state.to_string(), a.state.is_final()))
        })
        .await?
        .ok_or(CoreError::UnknownApplication(id))?;
    let (state, done) = state;
    let code = if done {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((code, Json(json!({ "state": state }))).into_response())
}

/// YARN answers a body it cannot read as JSON with 415; a missing content type is taken as
/// JSON, for `curl -d` users.
fn require_json(headers: &HeaderMap) -> Result<(), WebError> {
    let Some(kind) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let kind = kind.to_str().unwrap_or_default();
    let essence = kind.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else {
        Err(WebError::UnsupportedMediaType(format!(
            "Content-Type {kind:?} is not supported: send application/json"
        )))
    }
}

fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, WebError> {
    serde_json::from_slice(body).map_err(|e| {
        WebError::BadRequest(format!("the request body is not what was expected: {e}"))
    })
}

/// One item or a list of them: Jersey's JSON writes a one-element list as the element alone,
/// so YARN clients send both.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

/// YARN's examples write numbers as strings as often as not.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Number {
    Int(i64),
    Text(String),
}

impl Number {
    fn value(&self, field: &str) -> Result<i64, WebError> {
        match self {
            Number::Int(n) => Ok(*n),
            Number::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| WebError::BadRequest(format!("{field}={s:?} is not a whole number"))),
        }
    }
}

#[derive(Debug, Deserialize)]
struct Entry<V> {
    key: String,
    value: V,
}

#[derive(Debug, Deserialize)]
struct Entries<V> {
    entry: Option<OneOrMany<Entry<V>>>,
}

#[derive(Debug, Deserialize)]
struct LocalResourceInfo {
    /// The file's sha256 in the staging store.
    resource: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    size: Option<Number>,
    #[serde(default)]
    executable: bool,
}

#[derive(Debug, Deserialize)]
struct Commands {
    command: Option<CommandLine>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CommandLine {
    Shell(String),
    Argv(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct ContainerSpec {
    #[serde(rename = "local-resources")]
    local_resources: Option<Entries<LocalResourceInfo>>,
    environment: Option<Entries<String>>,
    commands: Option<Commands>,
}

#[derive(Debug, Deserialize)]
struct ResourceInfo {
    memory: Option<Number>,
    #[serde(rename = "vCores")]
    vcores: Option<Number>,
}

#[derive(Debug, Deserialize)]
struct Tags {
    tag: Option<OneOrMany<String>>,
}

/// YARN's `ApplicationSubmissionContextInfo`, the fields Spindle reads (others are ignored).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct SubmissionContext {
    application_id: Option<String>,
    application_name: Option<String>,
    queue: Option<String>,
    application_type: Option<String>,
    application_tags: Option<Tags>,
    am_container_spec: Option<ContainerSpec>,
    resource: Option<ResourceInfo>,
    max_app_attempts: Option<Number>,
    #[serde(rename = "unmanaged-AM", default)]
    unmanaged_am: bool,
}

impl SubmissionContext {
    fn into_request(self, user: String) -> Result<proto::SubmitApplicationRequest, WebError> {
        let missing = |field: &str| WebError::BadRequest(format!("{field} is missing"));
        let application_id = self
            .application_id
            .filter(|id| !id.is_empty())
            .ok_or_else(|| missing("application-id"))?;
        let am_resource = match (self.resource, self.unmanaged_am) {
            (Some(r), _) => Some(proto::Resource {
                memory_mb: r
                    .memory
                    .ok_or_else(|| missing("resource.memory"))?
                    .value("resource.memory")?,
                vcores: match r.vcores {
                    Some(v) => i32::try_from(v.value("resource.vCores")?).map_err(|_| {
                        WebError::BadRequest("resource.vCores is out of range".into())
                    })?,
                    None => 1,
                },
            }),
            (None, true) => None,
            (None, false) => {
                return Err(missing(
                    "resource (the AM's {\"memory\": MB, \"vCores\": N})",
                ));
            }
        };
        let am_container = match self.am_container_spec {
            Some(spec) => Some(spec.into_launch_context()?),
            None if self.unmanaged_am => None,
            None => return Err(missing("am-container-spec")),
        };
        let max_attempts = match self.max_app_attempts {
            Some(n) => i32::try_from(n.value("max-app-attempts")?)
                .map_err(|_| WebError::BadRequest("max-app-attempts is out of range".into()))?,
            None => 0,
        };
        Ok(proto::SubmitApplicationRequest {
            application_id,
            name: self.application_name.unwrap_or_default(),
            queue: self.queue.unwrap_or_default(),
            application_type: self.application_type.unwrap_or_default(),
            tags: self
                .application_tags
                .and_then(|t| t.tag)
                .map(OneOrMany::into_vec)
                .unwrap_or_default(),
            am_resource,
            am_container,
            max_attempts,
            user,
            unmanaged: self.unmanaged_am,
        })
    }
}

impl ContainerSpec {
    fn into_launch_context(self) -> Result<proto::ContainerLaunchContext, WebError> {
        let command = match self.commands.and_then(|c| c.command) {
            Some(CommandLine::Shell(line)) if !line.trim().is_empty() => {
                vec!["bash".into(), "-c".into(), expand_yarn_markers(&line)]
            }
            Some(CommandLine::Argv(argv)) if !argv.is_empty() => argv,
            _ => {
                return Err(WebError::BadRequest(
                    "am-container-spec.commands.command is missing: give a command line or an \
                     argv array"
                        .into(),
                ));
            }
        };
        let environment: HashMap<String, String> = self
            .environment
            .and_then(|e| e.entry)
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect();
        let mut local_resources = Vec::new();
        let entries = self
            .local_resources
            .and_then(|l| l.entry)
            .map(OneOrMany::into_vec)
            .unwrap_or_default();
        for Entry { key, value } in entries {
            let field = format!("am-container-spec.local-resources[{key}]");
            if let Some(kind) = value.kind.as_deref()
                && !kind.eq_ignore_ascii_case("FILE")
            {
                return Err(WebError::BadRequest(format!(
                    "{field}.type={kind} is not supported: only FILE"
                )));
            }
            let size = value
                .size
                .ok_or_else(|| WebError::BadRequest(format!("{field}.size is missing")))?
                .value(&format!("{field}.size"))?;
            let size = u64::try_from(size).map_err(|_| {
                WebError::BadRequest(format!("{field}.size={size} must not be negative"))
            })?;
            local_resources.push(proto::LocalResource {
                name: key,
                sha256: value.resource,
                size,
                executable: value.executable,
            });
        }
        Ok(proto::ContainerLaunchContext {
            command,
            environment,
            local_resources,
        })
    }
}

/// YARN's markers in a command line, in the shell's words: `<LOG_DIR>` is the container's log
/// directory (`LOG_DIRS`), `<CPS>` the class-path separator, `{{VAR}}` a variable.
fn expand_yarn_markers(line: &str) -> String {
    let line = line
        .replace("<LOG_DIR>", "\"${LOG_DIRS}\"")
        .replace("<CPS>", ":");
    let mut expanded = String::with_capacity(line.len());
    let mut rest = line.as_str();
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        let name = &rest[start + 2..start + 2 + len];
        let is_name =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        expanded.push_str(&rest[..start]);
        if is_name {
            expanded.push_str(&format!("${{{name}}}"));
        } else {
            expanded.push_str(&rest[start..start + 4 + len]);
        }
        rest = &rest[start + 4 + len..];
    }
    expanded.push_str(rest);
    expanded
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn sorted(env: &HashMap<String, String>) -> BTreeMap<&str, &str> {
        env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
    }

    fn request(body: serde_json::Value) -> Result<proto::SubmitApplicationRequest, WebError> {
        let context: SubmissionContext = parse_body(body.to_string().as_bytes())?;
        context.into_request("alice".into())
    }

    const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn yarns_documented_submission_shape_becomes_the_wire_request() {
        let r = request(json!({
            "application-id": "application_1404203615263_0001",
            "application-name": "test",
            "queue": "default",
            "am-container-spec": {
                "local-resources": { "entry": [
                    { "key": "prog", "value": {
                        "resource": SHA, "type": "FILE", "visibility": "APPLICATION",
                        "size": "43004", "timestamp": "1405452071209", "executable": true } }
                ] },
                "commands": { "command": "{{JAVA_HOME}}/bin/java -Xmx10m 1><LOG_DIR>/AM.stdout" },
                "environment": { "entry": [
                    { "key": "DISTRIBUTEDSHELLSCRIPTLEN", "value": "6" },
                    { "key": "CLASSPATH", "value": "{{CLASSPATH}}<CPS>./*" }
                ] }
            },
            "unmanaged-AM": false,
            "max-app-attempts": 2,
            "resource": { "memory": 1024, "vCores": 1 },
            "application-type": "YARN",
            "application-tags": { "tag": "nightly" },
            "keep-containers-across-application-attempts": false
        }))
        .unwrap();
        assert_eq!(r.application_id, "application_1404203615263_0001");
        assert_eq!((r.name.as_str(), r.queue.as_str()), ("test", "default"));
        assert_eq!(r.user, "alice");
        assert_eq!(r.max_attempts, 2);
        assert_eq!(r.tags, ["nightly"]);
        assert_eq!(
            r.am_resource,
            Some(proto::Resource {
                memory_mb: 1024,
                vcores: 1
            })
        );
        let ctx = r.am_container.unwrap();
        assert_eq!(
            ctx.command,
            [
                "bash",
                "-c",
                "${JAVA_HOME}/bin/java -Xmx10m 1>\"${LOG_DIRS}\"/AM.stdout"
            ]
        );
        assert_eq!(
            sorted(&ctx.environment),
            BTreeMap::from([
                ("CLASSPATH", "{{CLASSPATH}}<CPS>./*"),
                ("DISTRIBUTEDSHELLSCRIPTLEN", "6")
            ])
        );
        assert_eq!(
            ctx.local_resources,
            [proto::LocalResource {
                name: "prog".into(),
                sha256: SHA.into(),
                size: 43004,
                executable: true
            }]
        );
    }

    #[test]
    fn an_argv_array_is_taken_exactly_and_one_entry_may_stand_alone() {
        let r = request(json!({
            "application-id": "application_1_0001",
            "resource": { "memory": "512", "vCores": "2" },
            "am-container-spec": {
                "commands": { "command": ["./prog", "a b", "$HOME"] },
                "environment": { "entry": { "key": "K", "value": "v" } }
            }
        }))
        .unwrap();
        let ctx = r.am_container.unwrap();
        assert_eq!(ctx.command, ["./prog", "a b", "$HOME"]);
        assert_eq!(sorted(&ctx.environment), BTreeMap::from([("K", "v")]));
        assert_eq!(r.am_resource.unwrap().vcores, 2);
    }

    #[test]
    fn what_is_missing_or_unsupported_is_named() {
        let base = || {
            json!({
                "application-id": "application_1_0001",
                "resource": { "memory": 512 },
                "am-container-spec": { "commands": { "command": "true" } }
            })
        };
        let refused = |change: &dyn Fn(&mut serde_json::Value)| {
            let mut body = base();
            change(&mut body);
            request(body).unwrap_err().message().to_string()
        };
        assert!(request(base()).is_ok());
        let m = refused(&|b| b["application-id"] = json!(null));
        assert!(m.contains("application-id is missing"), "{m}");
        let m = refused(&|b| b["resource"] = json!(null));
        assert!(m.contains("resource"), "{m}");
        let m = refused(&|b| b["resource"]["memory"] = json!("lots"));
        assert!(m.contains("resource.memory=\"lots\""), "{m}");
        let m = refused(&|b| b["am-container-spec"]["commands"] = json!({}));
        assert!(m.contains("commands.command is missing"), "{m}");
        let m = refused(&|b| {
            b["am-container-spec"]["local-resources"] = json!({"entry": [
                {"key": "lib.zip", "value": {"resource": SHA, "type": "ARCHIVE", "size": 1}}
            ]})
        });
        assert!(m.contains("local-resources[lib.zip].type=ARCHIVE"), "{m}");
        let m = refused(&|b| {
            b["am-container-spec"]["local-resources"] = json!({"entry": [
                {"key": "f", "value": {"resource": SHA}}
            ]})
        });
        assert!(m.contains("local-resources[f].size is missing"), "{m}");
        let m = refused(&|b| b["max-app-attempts"] = json!(1e12));
        assert!(m.contains("request body"), "{m}");
    }

    #[test]
    fn yarn_markers_expand_to_shell_words() {
        assert_eq!(
            expand_yarn_markers("{{A}} {{ not a name }} {{B_2}}x {{"),
            "${A} {{ not a name }} ${B_2}x {{"
        );
        assert_eq!(
            expand_yarn_markers("cat <LOG_DIR>/f"),
            "cat \"${LOG_DIRS}\"/f"
        );
    }
}
