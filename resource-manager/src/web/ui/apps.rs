//! `/cluster/apps`: the applications, newest first, filtered as the REST list is
//! (`?state=RUNNING`, `?user=…`, `?queue=…` and the rest of YARN's filters), with one link per
//! state to narrow the list.

use std::collections::HashMap;
use std::fmt::Write;

use axum::extract::{Query, State};
use axum::response::Html;

use super::super::WebState;
use super::super::error::WebError;
use super::super::filters::AppFilter;
use super::super::summary::{APP_STATES, Summary};
use super::super::yarn::{self, AppInfo};
use super::html::{Esc, badge, duration, local_link, time};
use super::{Page, frame, table};

pub async fn page(
    State(web): State<WebState>,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    let filter = AppFilter::parse(&query).map_err(WebError::BadRequest)?;
    let chosen = filter.states.clone();
    let (apps, summary, now) = web
        .core
        .read(move |core, now| {
            let summary = Summary::of(core);
            let total_mb = summary.total().memory_mb;
            let apps: Vec<AppInfo> = filter
                .select(core.apps())
                .into_iter()
                .rev()
                .map(|a| yarn::app_info(core, a, now, total_mb))
                .collect();
            (apps, summary, now)
        })
        .await?;

    let mut body = String::from("<div class=\"filters\">");
    let all_class = if chosen.is_empty() {
        " class=\"active\""
    } else {
        ""
    };
    let _ = write!(
        body,
        "<a href=\"/cluster/apps\"{all_class}>All ({})</a>",
        summary.total_apps()
    );
    for state in APP_STATES {
        let name = state.to_string();
        let class = if chosen == [name.clone()] {
            " class=\"active\""
        } else {
            ""
        };
        let _ = write!(
            body,
            "<a href=\"/cluster/apps?state={name}\"{class}>{name} ({})</a>",
            summary.apps_in(state)
        );
    }
    body.push_str("</div>");
    body.push_str(&app_table(&apps, now));
    let title = match chosen.as_slice() {
        [] => "Applications".to_string(),
        states => format!("Applications: {}", states.join(", ")),
    };
    Ok(Html(frame(&title, Some("/cluster/apps"), now, &body)))
}

/// The application table the list and the overview share.
pub fn app_table(apps: &[AppInfo], now: u64) -> String {
    let rows: Vec<String> = apps
        .iter()
        .map(|a| {
            let elapsed = if a.finished_time == 0 {
                now.saturating_sub(a.started_time)
            } else {
                a.elapsed_time
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td class=\"nowrap\">{}</td><td class=\"num nowrap\">{}</td>\
                 <td class=\"num\">{:.0}%</td>\
                 <td class=\"num\">{}</td></tr>",
                local_link(&format!("/cluster/app/{}", a.id), &a.id),
                Esc(&a.user),
                Esc(&a.name),
                Esc(&a.application_type),
                Esc(&a.queue),
                badge(&a.state),
                badge(&a.final_status),
                Esc(&time(a.started_time)),
                Esc(&duration(elapsed)),
                a.progress,
                a.running_containers,
            )
        })
        .collect();
    table(
        &[
            "Application",
            "User",
            "Name",
            "Type",
            "Queue",
            "State",
            "Final status",
            "Started (UTC)",
            "Elapsed",
            "Progress",
            "Containers",
        ],
        &rows,
        "No applications.",
    )
}
