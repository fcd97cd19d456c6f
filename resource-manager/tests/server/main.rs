//! The resource manager served on a loopback port and driven through its gRPC and HTTP
//! interfaces, as clients, AMs and NMs would: one test binary, one module per story.

mod common;
mod http;

mod bad_input;
mod capacity;
mod flow;
mod hostile;
mod restart;
mod security;
mod staging;
mod web;
mod web_changes;
mod web_metrics;
mod web_ui;
