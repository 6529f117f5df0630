//! Change of character family: the close breaking the latest swing against the trend.

use serde::{Deserialize, Serialize};

use crate::vocab::Bar;

use super::break_of_structure::{
    Rule, StructureConfig, Trend, structure_break, structure_lookback,
};
use super::{Detection, Detector};

/// In a downtrend (the last two swing highs and the last two swing lows of strength 3 both
/// falling, found in the last 90 candles), the close crosses above the **latest** swing high
/// (the last lower high, at most N = 30 candles old; the original used the second-latest,
/// which fires late) → `choch_bullish`
/// (BULLISH); in an uptrend, below the latest swing low → `choch_bearish` (BEARISH).
/// Confidence 70 + up to 15 (distance beyond the level, full at 1 ATR) + up to 15 (volume,
/// full at 2×).
#[derive(Debug, Clone, Default)]
pub struct ChangeOfCharacterDetector {
    pub config: ChochConfig,
}

/// As [`StructureConfig`], with the original's 30-candle default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChochConfig {
    pub lookback_periods: usize,
    pub min_swing_strength: usize,
}

impl Default for ChochConfig {
    fn default() -> Self {
        ChochConfig {
            lookback_periods: 30,
            min_swing_strength: 3,
        }
    }
}

impl ChangeOfCharacterDetector {
    fn structure(&self) -> StructureConfig {
        StructureConfig {
            lookback_periods: self.config.lookback_periods,
            min_swing_strength: self.config.min_swing_strength,
        }
    }
}

impl Detector for ChangeOfCharacterDetector {
    fn name(&self) -> &'static str {
        "choch_generator"
    }

    fn lookback(&self) -> usize {
        structure_lookback(&self.structure())
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["choch_bullish", "choch_bearish"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let rule = Rule {
            generator: self.name(),
            bullish: "choch_bullish",
            bearish: "choch_bearish",
            bullish_in: Trend::Down,
            base_confidence: 70,
        };
        structure_break(&rule, &self.structure(), bars, index)
    }
}
