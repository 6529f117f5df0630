//! Integration tests against the real AWS emulator: each test deploys its own stack from
//! infra/template.yaml and runs the functions on it through the local event source mappings.
//! Every test is `#[ignore]`d with the services it needs; local/test.sh runs them all
//! (`cargo test -- --include-ignored`), and a test that is run without its service fails.

mod chain;
#[path = "../../crates/tradeflow-aws/tests/support/fake_alpaca.rs"]
mod fake_alpaca;
mod generator;
mod helpers;
mod iam;
mod metrics;
mod soak;
mod template;
mod traces;
mod watch;
