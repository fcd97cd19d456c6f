//! placeholder
pub mod sdk;
