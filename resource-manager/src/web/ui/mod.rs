//! The web UI under `/cluster`, laid out as YARN's: the overview (`/cluster`), the application
//! list (`/cluster/apps?state=…`), an application (`/cluster/app/{id}`) and the nodes
//! (`/cluster/nodes`); `/` leads to the overview. Pages are rendered on the server from one
//! look at the core each, refresh themselves every few seconds, and need no script.

mod app;
mod apps;
mod html;
mod nodes;
mod overview;

use std::fmt::Write;

use axum::Router;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use super::WebState;
use super::error::WebError;
use html::Esc;

/// How often pages reload themselves, in seconds.
const REFRESH_SECONDS: u32 = 5;

pub fn routes() -> Router<WebState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/cluster") }))
        .route("/cluster", get(overview::page))
        .route("/cluster/apps", get(apps::page))
        .route("/cluster/app/{id}", get(app::page))
        .route("/cluster/nodes", get(nodes::page))
}

/// A refusal shown as a page (with the same status the REST API would give).
pub struct PageError(pub WebError);

impl From<WebError> for PageError {
    fn from(e: WebError) -> Self {
        PageError(e)
    }
}

impl From<tonic::Status> for PageError {
    fn from(status: tonic::Status) -> Self {
        PageError(status.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let title = status.canonical_reason().unwrap_or("Error");
        let body = format!(
            "<p class=\"error\">{}</p><p><a href=\"/cluster\">Back to the overview</a></p>",
            Esc(self.0.message())
        );
        (status, Html(frame(title, None, 0, &body))).into_response()
    }
}

pub type Page = Result<Html<String>, PageError>;

/// The page around `body`: head, navigation (with `active` marked), and the refresh.
pub fn frame(title: &str, active: Option<&str>, now_ms: u64, body: &str) -> String {
    let mut nav = String::new();
    for (path, label) in [
        ("/cluster", "Overview"),
        ("/cluster/apps", "Applications"),
        ("/cluster/nodes", "Nodes"),
    ] {
        let class = if active == Some(path) {
            " class=\"active\""
        } else {
            ""
        };
        let _ = write!(nav, "<a href=\"{path}\"{class}>{label}</a>");
    }
    let refreshed = if now_ms == 0 {
        String::new()
    } else {
        format!("refreshed {} UTC", html::time(now_ms))
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} · Spindle</title><style>{CSS}</style></head>\
         <body><header><a class=\"brand\" href=\"/cluster\">Spindle</a><nav>{nav}</nav>\
         <span class=\"refreshed\">{refreshed}</span></header>\
         <main><h1>{title}</h1>{body}</main>\
         <footer>REST API under <code>/ws/v1/cluster</code> · Prometheus metrics at \
         <code>/metrics</code></footer></body></html>\n",
        title = Esc(title),
    )
}

/// An answer with no such page, for paths under `/cluster` that are not pages.
pub fn not_found(path: &str) -> Response {
    PageError(WebError::NotFound(format!("there is no page at {path}"))).into_response()
}

/// A table with a header row; `rows` are already rendered `<tr>`s.
pub fn table(headers: &[&str], rows: &[String], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\">{}</p>", Esc(empty));
    }
    let mut out = String::from("<div class=\"scroll\"><table><thead><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", Esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str(row);
    }
    out.push_str("</tbody></table></div>");
    out
}

const CSS: &str = "\
:root { --ink: #1f2933; --muted: #616e7c; --line: #e4e7eb; --bg: #f5f7fa; --accent: #2a6f97; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: var(--ink); background: var(--bg); }
header { display: flex; align-items: center; gap: 24px; padding: 10px 24px; background: #102a43; color: #fff; }
header .brand { color: #fff; font-weight: 700; font-size: 17px; text-decoration: none; letter-spacing: .5px; }
header nav a { color: #bcccdc; text-decoration: none; margin-right: 16px; padding: 4px 0; }
header nav a.active, header nav a:hover { color: #fff; border-bottom: 2px solid #62b0e8; }
header .refreshed { margin-left: auto; color: #9fb3c8; font-size: 12px; }
main { padding: 8px 24px 24px; max-width: 1400px; }
h1 { font-size: 20px; margin: 16px 0 12px; word-break: break-all; }
h2 { font-size: 15px; margin: 22px 0 8px; color: var(--muted); text-transform: uppercase; letter-spacing: .6px; }
a { color: var(--accent); }
table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f0f4f8; font-weight: 600; font-size: 12px; color: var(--muted); }
tbody tr:hover { background: #f8fbff; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.nowrap { white-space: nowrap; }
.scroll { overflow-x: auto; }
td.diag, pre { white-space: pre-wrap; word-break: break-word; font: 12px/1.4 ui-monospace, monospace; max-width: 420px; }
pre { background: #fff; border: 1px solid var(--line); padding: 8px; max-width: none; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; background: #fff; border: 1px solid var(--line); padding: 12px 16px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; word-break: break-all; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { background: #fff; border: 1px solid var(--line); padding: 12px 16px; min-width: 150px; }
.card .n { font-size: 24px; font-weight: 700; }
.card .l { color: var(--muted); font-size: 12px; }
.card a { text-decoration: none; color: inherit; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 11px; font-weight: 600; letter-spacing: .3px; background: #e4e7eb; }
.badge.ok { background: #d9f2e6; color: #0b6e4f; }
.badge.done { background: #dceefb; color: #0b4f71; }
.badge.bad { background: #fde2e1; color: #a61b1b; }
.badge.killed { background: #fff0d6; color: #8d5300; }
.badge.wait { background: #efe7fb; color: #5a3b99; }
.usage { display: flex; align-items: center; gap: 10px; }
.usage .bar { width: 220px; height: 10px; background: #e4e7eb; border-radius: 5px; overflow: hidden; }
.usage .bar div { height: 100%; background: #3e8ed0; }
.filters { margin: 0 0 12px; }
.filters a { display: inline-block; margin: 0 6px 6px 0; padding: 3px 10px; border: 1px solid var(--line); border-radius: 12px; background: #fff; text-decoration: none; }
.filters a.active { background: var(--accent); border-color: var(--accent); color: #fff; }
.empty { color: var(--muted); font-style: italic; }
.error { color: #a61b1b; font-weight: 600; }
footer { padding: 12px 24px; color: var(--muted); font-size: 12px; }
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_refreshes_and_escapes_its_title() {
        let page = frame("<app>", Some("/cluster/apps"), 1_000, "<p>body</p>");
        assert!(page.contains("<meta http-equiv=\"refresh\" content=\"5\">"));
        assert!(page.contains("<title>&lt;app&gt; · Spindle</title>"));
        assert!(page.contains("<h1>&lt;app&gt;</h1>"));
        assert!(page.contains("<a href=\"/cluster/apps\" class=\"active\">Applications</a>"));
        assert!(page.contains("<p>body</p>"));
        assert!(!page.contains("<script"));
    }
}
