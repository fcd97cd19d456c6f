//! How applications and nodes are shown: YARN's `Key : value` status report and aligned tables
//! for people, and stable JSON shapes for scripts (`--json`).

use std::fmt::Write as _;

use spindle_protocol as proto;
use spindle_protocol::{ApplicationReport, ApplicationState, NodeReport};

/// `FINISHED` for `APPLICATION_STATE_FINISHED`: YARN's names, without the proto prefix.
pub fn state_name(state: ApplicationState) -> &'static str {
    strip(state.as_str_name(), "APPLICATION_STATE_")
}

pub fn final_status_name(status: proto::FinalStatus) -> &'static str {
    strip(status.as_str_name(), "FINAL_STATUS_")
}

pub fn attempt_state_name(state: proto::AttemptState) -> &'static str {
    strip(state.as_str_name(), "ATTEMPT_STATE_")
}

pub fn node_state_name(state: proto::NodeState) -> &'static str {
    strip(state.as_str_name(), "NODE_STATE_")
}

fn strip(name: &'static str, prefix: &str) -> &'static str {
    name.strip_prefix(prefix).unwrap_or(name)
}

/// Reads `--state` values: YARN's state names in any case, or `ALL`.
pub fn parse_states(names: &[String]) -> Result<Vec<ApplicationState>, String> {
    let mut states = Vec::new();
    for name in names {
        let upper = name.trim().to_ascii_uppercase();
        if upper == "ALL" {
            return Ok(Vec::new());
        }
        match ApplicationState::from_str_name(&format!("APPLICATION_STATE_{upper}")) {
            Some(state) if state != ApplicationState::Unspecified => states.push(state),
            _ => {
                return Err(format!(
                    "unknown application state {name:?}: expected one of NEW, NEW_SAVING, \
                     SUBMITTED, ACCEPTED, RUNNING, FINISHED, FAILED, KILLED or ALL"
                ));
            }
        }
    }
    Ok(states)
}

fn or_na(value: &str) -> &str {
    if value.is_empty() { "N/A" } else { value }
}

/// Multi-line diagnostics stay one field: continuation lines are indented.
fn one_field(value: &str) -> String {
    or_na(value.trim_end()).replace('\n', "\n\t")
}

fn progress(report: &ApplicationReport) -> String {
    format!("{:.0}%", (report.progress.clamp(0.0, 1.0)) * 100.0)
}

/// `yarn application -status`: one `Key : value` per line, then one line per attempt.
pub fn status_text(report: &ApplicationReport) -> String {
    let mut out = String::new();
    let fields = [
        ("Application-Id", report.application_id.clone()),
        ("Application-Name", report.name.clone()),
        ("Application-Type", report.application_type.clone()),
        ("User", report.user.clone()),
        ("Queue", report.queue.clone()),
        ("Start-Time", report.start_time_ms.to_string()),
        ("Finish-Time", report.finish_time_ms.to_string()),
        ("Progress", progress(report)),
        ("State", state_name(report.state()).to_string()),
        (
            "Final-State",
            final_status_name(report.final_status()).to_string(),
        ),
        ("Tracking-URL", or_na(&report.tracking_url).to_string()),
        ("AM Host", or_na(&report.host).to_string()),
        ("Diagnostics", one_field(&report.diagnostics)),
    ];
    for (key, value) in fields {
        let _ = writeln!(out, "{key} : {value}");
    }
    for attempt in &report.attempts {
        let _ = writeln!(
            out,
            "Attempt : {} | State : {} | AM-Container : {} | Node : {} | Diagnostics : {}",
            attempt.attempt_id,
            attempt_state_name(attempt.state()),
            or_na(&attempt.am_container_id),
            or_na(&attempt.node_id),
            one_field(&attempt.diagnostics),
        );
    }
    out
}

/// Rows under a header, each column as wide as its widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let text: Vec<String> = cells
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        let _ = writeln!(out, "{}", text.join("  ").trim_end());
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// `yarn application -list`: a count, then one row per application.
pub fn apps_text(reports: &[ApplicationReport]) -> String {
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            vec![
                r.application_id.clone(),
                r.name.clone(),
                r.application_type.clone(),
                r.user.clone(),
                r.queue.clone(),
                state_name(r.state()).to_string(),
                final_status_name(r.final_status()).to_string(),
                progress(r),
                or_na(&r.tracking_url).to_string(),
            ]
        })
        .collect();
    let header = [
        "Application-Id",
        "Application-Name",
        "Application-Type",
        "User",
        "Queue",
        "State",
        "Final-State",
        "Progress",
        "Tracking-URL",
    ];
    format!(
        "Total number of applications: {}\n{}",
        reports.len(),
        table(&header, &rows)
    )
}

/// `yarn node -list`: a count, then one row per node.
pub fn nodes_text(nodes: &[NodeReport]) -> String {
    let rows: Vec<Vec<String>> = nodes
        .iter()
        .map(|n| {
            let view = NodeView::from(n);
            vec![
                view.node_id,
                view.state.to_string(),
                view.hostname,
                view.containers.to_string(),
                format!("{}/{} MB", view.memory_used_mb, view.memory_total_mb),
                format!("{}/{}", view.vcores_used, view.vcores_total),
            ]
        })
        .collect();
    let header = [
        "Node-Id",
        "Node-State",
        "Hostname",
        "Containers",
        "Memory-Used/Total",
        "VCores-Used/Total",
    ];
    format!("Total Nodes: {}\n{}", nodes.len(), table(&header, &rows))
}

/// An application as `--json` prints it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AppView {
    pub id: String,
    pub name: String,
    pub application_type: String,
    pub user: String,
    pub queue: String,
    pub state: String,
    pub final_status: String,
    pub progress: f32,
    pub submit_time_ms: u64,
    pub start_time_ms: u64,
    pub finish_time_ms: u64,
    pub tracking_url: String,
    pub am_host: String,
    pub diagnostics: String,
    pub running_containers: u32,
    pub attempts: Vec<AttemptView>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AttemptView {
    pub id: String,
    pub state: String,
    pub am_container_id: String,
    pub node_id: String,
    pub diagnostics: String,
    pub start_time_ms: u64,
    pub finish_time_ms: u64,
}

impl From<&ApplicationReport> for AppView {
    fn from(r: &ApplicationReport) -> Self {
        AppView {
            id: r.application_id.clone(),
            name: r.name.clone(),
            application_type: r.application_type.clone(),
            user: r.user.clone(),
            queue: r.queue.clone(),
            state: state_name(r.state()).to_string(),
            final_status: final_status_name(r.final_status()).to_string(),
            progress: r.progress,
            submit_time_ms: r.submit_time_ms,
            start_time_ms: r.start_time_ms,
            finish_time_ms: r.finish_time_ms,
            tracking_url: r.tracking_url.clone(),
            am_host: r.host.clone(),
            diagnostics: r.diagnostics.clone(),
            running_containers: r.running_containers,
            attempts: r
                .attempts
                .iter()
                .map(|a| AttemptView {
                    id: a.attempt_id.clone(),
                    state: attempt_state_name(a.state()).to_string(),
                    am_container_id: a.am_container_id.clone(),
                    node_id: a.node_id.clone(),
                    diagnostics: a.diagnostics.clone(),
                    start_time_ms: a.start_time_ms,
                    finish_time_ms: a.finish_time_ms,
                })
                .collect(),
        }
    }
}

/// A node as `--json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NodeView {
    pub node_id: String,
    pub state: String,
    pub hostname: String,
    pub http_address: String,
    pub containers: u32,
    pub memory_used_mb: i64,
    pub memory_total_mb: i64,
    pub vcores_used: i32,
    pub vcores_total: i32,
    pub last_heartbeat_ms: u64,
    pub health_report: String,
}

impl From<&NodeReport> for NodeView {
    fn from(n: &NodeReport) -> Self {
        let used = n.used.unwrap_or_default();
        let total = n.capability.unwrap_or_default();
        NodeView {
            node_id: n.node_id.clone(),
            state: node_state_name(n.state()).to_string(),
            hostname: n.hostname.clone(),
            http_address: n.http_address.clone(),
            containers: n.num_containers,
            memory_used_mb: used.memory_mb,
            memory_total_mb: total.memory_mb,
            vcores_used: used.vcores,
            vcores_total: total.vcores,
            last_heartbeat_ms: n.last_heartbeat_ms,
            health_report: n.health_report.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> ApplicationReport {
        ApplicationReport {
            application_id: "application_1_0001".into(),
            name: "shell".into(),
            application_type: "SPINDLE".into(),
            user: "ann".into(),
            queue: "default".into(),
            state: ApplicationState::Finished as i32,
            final_status: proto::FinalStatus::Failed as i32,
            diagnostics: "container c on node h failed: exit status 3\nlast stderr line".into(),
            progress: 1.0,
            attempts: vec![proto::AttemptReport {
                attempt_id: "appattempt_1_0001_000001".into(),
                state: proto::AttemptState::Finished as i32,
                am_container_id: "container_1_0001_01_000001".into(),
                node_id: "127.0.0.1:4000".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn status_is_one_key_per_line_like_yarn() {
        let text = status_text(&report());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Application-Id : application_1_0001");
        assert!(lines.contains(&"State : FINISHED"));
        assert!(lines.contains(&"Final-State : FAILED"));
        assert!(lines.contains(&"Progress : 100%"));
        assert!(lines.contains(&"Tracking-URL : N/A"));
        assert!(
            lines.contains(&"Diagnostics : container c on node h failed: exit status 3"),
            "{text}"
        );
        assert!(lines.contains(&"\tlast stderr line"));
        let attempt = lines.iter().find(|l| l.starts_with("Attempt : ")).unwrap();
        assert!(attempt.contains("appattempt_1_0001_000001"));
        assert!(attempt.contains("State : FINISHED"));
        assert!(attempt.contains("container_1_0001_01_000001"));
        assert!(attempt.contains("127.0.0.1:4000"));
    }

    #[test]
    fn states_parse_in_any_case_and_name_the_choices() {
        let states = parse_states(&["finished".into(), "KILLED".into()]).unwrap();
        assert_eq!(
            states,
            [ApplicationState::Finished, ApplicationState::Killed]
        );
        assert!(parse_states(&["all".into()]).unwrap().is_empty());
        let err = parse_states(&["DONE".into()]).unwrap_err();
        assert!(err.contains("\"DONE\"") && err.contains("RUNNING"), "{err}");
        assert!(parse_states(&["UNSPECIFIED".into()]).is_err());
    }

    #[test]
    fn tables_align_columns() {
        let text = apps_text(&[report()]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "Total number of applications: 1");
        let header = lines[1];
        let row = lines[2];
        assert_eq!(header.find("State"), row.find("FINISHED"));
        assert!(row.contains("FAILED"));
    }

    #[test]
    fn nodes_show_used_over_total() {
        let node = NodeReport {
            node_id: "127.0.0.1:4000".into(),
            hostname: "box".into(),
            state: proto::NodeState::Running as i32,
            capability: Some(proto::Resource {
                memory_mb: 4096,
                vcores: 8,
            }),
            used: Some(proto::Resource {
                memory_mb: 1024,
                vcores: 2,
            }),
            num_containers: 2,
            ..Default::default()
        };
        let text = nodes_text(std::slice::from_ref(&node));
        assert!(text.contains("RUNNING"), "{text}");
        assert!(text.contains("1024/4096 MB"), "{text}");
        assert!(text.contains("2/8"), "{text}");
        let json = serde_json::to_value(NodeView::from(&node)).unwrap();
        assert_eq!(json["memory_total_mb"], 4096);
        assert_eq!(json["state"], "RUNNING");
    }
}
