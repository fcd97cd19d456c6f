//! `spindle nodes`: the cluster's nodes with their state and capacity (YARN's `node -list`).

use std::process::ExitCode;

use super::{RmFlag, connect};
use crate::config::SpindleConfig;
use crate::report::{NodeView, nodes_text};

#[derive(Debug, clap::Args)]
pub struct NodesArgs {
    #[command(flatten)]
    pub rm: RmFlag,
    /// Print JSON (an array of nodes) instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: NodesArgs, config: SpindleConfig) -> anyhow::Result<ExitCode> {
    let mut rm = connect(&args.rm, &config).await?;
    let mut nodes = rm.list_nodes().await?;
    nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    if args.json {
        let views: Vec<NodeView> = nodes.iter().map(NodeView::from).collect();
        println!("{}", serde_json::to_string_pretty(&views)?);
    } else {
        print!("{}", nodes_text(&nodes));
    }
    Ok(ExitCode::SUCCESS)
}
