//! Domain logic of the trading-signal chain. Plain Rust: no AWS SDK, no Lambda runtime.
//!
//! The functions' handlers are written against the ports in [`ports`]; the AWS adapters
//! implement them in `tradeflow-aws`, and in-memory fakes implement them in tests.

pub mod deadline;
pub mod detectors;
pub mod dispatch;
pub mod error;
pub mod execute;
pub mod execution;
pub mod fakes;
pub mod generate;
pub mod ids;
pub mod indicators;
pub mod market;
pub mod matching;
pub mod pipeline;
pub mod ports;
pub mod publish;
pub mod signal;
pub mod steps;
