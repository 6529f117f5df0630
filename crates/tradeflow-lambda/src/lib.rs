//! The Lambda adapter shared by the three functions.
//!
//! - [`Function`]: what a function supplies, its event → domain call → response mapping and its
//!   own logs and metrics; [`service`] wraps it for `lambda_runtime::run` (and [`invoke`] calls
//!   the same service in-process, for the local runner and tests).
//! - [`InvocationLayer`]: the `tower` layer doing what every invocation needs: FaaS invocation
//!   and cold-start metrics, one outcome log line, the bounded metrics flush.
//! - [`process_batch`]: the path of an SQS-triggered function: records → messages → the domain
//!   call → the partial batch response.
//! - The invocation's deadline reaches the domain as a [`Deadline`] ([`deadline_of`]).
//! - [`Settings`]: configuration read from the environment with every problem reported at once.

mod config;
mod function;
mod invocation;
mod routed;
mod sqs;

pub use config::{ConfigError, MarketSource, Settings};
pub use function::{Function, FunctionService, invoke, service};
pub use invocation::{InvocationLayer, InvocationService, deadline_of};
pub use routed::{Routed, is_sqs_batch, routed};
pub use sqs::{
    BatchError, BatchReport, MISSING_BODY_REASON, MissingBody, batch_response, inbound_messages,
    process_batch, trace_context,
};
pub use tradeflow_core::deadline::Deadline;
