//! Configuration mistakes give a clear error, never a panic. Each case runs the SDK set-up in a
//! child process with its own environment (tests cannot change their own environment safely).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const CHILD: &str = "TRADEFLOW_CONFIG_CHILD";

/// Runs only as the child: loads the configuration as the functions do, builds both clients
/// and makes one call (against a closed local port when an endpoint is used).
#[tokio::test]
async fn child_loads_the_config_and_builds_clients() {
    if std::env::var(CHILD).is_err() {
        return;
    }
    match tradeflow_aws::load_aws_config().await {
        Ok(sdk) => {
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                sqs.get_queue_url().queue_name("q").send(),
            )
            .await;
            let _ = tokio::time::timeout(
                std::time::Duration::from_secs(2),
                dynamo.describe_table().table_name("t").send(),
            )
            .await;
            println!("CHILD-RESULT ok");
        }
        Err(e) => println!("CHILD-RESULT error: {e}"),
    }
}

/// The child's outcome line, after asserting it did not panic.
fn run_child(endpoint: &str) -> String {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "child_loads_the_config_and_builds_clients",
            "--exact",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stdout.contains("panicked") && !stderr.contains("panicked"),
        "AWS_ENDPOINT_URL={endpoint:?} panicked:\n{stdout}\n{stderr}"
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("CHILD-RESULT "))
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no result line:\n{stdout}\n{stderr}"))
}

#[test]
fn an_empty_endpoint_url_is_treated_as_unset() {
    assert_eq!(run_child(""), "ok");
    assert_eq!(run_child("   "), "ok");
}

#[test]
fn an_endpoint_url_that_is_not_a_url_is_a_clear_error() {
    for bad in ["localhost:5000", "127.0.0.1:5000", "htp//x", "http://"] {
        let result = run_child(bad);
        assert!(result.starts_with("error:"), "{bad}: {result}");
        assert!(result.contains("AWS_ENDPOINT_URL"), "{bad}: {result}");
    }
    // A closed local port is a valid URL: the calls fail, the set-up does not.
    assert_eq!(run_child("http://127.0.0.1:9"), "ok");
}
