//! Death cross family: SMA(50) crossing below SMA(200) (the golden cross's mirror).

use crate::vocab::Bar;

use super::common::Cross;
use super::golden_cross::{SmaCrossConfig, sma_cross};
use super::{Detection, Detector};

/// TA-Lib SMA(50) crosses below SMA(200) → `death_cross` (BEARISH), on the crossing candle
/// only. Confidence as [`super::GoldenCrossDetector`], mirrored.
#[derive(Debug, Clone, Default)]
pub struct DeathCrossDetector {
    pub config: SmaCrossConfig,
}

impl Detector for DeathCrossDetector {
    fn name(&self) -> &'static str {
        "death_cross_generator"
    }

    fn lookback(&self) -> usize {
        self.config.lookback()
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["death_cross"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        sma_cross(self.name(), &self.config, Cross::Down, bars, index)
    }
}
