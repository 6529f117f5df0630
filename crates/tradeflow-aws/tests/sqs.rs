//! The SQS adapter against the real emulator (`AWS_ENDPOINT_URL`). `#[ignore]`d: local/test.sh runs
//! them with `--include-ignored`, and run without an emulator they fail.
//! Each test creates its own randomly named queue.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{emulator, unique};
use tradeflow_aws::{SqsQueue, resolve_queue_url};
use tradeflow_core::error::{QueueError, error_chain};
use tradeflow_core::ports::{OutgoingMessage, QueueDepth, QueueSender};

async fn create_queue(client: &aws_sdk_sqs::Client) -> (String, String) {
    let name = unique("signals");
    let url = client
        .create_queue()
        .queue_name(&name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    (name, url)
}

fn message(i: usize) -> OutgoingMessage {
    OutgoingMessage::new(format!("m{i}"), format!("{{\"n\":{i}}}"))
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn a_batch_is_sent_and_counted_in_the_depth() {
    let config = emulator().await;
    let client = aws_sdk_sqs::Client::new(&config);
    let (name, url) = create_queue(&client).await;
    let queue = SqsQueue::new(
        client.clone(),
        resolve_queue_url(&client, &name).await.unwrap(),
    );
    assert_eq!(queue.queue_url(), url);
    assert_eq!(queue.approximate_depth().await.unwrap(), 0);

    let batch: Vec<OutgoingMessage> = (0..10).map(message).collect();
    assert_eq!(queue.send_batch(&batch).await.unwrap(), vec![]);
    assert_eq!(queue.send_batch(&batch[..3]).await.unwrap(), vec![]);
    assert_eq!(queue.approximate_depth().await.unwrap(), 13);

    let mut bodies = Vec::new();
    while bodies.len() < 13 {
        let received = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = received.messages();
        assert!(!messages.is_empty(), "queue drained early");
        bodies.extend(messages.iter().map(|m| m.body().unwrap().to_owned()));
    }
    bodies.sort();
    let mut expected: Vec<String> = batch
        .iter()
        .chain(&batch[..3])
        .map(|m| m.body.clone())
        .collect();
    expected.sort();
    assert_eq!(bodies, expected);
}

#[tokio::test]
async fn batches_outside_one_to_ten_are_handled_without_a_call() {
    // Needs no emulator: a client that could not reach anything proves no call is made.
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:1")
        .build();
    let client = aws_sdk_sqs::Client::from_conf(config);
    let queue = SqsQueue::new(client, "http://127.0.0.1:1/000000000000/none");
    assert_eq!(queue.send_batch(&[]).await.unwrap(), vec![]);
    let eleven: Vec<OutgoingMessage> = (0..11).map(message).collect();
    let err = queue.send_batch(&eleven).await.unwrap_err();
    assert!(matches!(err, QueueError::Permanent { .. }), "{err:?}");
    assert!(error_chain(&err).contains("11"));
    let too_long: Vec<OutgoingMessage> = (0..2).map(|i| sized(i, 150_000)).collect();
    let err = queue.send_batch(&too_long).await.unwrap_err();
    assert!(matches!(err, QueueError::Permanent { .. }), "{err:?}");
    assert!(
        error_chain(&err).contains("300000"),
        "{}",
        error_chain(&err)
    );
}

fn sized(i: usize, bytes: usize) -> OutgoingMessage {
    OutgoingMessage::new(format!("m{i}"), "x".repeat(bytes))
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn send_all_splits_large_messages_into_batches_the_queue_accepts() {
    let config = emulator().await;
    let client = aws_sdk_sqs::Client::new(&config);
    let (_, url) = create_queue(&client).await;
    let queue = SqsQueue::new(client, url);
    // 10 x 100 000 bytes: 1 MB in total, more than one batch may carry (256 KiB here; the
    // emulator allows 1 MiB), and one message that never fits.
    let mut messages: Vec<OutgoingMessage> = (0..10).map(|i| sized(i, 100_000)).collect();
    messages.push(sized(10, tradeflow_core::publish::MAX_MESSAGE_BYTES + 1));
    let report = tradeflow_core::publish::send_all(
        &queue,
        messages,
        tradeflow_core::publish::RetryPolicy::default(),
    )
    .await;
    assert_eq!(report.sent.len(), 10, "{:?}", report.undelivered);
    assert_eq!(report.calls, 5, "two 100 000-byte messages per call");
    assert_eq!(report.undelivered.len(), 1);
    assert_eq!(report.undelivered[0].id, "m10");
    assert!(!report.undelivered[0].retryable);
    assert_eq!(queue.approximate_depth().await.unwrap(), 10);
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn a_malformed_batch_is_a_permanent_error() {
    let config = emulator().await;
    let client = aws_sdk_sqs::Client::new(&config);
    let (_, url) = create_queue(&client).await;
    let queue = SqsQueue::new(client, url);
    // Ids must be distinct and match [A-Za-z0-9_-]{1,80}: the whole call is refused.
    for batch in [
        vec![message(0), message(0)],
        vec![OutgoingMessage::new("not valid", "{}")],
    ] {
        let err = queue.send_batch(&batch).await.unwrap_err();
        assert!(matches!(err, QueueError::Permanent { .. }), "{err:?}");
    }
    assert_eq!(
        queue.approximate_depth().await.unwrap(),
        0,
        "nothing was sent"
    );
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn a_missing_queue_is_a_permanent_error() {
    let config = emulator().await;
    let client = aws_sdk_sqs::Client::new(&config);
    let err = resolve_queue_url(&client, &unique("no-such-queue"))
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::Permanent { .. }), "{err:?}");
    assert_eq!(
        resolve_queue_url(&client, "https://sqs.eu-west-1.amazonaws.com/1/q")
            .await
            .unwrap(),
        "https://sqs.eu-west-1.amazonaws.com/1/q"
    );

    let (_, url) = create_queue(&client).await;
    let missing = SqsQueue::new(client.clone(), url.replace("signals-", "gone-"));
    let err = missing.send_batch(&[message(0)]).await.unwrap_err();
    assert!(matches!(err, QueueError::Permanent { .. }), "{err:?}");
    let err = missing.approximate_depth().await.unwrap_err();
    assert_eq!(err.kind(), "permanent");
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn the_trace_context_travels_as_message_attributes() {
    let client = aws_sdk_sqs::Client::new(&emulator().await);
    let (_, url) = create_queue(&client).await;
    let queue = SqsQueue::new(client.clone(), url.clone());
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let traced = OutgoingMessage {
        trace: Some(tradeflow_core::trace::TraceContext {
            traceparent: parent.into(),
            tracestate: Some("vendor=1".into()),
        }),
        ..message(0)
    };
    assert_eq!(
        queue.send_batch(&[traced, message(1)]).await.unwrap(),
        vec![]
    );
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let received = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .send()
            .await
            .unwrap();
        assert!(!received.messages().is_empty(), "queue drained early");
        for m in received.messages() {
            let attribute = |name: &str| {
                m.message_attributes()
                    .and_then(|a| a.get(name))
                    .and_then(|v| v.string_value())
                    .map(str::to_owned)
            };
            seen.push((
                m.body().unwrap().to_owned(),
                attribute("traceparent"),
                attribute("tracestate"),
            ));
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (
                message(0).body,
                Some(parent.to_owned()),
                Some("vendor=1".to_owned())
            ),
            (message(1).body, None, None),
        ]
    );
}
