//! Spindle's wire protocols, generated from the `.proto` files in `proto/`: client ↔ RM,
//! AM ↔ RM, NM ↔ RM, AM/RM → NM, executor ↔ driver, and the RM's store of aggregated logs.

/// Version 1 of every Spindle service and message.
pub mod v1 {
    tonic::include_proto!("spindle.v1");
}

pub use v1::*;
