//! Domain logic of the trading-signal chain. Plain Rust: no AWS SDK, no Lambda runtime.
//!
//! The functions' handlers are written against the ports in [`ports`]; the AWS adapters
//! implement them in `tradeflow-aws`, and in-memory fakes implement them in tests.
//!
//! The modules, from the bottom up (each uses only modules above it in this list):
//!
//! | layer | modules |
//! |---|---|
//! | shared vocabulary, no crate dependencies | [`vocab`] (direction, ticker, signal type, confidence, timeframe, candle, inbound message), [`trace`] (the trace context a message carries), [`ids`] (deterministic ids), [`error`] (port errors, `error_chain`), [`indicators`] (TA-Lib-compatible series) |
//! | domain types | [`signal`] (the wire format), [`pipeline`], [`order`] (paper orders), [`matching`] (signal → pipelines index), [`execution`] (requests, records, state machine) |
//! | ports | [`ports`] (stores, queues, clock, tracing hooks; `MAX_BATCH`), [`market`] (the market-data port, [`market::synthetic`] and [`market::csv`] sources) |
//! | logic | [`detectors`] (one file per signal family), [`publish`] (batched sends with retries), [`steps`] (paper-trading steps), and the three functions' logic: [`generate`], [`dispatch`], [`execute`] |
//! | tests only | `fakes` (in-memory ports and `fakes::fixtures`), behind the `test-util` feature |

pub mod deadline;
pub mod detectors;
pub mod dispatch;
pub mod error;
pub mod execute;
pub mod execution;
#[cfg(any(test, feature = "test-util"))]
pub mod fakes;
pub mod generate;
pub mod ids;
pub mod indicators;
pub mod market;
pub mod matching;
pub mod order;
pub mod pipeline;
pub mod ports;
pub mod publish;
pub mod signal;
pub mod steps;
pub mod trace;
pub mod vocab;
