//! The `pi` scenario: the time to run the Pi example end to end on an embedded `LocalCluster`.
//! It needs the Pi example and the client's `LocalCluster`, which are not in this tree yet; until
//! they are, it says so instead of measuring something else.

use anyhow::bail;

use crate::report::Report;

/// What a user gets until the Pi example lands.
pub const NOT_YET: &str = "the pi scenario is not available yet: it needs the Pi example \
    (examples/src/bin/pi.rs) and the client's LocalCluster, which are not in this tree yet";

pub fn run(_runs: u32) -> anyhow::Result<Report> {
    bail!(NOT_YET)
}
