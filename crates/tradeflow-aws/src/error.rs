//! Classifies AWS SDK errors into the ports' [`StoreError`] / [`QueueError`].
//!
//! Conditional-check failures never reach this module: each adapter handles them as an outcome
//! (`Held`, `AlreadyExists`, `false`...). What is left is either worth retrying (throttling, 5xx,
//! timeouts, connection failures, unparseable responses) or not (validation, missing table or
//! queue, access denied, a request the SDK could not build). The SDK error is kept, boxed, as the
//! `source` so logs show the service's code and message. An item over DynamoDB's 400 KB limit
//! ("Item size has exceeded the maximum allowed size") is a `ValidationException`: permanent,
//! never retried (the executor records such a run FAILED or rejects it, see `execute.rs`).

use std::error::Error as StdError;

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use tradeflow_core::error::{BoxError, QueueError, StoreError};

/// Whether retrying a failed call can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The same call may succeed later.
    Transient,
    /// Retrying the same call cannot help.
    Permanent,
}

/// Error codes (DynamoDB, SQS and SNS, JSON and query protocols) that mean "try again later".
const TRANSIENT_CODES: &[&str] = &[
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "KmsThrottled",
    // SNS: ThrottledException, KMSThrottlingException
    "Throttled",
    "KMSThrottling",
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "TransactionConflictException",
    "ReplicatedWriteConflictException",
];

/// Failures of this adapter that are not SDK errors (kept as the `source` of a port error).
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// `SendMessageBatch` accepts at most 10 entries.
    #[error("a batch holds 1 to 10 messages, got {0}")]
    BatchTooLarge(usize),
    /// `SendMessageBatch` refuses bodies totalling more than
    /// [`tradeflow_core::publish::MAX_BATCH_BYTES`] (`BatchRequestTooLong`).
    #[error(
        "a batch holds at most {limit} bytes of message bodies, got {0}",
        limit = tradeflow_core::publish::MAX_BATCH_BYTES
    )]
    BatchTooLong(usize),
    /// A request could not be built from the given input.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A response lacks what the operation guarantees (e.g. a queue URL, a returned item).
    #[error("unexpected response: {0}")]
    UnexpectedResponse(String),
}

/// Classifies from the pieces of an error: which [`SdkError`] variant, the service's error code
/// and the HTTP status, if any.
pub fn classify_parts(kind: SdkErrorKind, code: Option<&str>, status: Option<u16>) -> ErrorClass {
    match kind {
        SdkErrorKind::Construction | SdkErrorKind::DispatchUser => ErrorClass::Permanent,
        SdkErrorKind::Timeout | SdkErrorKind::Dispatch | SdkErrorKind::Response => {
            ErrorClass::Transient
        }
        SdkErrorKind::Service => {
            let transient_code = code.is_some_and(|c| {
                // Query-protocol SQS codes carry a prefix: "AWS.SimpleQueueService.RequestThrottled".
                let short = c.rsplit('.').next().unwrap_or(c);
                TRANSIENT_CODES.contains(&short)
            });
            let transient_status = status.is_some_and(|s| s == 429 || (500..600).contains(&s));
            if transient_code || transient_status {
                ErrorClass::Transient
            } else {
                ErrorClass::Permanent
            }
        }
    }
}

/// The [`SdkError`] variants, as far as classification cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdkErrorKind {
    /// The request was never sent (bad input, missing region or credentials).
    Construction,
    /// The request timed out.
    Timeout,
    /// Connection or I/O failure; no response.
    Dispatch,
    /// A dispatch failure the connector blames on the caller (e.g. an invalid endpoint URI).
    DispatchUser,
    /// A response arrived but could not be parsed.
    Response,
    /// The service answered with an error.
    Service,
}

/// Classifies an SDK error of any DynamoDB, SQS or SNS operation.
pub fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> ErrorClass {
    let kind = match err {
        SdkError::ConstructionFailure(_) => SdkErrorKind::Construction,
        SdkError::TimeoutError(_) => SdkErrorKind::Timeout,
        SdkError::DispatchFailure(d) if d.is_user() => SdkErrorKind::DispatchUser,
        SdkError::DispatchFailure(_) => SdkErrorKind::Dispatch,
        SdkError::ResponseError(_) => SdkErrorKind::Response,
        SdkError::ServiceError(_) => SdkErrorKind::Service,
        // `SdkError` is non-exhaustive: an unknown variant is most safely retried.
        _ => SdkErrorKind::Dispatch,
    };
    let status = err.raw_response().map(|r| r.status().as_u16());
    classify_parts(kind, err.code(), status)
}

/// Maps a failed storage call to a [`StoreError`], keeping the SDK error as its source.
pub fn store_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let class = classify(&err);
    let source: BoxError = Box::new(err);
    match class {
        ErrorClass::Transient => StoreError::Transient { operation, source },
        ErrorClass::Permanent => StoreError::Permanent { operation, source },
    }
}

/// Maps a failed queue call to a [`QueueError`], keeping the SDK error as its source.
pub fn queue_error<E>(operation: &'static str, err: SdkError<E, HttpResponse>) -> QueueError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let class = classify(&err);
    let source: BoxError = Box::new(err);
    match class {
        ErrorClass::Transient => QueueError::Transient { operation, source },
        ErrorClass::Permanent => QueueError::Permanent { operation, source },
    }
}

/// A permanent storage error from this adapter's own checks.
pub(crate) fn store_permanent(operation: &'static str, source: impl Into<BoxError>) -> StoreError {
    StoreError::Permanent {
        operation,
        source: source.into(),
    }
}

/// A permanent queue error from this adapter's own checks.
pub(crate) fn queue_permanent(operation: &'static str, source: impl Into<BoxError>) -> QueueError {
    QueueError::Permanent {
        operation,
        source: source.into(),
    }
}

/// The limits every batch send checks before its call (SQS `SendMessageBatch`, SNS
/// `PublishBatch`: the same 10 entries and 256 KiB): `Ok(false)` for an empty batch (nothing to
/// send), `Ok(true)` to send, a permanent error past either limit.
pub(crate) fn check_batch(
    operation: &'static str,
    messages: &[tradeflow_core::ports::OutgoingMessage],
) -> Result<bool, QueueError> {
    if messages.is_empty() {
        return Ok(false);
    }
    if messages.len() > tradeflow_core::ports::MAX_BATCH {
        return Err(queue_permanent(
            operation,
            AdapterError::BatchTooLarge(messages.len()),
        ));
    }
    let bytes: usize = messages
        .iter()
        .map(tradeflow_core::ports::OutgoingMessage::wire_bytes)
        .sum();
    if bytes > tradeflow_core::publish::MAX_BATCH_BYTES {
        return Err(queue_permanent(
            operation,
            AdapterError::BatchTooLong(bytes),
        ));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::error::ConnectorError;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use tradeflow_core::error::error_chain;

    #[test]
    fn throttling_and_server_errors_are_transient() {
        for code in [
            "ProvisionedThroughputExceededException",
            "ThrottlingException",
            "RequestLimitExceeded",
            "InternalServerError",
            "AWS.SimpleQueueService.RequestThrottled",
            "Throttled",
            "KMSThrottling",
        ] {
            assert_eq!(
                classify_parts(SdkErrorKind::Service, Some(code), Some(400)),
                ErrorClass::Transient,
                "{code}"
            );
        }
        for status in [429, 500, 503] {
            assert_eq!(
                classify_parts(SdkErrorKind::Service, Some("Whatever"), Some(status)),
                ErrorClass::Transient
            );
        }
    }

    #[test]
    fn validation_missing_resources_and_access_are_permanent() {
        for code in [
            "ValidationException",
            "ResourceNotFoundException",
            "AccessDeniedException",
            "AWS.SimpleQueueService.NonExistentQueue",
            "UnrecognizedClientException",
            "NotFound",
            "AuthorizationError",
            "InvalidParameter",
        ] {
            assert_eq!(
                classify_parts(SdkErrorKind::Service, Some(code), Some(400)),
                ErrorClass::Permanent,
                "{code}"
            );
        }
        assert_eq!(
            classify_parts(SdkErrorKind::Service, None, None),
            ErrorClass::Permanent
        );
    }

    #[test]
    fn sdk_variants_without_a_response_are_classified_by_kind() {
        let timeout: SdkError<PutItemError, HttpResponse> = SdkError::timeout_error("slow");
        assert_eq!(classify(&timeout), ErrorClass::Transient);
        let io: SdkError<PutItemError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io("connection reset".into()));
        assert_eq!(classify(&io), ErrorClass::Transient);
        let user: SdkError<PutItemError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::user("bad uri".into()));
        assert_eq!(classify(&user), ErrorClass::Permanent);
        let built: SdkError<PutItemError, HttpResponse> =
            SdkError::construction_failure("no region");
        assert_eq!(classify(&built), ErrorClass::Permanent);
    }

    #[test]
    fn port_errors_keep_the_sdk_error_as_source() {
        let timeout: SdkError<PutItemError, HttpResponse> = SdkError::timeout_error("slow");
        let err = store_error("PutItem", timeout);
        assert!(err.is_retryable());
        assert!(error_chain(&err).contains("slow"), "{}", error_chain(&err));
        let built: SdkError<PutItemError, HttpResponse> =
            SdkError::construction_failure("no region");
        let err = queue_error("SendMessageBatch", built);
        assert!(!err.is_retryable());
        assert!(error_chain(&err).contains("no region"));
    }
}
