//! Higher-timeframe trend alignment family: the EMA slopes of the candle's own timeframe and of
//! higher ones agreeing.

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Fired, price, scaled, window};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HtfTrendConfig {
    pub ema_period: usize,
    /// The higher timeframes, as multiples of the candle's own (for 15-minute candles, 4 and
    /// 16 are 1 hour and 4 hours).
    pub htf_factors: Vec<usize>,
    /// How many of the timeframes (own one included) must agree.
    pub min_alignment: usize,
    /// A timeframe is bullish when its EMA rose by more than this fraction over `slope_bars`
    /// of its candles (bearish when it fell by more).
    pub slope_threshold: f64,
    pub slope_bars: usize,
}

impl Default for HtfTrendConfig {
    fn default() -> Self {
        HtfTrendConfig {
            ema_period: 50,
            htf_factors: vec![4, 16],
            min_alignment: 2,
            slope_threshold: 0.001,
            slope_bars: 3,
        }
    }
}

/// For the candle's own timeframe and each higher one (4× and 16× by default), the TA-Lib
/// EMA(50) of that timeframe's closes and its slope over 3 of its candles: bullish above
/// +0.1 %, bearish below -0.1 %. When at least 2 timeframes are bullish (and more than are
/// bearish) → `htf_trend_aligned_bullish` (BULLISH); at least 2 bearish →
/// `htf_trend_aligned_bearish` (BEARISH); on the candle where the alignment starts only (the
/// original repeated it every scan, and ignored its own timeframe). Until the generator feeds
/// the higher series directly, a higher timeframe is the rolling aggregate of the candle's own
/// series: its closes are every f-th close counted back from this candle (63 of them per
/// timeframe: the EMA's seed, the slope and 10 more, so the window is 16 × 63 = 1008 candles).
/// A timeframe whose EMA is not yet defined does not vote. Confidence 65 + up to 20 for the share of timeframes
/// agreeing beyond the minimum (full when all do) + up to 10 for the mean slope of the agreeing
/// ones (full at 1 %).
#[derive(Debug, Clone, Default)]
pub struct HtfTrendAlignmentDetector {
    pub config: HtfTrendConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Alignment {
    Bullish,
    Bearish,
}

impl HtfTrendAlignmentDetector {
    /// Closes per timeframe: the EMA's seed, the slope's candles and 10 more (the EMA is
    /// seeded with the SMA of the oldest `ema_period` of them, as TA-Lib does).
    fn samples(&self) -> usize {
        self.config.ema_period + self.config.slope_bars + 10
    }

    fn factors(&self) -> Vec<usize> {
        let mut f = vec![1];
        f.extend(self.config.htf_factors.iter().copied().filter(|x| *x > 1));
        f
    }

    /// The slope of each timeframe's EMA at candle `t` of `closes` (`None`: no vote).
    fn slopes(&self, closes: &[f64], t: usize) -> Vec<Option<f64>> {
        let c = &self.config;
        let samples = self.samples();
        self.factors()
            .into_iter()
            .map(|f| {
                let mut sampled: Vec<f64> = (0..samples)
                    .map_while(|k| t.checked_sub(k * f).map(|i| closes[i]))
                    .collect();
                sampled.reverse();
                let ema = indicators::ema(&sampled, c.ema_period);
                let n = ema.len();
                let now = ema.get(n.checked_sub(1)?).copied()??;
                let before = ema.get(n.checked_sub(1 + c.slope_bars)?).copied()??;
                (before != 0.0).then(|| (now - before) / before)
            })
            .collect()
    }

    fn alignment(&self, slopes: &[Option<f64>]) -> Option<(Alignment, usize, f64)> {
        let c = &self.config;
        let theta = c.slope_threshold;
        let bull: Vec<f64> = slopes
            .iter()
            .flatten()
            .copied()
            .filter(|s| *s > theta)
            .collect();
        let bear: Vec<f64> = slopes
            .iter()
            .flatten()
            .copied()
            .filter(|s| *s < -theta)
            .collect();
        let mean = |v: &[f64]| v.iter().map(|x| x.abs()).sum::<f64>() / v.len().max(1) as f64;
        let min = c.min_alignment.max(1);
        if bull.len() >= min && bull.len() > bear.len() {
            Some((Alignment::Bullish, bull.len(), mean(&bull)))
        } else if bear.len() >= min && bear.len() > bull.len() {
            Some((Alignment::Bearish, bear.len(), mean(&bear)))
        } else {
            None
        }
    }
}

impl Detector for HtfTrendAlignmentDetector {
    fn name(&self) -> &'static str {
        "htf_trend_alignment_generator"
    }

    fn lookback(&self) -> usize {
        let max_factor = self.factors().into_iter().max().unwrap_or(1);
        max_factor * self.samples()
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["htf_trend_aligned_bullish", "htf_trend_aligned_bearish"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let t = w.len() - 1;
        let bar = &w[t];
        let closes: Vec<f64> = w.iter().map(|b| b.close).collect();
        let slopes = self.slopes(&closes, t);
        let (alignment, count, mean_slope) = self.alignment(&slopes)?;
        let before = t
            .checked_sub(1)
            .and_then(|p| self.alignment(&self.slopes(&closes, p)));
        if before.map(|b| b.0) == Some(alignment) {
            return None;
        }
        let total = slopes.len();
        let (signal_type, direction) = match alignment {
            Alignment::Bullish => ("htf_trend_aligned_bullish", Direction::Bullish),
            Alignment::Bearish => ("htf_trend_aligned_bearish", Direction::Bearish),
        };
        let min = c.min_alignment.max(1);
        let confidence = scaled(
            65,
            (count - min) as f64,
            (total.max(min + 1) - min) as f64,
            20,
        )
        .saturating_add(scaled(0, mean_slope * 100.0, 1.0, 10));
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "{count} of {total} timeframes (1x, {}) have EMA({}) trending the same way \
                 (mean slope {:.2}% over {} candles), close {}",
                c.htf_factors
                    .iter()
                    .map(|f| format!("{f}x"))
                    .collect::<Vec<_>>()
                    .join(", "),
                c.ema_period,
                mean_slope * 100.0,
                c.slope_bars,
                price(bar.close)
            ),
        );
        let mut metadata: Vec<(&str, f64)> = vec![
            ("alignment_count", count as f64),
            ("total_timeframes", total as f64),
            ("avg_slope_pct", mean_slope * 100.0),
            ("ema_period", c.ema_period as f64),
            ("current_price", bar.close),
        ];
        const KEYS: [&str; 4] = [
            "slope_pct_1x",
            "slope_pct_htf1",
            "slope_pct_htf2",
            "slope_pct_htf3",
        ];
        for (key, slope) in KEYS.iter().zip(&slopes) {
            if let Some(s) = slope {
                metadata.push((key, s * 100.0));
            }
        }
        Some(fired.at(bar, &metadata))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::break_of_structure::tests::path;
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn alignment_fires_once_when_enough_timeframes_agree() {
        let htf = HtfTrendAlignmentDetector::default();
        // Flat for 1100 candles (every EMA flat), then a steady rise of 0.2 % per candle: the
        // own timeframe's EMA(50) turns up first (1 vote), then the 4× one: aligned (2 of 3).
        let mut closes = vec![100.0; 1100];
        let mut c = 100.0;
        for _ in 0..300 {
            c *= 1.002;
            closes.push(c);
        }
        let bars = path(&closes);
        let got = fired(&htf, &bars);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            (got[0].1, got[0].2),
            ("htf_trend_aligned_bullish", Direction::Bullish)
        );
        assert!(got[0].0 > 1100 && got[0].0 < 1200, "{got:?}");
        let d = htf.detect(&bars, got[0].0).unwrap();
        assert_common(&d, &htf, &bars[got[0].0]);
        assert_eq!(d.metadata["alignment_count"], 2.0);
        // Needing all three delays it.
        let all = HtfTrendAlignmentDetector {
            config: HtfTrendConfig {
                min_alignment: 3,
                ..HtfTrendConfig::default()
            },
        };
        let later = fired(&all, &bars);
        assert_eq!(later.len(), 1);
        assert!(later[0].0 > got[0].0);
        // A falling market is the mirror.
        let down: Vec<f64> = closes.iter().map(|x| 10_000.0 / x).collect();
        let got = fired(&htf, &path(&down));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, "htf_trend_aligned_bearish");
    }
}
