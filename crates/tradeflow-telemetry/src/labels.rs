//! Label values from small fixed sets: anything else becomes `"other"`, so a bad input can never
//! create new series.

pub(crate) const OTHER: &str = "other";

/// `value` if it is one of `allowed`, else `"other"`.
pub(crate) fn one_of(value: &str, allowed: &[&'static str]) -> &'static str {
    allowed
        .iter()
        .copied()
        .find(|a| *a == value)
        .unwrap_or(OTHER)
}

/// `value` if it looks like a code-defined name (`snake_case`, at most 64 bytes), else `"other"`.
/// For names our own code produces (detector families, signal types of our detectors, failure
/// labels): it keeps a malformed value from reaching Prometheus.
pub(crate) fn code_name(value: &str) -> String {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        value.to_owned()
    } else {
        OTHER.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_become_other() {
        assert_eq!(one_of("timer", &["timer", "pubsub"]), "timer");
        assert_eq!(one_of("cron", &["timer", "pubsub"]), "other");
        assert_eq!(code_name("rsi_oversold"), "rsi_oversold");
        assert_eq!(code_name("AAPL"), "other");
        assert_eq!(code_name(""), "other");
        assert_eq!(code_name(&"a".repeat(65)), "other");
    }
}
