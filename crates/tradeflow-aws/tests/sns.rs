//! The SNS adapter against the real emulator (`AWS_ENDPOINT_URL`): what is published to a topic
//! reaches a queue subscribed with raw delivery byte for byte, as the signals queue receives the
//! generator's signals. `#[ignore]`d like the other emulator tests; each test creates its own
//! topic and queue.
//!
//! Not covered here: a per-entry failure of PublishBatch on the emulator. moto fails an entry
//! only for a message over 256 KiB (which the adapter refuses before calling, as SNS would the
//! whole batch) or a FIFO parameter the adapter never sets; the mapping of `Failed` entries is
//! unit-tested in `src/sns.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{emulator, unique};
use tradeflow_aws::SnsTopic;
use tradeflow_core::error::{QueueError, error_chain};
use tradeflow_core::ports::{OutgoingMessage, QueueSender};

fn message(i: usize) -> OutgoingMessage {
    OutgoingMessage::new(
        format!("m{i}"),
        format!("{{\"signal_id\":\"s-{i}\",\"n\":{i}}}"),
    )
}

/// A topic and a queue subscribed to it with raw delivery: (topic ARN, queue URL).
async fn topic_with_raw_queue(config: &aws_config::SdkConfig) -> (String, String) {
    let sns = aws_sdk_sns::Client::new(config);
    let sqs = aws_sdk_sqs::Client::new(config);
    let topic_arn = sns
        .create_topic()
        .name(unique("signals-topic"))
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let url = sqs
        .create_queue()
        .queue_name(unique("signals"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()
        .remove(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .unwrap();
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", "true")
        .send()
        .await
        .unwrap();
    (topic_arn, url)
}

async fn drain(sqs: &aws_sdk_sqs::Client, url: &str, n: usize) -> Vec<String> {
    let mut bodies = Vec::new();
    while bodies.len() < n {
        let received = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = received.messages();
        assert!(!messages.is_empty(), "queue drained early: {bodies:?}");
        bodies.extend(messages.iter().map(|m| m.body().unwrap().to_owned()));
    }
    bodies.sort();
    bodies
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn a_batch_published_to_the_topic_reaches_a_raw_subscriber_unchanged() {
    let config = emulator().await;
    let (topic_arn, url) = topic_with_raw_queue(&config).await;
    let topic = SnsTopic::new(aws_sdk_sns::Client::new(&config), topic_arn.clone());
    assert_eq!(topic.topic_arn(), topic_arn);

    let batch: Vec<OutgoingMessage> = (0..10).map(message).collect();
    assert_eq!(topic.send_batch(&batch).await.unwrap(), vec![]);
    assert_eq!(topic.send_batch(&batch[..3]).await.unwrap(), vec![]);

    let sqs = aws_sdk_sqs::Client::new(&config);
    let bodies = drain(&sqs, &url, 13).await;
    // Raw delivery: the bodies as published, no SNS envelope around them.
    let mut expected: Vec<String> = batch
        .iter()
        .chain(&batch[..3])
        .map(|m| m.body.clone())
        .collect();
    expected.sort();
    assert_eq!(bodies, expected);
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn send_all_splits_large_messages_into_batches_the_topic_accepts() {
    let config = emulator().await;
    let (topic_arn, url) = topic_with_raw_queue(&config).await;
    let topic = SnsTopic::new(aws_sdk_sns::Client::new(&config), topic_arn);
    let sized = |i: usize, bytes: usize| OutgoingMessage::new(format!("m{i}"), "x".repeat(bytes));
    let mut messages: Vec<OutgoingMessage> = (0..4).map(|i| sized(i, 100_000)).collect();
    messages.push(sized(4, tradeflow_core::publish::MAX_MESSAGE_BYTES + 1));
    let report = tradeflow_core::publish::send_all(
        &topic,
        messages,
        tradeflow_core::publish::RetryPolicy::default(),
    )
    .await;
    assert_eq!(report.sent.len(), 4, "{:?}", report.undelivered);
    assert_eq!(report.calls, 2, "two 100 000-byte messages per call");
    assert_eq!(report.undelivered.len(), 1);
    assert_eq!(report.undelivered[0].id, "m4");
    assert!(!report.undelivered[0].retryable);
    let sqs = aws_sdk_sqs::Client::new(&config);
    assert_eq!(drain(&sqs, &url, 4).await.len(), 4);
}

#[tokio::test]
#[ignore = "needs the AWS emulator (AWS_ENDPOINT_URL); local/test.sh runs it"]
async fn a_missing_topic_and_a_malformed_batch_are_permanent_errors() {
    let config = emulator().await;
    let client = aws_sdk_sns::Client::new(&config);
    let missing = SnsTopic::new(
        client.clone(),
        format!("arn:aws:sns:us-east-1:123456789012:{}", unique("gone")),
    );
    let err = missing.send_batch(&[message(0)]).await.unwrap_err();
    assert!(matches!(err, QueueError::Permanent { .. }), "{err:?}");
    assert!(error_chain(&err).contains("PublishBatch"), "{err:?}");

    let (topic_arn, _) = topic_with_raw_queue(&config).await;
    let topic = SnsTopic::new(client, topic_arn);
    // Ids must be distinct: the whole call is refused.
    let err = topic
        .send_batch(&[message(0), message(0)])
        .await
        .unwrap_err();
    assert!(matches!(err, QueueError::Permanent { .. }), "{err:?}");
}

#[tokio::test]
async fn batches_outside_one_to_ten_are_handled_without_a_call() {
    // Needs no emulator: a client that could not reach anything proves no call is made.
    let config = aws_sdk_sns::Config::builder()
        .behavior_version(aws_sdk_sns::config::BehaviorVersion::latest())
        .region(aws_sdk_sns::config::Region::new("us-east-1"))
        .endpoint_url("http://127.0.0.1:1")
        .build();
    let topic = SnsTopic::new(
        aws_sdk_sns::Client::from_conf(config),
        "arn:aws:sns:us-east-1:000000000000:none",
    );
    assert_eq!(topic.send_batch(&[]).await.unwrap(), vec![]);
    let eleven: Vec<OutgoingMessage> = (0..11).map(message).collect();
    let err = topic.send_batch(&eleven).await.unwrap_err();
    assert!(matches!(err, QueueError::Permanent { .. }), "{err:?}");
    assert!(error_chain(&err).contains("11"));
    let too_long: Vec<OutgoingMessage> = (0..2)
        .map(|i| OutgoingMessage::new(format!("m{i}"), "x".repeat(150_000)))
        .collect();
    let err = topic.send_batch(&too_long).await.unwrap_err();
    assert!(matches!(err, QueueError::Permanent { .. }), "{err:?}");
    assert!(
        error_chain(&err).contains("300000"),
        "{}",
        error_chain(&err)
    );
}
