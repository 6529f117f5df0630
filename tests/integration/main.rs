//! Integration tests against the real AWS emulator: each test deploys its own stack from
//! infra/template.yaml and runs the functions on it through the local event source mappings.

mod chain;
mod generator;
mod helpers;
mod metrics;
mod watch;
