//! `/cluster`: the cluster at a glance — its nodes, the capacity in use, the applications by
//! state (each a link to the list of them) and the latest applications.

use std::fmt::Write;

use axum::extract::State;
use axum::response::Html;

use super::super::WebState;
use super::super::summary::{APP_STATES, NODE_STATES, Summary};
use super::super::yarn::{self, AppInfo};
use super::html::{Esc, memory, time, usage_bar};
use super::{Page, apps, frame};

/// How many of the latest applications the overview lists.
const LATEST: usize = 10;

pub async fn page(State(web): State<WebState>) -> Page {
    let (summary, latest, now) = web
        .core
        .read(|core, now| {
            let summary = Summary::of(core);
            let total_mb = summary.total().memory_mb;
            let all: Vec<_> = core.apps().collect();
            let latest: Vec<AppInfo> = all
                .into_iter()
                .rev()
                .take(LATEST)
                .map(|a| yarn::app_info(core, a, now, total_mb))
                .collect();
            (summary, latest, now)
        })
        .await?;

    let mut body = String::new();
    body.push_str("<h2>Capacity</h2><dl class=\"facts\">");
    let total = summary.total();
    let _ = write!(
        body,
        "<dt>Memory in use</dt><dd>{}</dd><dt>Virtual cores in use</dt><dd>{}</dd>\
         <dt>Containers</dt><dd>{} running, {} allocated, {} pending</dd>\
         <dt>Cluster id</dt><dd>{}</dd><dt>Started (UTC)</dt><dd>{}</dd>",
        usage_bar(
            summary.used.memory_mb,
            total.memory_mb,
            &format!(
                "{} of {}",
                memory(summary.used.memory_mb),
                memory(total.memory_mb)
            )
        ),
        usage_bar(
            u64::from(summary.used.vcores),
            u64::from(total.vcores),
            &format!("{} of {}", summary.used.vcores, total.vcores)
        ),
        summary.containers_running,
        summary.containers_allocated,
        summary.containers_pending,
        web.cluster_id,
        Esc(&time(web.started_on)),
    );
    body.push_str("</dl>");

    body.push_str("<h2>Nodes</h2><div class=\"cards\">");
    for state in NODE_STATES {
        let _ = write!(
            body,
            "<div class=\"card\"><a href=\"/cluster/nodes\"><div class=\"n\">{}</div>\
             <div class=\"l\">{state}</div></a></div>",
            summary.nodes_in(state)
        );
    }
    body.push_str("</div>");

    body.push_str("<h2>Applications</h2><div class=\"cards\">");
    for state in APP_STATES {
        let _ = write!(
            body,
            "<div class=\"card\"><a href=\"/cluster/apps?state={state}\"><div class=\"n\">{}</div>\
             <div class=\"l\">{state}</div></a></div>",
            summary.apps_in(state)
        );
    }
    body.push_str("</div>");

    body.push_str("<h2>Latest applications</h2>");
    body.push_str(&apps::app_table(&latest, now));
    Ok(Html(frame(
        "Cluster overview",
        Some("/cluster"),
        now,
        &body,
    )))
}
