//! Errors shared by the ports. Every error says whether retrying can help.

use std::error::Error as StdError;

/// A boxed error from an adapter (the SDK's types never cross a port).
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Failure of a storage port (DynamoDB behind the adapters, maps in the fakes).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Throttling, timeouts, 5xx, connection failures: the same call may succeed later.
    #[error("{operation}: transient storage failure")]
    Transient {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// Validation errors, missing tables, access denied: retrying cannot help.
    #[error("{operation}: permanent storage failure")]
    Permanent {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    /// A stored item that does not decode into the domain type.
    #[error("corrupt {entity} item {key}: {reason}")]
    Corrupt {
        entity: &'static str,
        key: String,
        reason: String,
    },
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Transient { .. })
    }

    /// Short fixed label for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::Transient { .. } => "transient",
            StoreError::Permanent { .. } => "permanent",
            StoreError::Corrupt { .. } => "corrupt",
        }
    }
}

/// Failure of a whole queue call (as opposed to a per-entry failure of a batch).
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("{operation}: transient queue failure")]
    Transient {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("{operation}: permanent queue failure")]
    Permanent {
        operation: &'static str,
        #[source]
        source: BoxError,
    },
}

impl QueueError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, QueueError::Transient { .. })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            QueueError::Transient { .. } => "transient",
            QueueError::Permanent { .. } => "permanent",
        }
    }
}

/// Renders an error with its whole `source()` chain on one line, for logs and stored reasons.
pub fn error_chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error.source();
    while let Some(cause) = current {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        current = cause.source();
    }
    text
}
