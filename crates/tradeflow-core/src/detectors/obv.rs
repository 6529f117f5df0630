//! OBV family: on-balance volume diverging from price, or confirming a price move.

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Fired, Ohlcv, price, scaled, window};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObvConfig {
    /// N: both changes are measured over the last N candles.
    pub divergence_lookback: usize,
    /// Minimum price change over N candles, in %.
    pub min_price_change: f64,
    /// Minimum net volume flow (OBV change over N candles / total volume of those candles) for a
    /// divergence.
    pub min_flow_divergence: f64,
    /// Minimum net volume flow for a breakout or breakdown.
    pub min_flow_breakout: f64,
}

impl Default for ObvConfig {
    fn default() -> Self {
        ObvConfig {
            divergence_lookback: 10,
            min_price_change: 2.0,
            min_flow_divergence: 0.2,
            min_flow_breakout: 0.4,
        }
    }
}

/// Over the last N = 10 candles, the net volume flow `(OBV(t) - OBV(t-N)) / (volume of those N
/// candles)` (TA-Lib OBV; -1 = all volume on down candles, +1 = all on up candles) and the
/// price change ΔP. First matching state: flow > 0.2 while ΔP < -2 % →
/// `obv_bullish_divergence`; flow < -0.2 while ΔP > 2 % → `obv_bearish_divergence`; flow > 0.4
/// and ΔP > 2 % → `obv_bullish_breakout`; flow < -0.4 and ΔP < -2 % → `obv_bearish_breakdown`.
/// Fires on the candle where the state starts: when it held on none of the N candles before
/// (the state flickers with alternating candles; this keeps one signal per episode). The original compared
/// OBV's own % change, which depends on where the OBV series started; the flow ratio does not.
/// Confidence 55 + up to 20 for the flow beyond its threshold (full 0.3 beyond), + up to 15 for
/// |ΔP| beyond 2 % (full 5 points beyond).
#[derive(Debug, Clone, Default)]
pub struct ObvDetector {
    pub config: ObvConfig,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    BullishDivergence,
    BearishDivergence,
    BullishBreakout,
    BearishBreakdown,
}

impl ObvDetector {
    /// (state, flow, ΔP%) at the last candle of `obv`/`close`.
    fn state(&self, obv: &[Option<f64>], s: &Ohlcv, end: usize) -> Option<(State, f64, f64)> {
        let c = &self.config;
        let n = c.divergence_lookback.max(1);
        let start = end.checked_sub(n)?;
        let flow_volume: f64 = s.volume[start + 1..=end].iter().sum();
        if !(flow_volume > 0.0 && s.close[start] > 0.0) {
            return None;
        }
        let flow = (obv[end]? - obv[start]?) / flow_volume;
        let dp = (s.close[end] - s.close[start]) / s.close[start] * 100.0;
        let m = c.min_price_change;
        let state = if flow > c.min_flow_divergence && dp < -m {
            State::BullishDivergence
        } else if flow < -c.min_flow_divergence && dp > m {
            State::BearishDivergence
        } else if flow > c.min_flow_breakout && dp > m {
            State::BullishBreakout
        } else if flow < -c.min_flow_breakout && dp < -m {
            State::BearishBreakdown
        } else {
            return None;
        };
        Some((state, flow, dp))
    }
}

impl Detector for ObvDetector {
    fn name(&self) -> &'static str {
        "obv_generator"
    }

    fn lookback(&self) -> usize {
        2 * self.config.divergence_lookback + 1
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &[
            "obv_bullish_divergence",
            "obv_bearish_divergence",
            "obv_bullish_breakout",
            "obv_bearish_breakdown",
        ]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let s = Ohlcv::of(w);
        let obv = indicators::obv(&s.close, &s.volume);
        let end = w.len() - 1;
        let (state, flow, dp) = self.state(&obv, &s, end)?;
        // The state starts here: it held on none of the N candles before.
        let n = c.divergence_lookback.max(1);
        if (end.saturating_sub(n)..end).any(|p| self.state(&obv, &s, p).map(|x| x.0) == Some(state))
        {
            return None;
        }
        let (signal_type, direction, threshold) = match state {
            State::BullishDivergence => (
                "obv_bullish_divergence",
                Direction::Bullish,
                c.min_flow_divergence,
            ),
            State::BearishDivergence => (
                "obv_bearish_divergence",
                Direction::Bearish,
                c.min_flow_divergence,
            ),
            State::BullishBreakout => (
                "obv_bullish_breakout",
                Direction::Bullish,
                c.min_flow_breakout,
            ),
            State::BearishBreakdown => (
                "obv_bearish_breakdown",
                Direction::Bearish,
                c.min_flow_breakout,
            ),
        };
        let confidence = scaled(55, flow.abs() - threshold, 0.3, 20).saturating_add(scaled(
            0,
            dp.abs() - c.min_price_change,
            5.0,
            15,
        ));
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "Over {} candles the net volume flow is {:+.2} while price moved {dp:+.2}% to {}",
                c.divergence_lookback,
                flow,
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("current_obv", obv[end]?),
                ("volume_flow", flow),
                ("price_change_pct", dp),
                ("current_price", bar.close),
            ],
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn obv_fires_when_a_divergence_or_a_confirmed_move_starts() {
        // Zig-zag with equal volume (flow 0), then a slow drift down on small down-candle
        // volume and big up-candle volume (bullish divergence), then a rise with volume on
        // the up candles (breakout).
        let mut closes = zigzag(30);
        let mut volumes = vec![1_000.0; 30];
        for i in 0..12 {
            let last = *closes.last().unwrap();
            let up = i % 2 == 0;
            closes.push(if up { last + 0.2 } else { last - 1.0 });
            volumes.push(if up { 3_000.0 } else { 500.0 });
        }
        for _ in 0..12 {
            let last = *closes.last().unwrap();
            closes.push(last * 1.01);
            volumes.push(2_000.0);
        }
        let mut bars = bars_from_closes(&closes);
        for (b, v) in bars.iter_mut().zip(&volumes) {
            b.volume = *v;
        }
        let obv = ObvDetector::default();
        let got = fired(&obv, &bars);
        let types: Vec<&str> = got.iter().map(|f| f.1).collect();
        assert_eq!(
            types,
            ["obv_bullish_divergence", "obv_bullish_breakout"],
            "{got:?}"
        );
        let d = obv.detect(&bars, got[0].0).unwrap();
        assert_common(&d, &obv, &bars[got[0].0]);
        assert!(d.metadata["volume_flow"] > 0.2 && d.metadata["price_change_pct"] < -2.0);
        assert!(
            obv.detect(&bars, got[0].0 + 1).is_none(),
            "not again while it lasts"
        );
    }
}
