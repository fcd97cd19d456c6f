//! Failures, end to end, with real daemons and real containers that are really broken: a node
//! manager and its containers SIGKILLed (a host that dies), an application master SIGKILLed or
//! SIGSTOPped, the resource manager SIGKILLed and started again on the same state. Each test
//! prints how long recovery took (`MEASURED …` lines: run with `--nocapture` to see them);
//! `docs/failures.md` tabulates them.
//!
//! The tests take turns (one cluster at a time): they use short liveness expiries, and a node
//! whose heartbeats are held up by a neighbouring test's load would be lost for real.

mod support;

#[path = "failures/common.rs"]
mod common;
#[path = "failures/dead_am.rs"]
mod dead_am;
#[path = "failures/lost_node.rs"]
mod lost_node;
#[path = "failures/pi_lost_node.rs"]
mod pi_lost_node;
#[path = "failures/rm_restart.rs"]
mod rm_restart;
