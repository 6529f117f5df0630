//! MFI family: the Money Flow Index entering its oversold or overbought zone.

use serde::{Deserialize, Serialize};

use crate::indicators;
use crate::vocab::{Bar, Direction};

use super::common::{Fired, Ohlcv, Pair, ZoneEvent, ZoneTiming, price, scaled, window, zone_event};
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MfiConfig {
    pub timeperiod: usize,
    pub overbought: f64,
    pub oversold: f64,
    pub timing: ZoneTiming,
}

impl Default for MfiConfig {
    fn default() -> Self {
        MfiConfig {
            timeperiod: 14,
            overbought: 80.0,
            oversold: 20.0,
            timing: ZoneTiming::Entry,
        }
    }
}

/// TA-Lib MFI(14) crosses below 20 → `mfi_oversold` (BULLISH); above 80 → `mfi_overbought`
/// (BEARISH); with [`ZoneTiming::Exit`], when it comes back out. Confidence 60 + 3 per point
/// beyond the level (the stay's extreme on exit), at most 90.
#[derive(Debug, Clone, Default)]
pub struct MfiDetector {
    pub config: MfiConfig,
}

impl Detector for MfiDetector {
    fn name(&self) -> &'static str {
        "mfi_generator"
    }

    fn lookback(&self) -> usize {
        self.config.timeperiod + 60
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["mfi_oversold", "mfi_overbought"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let c = &self.config;
        let w = window(bars, index, self.lookback())?;
        let bar = w.last()?;
        let s = Ohlcv::of(w);
        let mfi = indicators::mfi(&s.high, &s.low, &s.close, &s.volume, c.timeperiod);
        let pair = Pair::last_two(&mfi)?;
        let (signal_type, direction, depth, threshold) =
            match zone_event(&mfi, c.oversold, c.overbought, c.timing)? {
                ZoneEvent::Low { depth } => ("mfi_oversold", Direction::Bullish, depth, c.oversold),
                ZoneEvent::High { depth } => {
                    ("mfi_overbought", Direction::Bearish, depth, c.overbought)
                }
            };
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            scaled(60, depth, 10.0, 30),
            format!(
                "MFI({}) crossed {threshold} (from {:.2} to {:.2}) at close {}",
                c.timeperiod,
                pair.previous,
                pair.current,
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("current_mfi", pair.current),
                ("previous_mfi", pair.previous),
                ("threshold", threshold),
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
    fn mfi_fires_on_entering_each_zone_once() {
        // Zig-zag (MFI ≈ 50), 10 falling candles (all money flow negative: MFI drops below
        // 20), zig-zag again, 10 rising candles (above 80).
        let mut closes = zigzag(40);
        closes.extend((1..=10).map(|i| 100.0 - f64::from(i)));
        closes.extend(zigzag(40).iter().map(|x| x - 10.0));
        closes.extend((1..=10).map(|i| 91.0 + f64::from(i)));
        let bars = bars_from_closes(&closes);
        let mfi = MfiDetector::default();
        let got = fired(&mfi, &bars);
        assert_eq!(
            got.iter().map(|f| (f.1, f.2)).collect::<Vec<_>>(),
            [
                ("mfi_oversold", Direction::Bullish),
                ("mfi_overbought", Direction::Bearish)
            ],
            "{got:?}"
        );
        assert!((40..50).contains(&got[0].0) && (90..100).contains(&got[1].0));
        let d = mfi.detect(&bars, got[0].0).unwrap();
        assert_common(&d, &mfi, &bars[got[0].0]);
        assert!(d.metadata["current_mfi"] < 20.0 && d.metadata["previous_mfi"] >= 20.0);
    }
}
