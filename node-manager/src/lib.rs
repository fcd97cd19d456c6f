//! The node manager: the daemon on every host that launches, watches and stops containers.

pub mod config;

pub use config::NmConfig;
