//! Deterministic identifiers: the same inputs always give the same id, so a re-scan of a candle or a
//! redelivered message never creates a new signal, execution or order.

use sha2::{Digest, Sha256};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// SHA-256 of the parts, each followed by a 0x00 byte (a separator no part contains, which keeps
/// ("ab","c") and ("a","bc") apart).
fn sha256_parts(parts: &[&str]) -> [u8; 32] {
    // Gathered on the stack and hashed in one call when it fits (ids are short), else streamed.
    let mut hasher = Sha256::new();
    let mut buf = [0u8; 256];
    let mut len = 0;
    for part in parts {
        let bytes = part.as_bytes();
        match buf.get_mut(len..len + bytes.len() + 1) {
            Some(slot) => {
                if let Some((last, head)) = slot.split_last_mut() {
                    head.copy_from_slice(bytes);
                    *last = 0;
                }
                len += bytes.len() + 1;
            }
            None => {
                hasher.update(&buf[..len]);
                len = 0;
                hasher.update(bytes);
                hasher.update([0u8]);
            }
        }
    }
    hasher.update(&buf[..len]);
    hasher.finalize().into()
}

/// Lowercase hex of `bytes` into `out` (twice as long).
fn hex_into(bytes: &[u8], out: &mut [u8]) {
    for (byte, pair) in bytes.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0x0f)];
    }
}

fn digest(prefix: &str, parts: &[&str]) -> String {
    let hash = sha256_parts(parts);
    let mut hex = [0u8; 32];
    hex_into(&hash[..16], &mut hex);
    let mut id = String::with_capacity(prefix.len() + 1 + 32);
    id.push_str(prefix);
    id.push('-');
    id.extend(hex.iter().map(|&b| char::from(b)));
    id
}

/// `sig-…` from (generator, signal type, ticker, timeframe, candle open time): one generator may
/// fire several types on one candle, and each is a signal of its own.
pub fn signal_id(
    generator: &str,
    signal_type: &str,
    ticker: &str,
    timeframe: &str,
    candle_time: i64,
) -> String {
    digest(
        "sig",
        &[
            generator,
            signal_type,
            ticker,
            timeframe,
            &candle_time.to_string(),
        ],
    )
}

/// Bytes of each half of an execution id's digest: 96 bits, 24 hex digits.
const EXECUTION_PART_BYTES: usize = 12;

/// Length of an execution id: `exe-`, then two halves of 24 hex digits.
pub const EXECUTION_ID_LEN: usize = 4 + 4 * EXECUTION_PART_BYTES;

/// One half of an execution id, as hex: [`pipeline_part`] or [`signal_part`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExecutionIdPart([u8; 2 * EXECUTION_PART_BYTES]);

impl ExecutionIdPart {
    fn of(parts: &[&str]) -> Self {
        let hash = sha256_parts(parts);
        let mut hex = [0u8; 2 * EXECUTION_PART_BYTES];
        hex_into(&hash[..EXECUTION_PART_BYTES], &mut hex);
        ExecutionIdPart(hex)
    }
}

/// The pipeline's half of its execution ids: the first 96 bits of SHA-256(pipeline id). The
/// dispatcher keeps it per indexed pipeline.
pub fn pipeline_part(pipeline_id: &str) -> ExecutionIdPart {
    ExecutionIdPart::of(&[pipeline_id])
}

/// The triggering (ticker, signal)'s half: the first 96 bits of SHA-256(ticker, signal id). The
/// dispatcher makes it once per ticker of a signal, whatever the signal's fan-out.
pub fn signal_part(ticker: &str, signal_id: &str) -> ExecutionIdPart {
    ExecutionIdPart::of(&[ticker, signal_id])
}

/// An execution id held inline (no allocation): `exe-`, the pipeline's half, the (ticker,
/// signal)'s half. Two executions share an id only if their pipelines' halves and their (ticker,
/// signal)s' halves both collide (96 bits each). Also holds the shorter legacy form
/// ([`legacy_execution_id`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExecutionId {
    bytes: [u8; EXECUTION_ID_LEN],
    len: u8,
}

impl ExecutionId {
    pub fn new(pipeline: &ExecutionIdPart, signal: &ExecutionIdPart) -> Self {
        let mut bytes = [0u8; EXECUTION_ID_LEN];
        let (prefix, rest) = bytes.split_at_mut(4);
        prefix.copy_from_slice(b"exe-");
        let (p, s) = rest.split_at_mut(2 * EXECUTION_PART_BYTES);
        p.copy_from_slice(&pipeline.0);
        s.copy_from_slice(&signal.0);
        ExecutionId {
            bytes,
            len: EXECUTION_ID_LEN as u8,
        }
    }

    /// [`legacy_execution_id`] of (pipeline, ticker, signal), inline.
    pub fn legacy(pipeline_id: &str, ticker: &str, signal_id: &str) -> Self {
        let hash = sha256_parts(&[pipeline_id, ticker, signal_id]);
        let mut bytes = [0u8; EXECUTION_ID_LEN];
        bytes[..4].copy_from_slice(b"exe-");
        hex_into(&hash[..16], &mut bytes[4..36]);
        ExecutionId { bytes, len: 36 }
    }

    pub fn as_str(&self) -> &str {
        // ASCII by construction.
        std::str::from_utf8(self.bytes.get(..usize::from(self.len)).unwrap_or_default())
            .unwrap_or_default()
    }
}

impl std::fmt::Display for ExecutionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for ExecutionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl serde::Serialize for ExecutionId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl PartialEq<str> for ExecutionId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

/// `exe-…` from (pipeline, ticker, triggering signal): [`pipeline_part`] then [`signal_part`].
/// Split in two halves so the dispatcher hashes each pipeline once (when it indexes it) and each
/// ticker of a signal once, instead of once per execution: a signal can fan out to thousands.
pub fn execution_id(pipeline_id: &str, ticker: &str, signal_id: &str) -> String {
    ExecutionId::new(&pipeline_part(pipeline_id), &signal_part(ticker, signal_id))
        .as_str()
        .to_owned()
}

/// The execution id of (pipeline, ticker, signal) as the dispatcher made it before the two-half
/// form (`exe-` and the first 128 bits of one SHA-256 over all three): requests and records made
/// then still carry it, and [`derives_execution_id`] accepts it.
pub fn legacy_execution_id(pipeline_id: &str, ticker: &str, signal_id: &str) -> String {
    ExecutionId::legacy(pipeline_id, ticker, signal_id)
        .as_str()
        .to_owned()
}

/// Whether `id` is the execution id of (pipeline, ticker, signal), in the current or the legacy
/// form.
pub fn derives_execution_id(id: &str, pipeline_id: &str, ticker: &str, signal_id: &str) -> bool {
    if id.len() == EXECUTION_ID_LEN {
        id == execution_id(pipeline_id, ticker, signal_id)
    } else {
        id == legacy_execution_id(pipeline_id, ticker, signal_id)
    }
}

/// `ord-…`: at most one paper order per execution.
pub fn order_id(execution_id: &str) -> String {
    digest("ord", &[execution_id])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Parts too long for the stack buffer are streamed: the same bytes, the same id.
    #[test]
    fn long_parts_hash_as_short_ones_would() {
        let long = "p".repeat(300);
        let mut hasher = Sha256::new();
        for part in [long.as_str(), "AAPL", "s1"] {
            hasher.update(part.as_bytes());
            hasher.update([0u8]);
        }
        let want: String = hasher.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            legacy_execution_id(&long, "AAPL", "s1"),
            format!("exe-{want}")
        );
        let mid = "q".repeat(250);
        let mut hasher = Sha256::new();
        for part in ["AAPL", mid.as_str(), "s1"] {
            hasher.update(part.as_bytes());
            hasher.update([0u8]);
        }
        let want: String = hasher.finalize()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            legacy_execution_id("AAPL", &mid, "s1"),
            format!("exe-{want}")
        );
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let id = |generator, signal_type, ticker, timeframe, time| {
            signal_id(generator, signal_type, ticker, timeframe, time)
        };
        let a = id("rsi_generator", "rsi_oversold", "AAPL", "5", 1_700_000_000);
        assert_eq!(
            a,
            id("rsi_generator", "rsi_oversold", "AAPL", "5", 1_700_000_000)
        );
        assert_ne!(
            a,
            id("rsi_generator", "rsi_oversold", "AAPL", "5", 1_700_000_300)
        );
        assert_ne!(
            a,
            id("rsi_generator", "rsi_oversold", "AAPL", "15", 1_700_000_000)
        );
        assert_ne!(
            a,
            id(
                "rsi_generator",
                "rsi_overbought",
                "AAPL",
                "5",
                1_700_000_000
            )
        );
        assert_ne!(
            a,
            id("rsi_generator", "rsi_oversold", "MSFT", "5", 1_700_000_000)
        );
        assert_ne!(
            a,
            id("bb_generator", "rsi_oversold", "AAPL", "5", 1_700_000_000)
        );
        assert!(a.starts_with("sig-") && a.len() == 36);
        assert_ne!(execution_id("ab", "c", "s"), execution_id("a", "bc", "s"));
        assert!(order_id("exe-1").starts_with("ord-"));
    }

    // Golden values: these ids are stored (executions, orders tables) and outlive a deploy, so a
    // change of derivation must show up here. The expected strings were computed once outside
    // this code, following the derivation documented in docs/data-model.md (SHA-256 over each
    // part's UTF-8 bytes followed by a 0x00 byte; the prefix, `-`, then the first 16 bytes of
    // the digest in lowercase hex), with
    //   python3 -c 'import hashlib; print(hashlib.sha256(b"".join(p.encode() + b"\0" for p in
    //     ["p1", "AAPL", "0b0f5f2e-1111-4c8e-9b61-5f6f5c1f1a01"])).hexdigest()[:32])'
    // and cross-checked with `printf ... | sha256sum`.

    /// Issue 8, item 9: the same generator can fire two types on one candle (e.g. a cross and a
    /// level); they are two signals and must not share an id (the execution ids derive from it,
    /// so the second signal's executions would be taken for redeliveries of the first's).
    #[test]
    fn signals_differing_only_in_type_get_different_ids() {
        use crate::detectors::Detection;
        use crate::generate::to_signal;
        use crate::vocab::{Direction, Ticker, Timeframe};

        let detection = |signal_type: &'static str| Detection {
            generator: "macd_generator",
            signal_type,
            direction: Direction::Bullish,
            confidence: 80,
            reasoning: "test".into(),
            candle_time: 1_700_000_000,
            metadata: Default::default(),
        };
        let ticker = Ticker::parse("AAPL").unwrap();
        let a = to_signal(&detection("macd_bullish"), &ticker, Timeframe::M5).unwrap();
        let b = to_signal(&detection("macd_cross"), &ticker, Timeframe::M5).unwrap();
        assert_ne!(a.signal_id, b.signal_id);
    }

    #[test]
    fn signal_id_golden_values() {
        // Parts: generator, signal type, ticker, timeframe, candle time. (Before the signal type
        // was a part, ("rsi_generator", "AAPL", "5", 1700000000) gave
        // sig-98e21cd8b5e9d702f9ff7a7f9bdb2887.)
        assert_eq!(
            signal_id("rsi_generator", "rsi_oversold", "AAPL", "5", 1_700_000_000),
            "sig-73206b7aa05d4197701da31d7ff4dc46"
        );
        assert_eq!(
            signal_id(
                "rsi_generator",
                "rsi_overbought",
                "AAPL",
                "5",
                1_700_000_000
            ),
            "sig-dbafa648087d547da36bc946d6ba8a3a"
        );
    }

    #[test]
    fn execution_id_golden_values() {
        // A signal id of the old system's UUID form, and one of our own. Computed outside this
        // code with
        //   python3 -c 'import hashlib; h = lambda *p: hashlib.sha256(b"".join(x.encode() + b"\0"
        //     for x in p)).hexdigest()[:24]; print("exe-" + h("p1") + h("AAPL", "0b0f…1a01"))'
        assert_eq!(
            execution_id("p1", "AAPL", "0b0f5f2e-1111-4c8e-9b61-5f6f5c1f1a01"),
            "exe-38406554b5aa0ddb9fe04225c491bdf25aafd38735554dfb"
        );
        assert_eq!(
            execution_id("p-rsi", "AAPL", "sig-73206b7aa05d4197701da31d7ff4dc46"),
            "exe-11c9b2b98911ba0e9c20130ffa0fdc8bf2667736d5834d57"
        );
        // The form before the two halves, still accepted from requests and records made then.
        assert_eq!(
            legacy_execution_id("p1", "AAPL", "0b0f5f2e-1111-4c8e-9b61-5f6f5c1f1a01"),
            "exe-34936007126875170f02ced65a9f249c"
        );
        assert_eq!(
            legacy_execution_id("p-rsi", "AAPL", "sig-73206b7aa05d4197701da31d7ff4dc46"),
            "exe-872e810f1170728d1decc64d466a9711"
        );
    }

    #[test]
    fn both_forms_derive_and_nothing_else_does() {
        let (p, t, s) = ("p1", "AAPL", "sig-1");
        assert!(derives_execution_id(&execution_id(p, t, s), p, t, s));
        assert!(derives_execution_id(&legacy_execution_id(p, t, s), p, t, s));
        for (p2, t2, s2) in [("p2", t, s), (p, "MSFT", s), (p, t, "sig-2")] {
            assert!(!derives_execution_id(&execution_id(p2, t2, s2), p, t, s));
            assert!(!derives_execution_id(
                &legacy_execution_id(p2, t2, s2),
                p,
                t,
                s
            ));
        }
        assert!(!derives_execution_id("exe-other", p, t, s));
        assert!(!derives_execution_id("", p, t, s));
        assert_eq!(
            ExecutionId::legacy(p, t, s).as_str(),
            digest("exe", &[p, t, s])
        );
        // The halves are what the dispatcher caches: the same id, no allocation.
        let fast = ExecutionId::new(&pipeline_part(p), &signal_part(t, s));
        assert_eq!(fast.as_str(), execution_id(p, t, s));
        assert_eq!(fast.as_str().len(), EXECUTION_ID_LEN);
        assert_eq!(serde_json::to_string(&fast).unwrap(), format!("\"{fast}\""));
        // The ticker belongs to the signal's half: moving bytes between parts changes the id.
        assert_ne!(execution_id("ab", "c", "s"), execution_id("a", "bc", "s"));
        assert_ne!(execution_id("p", "AB", "Cs"), execution_id("p", "ABC", "s"));
    }

    #[test]
    fn order_id_golden_values() {
        assert_eq!(
            order_id("exe-34936007126875170f02ced65a9f249c"),
            "ord-f0ec7f8194e93ca2a8bb1df50a643b13"
        );
        assert_eq!(
            order_id("exe-872e810f1170728d1decc64d466a9711"),
            "ord-674eb081d583de281bf841b4332abc44"
        );
    }
}
