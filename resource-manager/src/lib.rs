//! The resource manager: the cluster's capacity, its applications, and who runs where.

pub mod config;

pub use config::{Placement, RmConfig};
