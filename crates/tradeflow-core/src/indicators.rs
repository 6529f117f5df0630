//! Technical indicators with the definitions of TA-Lib (default compatibility, no unstable
//! period), so the values match those the old platform computed with TA-Lib.
//!
//! Every function is pure and total: it takes plain `&[f64]` series and returns vectors aligned
//! to the input (same length, same index), holding `None` during the warm-up where TA-Lib
//! produces no value. A period of 0, or a series shorter than the warm-up, gives all `None`;
//! nothing here panics. Non-finite inputs propagate as non-finite outputs (NaN compares false,
//! so callers comparing values never act on them).
//!
//! One deliberate difference from TA-Lib: RSI of a series with no movement at all (average
//! gain and average loss both exactly 0) is 50 here; TA-Lib returns 0, which would read as
//! "deeply oversold" for a halted instrument.

/// Simple moving average: the mean of the `period` values ending at each index.
/// First value at index `period - 1`.
pub fn sma(values: &[f64], period: usize) -> Vec<Option<f64>> {
    let mut out = vec![None; values.len()];
    if period == 0 || values.len() < period {
        return out;
    }
    let p = period as f64;
    // Running sum, as TA-Lib does; recomputed from the window when it stops being finite so a
    // single NaN only poisons the windows that contain it.
    let mut sum: f64 = values[..period - 1].iter().sum();
    for end in (period - 1)..values.len() {
        let start = end + 1 - period;
        sum += values[end];
        if !sum.is_finite() {
            sum = values[start..=end].iter().sum();
        }
        out[end] = Some(sum / p);
        sum -= values[start];
    }
    out
}

/// Exponential moving average, TA-Lib style: seeded with the SMA of the first `period` values
/// (first value at index `period - 1`), then `ema = prev + k * (x - prev)` with
/// `k = 2 / (period + 1)`.
pub fn ema(values: &[f64], period: usize) -> Vec<Option<f64>> {
    if period == 0 {
        return vec![None; values.len()];
    }
    ema_seeded_at(values, period, period - 1)
}

/// EMA whose seed is the SMA of the `period` values ending at `seed_index` (TA-Lib's
/// `TA_INT_EMA` called with `startIdx = seed_index`). Values before `seed_index` are `None`.
fn ema_seeded_at(values: &[f64], period: usize, seed_index: usize) -> Vec<Option<f64>> {
    let mut out = vec![None; values.len()];
    if period == 0 || seed_index + 1 < period || seed_index >= values.len() {
        return out;
    }
    let k = 2.0 / (period as f64 + 1.0);
    let seed_window = &values[seed_index + 1 - period..=seed_index];
    let mut prev = seed_window.iter().sum::<f64>() / period as f64;
    out[seed_index] = Some(prev);
    for (slot, &x) in out.iter_mut().zip(values).skip(seed_index + 1) {
        prev += (x - prev) * k;
        *slot = Some(prev);
    }
    out
}

/// Relative Strength Index with Wilder smoothing, as TA-Lib computes it.
///
/// The first value is at index `period`: the simple averages of the gains and of the losses of
/// the first `period` changes. Afterwards `avg = (prev * (period - 1) + x) / period`.
/// `RSI = 100 * avg_gain / (avg_gain + avg_loss)` (equal to `100 - 100 / (1 + RS)`), so it is
/// 100 when the average loss is 0. When both averages are exactly 0 (no movement) it is 50.
pub fn rsi(closes: &[f64], period: usize) -> Vec<Option<f64>> {
    let mut out = vec![None; closes.len()];
    if period == 0 || closes.len() <= period {
        return out;
    }
    let p = period as f64;
    let mut gain = 0.0;
    let mut loss = 0.0;
    for w in closes[..=period].windows(2) {
        let change = w[1] - w[0];
        if change < 0.0 {
            loss -= change;
        } else {
            gain += change;
        }
    }
    gain /= p;
    loss /= p;
    out[period] = Some(rsi_from_averages(gain, loss));
    for i in (period + 1)..closes.len() {
        let change = closes[i] - closes[i - 1];
        let (up, down) = if change < 0.0 {
            (0.0, -change)
        } else {
            (change, 0.0)
        };
        gain = (gain * (p - 1.0) + up) / p;
        loss = (loss * (p - 1.0) + down) / p;
        out[i] = Some(rsi_from_averages(gain, loss));
    }
    out
}

fn rsi_from_averages(avg_gain: f64, avg_loss: f64) -> f64 {
    let total = avg_gain + avg_loss;
    if total == 0.0 {
        50.0
    } else {
        100.0 * avg_gain / total
    }
}

/// The three lines of [`macd`], aligned to the input.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Macd {
    /// Fast EMA − slow EMA. Defined from index `slow - 1`.
    pub macd: Vec<Option<f64>>,
    /// EMA(`signal`) of the MACD line. Defined from index `slow - 1 + signal - 1`.
    pub signal: Vec<Option<f64>>,
    /// `macd - signal`, where the signal is defined.
    pub histogram: Vec<Option<f64>>,
}

/// MACD as TA-Lib's `TA_MACD` computes it.
///
/// Both EMAs use `k = 2 / (period + 1)` and are SMA-seeded **at the same index**, `slow - 1`
/// (TA-Lib starts both at the slow EMA's lookback, so the fast EMA's seed is the SMA of the
/// `fast` values ending at `slow - 1`, not of the first `fast` values). The signal line is the
/// EMA(`signal`) of the MACD line, seeded with the SMA of its first `signal` values.
/// If `slow < fast` the two are swapped, as TA-Lib does.
///
/// TA-Lib's output masks the MACD line until the signal is defined; here the MACD line is
/// returned from `slow - 1` (the same values TA-Lib computes internally), the signal and
/// histogram from `slow + signal - 2`.
pub fn macd(closes: &[f64], fast: usize, slow: usize, signal: usize) -> Macd {
    let n = closes.len();
    let (fast, slow) = if slow < fast {
        (slow, fast)
    } else {
        (fast, slow)
    };
    let mut out = Macd {
        macd: vec![None; n],
        signal: vec![None; n],
        histogram: vec![None; n],
    };
    if fast == 0 || signal == 0 || n < slow {
        return out;
    }
    let start = slow - 1;
    let fast_ema = ema_seeded_at(closes, fast, start);
    let slow_ema = ema_seeded_at(closes, slow, start);
    for i in start..n {
        if let (Some(f), Some(s)) = (fast_ema[i], slow_ema[i]) {
            out.macd[i] = Some(f - s);
        }
    }
    let line: Vec<f64> = out.macd[start..]
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect();
    let signal_line = ema(&line, signal);
    for (offset, value) in signal_line.into_iter().enumerate() {
        let i = start + offset;
        if let (Some(sig), Some(m)) = (value, out.macd[i]) {
            out.signal[i] = Some(sig);
            out.histogram[i] = Some(m - sig);
        }
    }
    out
}

/// The three bands of [`bollinger`], aligned to the input.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BollingerBands {
    pub upper: Vec<Option<f64>>,
    pub middle: Vec<Option<f64>>,
    pub lower: Vec<Option<f64>>,
}

/// Bollinger Bands (TA-Lib `BBANDS` with an SMA middle and the same deviation multiplier up and
/// down): `middle = SMA(period)`, `upper/lower = middle ± k * σ` where σ is the population
/// standard deviation of the same `period` values. First value at index `period - 1`.
pub fn bollinger(closes: &[f64], period: usize, k: f64) -> BollingerBands {
    let n = closes.len();
    let middle = sma(closes, period);
    let mut upper = vec![None; n];
    let mut lower = vec![None; n];
    for (end, mean) in middle.iter().enumerate() {
        let Some(mean) = *mean else { continue };
        // Deviations from the mean over the window (two-pass, so a flat series has σ = 0
        // exactly instead of a rounding residue of sum(x²) − n·mean²).
        let window = &closes[end + 1 - period..=end];
        let variance = window.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / period as f64;
        let sd = variance.max(0.0).sqrt();
        upper[end] = Some(mean + k * sd);
        lower[end] = Some(mean - k * sd);
    }
    BollingerBands {
        upper,
        middle,
        lower,
    }
}

/// True range (TA-Lib `TRANGE`): `max(high - low, |high - prev_close|, |low - prev_close|)`.
/// Undefined at index 0 (no previous close). The output has `close.len()` entries; entries past
/// the shortest of the three inputs are `None`.
pub fn true_range(high: &[f64], low: &[f64], close: &[f64]) -> Vec<Option<f64>> {
    let n = high.len().min(low.len()).min(close.len());
    let mut out = vec![None; close.len()];
    for i in 1..n {
        let prev_close = close[i - 1];
        let range = high[i] - low[i];
        let up = (high[i] - prev_close).abs();
        let down = (low[i] - prev_close).abs();
        out[i] = Some(range.max(up).max(down));
    }
    out
}

/// Average True Range with Wilder smoothing, as TA-Lib computes it: the first ATR, at index
/// `period`, is the simple average of the true ranges of bars `1..=period` (bar 0 has no
/// previous close), then `atr = (prev * (period - 1) + tr) / period`. The output has
/// `close.len()` entries; entries past the shortest of the three inputs are `None`.
pub fn atr(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<Option<f64>> {
    let mut out = vec![None; close.len()];
    let n = high.len().min(low.len()).min(close.len());
    if period == 0 || n <= period {
        return out;
    }
    let tr = true_range(&high[..n], &low[..n], &close[..n]);
    let tr: Vec<f64> = tr.iter().map(|v| v.unwrap_or(f64::NAN)).collect();
    let p = period as f64;
    let mut prev = tr[1..=period].iter().sum::<f64>() / p;
    out[period] = Some(prev);
    for i in (period + 1)..n {
        prev = (prev * (p - 1.0) + tr[i]) / p;
        out[i] = Some(prev);
    }
    out
}

/// TA-Lib's test for "zero" in ADX, DI and RSI-like ratios (`TA_IS_ZERO`).
fn ta_is_zero(v: f64) -> bool {
    -1e-8 < v && v < 1e-8
}

/// TA-Lib's true range of one bar against the previous close.
fn bar_true_range(high: f64, low: f64, prev_close: f64) -> f64 {
    let mut out = high - low;
    let up = (high - prev_close).abs();
    if up > out {
        out = up;
    }
    let down = (low - prev_close).abs();
    if down > out {
        out = down;
    }
    out
}

/// The lines of [`adx`], aligned to the input.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Adx {
    /// TA-Lib `ADX`: defined from index `2 * period - 1`.
    pub adx: Vec<Option<f64>>,
    /// TA-Lib `PLUS_DI`: defined from index `period`.
    pub plus_di: Vec<Option<f64>>,
    /// TA-Lib `MINUS_DI`: defined from index `period`.
    pub minus_di: Vec<Option<f64>>,
}

/// Wilder's directional movement system as TA-Lib computes it (`ADX`, `PLUS_DI`, `MINUS_DI`).
///
/// Per bar `+DM = high - prev_high` and `-DM = prev_low - low`; only the larger one counts, and
/// only when positive. The first `period - 1` DMs and true ranges are summed; from then on each
/// sum is smoothed as `sum - sum / period + x`. `±DI = 100 * ±DM_sum / TR_sum` (0 when the TR
/// sum is below 1e-8), `DX = 100 * |+DI - -DI| / (+DI + -DI)`. The first ADX is the mean of the
/// first `period` DX values, then `adx = (prev * (period - 1) + dx) / period`. A bar whose TR
/// sum or DI sum is below 1e-8 has no DX and leaves the ADX unchanged, as in TA-Lib.
pub fn adx(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Adx {
    let len = close.len();
    let n = high.len().min(low.len()).min(len);
    let mut out = Adx {
        adx: vec![None; len],
        plus_di: vec![None; len],
        minus_di: vec![None; len],
    };
    if period == 0 || n <= period {
        return out;
    }
    let p = period as f64;
    let (mut plus_dm, mut minus_dm, mut tr) = (0.0, 0.0, 0.0);
    let mut sum_dx = 0.0;
    let mut adx_value = 0.0;
    for i in 1..n {
        let diff_p = high[i] - high[i - 1];
        let diff_m = low[i - 1] - low[i];
        let range = bar_true_range(high[i], low[i], close[i - 1]);
        if i >= period {
            plus_dm -= plus_dm / p;
            minus_dm -= minus_dm / p;
            tr -= tr / p;
        }
        if diff_m > 0.0 && diff_p < diff_m {
            minus_dm += diff_m;
        } else if diff_p > 0.0 && diff_p > diff_m {
            plus_dm += diff_p;
        }
        tr += range;
        if i < period {
            continue;
        }
        let mut dx = None;
        if ta_is_zero(tr) {
            out.plus_di[i] = Some(0.0);
            out.minus_di[i] = Some(0.0);
        } else {
            let minus_di = 100.0 * (minus_dm / tr);
            let plus_di = 100.0 * (plus_dm / tr);
            out.plus_di[i] = Some(plus_di);
            out.minus_di[i] = Some(minus_di);
            let total = minus_di + plus_di;
            if !ta_is_zero(total) {
                dx = Some(100.0 * ((minus_di - plus_di).abs() / total));
            }
        }
        let first_adx = 2 * period - 1;
        if i < first_adx {
            sum_dx += dx.unwrap_or(0.0);
        } else if i == first_adx {
            sum_dx += dx.unwrap_or(0.0);
            adx_value = sum_dx / p;
            out.adx[i] = Some(adx_value);
        } else {
            if let Some(dx) = dx {
                adx_value = (adx_value * (p - 1.0) + dx) / p;
            }
            out.adx[i] = Some(adx_value);
        }
    }
    out
}

/// Aroon Down and Up, aligned to the input.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Aroon {
    pub down: Vec<Option<f64>>,
    pub up: Vec<Option<f64>>,
}

/// TA-Lib `AROON`: over the `period + 1` bars ending at each index, `up = 100 / period *
/// (period - bars since the highest high)` and `down` likewise with the lowest low; on ties the
/// most recent extreme counts. First value at index `period`.
pub fn aroon(high: &[f64], low: &[f64], period: usize) -> Aroon {
    let len = high.len().min(low.len());
    let mut out = Aroon {
        down: vec![None; len],
        up: vec![None; len],
    };
    if period == 0 || len <= period {
        return out;
    }
    let factor = 100.0 / period as f64;
    for today in period..len {
        let start = today - period;
        let (mut hi_idx, mut lo_idx) = (start, start);
        for j in start..=today {
            if high[j] >= high[hi_idx] {
                hi_idx = j;
            }
            if low[j] <= low[lo_idx] {
                lo_idx = j;
            }
        }
        out.up[today] = Some(factor * (period - (today - hi_idx)) as f64);
        out.down[today] = Some(factor * (period - (today - lo_idx)) as f64);
    }
    out
}

/// TA-Lib `CCI`: typical price `tp = (high + low + close) / 3`; over the `period` values ending
/// at each index, `cci = (tp - mean) / (0.015 * mean absolute deviation)`, 0 when either is 0.
/// First value at index `period - 1`.
pub fn cci(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<Option<f64>> {
    let len = close.len();
    let n = high.len().min(low.len()).min(len);
    let mut out = vec![None; len];
    if period == 0 || n < period {
        return out;
    }
    let tp: Vec<f64> = (0..n)
        .map(|i| (high[i] + low[i] + close[i]) / 3.0)
        .collect();
    let p = period as f64;
    for end in (period - 1)..n {
        let w = &tp[end + 1 - period..=end];
        let mean = w.iter().sum::<f64>() / p;
        let mad = w.iter().map(|x| (x - mean).abs()).sum::<f64>();
        let dev = tp[end] - mean;
        out[end] = Some(if dev != 0.0 && mad != 0.0 {
            dev / (0.015 * (mad / p))
        } else {
            0.0
        });
    }
    out
}

/// TA-Lib `MFI`: money flow `tp * volume`, positive when the typical price rose from the
/// previous bar, negative when it fell (neither when unchanged); over the last `period` flows,
/// `mfi = 100 * positive / (positive + negative)`, 0 when that total is below 1 (TA-Lib's
/// guard). First value at index `period`.
pub fn mfi(
    high: &[f64],
    low: &[f64],
    close: &[f64],
    volume: &[f64],
    period: usize,
) -> Vec<Option<f64>> {
    let len = close.len();
    let n = high.len().min(low.len()).min(volume.len()).min(len);
    let mut out = vec![None; len];
    if period == 0 || n <= period {
        return out;
    }
    let tp: Vec<f64> = (0..n)
        .map(|i| (high[i] + low[i] + close[i]) / 3.0)
        .collect();
    let flows: Vec<(f64, f64)> = (0..n)
        .map(|i| {
            if i == 0 {
                return (0.0, 0.0);
            }
            let flow = tp[i] * volume[i];
            if tp[i] > tp[i - 1] {
                (flow, 0.0)
            } else if tp[i] < tp[i - 1] {
                (0.0, flow)
            } else {
                (0.0, 0.0)
            }
        })
        .collect();
    for end in period..n {
        let (pos, neg) = flows[end + 1 - period..=end]
            .iter()
            .fold((0.0, 0.0), |(p, q), (a, b)| (p + a, q + b));
        let total = pos + neg;
        out[end] = Some(if total < 1.0 {
            0.0
        } else {
            100.0 * (pos / total)
        });
    }
    out
}

/// TA-Lib `OBV`: starts at the first bar's volume, then adds the volume of a bar that closed
/// higher than the previous one and subtracts that of a bar that closed lower.
pub fn obv(close: &[f64], volume: &[f64]) -> Vec<Option<f64>> {
    let len = close.len();
    let n = volume.len().min(len);
    let mut out = vec![None; len];
    let mut acc = 0.0;
    for i in 0..n {
        if i == 0 {
            acc = volume[0];
        } else if close[i] > close[i - 1] {
            acc += volume[i];
        } else if close[i] < close[i - 1] {
            acc -= volume[i];
        }
        out[i] = Some(acc);
    }
    out
}

/// TA-Lib `AD` (Chaikin accumulation/distribution line): from 0, each bar adds
/// `((close - low) - (high - close)) / (high - low) * volume` (nothing when high = low).
pub fn ad(high: &[f64], low: &[f64], close: &[f64], volume: &[f64]) -> Vec<Option<f64>> {
    let len = close.len();
    let n = high.len().min(low.len()).min(volume.len()).min(len);
    let mut out = vec![None; len];
    let mut acc = 0.0;
    for i in 0..n {
        let range = high[i] - low[i];
        if range > 0.0 {
            acc += (((close[i] - low[i]) - (high[i] - close[i])) / range) * volume[i];
        }
        out[i] = Some(acc);
    }
    out
}

/// TA-Lib `SAR` (Wilder's parabolic stop and reverse), first value at index 1.
///
/// The initial side is short when bar 1's low fell below bar 0's by more than its high rose
/// (a positive -DM), long otherwise; the initial SAR is bar 0's low (long) or high (short) and
/// the extreme point bar 1's high (long) or low (short). Each bar: a long position reverses
/// when the low reaches the SAR (`low <= sar`), a short one when the high does
/// (`high >= sar`); the reversal SAR is the extreme point, kept outside the last two bars'
/// range. Otherwise a new extreme raises the acceleration by `acceleration` up to `maximum`,
/// and the next SAR `sar + af * (ep - sar)` is kept outside the last two bars' range.
/// An `acceleration` above `maximum` is lowered to it, as TA-Lib does.
pub fn sar(high: &[f64], low: &[f64], acceleration: f64, maximum: f64) -> Vec<Option<f64>> {
    let len = high.len().min(low.len());
    let mut out = vec![None; len];
    if len < 2 {
        return out;
    }
    let acc = acceleration.min(maximum);
    let mut af = acc;
    let diff_p = high[1] - high[0];
    let diff_m = low[0] - low[1];
    let minus_dm = if diff_m > 0.0 && diff_p < diff_m {
        diff_m
    } else {
        0.0
    };
    let mut is_long = minus_dm <= 0.0;
    let (mut ep, mut sar) = if is_long {
        (high[1], low[0])
    } else {
        (low[1], high[0])
    };
    let (mut new_low, mut new_high) = (low[1], high[1]);
    for today in 1..len {
        let (prev_low, prev_high) = (new_low, new_high);
        new_low = low[today];
        new_high = high[today];
        if is_long {
            if new_low <= sar {
                is_long = false;
                sar = ep.max(prev_high).max(new_high);
                out[today] = Some(sar);
                af = acc;
                ep = new_low;
                sar += af * (ep - sar);
                sar = sar.max(prev_high).max(new_high);
            } else {
                out[today] = Some(sar);
                if new_high > ep {
                    ep = new_high;
                    af = (af + acc).min(maximum);
                }
                sar += af * (ep - sar);
                sar = sar.min(prev_low).min(new_low);
            }
        } else if new_high >= sar {
            is_long = true;
            sar = ep.min(prev_low).min(new_low);
            out[today] = Some(sar);
            af = acc;
            ep = new_high;
            sar += af * (ep - sar);
            sar = sar.min(prev_low).min(new_low);
        } else {
            out[today] = Some(sar);
            if new_low < ep {
                ep = new_low;
                af = (af + acc).min(maximum);
            }
            sar += af * (ep - sar);
            sar = sar.max(prev_high).max(new_high);
        }
    }
    out
}

/// A %K line and its %D smoothing, aligned to the input.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Stochastic {
    pub k: Vec<Option<f64>>,
    pub d: Vec<Option<f64>>,
}

/// Raw %K over `period` bars (TA-Lib's fast %K): `100 * (close - lowest low) / (highest high -
/// lowest low)`, 0 when the range is 0. First value at index `period - 1`.
fn fast_k(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<Option<f64>> {
    let n = high.len().min(low.len()).min(close.len());
    let mut out = vec![None; close.len()];
    if period == 0 || n < period {
        return out;
    }
    for end in (period - 1)..n {
        let start = end + 1 - period;
        let hh = high[start..=end]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let ll = low[start..=end]
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let diff = (hh - ll) / 100.0;
        out[end] = Some(if diff != 0.0 {
            (close[end] - ll) / diff
        } else {
            0.0
        });
    }
    out
}

/// SMA of an aligned series that is `None` before some index (TA-Lib's `TA_INT_SMA` applied to
/// the defined part).
fn sma_of_defined(series: &[Option<f64>], period: usize) -> Vec<Option<f64>> {
    let mut out = vec![None; series.len()];
    let Some(first) = series.iter().position(Option::is_some) else {
        return out;
    };
    let values: Vec<f64> = series[first..]
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect();
    for (offset, v) in sma(&values, period).into_iter().enumerate() {
        out[first + offset] = v;
    }
    out
}

/// Blanks every value before `from` (TA-Lib returns all outputs of a multi-line function from
/// the same index).
fn mask_before(mut series: Vec<Option<f64>>, from: usize) -> Vec<Option<f64>> {
    for v in series.iter_mut().take(from) {
        *v = None;
    }
    series
}

/// TA-Lib `STOCH` with SMA smoothing (matype 0): slow %K = SMA(`slowk_period`) of the fast %K
/// over `fastk_period` bars, slow %D = SMA(`slowd_period`) of slow %K. Both lines start at
/// index `fastk_period - 1 + slowk_period - 1 + slowd_period - 1`, as in TA-Lib.
pub fn stoch(
    high: &[f64],
    low: &[f64],
    close: &[f64],
    fastk_period: usize,
    slowk_period: usize,
    slowd_period: usize,
) -> Stochastic {
    let len = close.len();
    if fastk_period == 0 || slowk_period == 0 || slowd_period == 0 {
        return Stochastic {
            k: vec![None; len],
            d: vec![None; len],
        };
    }
    let slow_k = sma_of_defined(&fast_k(high, low, close, fastk_period), slowk_period);
    let slow_d = sma_of_defined(&slow_k, slowd_period);
    let start = fastk_period - 1 + slowk_period - 1 + slowd_period - 1;
    Stochastic {
        k: mask_before(slow_k, start),
        d: mask_before(slow_d, start),
    }
}

/// TA-Lib `STOCHRSI` with SMA smoothing (matype 0): the fast stochastic (%K over
/// `fastk_period`, %D = SMA(`fastd_period`) of it) applied to RSI(`period`). Both lines start
/// at index `period + fastk_period - 1 + fastd_period - 1`.
pub fn stochrsi(
    close: &[f64],
    period: usize,
    fastk_period: usize,
    fastd_period: usize,
) -> Stochastic {
    let len = close.len();
    let mut out = Stochastic {
        k: vec![None; len],
        d: vec![None; len],
    };
    if period == 0 || fastk_period == 0 || fastd_period == 0 || len <= period {
        return out;
    }
    let r: Vec<f64> = rsi(close, period)[period..]
        .iter()
        .map(|v| v.unwrap_or(f64::NAN))
        .collect();
    let k = fast_k(&r, &r, &r, fastk_period);
    let d = sma_of_defined(&k, fastd_period);
    let start = fastk_period - 1 + fastd_period - 1;
    for (offset, (k, d)) in k.into_iter().zip(d).enumerate().skip(start) {
        out.k[period + offset] = k;
        out.d[period + offset] = d;
    }
    out
}

/// TA-Lib `WILLR`: `-100 * (highest high - close) / (highest high - lowest low)` over `period`
/// bars, 0 when the range is 0. First value at index `period - 1`.
pub fn willr(high: &[f64], low: &[f64], close: &[f64], period: usize) -> Vec<Option<f64>> {
    let n = high.len().min(low.len()).min(close.len());
    let mut out = vec![None; close.len()];
    if period == 0 || n < period {
        return out;
    }
    for end in (period - 1)..n {
        let start = end + 1 - period;
        let hh = high[start..=end]
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        let ll = low[start..=end]
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let diff = (hh - ll) / -100.0;
        out[end] = Some(if diff != 0.0 {
            (hh - close[end]) / diff
        } else {
            0.0
        });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn assert_close(actual: Option<f64>, expected: f64, tolerance: f64) {
        let actual = actual.unwrap_or_else(|| panic!("expected {expected}, got None"));
        assert!(
            (actual - expected).abs() <= tolerance,
            "expected {expected} ± {tolerance}, got {actual}"
        );
    }

    fn count_none(v: &[Option<f64>]) -> usize {
        v.iter().filter(|x| x.is_none()).count()
    }

    #[test]
    fn sma_of_a_small_series_is_the_window_mean() {
        let out = sma(&[1.0, 2.0, 3.0, 4.0, 5.0, 10.0], 3);
        assert_eq!(out[..2], [None, None]);
        assert_close(out[2], 2.0, 1e-12);
        assert_close(out[3], 3.0, 1e-12);
        assert_close(out[4], 4.0, 1e-12);
        assert_close(out[5], 19.0 / 3.0, 1e-12);
    }

    #[test]
    fn sma_recovers_after_a_nan_leaves_the_window() {
        let out = sma(&[1.0, f64::NAN, 3.0, 4.0, 5.0], 2);
        assert!(out[1].unwrap().is_nan());
        assert!(out[2].unwrap().is_nan());
        assert_close(out[3], 3.5, 1e-12);
        assert_close(out[4], 4.5, 1e-12);
    }

    #[test]
    fn degenerate_inputs_give_all_none_without_panicking() {
        let empty: [f64; 0] = [];
        assert!(sma(&empty, 3).is_empty());
        assert!(ema(&empty, 3).is_empty());
        assert!(rsi(&empty, 14).is_empty());
        assert!(atr(&empty, &empty, &empty, 14).is_empty());
        let m = macd(&empty, 12, 26, 9);
        assert!(m.macd.is_empty() && m.signal.is_empty() && m.histogram.is_empty());

        let short = [1.0, 2.0, 3.0];
        assert_eq!(count_none(&sma(&short, 0)), 3);
        assert_eq!(count_none(&sma(&short, 4)), 3);
        assert_eq!(count_none(&ema(&short, 0)), 3);
        assert_eq!(count_none(&ema(&short, 4)), 3);
        assert_eq!(count_none(&rsi(&short, 3)), 3);
        assert_eq!(count_none(&rsi(&short, 0)), 3);
        assert_eq!(count_none(&macd(&short, 12, 26, 9).macd), 3);
        assert_eq!(count_none(&macd(&short, 0, 2, 9).macd), 3);
        assert_eq!(count_none(&bollinger(&short, 0, 2.0).upper), 3);
        assert_eq!(count_none(&bollinger(&short, 5, 2.0).middle), 3);
        assert_eq!(count_none(&atr(&short, &short, &short, 3)), 3);
        assert_eq!(count_none(&atr(&short, &short, &short, 0)), 3);
        // Mismatched lengths: aligned to `close`, computed over the common prefix.
        let out = atr(&[2.0, 2.0], &[1.0, 1.0, 1.0], &[1.5, 1.5, 1.5], 1);
        assert_eq!(out.len(), 3);
        assert_close(out[1], 1.0, 1e-12);
        assert_eq!(out[2], None);
    }

    #[test]
    fn ema_is_seeded_with_the_sma_of_the_first_period_values() {
        // period 3: k = 0.5, seed = mean(10, 11, 12) = 11.
        let out = ema(&[10.0, 11.0, 12.0, 13.0, 20.0], 3);
        assert_eq!(out[..2], [None, None]);
        assert_close(out[2], 11.0, 1e-12);
        assert_close(out[3], 12.0, 1e-12); // 11 + 0.5 * (13 - 11)
        assert_close(out[4], 16.0, 1e-12); // 12 + 0.5 * (20 - 12)

        // period 4: k = 0.4, seed = 2.5, then 2.5 + 0.4 * (10 - 2.5) = 5.5, 5.5 + 0.4 * (0 - 5.5).
        let out = ema(&[1.0, 2.0, 3.0, 4.0, 10.0, 0.0], 4);
        assert_close(out[3], 2.5, 1e-12);
        assert_close(out[4], 5.5, 1e-12);
        assert_close(out[5], 3.3, 1e-12);

        // period 1 is the identity.
        let out = ema(&[3.0, 7.0], 1);
        assert_close(out[0], 3.0, 0.0);
        assert_close(out[1], 7.0, 0.0);
    }

    /// The Wilder RSI worked example of StockCharts' ChartSchool (`cs-rsi.xls`, QQQQ closes)
    /// and its published 14-day RSI column (rounded to 4 decimals).
    const WILDER_CLOSES: [f64; 33] = [
        44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245, 45.8433, 46.0826,
        45.8931, 46.0328, 45.6140, 46.2820, 46.2820, 46.0028, 46.0328, 46.4116, 46.2222, 45.6439,
        46.2122, 46.2521, 45.7137, 46.4515, 45.7835, 45.3548, 44.0288, 44.1783, 44.2181, 44.5672,
        43.4205, 42.6628, 43.1314,
    ];
    const WILDER_RSI: [f64; 19] = [
        70.5328, 66.3186, 66.5498, 69.4063, 66.3552, 57.9749, 62.9296, 63.2571, 56.0593, 62.3771,
        54.7076, 50.4228, 39.9898, 41.4605, 41.8689, 45.4632, 37.3040, 33.0795, 37.7730,
    ];

    #[test]
    fn rsi_matches_the_published_wilder_example() {
        let out = rsi(&WILDER_CLOSES, 14);
        assert_eq!(count_none(&out[..14]), 14);
        for (offset, expected) in WILDER_RSI.iter().enumerate() {
            assert_close(out[14 + offset], *expected, 1e-3);
        }
    }

    #[test]
    fn rsi_matches_an_independent_textbook_formula() {
        // Independent straightforward computation: RS = avg gain / avg loss,
        // RSI = 100 - 100 / (1 + RS), Wilder smoothing.
        let changes: Vec<f64> = WILDER_CLOSES.windows(2).map(|w| w[1] - w[0]).collect();
        let gains: Vec<f64> = changes.iter().map(|c| c.max(0.0)).collect();
        let losses: Vec<f64> = changes.iter().map(|c| (-c).max(0.0)).collect();
        let mut avg_gain = gains[..14].iter().sum::<f64>() / 14.0;
        let mut avg_loss = losses[..14].iter().sum::<f64>() / 14.0;
        let mut expected = vec![100.0 - 100.0 / (1.0 + avg_gain / avg_loss)];
        for j in 14..changes.len() {
            avg_gain = (avg_gain * 13.0 + gains[j]) / 14.0;
            avg_loss = (avg_loss * 13.0 + losses[j]) / 14.0;
            expected.push(100.0 - 100.0 / (1.0 + avg_gain / avg_loss));
        }
        let out = rsi(&WILDER_CLOSES, 14);
        for (offset, e) in expected.iter().enumerate() {
            assert_close(out[14 + offset], *e, 1e-9);
        }
        // First averages of the worked example: gain 0.2384, loss 0.0996.
        assert_close(Some(gains[..14].iter().sum::<f64>() / 14.0), 0.2384, 1e-4);
        assert_close(Some(losses[..14].iter().sum::<f64>() / 14.0), 0.0996, 1e-4);
    }

    #[test]
    fn rsi_edge_cases() {
        // Only gains: average loss 0 → 100.
        let rising: Vec<f64> = (0..20).map(f64::from).collect();
        assert_close(rsi(&rising, 14)[19], 100.0, 0.0);
        // Only losses → 0.
        let falling: Vec<f64> = (0..20).map(|i| 100.0 - f64::from(i)).collect();
        assert_close(rsi(&falling, 14)[19], 0.0, 0.0);
        // No movement at all → 50 (TA-Lib: 0).
        assert_close(rsi(&[5.0; 20], 14)[19], 50.0, 0.0);
        // Shortest possible series: one value at index `period`; gains 1, losses 0.5.
        let out = rsi(&[1.0, 2.0, 1.5], 2);
        assert_eq!(out[..2], [None, None]);
        assert_close(out[2], 100.0 * 0.5 / 0.75, 1e-12);
    }

    #[test]
    fn bollinger_bands_of_a_constant_series_collapse_on_the_middle() {
        let bands = bollinger(&[42.5; 30], 20, 2.0);
        assert_eq!(count_none(&bands.middle), 19);
        for i in 19..30 {
            assert_close(bands.middle[i], 42.5, 1e-12);
            assert_close(bands.upper[i], 42.5, 1e-12);
            assert_close(bands.lower[i], 42.5, 1e-12);
        }
    }

    #[test]
    fn bollinger_bands_use_the_population_standard_deviation() {
        // Window 1..5: mean 3, population variance (4+1+0+1+4)/5 = 2.
        let bands = bollinger(&[1.0, 2.0, 3.0, 4.0, 5.0, 11.0], 5, 2.0);
        assert_close(bands.middle[4], 3.0, 1e-12);
        assert_close(bands.upper[4], 3.0 + 2.0 * 2f64.sqrt(), 1e-12);
        assert_close(bands.lower[4], 3.0 - 2.0 * 2f64.sqrt(), 1e-12);
        // Window 2..11: mean 5, deviations -3 -2 -1 0 6 → variance 50/5 = 10.
        assert_close(bands.middle[5], 5.0, 1e-12);
        assert_close(bands.upper[5], 5.0 + 2.0 * 10f64.sqrt(), 1e-12);
        assert_close(bands.lower[5], 5.0 - 2.0 * 10f64.sqrt(), 1e-12);
    }

    #[test]
    fn bollinger_bands_match_the_published_stockcharts_example() {
        // ChartSchool's `cs-bbands.xls` (SPY closes) and its published (20, 2) columns.
        let closes = [
            86.1557, 89.0867, 88.7829, 90.3228, 89.0671, 91.1453, 89.4397, 89.1750, 86.9302,
            87.6752, 86.9596, 89.4299, 89.3221, 88.7241, 87.4497, 87.2634, 89.4985, 87.9006,
            89.1260, 90.7043, 92.9001, 92.9784, 91.8021, 92.6647, 92.6843, 92.3021, 92.7725,
            92.5373, 92.9490, 93.2039, 91.0669, 89.8318, 89.7435, 90.3994, 90.7387, 88.0177,
            88.0867, 88.8439, 90.7781, 90.5416, 91.3894, 90.6500,
        ];
        let published = [
            (19, 88.70794, 91.291862, 86.124018),
            (20, 89.04516, 91.949268, 86.141052),
            (25, 89.7465, 93.899592, 85.593408),
            (30, 90.863995, 94.907605, 86.820385),
            (41, 91.05018, 94.148503, 87.951857),
        ];
        let bands = bollinger(&closes, 20, 2.0);
        assert_eq!(count_none(&bands.middle), 19);
        for (i, middle, upper, lower) in published {
            assert_close(bands.middle[i], middle, 1e-5);
            assert_close(bands.upper[i], upper, 1e-5);
            assert_close(bands.lower[i], lower, 1e-5);
        }
    }

    /// Independent, deliberately naive TA-Lib MACD: each EMA written out by hand.
    fn naive_macd(x: &[f64], fast: usize, slow: usize, signal: usize) -> Vec<(usize, f64, f64)> {
        let naive_ema = |seed: f64, k: f64, from: usize, to: usize, xs: &dyn Fn(usize) -> f64| {
            let mut v = vec![(from, seed)];
            let mut prev = seed;
            for i in from + 1..to {
                prev = xs(i) * k + prev * (1.0 - k);
                v.push((i, prev));
            }
            v
        };
        let start = slow - 1;
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        let kf = 2.0 / (fast as f64 + 1.0);
        let ks = 2.0 / (slow as f64 + 1.0);
        let f = naive_ema(
            mean(&x[start + 1 - fast..=start]),
            kf,
            start,
            x.len(),
            &|i| x[i],
        );
        let s = naive_ema(mean(&x[..=start]), ks, start, x.len(), &|i| x[i]);
        let line: Vec<f64> = f.iter().zip(&s).map(|(a, b)| a.1 - b.1).collect();
        let ksig = 2.0 / (signal as f64 + 1.0);
        let sig_start = signal - 1;
        let sig = naive_ema(mean(&line[..signal]), ksig, sig_start, line.len(), &|i| {
            line[i]
        });
        sig.iter().map(|&(j, s)| (start + j, line[j], s)).collect()
    }

    #[test]
    fn macd_matches_a_naive_ta_lib_implementation_on_a_sine_series() {
        let closes: Vec<f64> = (0..300)
            .map(|i| 100.0 + 10.0 * (f64::from(i) / 7.0).sin() + 3.0 * (f64::from(i) / 31.0).cos())
            .collect();
        let out = macd(&closes, 12, 26, 9);
        let expected = naive_macd(&closes, 12, 26, 9);
        assert_eq!(count_none(&out.macd), 25);
        assert_eq!(count_none(&out.signal), 25 + 8);
        assert_eq!(count_none(&out.histogram), 25 + 8);
        assert_eq!(expected.len(), 300 - 33);
        for (i, m, s) in expected {
            assert_close(out.macd[i], m, 1e-9);
            assert_close(out.signal[i], s, 1e-9);
            assert_close(out.histogram[i], m - s, 1e-9);
        }
        // The MACD line before the signal is defined is the same difference of EMAs.
        let fast_at_25 = closes[14..=25].iter().sum::<f64>() / 12.0;
        let slow_at_25 = closes[..=25].iter().sum::<f64>() / 26.0;
        assert_close(out.macd[25], fast_at_25 - slow_at_25, 1e-9);
        // Swapped periods are normalised like TA-Lib does.
        assert_eq!(macd(&closes, 26, 12, 9), out);
    }

    #[test]
    fn macd_fast_ema_is_seeded_at_the_slow_lookback_like_ta_lib() {
        // TA-Lib seeds the fast EMA at index slow-1 with the mean of the `fast` values ending
        // there, so on a series whose early values differ it is not `ema(fast) - ema(slow)`.
        let mut closes = vec![1000.0; 5];
        closes.extend(std::iter::repeat_n(10.0, 40));
        let out = macd(&closes, 3, 8, 2);
        // At index 7: fast seed = mean(closes[5..=7]) = 10, slow seed = mean(closes[..=7]).
        let slow_seed = (5.0 * 1000.0 + 3.0 * 10.0) / 8.0;
        assert_close(out.macd[7], 10.0 - slow_seed, 1e-9);
        let plain = ema(&closes, 3)[7].unwrap() - ema(&closes, 8)[7].unwrap();
        assert!((plain - out.macd[7].unwrap()).abs() > 1.0);
    }

    #[test]
    fn atr_matches_a_hand_computed_example() {
        let high = [10.0, 11.0, 12.0, 15.0, 13.0, 20.0];
        let low = [8.0, 9.0, 10.0, 11.0, 12.0, 16.0];
        let close = [9.0, 10.0, 11.0, 14.0, 12.5, 19.0];
        // True ranges from bar 1: 2, 2, 4, 2 (|12 - 14|: gap down), 7.5 (|20 - 12.5|: gap up).
        let tr = true_range(&high, &low, &close);
        assert_eq!(tr[0], None);
        for (i, e) in [(1, 2.0), (2, 2.0), (3, 4.0), (4, 2.0), (5, 7.5)] {
            assert_close(tr[i], e, 1e-12);
        }
        let out = atr(&high, &low, &close, 3);
        assert_eq!(out[..3], [None, None, None]);
        assert_close(out[3], 8.0 / 3.0, 1e-12);
        assert_close(out[4], 22.0 / 9.0, 1e-12);
        assert_close(out[5], 111.5 / 27.0, 1e-12);
    }
}
