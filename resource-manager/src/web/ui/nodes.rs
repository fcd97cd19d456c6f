//! `/cluster/nodes`: every node manager the RM knows, with its state, address, what its
//! containers hold of its capacity, when it last spoke and its health report.

use axum::extract::State;
use axum::response::Html;

use super::super::WebState;
use super::super::yarn::{self, NodeInfo};
use super::html::{Esc, badge, duration, link, memory, usage_bar};
use super::{Page, frame, table};

pub async fn page(State(web): State<WebState>) -> Page {
    let (nodes, now) = web
        .core
        .read(|core, now| {
            let nodes: Vec<NodeInfo> = core
                .nodes()
                .iter()
                .map(|(idx, _)| yarn::node_info(core, idx))
                .collect();
            (nodes, now)
        })
        .await?;
    let rows: Vec<String> = nodes
        .iter()
        .map(|n| {
            let total_mb = n.used_memory_mb + n.avail_memory_mb;
            let total_vcores = n.used_virtual_cores + n.available_virtual_cores;
            let web_ui = if n.node_http_address.is_empty() {
                "—".to_string()
            } else {
                link(
                    &format!("http://{}/ws/v1/node/info", n.node_http_address),
                    &n.node_http_address,
                )
            };
            format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td>\
                 <td>{}</td><td>{}</td><td class=\"nowrap\">{} ago</td><td class=\"diag\">{}</td></tr>",
                Esc(&n.id),
                Esc(&n.node_host_name),
                badge(&n.state),
                web_ui,
                n.num_containers,
                usage_bar(
                    n.used_memory_mb,
                    total_mb,
                    &format!("{} of {}", memory(n.used_memory_mb), memory(total_mb))
                ),
                usage_bar(
                    u64::from(n.used_virtual_cores),
                    u64::from(total_vcores),
                    &format!("{} of {}", n.used_virtual_cores, total_vcores)
                ),
                Esc(&duration(now.saturating_sub(n.last_health_update))),
                Esc(&n.health_report),
            )
        })
        .collect();
    let body = table(
        &[
            "Node",
            "Host",
            "State",
            "Web address",
            "Containers",
            "Memory",
            "Vcores",
            "Last heartbeat",
            "Health report",
        ],
        &rows,
        "No node managers have registered.",
    );
    Ok(Html(frame("Nodes", Some("/cluster/nodes"), now, &body)))
}
