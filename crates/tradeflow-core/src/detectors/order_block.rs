//! Order block family: price returning for the first time to the last opposite candle before
//! an impulsive move.

use serde::{Deserialize, Serialize};

use crate::vocab::{Bar, Direction};

use super::common::{Fired, price, scaled, window};
use super::structure::atr;
use super::{Detection, Detector};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrderBlockConfig {
    /// Blocks are searched in the last `lookback_periods` candles.
    pub lookback_periods: usize,
    /// The move away from the block within 3 candles, in multiples of ATR(14) (the original's
    /// 20 "pips" were $0.002 on equities).
    pub min_move_atr: f64,
}

impl Default for OrderBlockConfig {
    fn default() -> Self {
        OrderBlockConfig {
            lookback_periods: 30,
            min_move_atr: 1.5,
        }
    }
}

/// Bullish block: a bearish candle (close < open) immediately followed by a bullish one (so it
/// is the **last** opposite candle before the move), after which the highest high of the next
/// 3 candles is at least 1.5 ATR(14) above the block's low; price then stayed above the block
/// (no low at or below its high) until this candle, whose low reaches into the block
/// [low, high] while its close holds at or above the block's low → `order_block_bullish`
/// (BULLISH): the first revisit, once. Bearish block: the mirror → `order_block_bearish`
/// (BEARISH). The most recent qualifying block in the last 30 candles is used. Confidence 60,
/// plus up to 20 for the move's size beyond the minimum (full 2 ATR beyond), plus 10 when the
/// close holds beyond the block's middle.
#[derive(Debug, Clone, Default)]
pub struct OrderBlockDetector {
    pub config: OrderBlockConfig,
}

/// A block found in the window: its candle index, low, high and the move away from it.
struct Block {
    index: usize,
    low: f64,
    high: f64,
    moved: f64,
}

impl OrderBlockDetector {
    /// The most recent bullish (or, with `bullish = false`, bearish) block revisited by `t`.
    fn find(&self, w: &[Bar], t: usize, unit: f64, bullish: bool) -> Option<Block> {
        let first = t.saturating_sub(self.config.lookback_periods);
        let bar = &w[t];
        (first..t.saturating_sub(3)).rev().find_map(|i| {
            let (b, next) = (&w[i], &w[i + 1]);
            let after = &w[i + 1..=i + 3];
            let (is_block, moved) = if bullish {
                (
                    b.close < b.open && next.close > next.open,
                    after.iter().map(|x| x.high).fold(f64::MIN, f64::max) - b.low,
                )
            } else {
                (
                    b.close > b.open && next.close < next.open,
                    b.high - after.iter().map(|x| x.low).fold(f64::MAX, f64::min),
                )
            };
            if !is_block || moved < self.config.min_move_atr * unit {
                return None;
            }
            let untouched = if bullish {
                w[i + 4..t].iter().all(|x| x.low > b.high)
            } else {
                w[i + 4..t].iter().all(|x| x.high < b.low)
            };
            let revisit = if bullish {
                bar.low <= b.high && bar.close >= b.low
            } else {
                bar.high >= b.low && bar.close <= b.high
            };
            (untouched && revisit).then_some(Block {
                index: i,
                low: b.low,
                high: b.high,
                moved,
            })
        })
    }
}

impl Detector for OrderBlockDetector {
    fn name(&self) -> &'static str {
        "order_block_generator"
    }

    fn lookback(&self) -> usize {
        self.config.lookback_periods + 30
    }

    fn signal_types(&self) -> &'static [&'static str] {
        &["order_block_bullish", "order_block_bearish"]
    }

    fn detect(&self, bars: &[Bar], index: usize) -> Option<Detection> {
        let w = window(bars, index, self.lookback())?;
        let t = w.len() - 1;
        let bar = &w[t];
        let unit = atr(w)?;
        let (signal_type, direction, block) = if let Some(b) = self.find(w, t, unit, true) {
            ("order_block_bullish", Direction::Bullish, b)
        } else if let Some(b) = self.find(w, t, unit, false) {
            ("order_block_bearish", Direction::Bearish, b)
        } else {
            return None;
        };
        let middle = (block.low + block.high) / 2.0;
        let holds = match direction {
            Direction::Bullish => bar.close > middle,
            _ => bar.close < middle,
        };
        let confidence = scaled(60, block.moved / unit - self.config.min_move_atr, 2.0, 20)
            .saturating_add(if holds { 10 } else { 0 });
        let age = t - block.index;
        let fired = Fired::new(
            self.name(),
            signal_type,
            direction,
            confidence,
            format!(
                "First return to the order block {} - {} of {age} candles ago (move {:.2} ATR), \
                 close {}",
                price(block.low),
                price(block.high),
                block.moved / unit,
                price(bar.close)
            ),
        );
        Some(fired.at(
            bar,
            &[
                ("order_block_low", block.low),
                ("order_block_high", block.high),
                ("move_atr", block.moved / unit),
                ("bars_ago", age as f64),
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

    /// 20 quiet candles (ATR 1), a bearish candle at 20 (block 99-100.5), a rally from 21,
    /// then the given closes back down (each candle 0.5 around its close).
    fn scenario(rally: &[(f64, f64)], back: &[f64]) -> Vec<Bar> {
        let mut closes = vec![100.0; 21];
        closes.extend(rally.iter().map(|r| r.1));
        closes.extend(back);
        let mut bars = path(&closes);
        (bars[20].open, bars[20].high, bars[20].low, bars[20].close) = (100.3, 100.5, 99.0, 99.2);
        for (b, (open, close)) in bars[21..].iter_mut().zip(rally) {
            (b.open, b.close, b.high, b.low) = (*open, *close, close + 0.5, open - 0.5);
        }
        bars
    }

    #[test]
    fn order_block_table() {
        let ob = OrderBlockDetector::default();
        let rally = [(99.2, 101.5), (101.5, 103.0), (103.0, 104.0)];
        let got = |bars: &[Bar]| -> Vec<(usize, &str)> {
            fired(&ob, bars).iter().map(|f| (f.0, f.1)).collect()
        };
        // Back down to 100.8 (low 100.3 ≤ block high 100.5, close holds): fires once.
        let bars = scenario(&rally, &[103.0, 102.0, 100.8, 100.6]);
        assert_eq!(got(&bars), [(26, "order_block_bullish")]);
        let d = ob.detect(&bars, 26).unwrap();
        assert_common(&d, &ob, &bars[26]);
        assert_eq!(
            (
                d.metadata["order_block_low"],
                d.metadata["order_block_high"]
            ),
            (99.0, 100.5)
        );
        // A close through the block's low is a failure, not a hold.
        assert_eq!(got(&scenario(&rally, &[103.0, 102.0, 98.0])), []);
        // A move of 1.3 (highest high 100.3 - block low 99) < 1.5 ATR: no block.
        let small = [(99.2, 99.4), (99.4, 99.6), (99.6, 99.8)];
        assert_eq!(got(&scenario(&small, &[99.7, 99.6])), []);
        // The candle at 20 is not the last bearish candle before the move when 21 is bearish
        // too: 20 is no block (21 may be).
        let mut bars = scenario(&rally, &[103.0, 102.0, 100.8]);
        (bars[21].open, bars[21].close) = (99.2, 99.1);
        for i in 0..bars.len() {
            if let Some(d) = ob.detect(&bars, i) {
                assert_ne!(d.metadata["order_block_low"], 99.0, "{d:?}");
            }
        }
    }
}
