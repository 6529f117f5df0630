//! Accumulation/distribution family: the slope of the Chaikin A/D line, normalised by volume.

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Fired, Ohlcv, Pair, price, window};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccumulationDistributionConfig {
    pub lookback_periods: usize,
    /// Threshold on the normalised slope (between -1 and 1).
    pub min_slope_threshold: f64,
}

impl Default for AccumulationDistributionConfig {
    fn default() -> Self {
        AccumulationDistributionConfig {
            lookback_periods: 14,
            min_slope_threshold: 0.25,
        }
    }
}

/// s = (AD(t) - AD(t-N)) / (volume of the last N = 14 candles), with TA-Lib's AD line: the
/// volume-weighted mean of the candles' close location value, between -1 (every candle closed
/// on its low) and +1 (on its high). s crosses above 0.25 → `accumulation_signal` (BULLISH);
/// below -0.25 → `distribution_signal` (BEARISH). The original divided the A/D change by N and
/// by the mean price (a unit of volume, so nearly every scan fired) and its threshold 0.001 has
/// no meaning on the normalised slope: the default here is 0.25. Confidence 55 + up to 25 for
/// |s| beyond the threshold (full 0.4 beyond), + 10 when the price moved the same way over the
/// N candles.
#[derive(Debug, Clone, Default)]
pub struct AccumulationDistributionDetector {
    pub config: AccumulationDistributionConfig,
}

impl AccumulationDistributionDetector {
    fn slope(&self, ad: &[Option<f64>], volume: &[f64], end: usize) -> Option<f64> {
        let n = self.config.lookback_periods.max(1);
        let start = end.checked_sub(n)?;
        let total: f64 = volume[start + 1..=end].iter().sum();
        if total.is_nan() || total <= 0.0 {
            return None;
        }
        Some((ad[end]? - ad[start]?) / total)
    }
}

impl Detector for AccumulationDistributionDetector {
    fn name(&self) -> &'static str {
        "accumulation_distribution_generator"
    }

    fn lookback(&self) -> usize {
        self.config.lookback_periods + 1
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["accumulation_signal", "distribution_signal"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let s = Ohlcv::of(w);
        let ad = indicators::ad(&s.high, &s.low, &s.close, &s.volume);
        let end = w.len() - 1;
        let slope = Pair {
            previous: self.slope(&ad, &s.volume, end.checked_sub(1)?)?,
            current: self.slope(&ad, &s.volume, end)?,
        };
        let theta = c.min_slope_threshold;
        let price_move = bar.close - s.close[end - c.lookback_periods.max(1)];
        let (signal_type, direction, agrees) = if slope.crossed_above(Pair::level(theta)) {
            ("accumulation_signal", Direction::Bullish, price_move > 0.0)
        } else if slope.crossed_below(Pair::level(-theta)) {
            ("distribution_signal", Direction::Bearish, price_move < 0.0)
        } else {
            return None;
        };
        let confidence = super::common::scaled(55, slope.current.abs() - theta, 0.4, 25)
            .saturating_add(if agrees { 10 } else { 0 });
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "A/D line slope over {} candles is {:+.2} of their volume (threshold {theta}) at \
                 close {}",
                c.lookback_periods,
                slope.current,
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("ad_line", ad[end]?),
                ("normalized_slope", slope.current),
                ("lookback_periods", c.lookback_periods as f64),
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
    fn accumulation_fires_when_closes_keep_landing_near_the_highs() {
        // Candles closing mid-range (slope 0), then candles closing on their highs (the slope
        // climbs past 0.25 within a few candles), then closing on their lows.
        let mut bars = bars_from_closes(&vec![100.0; 80]);
        for (i, b) in bars.iter_mut().enumerate() {
            b.high = 101.0;
            b.low = 99.0;
            b.open = 100.0;
            b.close = match i {
                0..30 => 100.0,
                30..50 => 101.0,
                _ => 99.0,
            };
        }
        let ad = AccumulationDistributionDetector::default();
        let got = fired(&ad, &bars);
        // s after k candles on the high: k/14 → above 0.25 at k = 4 (index 33).
        assert_eq!(
            got,
            [
                (33, "accumulation_signal", Direction::Bullish),
                (got[1].0, "distribution_signal", Direction::Bearish)
            ]
        );
        assert!((50..70).contains(&got[1].0));
        let d = ad.detect(&bars, 33).unwrap();
        assert_common(&d, &ad, &bars[33]);
        assert!((d.metadata["normalized_slope"] - 4.0 / 14.0).abs() < 1e-12);
    }
}
