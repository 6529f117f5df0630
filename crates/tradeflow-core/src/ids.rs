//! Deterministic identifiers: the same inputs always give the same id, so a re-scan of a candle or a
//! redelivered message never creates a new signal, execution or order.

use sha2::{Digest, Sha256};

fn digest(prefix: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        // A separator that cannot occur in any part keeps ("ab","c") and ("a","bc") apart.
        hasher.update([0u8]);
    }
    let hash = hasher.finalize();
    let mut id = String::with_capacity(prefix.len() + 1 + 32);
    id.push_str(prefix);
    id.push('-');
    for byte in hash.iter().take(16) {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// `sig-…` from (generator, ticker, timeframe, candle open time).
pub fn signal_id(generator: &str, ticker: &str, timeframe: &str, candle_time: i64) -> String {
    digest(
        "sig",
        &[generator, ticker, timeframe, &candle_time.to_string()],
    )
}

/// `exe-…` from (pipeline, ticker, triggering signal).
pub fn execution_id(pipeline_id: &str, ticker: &str, signal_id: &str) -> String {
    digest("exe", &[pipeline_id, ticker, signal_id])
}

/// `ord-…`: at most one paper order per execution.
pub fn order_id(execution_id: &str) -> String {
    digest("ord", &[execution_id])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let a = signal_id("rsi_generator", "AAPL", "5", 1_700_000_000);
        assert_eq!(a, signal_id("rsi_generator", "AAPL", "5", 1_700_000_000));
        assert_ne!(a, signal_id("rsi_generator", "AAPL", "5", 1_700_000_300));
        assert_ne!(a, signal_id("rsi_generator", "AAPL", "15", 1_700_000_000));
        assert!(a.starts_with("sig-") && a.len() == 36);
        assert_ne!(execution_id("ab", "c", "s"), execution_id("a", "bc", "s"));
        assert!(order_id("exe-1").starts_with("ord-"));
    }
}
