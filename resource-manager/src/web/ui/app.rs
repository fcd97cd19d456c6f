//! `/cluster/app/{id}`: one application — what it is and how it went, its attempts (the AM's
//! container, node and logs), every container it held with its node, resources, exit status and
//! links to its logs on the node manager, and the AM's tracking URL.

use std::fmt::Write;

use axum::extract::{Path, State};
use axum::response::Html;

use super::super::WebState;
use super::super::error::WebError;
use super::super::rest::application_id;
use super::super::summary::Summary;
use super::super::yarn::{self, AppInfo, AttemptInfo};
use super::html::{Esc, badge, duration, exit_status, link, memory, time};
use super::{Page, frame, table};
use crate::core::CoreError;

/// One container as the page lists it.
struct ContainerRow {
    id: String,
    is_am: bool,
    state: String,
    node_id: String,
    node_http_address: String,
    memory_mb: u64,
    vcores: u32,
    exit_status: Option<i32>,
    diagnostics: String,
    allocated_ms: u64,
    finished_ms: Option<u64>,
}

pub async fn page(State(web): State<WebState>, Path(id): Path<String>) -> Page {
    let id = application_id(&id)?;
    let found = web
        .core
        .read(move |core, now| {
            let app = core.app(id)?;
            let total_mb = Summary::of(core).total().memory_mb;
            let info = yarn::app_info(core, app, now, total_mb);
            let attempts: Vec<AttemptInfo> = app
                .attempts
                .iter()
                .map(|a| yarn::attempt_info(core, a))
                .collect();
            let containers: Vec<ContainerRow> = app
                .containers
                .iter()
                .filter_map(|c| core.container(*c))
                .map(|c| {
                    let node = core.node(c.node);
                    ContainerRow {
                        id: c.id.to_string(),
                        is_am: c.is_am,
                        state: c.state.to_string(),
                        node_id: node.id.to_string(),
                        node_http_address: node.http_address.clone(),
                        memory_mb: c.resource.memory_mb,
                        vcores: c.resource.vcores,
                        exit_status: c.exit_status,
                        diagnostics: c.diagnostics.clone(),
                        allocated_ms: c.allocated_ms,
                        finished_ms: c.finished_ms,
                    }
                })
                .collect();
            Some((info, attempts, containers, now))
        })
        .await?;
    let Some((info, attempts, containers, now)) = found else {
        return Err(WebError::from(CoreError::UnknownApplication(id)).into());
    };

    let mut body = facts(&info, now);
    body.push_str("<h2>Attempts</h2>");
    body.push_str(&attempt_table(&attempts));
    body.push_str("<h2>Containers</h2>");
    body.push_str(&container_table(&containers, now));
    if !info.diagnostics.is_empty() {
        let _ = write!(
            body,
            "<h2>Diagnostics</h2><pre>{}</pre>",
            Esc(&info.diagnostics)
        );
    }
    Ok(Html(frame(
        &format!("Application {}", info.id),
        Some("/cluster/apps"),
        now,
        &body,
    )))
}

fn facts(a: &AppInfo, now: u64) -> String {
    let elapsed = if a.finished_time == 0 {
        now.saturating_sub(a.started_time)
    } else {
        a.elapsed_time
    };
    let tracking = if a.tracking_url.is_empty() {
        "—".to_string()
    } else {
        link(&a.tracking_url, &a.tracking_url)
    };
    let tags = if a.application_tags.is_empty() {
        "—"
    } else {
        &a.application_tags
    };
    format!(
        "<dl class=\"facts\">\
         <dt>Name</dt><dd>{}</dd><dt>User</dt><dd>{}</dd><dt>Queue</dt><dd>{}</dd>\
         <dt>Type</dt><dd>{}</dd><dt>Tags</dt><dd>{}</dd>\
         <dt>State</dt><dd>{}</dd><dt>Final status</dt><dd>{}</dd>\
         <dt>Progress</dt><dd>{:.0}%</dd>\
         <dt>Started (UTC)</dt><dd>{}</dd><dt>Finished (UTC)</dt><dd>{}</dd>\
         <dt>Elapsed</dt><dd>{}</dd>\
         <dt>Tracking URL</dt><dd>{}</dd>\
         <dt>Holds</dt><dd>{} in {} containers</dd>\
         <dt>Usage</dt><dd>{} MB·s, {} vcore·s</dd>\
         <dt>Attempts allowed</dt><dd>{}</dd><dt>Unmanaged AM</dt><dd>{}</dd>\
         </dl>",
        Esc(&a.name),
        Esc(&a.user),
        Esc(&a.queue),
        Esc(&a.application_type),
        Esc(tags),
        badge(&a.state),
        badge(&a.final_status),
        a.progress,
        Esc(&time(a.started_time)),
        Esc(&time(a.finished_time)),
        Esc(&duration(elapsed)),
        tracking,
        Esc(&memory(a.allocated_mb)),
        a.running_containers,
        a.memory_seconds,
        a.vcore_seconds,
        a.max_app_attempts,
        if a.unmanaged_application { "yes" } else { "no" },
    )
}

fn attempt_table(attempts: &[AttemptInfo]) -> String {
    let rows: Vec<String> = attempts
        .iter()
        .rev()
        .map(|a| {
            let node = if a.node_http_address.is_empty() {
                Esc(&a.node_id).to_string()
            } else {
                link(
                    &format!("http://{}/ws/v1/node/info", a.node_http_address),
                    &a.node_id,
                )
            };
            let logs = if a.logs_link.is_empty() {
                String::new()
            } else {
                format!(
                    "<br><small>logs: {}</small>",
                    logs_links(&a.node_http_address, &a.container_id)
                )
            };
            let tracking = if a.tracking_url.is_empty() {
                "—".to_string()
            } else {
                link(&a.tracking_url, "tracking UI")
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td class=\"nowrap\">{}<br>{}</td><td>{}{}</td>\
                 <td>{}</td><td>{}</td><td class=\"diag\">{}</td></tr>",
                Esc(&a.app_attempt_id),
                badge(&a.app_attempt_state),
                Esc(&time(a.start_time)),
                Esc(&time(a.finished_time)),
                Esc(&a.container_id),
                logs,
                node,
                tracking,
                Esc(&a.diagnostics_info),
            )
        })
        .collect();
    table(
        &[
            "Attempt",
            "State",
            "Started, finished (UTC)",
            "AM container",
            "Node",
            "Tracking",
            "Diagnostics",
        ],
        &rows,
        "No attempts yet.",
    )
}

/// Links to a container's stdout and stderr on its node manager.
fn logs_links(node_http_address: &str, container: &str) -> String {
    let Ok(id) = container.parse() else {
        return "—".into();
    };
    ["stdout", "stderr"]
        .iter()
        .map(|file| link(&yarn::log_url(node_http_address, id, file), file))
        .collect::<Vec<_>>()
        .join(" ")
}

fn container_table(containers: &[ContainerRow], now: u64) -> String {
    let rows: Vec<String> = containers
        .iter()
        .map(|c| {
            let logs = if c.node_http_address.is_empty() {
                "—".to_string()
            } else {
                logs_links(&c.node_http_address, &c.id)
            };
            let status = c.exit_status.map_or("—".to_string(), exit_status);
            let held = c.finished_ms.unwrap_or(now).saturating_sub(c.allocated_ms);
            format!(
                "<tr><td>{}{}</td><td>{}</td><td>{}</td><td class=\"num nowrap\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"nowrap\">{}</td><td>{}</td><td>{}</td>\
                 <td class=\"diag\">{}</td></tr>",
                Esc(&c.id),
                if c.is_am { " <small>(AM)</small>" } else { "" },
                badge(&c.state),
                Esc(&c.node_id),
                Esc(&memory(c.memory_mb)),
                c.vcores,
                Esc(&duration(held)),
                Esc(&status),
                logs,
                Esc(&c.diagnostics),
            )
        })
        .collect();
    table(
        &[
            "Container",
            "State",
            "Node",
            "Memory",
            "Vcores",
            "Held for",
            "Exit status",
            "Logs",
            "Diagnostics",
        ],
        &rows,
        "No containers yet.",
    )
}
