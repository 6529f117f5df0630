//! Higher-timeframe trend alignment family: the EMA slopes of the candle's own timeframe and of
//! higher ones agreeing.

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction, Timeframe};

use super::common::{Fired, price, scaled, window};
use super::{Detection, Detector, HigherSeries};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HtfTrendConfig {
    pub ema_period: usize,
    /// The higher timeframes that vote, as wire codes (`"60"`, `"240"`, `"D"`); for a candle,
    /// only those longer than its own timeframe are read.
    pub htf_timeframes: Vec<Timeframe>,
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
            htf_timeframes: vec![Timeframe::H1, Timeframe::H4, Timeframe::D1],
            min_alignment: 2,
            slope_threshold: 0.001,
            slope_bars: 3,
        }
    }
}

/// For the candle's own timeframe and each higher one of `htf_timeframes` (1 h, 4 h and daily by
/// default, those longer than the candle's own), the TA-Lib EMA(50) of that timeframe's closes
/// and its slope over 3 of its candles: bullish above +0.1 %, bearish below -0.1 %. When at least
/// 2 timeframes are bullish (and more than are bearish) → `htf_trend_aligned_bullish` (BULLISH);
/// at least 2 bearish → `htf_trend_aligned_bearish` (BEARISH); on the candle where the alignment
/// starts only (the original repeated it every scan, and ignored its own timeframe).
///
/// A higher timeframe is its own series, fetched by the generator
/// ([`Detector::higher_timeframes`]): of it, the last 63 candles (the EMA's seed, the slope and
/// 10 more) CLOSED at or before the evaluated candle's close, so the higher candle still forming
/// then is never read. A timeframe whose series is absent (the source has none) or whose EMA is
/// not yet defined does not vote; [`Detector::detect`] alone (no higher series) lets only the own
/// timeframe vote, which never reaches 2. Confidence 65 + up to 20 for the share of timeframes
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

/// One timeframe's vote input: its code (`None` for the candle's own when unknown) and slope.
type Vote = (Option<Timeframe>, Option<f64>);

impl HtfTrendAlignmentDetector {
    /// Closes per timeframe: the EMA's seed, the slope's candles and 10 more (the EMA is
    /// seeded with the SMA of the oldest `ema_period` of them, as TA-Lib does).
    fn samples(&self) -> usize {
        self.config.ema_period + self.config.slope_bars + 10
    }

    /// The configured timeframes longer than `own`, shortest first, each once.
    fn higher(&self, own: Timeframe) -> Vec<Timeframe> {
        let mut tfs: Vec<Timeframe> = self
            .config
            .htf_timeframes
            .iter()
            .copied()
            .filter(|tf| tf.seconds() > own.seconds())
            .collect();
        tfs.sort();
        tfs.dedup();
        tfs
    }

    /// The EMA slope over the last `samples()` of `closes` (`None`: no vote).
    fn slope(&self, closes: &[f64]) -> Option<f64> {
        let c = &self.config;
        let sampled = &closes[closes.len().saturating_sub(self.samples())..];
        let ema = indicators::ema(sampled, c.ema_period);
        let n = ema.len();
        let now = ema.get(n.checked_sub(1)?).copied()??;
        let before = ema.get(n.checked_sub(1 + c.slope_bars)?).copied()??;
        (before != 0.0 && now.is_finite()).then(|| (now - before) / before)
    }

    /// Every timeframe's slope at candle `t` of the own window `w` (closing at `close`).
    fn votes(
        &self,
        w: &[Bar],
        t: usize,
        own: Option<Timeframe>,
        higher: &[(Timeframe, Option<&HigherSeries<'_>>)],
        close: i64,
    ) -> Vec<Vote> {
        let own_closes: Vec<f64> = w[..=t].iter().map(|b| b.close).collect();
        let mut votes = vec![(own, self.slope(&own_closes))];
        for (tf, series) in higher {
            let slope = series.and_then(|s| {
                let closes: Vec<f64> = s.closed_by(close).iter().map(|b| b.close).collect();
                self.slope(&closes)
            });
            votes.push((Some(*tf), slope));
        }
        votes
    }

    fn alignment(&self, votes: &[Vote]) -> Option<(Alignment, usize, f64)> {
        let c = &self.config;
        let theta = c.slope_threshold;
        let slopes = || votes.iter().filter_map(|(_, s)| *s);
        let bull: Vec<f64> = slopes().filter(|s| *s > theta).collect();
        let bear: Vec<f64> = slopes().filter(|s| *s < -theta).collect();
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

    fn evaluate(
        &self,
        bars: &[Bar],
        index: usize,
        own: Option<Timeframe>,
        higher: &[HigherSeries<'_>],
    ) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let t = w.len() - 1;
        let bar = &w[t];
        let own_seconds = own.map_or(0, Timeframe::seconds);
        let series: Vec<(Timeframe, Option<&HigherSeries<'_>>)> = match own {
            Some(own) => self
                .higher(own)
                .into_iter()
                .map(|tf| (tf, higher.iter().find(|s| s.timeframe == tf)))
                .collect(),
            None => Vec::new(),
        };
        let votes = self.votes(w, t, own, &series, bar.time + own_seconds);
        let (alignment, count, mean_slope) = self.alignment(&votes)?;
        let before = t
            .checked_sub(1)
            .and_then(|p| self.alignment(&self.votes(w, p, own, &series, w[p].time + own_seconds)));
        if before.map(|b| b.0) == Some(alignment) {
            return None;
        }
        let total = votes.len();
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
        let names: Vec<&str> = votes
            .iter()
            .map(|(tf, _)| tf.map_or("own", Timeframe::as_str))
            .collect();
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "{count} of {total} timeframes ({}) have EMA({}) trending the same way \
                 (mean slope {:.2}% over {} candles), close {}",
                names.join(", "),
                c.ema_period,
                mean_slope * 100.0,
                c.slope_bars,
                price(bar.close)
            ),
        );
        let mut metadata: Vec<(String, f64)> = vec![
            ("alignment_count".into(), count as f64),
            ("total_timeframes".into(), total as f64),
            ("avg_slope_pct".into(), mean_slope * 100.0),
            ("ema_period".into(), c.ema_period as f64),
            ("current_price".into(), bar.close),
        ];
        for ((_, slope), name) in votes.iter().zip(&names) {
            if let Some(s) = slope {
                metadata.push((format!("slope_pct_{name}"), s * 100.0));
            }
        }
        let metadata: Vec<(&str, f64)> = metadata.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        Some(fired.at(bar, &metadata))
    }
}

impl Detector for HtfTrendAlignmentDetector {
    fn name(&self) -> &'static str {
        "htf_trend_alignment_generator"
    }

    /// The own timeframe's window (the higher ones come from their own series).
    fn lookback(&self) -> usize {
        self.samples()
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["htf_trend_aligned_bullish", "htf_trend_aligned_bearish"]
    }

    fn higher_timeframes(&self, own: Timeframe) -> Vec<(Timeframe, usize)> {
        self.higher(own)
            .into_iter()
            .map(|tf| (tf, self.samples()))
            .collect()
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        self.evaluate(bars, index, None, &[])
    }

    fn detect_with(
        &self,
        bars: &[Bar],
        index: usize,
        own: Timeframe,
        higher: &[HigherSeries<'_>],
    ) -> Option<Detection> {
        self.evaluate(bars, index, Some(own), higher)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    /// A day boundary: every timeframe's candles are aligned to it.
    const DAY: i64 = 1_699_920_000;

    /// Candles of `tf` from `closes`, the first opening at `start`.
    fn series(tf: Timeframe, start: i64, closes: &[f64]) -> Vec<Bar> {
        let mut bars = bars_from_closes(closes);
        for (k, b) in bars.iter_mut().enumerate() {
            b.time = start + k as i64 * tf.seconds();
        }
        bars
    }

    /// `flat` closes of 100, then `rising` closes growing by `step` each.
    fn flat_then_rising(flat: usize, rising: usize, step: f64) -> Vec<f64> {
        let mut closes = vec![100.0; flat];
        let mut c = 100.0;
        for _ in 0..rising {
            c *= 1.0 + step;
            closes.push(c);
        }
        closes
    }

    fn only_hourly() -> HtfTrendAlignmentDetector {
        HtfTrendAlignmentDetector {
            config: HtfTrendConfig {
                htf_timeframes: vec![Timeframe::H1],
                ..HtfTrendConfig::default()
            },
        }
    }

    /// 15-minute candles rising all along (own vote bullish once its EMA is defined), and an
    /// hourly series, starting 100 hours earlier, flat until 30 hours into the 15-minute one,
    /// then rising.
    fn rising_own_and_late_rising_hourly(step: f64) -> (Vec<Bar>, Vec<Bar>) {
        let own = series(
            Timeframe::M15,
            DAY,
            &flat_then_rising(0, 400, 0.002 * step.signum()),
        );
        let hourly = series(
            Timeframe::H1,
            DAY - 100 * 3600,
            &flat_then_rising(130, 70, step),
        );
        (own, hourly)
    }

    fn fired_with(
        htf: &HtfTrendAlignmentDetector,
        own: &[Bar],
        higher: &[HigherSeries<'_>],
    ) -> Vec<(usize, Detection)> {
        (0..own.len())
            .filter_map(|i| {
                htf.detect_with(own, i, Timeframe::M15, higher)
                    .map(|d| (i, d))
            })
            .collect()
    }

    #[test]
    fn the_higher_series_is_read_directly_and_fires_when_an_hourly_candle_closes() {
        let htf = only_hourly();
        let (own, hourly) = rising_own_and_late_rising_hourly(0.01);
        let higher = [HigherSeries {
            timeframe: Timeframe::H1,
            bars: &hourly,
        }];
        let got = fired_with(&htf, &own, &higher);
        assert_eq!(got.len(), 1, "{got:?}");
        let (i, d) = &got[0];
        assert_eq!(
            (d.signal_type, d.direction),
            ("htf_trend_aligned_bullish", Direction::Bullish)
        );
        assert_common(d, &htf, &own[*i]);
        // The hourly series turns up 30 hours in (own candle 120): the alignment starts on the
        // 15-minute candle that closes with the hourly candle that tips the vote, never between.
        assert!(*i > 120 && *i < 140, "{i}");
        let close = own[*i].close_time(Timeframe::M15);
        assert_eq!(close % 3600, 0, "fires as an hourly candle closes");
        assert_eq!(d.metadata["alignment_count"], 2.0);
        assert_eq!(d.metadata["total_timeframes"], 2.0);
        assert!(d.metadata["slope_pct_60"] > 0.1, "{d:?}");
        assert!(d.metadata["slope_pct_15"] > 0.1, "{d:?}");
        assert!(d.reasoning.contains("15, 60"), "{}", d.reasoning);
        // Without the higher series only the own timeframe votes: 1 < 2, nothing fires.
        assert!(fired_with(&htf, &own, &[]).is_empty());
        assert!(fired(&htf, &own).is_empty());
        // Another timeframe's series is not read as the hourly one.
        let wrong = [HigherSeries {
            timeframe: Timeframe::H4,
            bars: &hourly,
        }];
        assert!(fired_with(&htf, &own, &wrong).is_empty());
        // A falling market is the mirror.
        let (own, hourly) = rising_own_and_late_rising_hourly(-0.01);
        let higher = [HigherSeries {
            timeframe: Timeframe::H1,
            bars: &hourly,
        }];
        let got = fired_with(&htf, &own, &higher);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1.signal_type, "htf_trend_aligned_bearish");
    }

    #[test]
    fn a_higher_candle_still_forming_at_the_candles_close_is_never_read() {
        let htf = only_hourly();
        let (own, hourly) = rising_own_and_late_rising_hourly(0.01);
        for i in 0..own.len() {
            let close = own[i].close_time(Timeframe::M15);
            let known = &hourly[..hourly.partition_point(|b| b.close_time(Timeframe::H1) <= close)];
            let full = [HigherSeries {
                timeframe: Timeframe::H1,
                bars: &hourly,
            }];
            let past_only = [HigherSeries {
                timeframe: Timeframe::H1,
                bars: known,
            }];
            assert_eq!(
                htf.detect_with(&own, i, Timeframe::M15, &full),
                htf.detect_with(&own, i, Timeframe::M15, &past_only),
                "candle {i}"
            );
        }
    }

    #[test]
    fn the_higher_timeframes_are_the_configured_ones_above_the_candles_own() {
        let htf = HtfTrendAlignmentDetector::default();
        let n = htf.samples();
        assert_eq!(n, 63);
        assert_eq!(
            htf.higher_timeframes(Timeframe::M15),
            [(Timeframe::H1, n), (Timeframe::H4, n), (Timeframe::D1, n)]
        );
        assert_eq!(
            htf.higher_timeframes(Timeframe::H1),
            [(Timeframe::H4, n), (Timeframe::D1, n)]
        );
        assert_eq!(htf.higher_timeframes(Timeframe::H4), [(Timeframe::D1, n)]);
        assert!(htf.higher_timeframes(Timeframe::D1).is_empty());
        assert_eq!(htf.lookback(), n);
        // Configured from the wire codes.
        let d: HtfTrendConfig =
            serde_json::from_value(serde_json::json!({"htf_timeframes": ["240", "D"]})).unwrap();
        assert_eq!(d.htf_timeframes, [Timeframe::H4, Timeframe::D1]);
        assert!(
            serde_json::from_value::<HtfTrendConfig>(serde_json::json!({"htf_factors": [4]}))
                .is_err()
        );
    }

    #[test]
    fn all_three_higher_timeframes_vote_with_their_own_series() {
        let htf = HtfTrendAlignmentDetector {
            config: HtfTrendConfig {
                min_alignment: 4,
                ..HtfTrendConfig::default()
            },
        };
        let own = series(Timeframe::M15, DAY, &flat_then_rising(0, 400, 0.002));
        let rising = |tf: Timeframe| {
            // 100 candles before the own series starts, all rising.
            let start = DAY - 100 * tf.seconds();
            series(tf, start, &flat_then_rising(0, 200, 0.01))
        };
        let (h1, h4, d1) = (
            rising(Timeframe::H1),
            rising(Timeframe::H4),
            rising(Timeframe::D1),
        );
        let higher = [
            HigherSeries {
                timeframe: Timeframe::H1,
                bars: &h1,
            },
            HigherSeries {
                timeframe: Timeframe::H4,
                bars: &h4,
            },
            HigherSeries {
                timeframe: Timeframe::D1,
                bars: &d1,
            },
        ];
        let got = fired_with(&htf, &own, &higher);
        assert_eq!(got.len(), 1, "{got:?}");
        let d = &got[0].1;
        assert_eq!(d.metadata["alignment_count"], 4.0);
        // 4 of 4 is the minimum (no share bonus); mean slope above 1 % (full slope bonus).
        assert_eq!(d.confidence, 75, "{d:?}");
        for key in [
            "slope_pct_15",
            "slope_pct_60",
            "slope_pct_240",
            "slope_pct_D",
        ] {
            assert!(d.metadata.contains_key(key), "{key}: {d:?}");
        }
        // One series missing: 3 votes, never 4.
        assert!(fired_with(&htf, &own, &higher[..2]).is_empty());
    }
}
