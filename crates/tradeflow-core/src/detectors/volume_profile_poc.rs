//! Volume profile family: the close crossing the point of control (the price level with the
//! most volume) of the recent candles.

use serde::{Deserialize, Serialize};

use crate::vocab::{Bar, Direction};

use super::common::{Fired, price, scaled, window};
use super::structure::{atr, volume_ratio_at};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VolumeProfileConfig {
    pub lookback_periods: usize,
    /// Price bins of the profile between the lowest low and the highest high.
    pub bins: usize,
}

impl Default for VolumeProfileConfig {
    fn default() -> Self {
        VolumeProfileConfig {
            lookback_periods: 20,
            bins: 24,
        }
    }
}

/// The volume profile of the 20 candles before the previous one (t-21 … t-2, so both compared
/// closes are outside it): each candle's volume spread evenly over its high-low range across 24
/// price bins; the point of control (POC) is the middle of the bin with the most volume (of the
/// tied bins, when several hold it: a flat profile's POC is its middle). The original's "POC" was a volume-weighted average price. The
/// close crosses above the POC (previous close strictly below, this one strictly above) →
/// `poc_break_bullish` (BULLISH); below → `poc_break_bearish` (BEARISH). Confidence 60 + up to
/// 20 for the close's distance from the POC (full at 1 ATR(14)) + up to 15 for the candle's
/// volume (full at 2× the 20 before).
#[derive(Debug, Clone, Default)]
pub struct VolumeProfileDetector {
    pub config: VolumeProfileConfig,
}

/// The point of control of `bars`, or `None` without a price range or volume.
pub(super) fn point_of_control(bars: &[Bar], bins: usize) -> Option<f64> {
    let bins = bins.max(1);
    let lo = bars.iter().map(|b| b.low).fold(f64::INFINITY, f64::min);
    let hi = bars
        .iter()
        .map(|b| b.high)
        .fold(f64::NEG_INFINITY, f64::max);
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo {
        return None;
    }
    let width = (hi - lo) / bins as f64;
    let mut profile = vec![0.0; bins];
    let bin_of = |p: f64| (((p - lo) / width) as usize).min(bins - 1);
    for b in bars {
        if b.volume.is_nan() || b.volume <= 0.0 {
            continue;
        }
        let (first, last) = (bin_of(b.low), bin_of(b.high));
        if b.high <= b.low {
            profile[first] += b.volume;
            continue;
        }
        for (k, slot) in profile.iter_mut().enumerate().take(last + 1).skip(first) {
            let from = (lo + k as f64 * width).max(b.low);
            let to = (lo + (k + 1) as f64 * width).min(b.high);
            *slot += b.volume * ((to - from).max(0.0) / (b.high - b.low));
        }
    }
    let most = profile.iter().copied().fold(0.0, f64::max);
    if most.is_nan() || most <= 0.0 {
        return None;
    }
    // Bins within rounding of the most volume tie; the POC is the middle of the tied bins.
    let tied: Vec<f64> = (0..bins)
        .filter(|&k| profile[k] >= most * (1.0 - 1e-9))
        .map(|k| lo + (k as f64 + 0.5) * width)
        .collect();
    Some(tied.iter().sum::<f64>() / tied.len() as f64)
}

impl Detector for VolumeProfileDetector {
    fn name(&self) -> &'static str {
        "poc_break_generator"
    }

    fn lookback(&self) -> usize {
        self.config.lookback_periods + 21
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["poc_break_bullish", "poc_break_bearish"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let t = w.len() - 1;
        let end = t.checked_sub(1)?;
        let profile = &w[end.checked_sub(c.lookback_periods.max(1))?..end];
        let poc = point_of_control(profile, c.bins)?;
        let (previous, bar) = (&w[end], &w[t]);
        let (signal_type, direction, verb) = if previous.close < poc && bar.close > poc {
            ("poc_break_bullish", Direction::Bullish, "above")
        } else if previous.close > poc && bar.close < poc {
            ("poc_break_bearish", Direction::Bearish, "below")
        } else {
            return None;
        };
        let unit = atr(w)?;
        let ratio = volume_ratio_at(w, t);
        let confidence = scaled(60, (bar.close - poc).abs() / unit, 1.0, 20)
            .saturating_add(scaled(0, ratio - 1.0, 1.0, 15));
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "Close {} crossed {verb} the {}-candle volume point of control {} (from {})",
                price(bar.close),
                c.lookback_periods,
                price(poc),
                price(previous.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("poc", poc),
                ("previous_close", previous.close),
                ("distance_atr", (bar.close - poc).abs() / unit),
                ("volume_ratio", ratio),
                ("current_price", bar.close),
            ],
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::break_of_structure::tests::path;
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn the_point_of_control_is_where_the_volume_traded() {
        // 20 candles trading 99-101 with volume 100: a flat profile, POC in its middle. Then
        // one of them trades 105-106 with volume 10 000: the densest price is there.
        let mut bars = path(&[100.0; 20]);
        for b in &mut bars {
            (b.high, b.low, b.volume) = (101.0, 99.0, 100.0);
        }
        let poc = point_of_control(&bars, 24).unwrap();
        assert!((poc - 100.0).abs() < 0.1, "{poc}");
        bars[19] = Bar {
            high: 106.0,
            low: 105.0,
            volume: 10_000.0,
            ..bars[19]
        };
        let poc = point_of_control(&bars, 24).unwrap();
        assert!((105.0..=106.0).contains(&poc), "{poc}");
        assert!(point_of_control(&[], 24).is_none());
    }

    #[test]
    fn poc_break_table() {
        let poc = VolumeProfileDetector::default();
        let run = |tail: &[f64]| -> Vec<(usize, &'static str)> {
            let mut closes = vec![100.0; 25];
            closes.extend(tail);
            fired(&poc, &path(&closes))
                .iter()
                .map(|f| (f.0, f.1))
                .collect()
        };
        // The POC of the flat candles is 100: from below (99.5) to above (100.6).
        assert_eq!(run(&[99.5, 100.6]), [(26, "poc_break_bullish")]);
        assert_eq!(run(&[100.5, 99.4]), [(26, "poc_break_bearish")]);
        // From exactly at the POC: not a cross (strict on both sides).
        assert_eq!(run(&[100.0, 101.0]), []);
    }
}
