//! The local stand-in for Lambda's event source mappings and schedule, used by the demo and the
//! integration tests. The AWS emulator stores queues and tables but cannot run Lambda code, so
//! this runner long-polls each queue and invokes the functions with AWS's semantics:
//!
//! - batches of up to `batch_size` records gathered within the batching window;
//! - the function's partial batch response: only the failed records stay on the queue, the rest
//!   are deleted; a function error keeps the whole batch;
//! - failed records become visible again after the queue's visibility timeout and go to the DLQ
//!   through the queue's own redrive policy once `maxReceiveCount` is reached;
//! - the generator fires on a schedule with an EventBridge scheduled event.
//!
//! Functions are invoked either in-process (the handler structs) or as the real binaries through
//! `cargo lambda watch`'s Invoke API ([`invoke::WatchFunction`]).

pub mod calls;
pub mod chain;
pub mod esm;
pub mod faults;
pub mod invoke;
pub mod load;
pub mod progress;
pub mod soak;
pub mod stack;
