//! What the price-structure families share: swing points, the ATR used as their unit of
//! distance, and volume ratios.

use crate::indicators;
use crate::vocab::Bar;

/// A confirmed swing point: its candle index (in the window) and price.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Swing {
    pub index: usize,
    pub price: f64,
}

/// Swing highs of strength `s` confirmed by candle `last` (inclusive), oldest first: candle i is
/// one when its high is strictly above the `s` highs before it and at least the `s` highs after
/// it (`i + s <= last`). Strict on the left and non-strict on the right, a flat top of several
/// equal highs is one swing (its first candle), not several as in the original.
pub(super) fn swing_highs(high: &[f64], s: usize, last: usize) -> Vec<Swing> {
    swings(high, s, last, |a, b| a > b, |a, b| a >= b)
}

/// Swing lows, the mirror of [`swing_highs`].
pub(super) fn swing_lows(low: &[f64], s: usize, last: usize) -> Vec<Swing> {
    swings(low, s, last, |a, b| a < b, |a, b| a <= b)
}

fn swings(
    x: &[f64],
    s: usize,
    last: usize,
    left: impl Fn(f64, f64) -> bool,
    right: impl Fn(f64, f64) -> bool,
) -> Vec<Swing> {
    let s = s.max(1);
    let last = last.min(x.len().saturating_sub(1));
    if last < 2 * s {
        return Vec::new();
    }
    (s..=last - s)
        .filter(|&i| {
            x[i].is_finite()
                && x[i - s..i].iter().all(|&v| left(x[i], v))
                && x[i + 1..=i + s].iter().all(|&v| right(x[i], v))
        })
        .map(|i| Swing {
            index: i,
            price: x[i],
        })
        .collect()
}

/// TA-Lib ATR(14) at the window's last candle, or the mean high-low range when the window is
/// too short for it (the families' unit of distance, so thresholds work the same on a $5 and
/// a $5000 instrument). `None` when it is not positive.
pub(super) fn atr(w: &[Bar]) -> Option<f64> {
    let high: Vec<f64> = w.iter().map(|b| b.high).collect();
    let low: Vec<f64> = w.iter().map(|b| b.low).collect();
    let close: Vec<f64> = w.iter().map(|b| b.close).collect();
    let value = match indicators::atr(&high, &low, &close, 14).last() {
        Some(Some(v)) => *v,
        _ => w.iter().map(|b| b.high - b.low).sum::<f64>() / w.len().max(1) as f64,
    };
    (value > 0.0 && value.is_finite()).then_some(value)
}

/// `w[i].volume` over the mean volume of the 20 candles before it (0 without history).
pub(super) fn volume_ratio_at(w: &[Bar], i: usize) -> f64 {
    let before = &w[i.saturating_sub(20)..i];
    let mean = before.iter().map(|b| b.volume).sum::<f64>() / before.len().max(1) as f64;
    if mean > 0.0 { w[i].volume / mean } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swings_are_strict_on_the_left_and_need_s_candles_on_the_right() {
        //          0    1    2    3    4    5    6    7    8
        let h = [1.0, 2.0, 5.0, 3.0, 2.0, 4.0, 4.0, 1.0, 0.5];
        let at = |v: Vec<Swing>| v.iter().map(|s| s.index).collect::<Vec<_>>();
        // 2 is a swing high; the flat top 5-6 counts once, at 5; 1 has only one candle left.
        assert_eq!(at(swing_highs(&h, 2, 8)), [2, 5]);
        // Not yet confirmed when the right side is incomplete.
        assert_eq!(at(swing_highs(&h, 2, 6)), [2]);
        assert_eq!(at(swing_lows(&h, 2, 8)), [4]);
        assert_eq!(at(swing_lows(&h, 1, 8)), [4]);
        assert!(swing_highs(&h, 2, 3).is_empty());
        assert!(swing_highs(&[], 2, 0).is_empty());
    }
}
