//! The resource manager: the cluster's capacity, its applications, and who runs where.

pub mod config;
pub mod core;

pub use config::{Placement, RmConfig};
