//! Deterministic, stateless synthetic candles for any uppercase ticker.

use async_trait::async_trait;

use super::{MarketData, MarketDataError, is_valid_ticker};
use crate::vocab::{Bar, Timeframe};

/// Deterministic, stateless synthetic candles for any uppercase ticker.
///
/// Bar `k` of a series opens at `k * timeframe.seconds()` (so candles are aligned to the
/// timeframe, daily ones at 00:00 UTC) and is a pure function of `(seed, ticker, timeframe, k)`:
/// nothing is iterated from an epoch, so any window costs O(window).
///
/// Close = base × (1 + three sines of periods ≈ 30, 90 and 400 bars + small hashed noise +
/// a hashed jump on spike bars); the base (20..500) depends on seed and ticker only, the
/// periods and phases also on the timeframe. The open is the previous bar's close, high and
/// low lie up to 0.4 % beyond them, and the volume is base × (0.7..1.3), tripled on ~2 % of
/// the bars, which also carry a 2–3 % jump. The amplitudes make RSI(14) cross 30/70, MACD and
/// EMA 12/26 cross, SMA 50/200 cross now and then, and closes break out of the Bollinger bands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyntheticFeed {
    pub seed: u64,
}

/// Sine components: (nominal period in bars, amplitude as a fraction of the base price).
const WAVES: [(f64, f64); 3] = [(30.0, 0.04), (90.0, 0.06), (400.0, 0.15)];
const NOISE: f64 = 0.004;
const WICK: f64 = 0.004;
const SPIKE_PROBABILITY: f64 = 0.02;
const SPIKE_VOLUME_FACTOR: f64 = 3.0;

const SALT_NOISE: u64 = 0x6e6f_6973_6500_0001;
const SALT_SPIKE: u64 = 0x7370_696b_6500_0002;
const SALT_JUMP: u64 = 0x6a75_6d70_0000_0003;
const SALT_HIGH: u64 = 0x6869_6768_0000_0004;
const SALT_LOW: u64 = 0x6c6f_7700_0000_0005;
const SALT_VOLUME: u64 = 0x766f_6c75_6d65_0006;

impl SyntheticFeed {
    /// The series of a valid ticker (any instrument symbol has one).
    fn series(&self, ticker: &str, timeframe: Timeframe) -> Result<SeriesParams, MarketDataError> {
        if !is_valid_ticker(ticker) {
            return Err(MarketDataError::UnknownTicker {
                ticker: ticker.to_owned(),
                timeframe,
            });
        }
        Ok(SeriesParams::new(self.seed, ticker, timeframe))
    }

    /// Largest number of bars one [`MarketData::closed_bars`] call returns.
    pub const MAX_BARS: usize = 100_000;

    pub const fn new(seed: u64) -> Self {
        SyntheticFeed { seed }
    }

    /// Bar `k` of the series (open time `k * timeframe.seconds()`). Pure; any ticker string.
    pub fn bar(&self, ticker: &str, timeframe: Timeframe, k: i64) -> Bar {
        let series = SeriesParams::new(self.seed, ticker, timeframe);
        series.bar(k, timeframe)
    }
}

#[async_trait]
impl MarketData for SyntheticFeed {
    async fn closed_bars(
        &self,
        ticker: &str,
        timeframe: Timeframe,
        now: i64,
        count: usize,
    ) -> Result<Vec<Bar>, MarketDataError> {
        let series = self.series(ticker, timeframe)?;
        let tf = timeframe.seconds();
        // Bar k is closed when (k + 1) * tf <= now, i.e. k <= now / tf - 1.
        let last = now.div_euclid(tf) - 1;
        let count = count.min(Self::MAX_BARS) as i64;
        if last < 0 || count == 0 {
            return Ok(Vec::new());
        }
        let first = (last - count + 1).max(0);
        Ok((first..=last).map(|k| series.bar(k, timeframe)).collect())
    }

    async fn closed_bars_after(
        &self,
        ticker: &str,
        timeframe: Timeframe,
        now: i64,
        after: i64,
        history: usize,
        count: usize,
    ) -> Result<Vec<Bar>, MarketDataError> {
        let series = self.series(ticker, timeframe)?;
        let tf = timeframe.seconds();
        let last = now.div_euclid(tf) - 1;
        // The last bar that opened at or before `after`, among the closed ones.
        let split = after.div_euclid(tf).min(last);
        let history = history.min(Self::MAX_BARS) as i64;
        let count = count.min(Self::MAX_BARS) as i64;
        let first = split.saturating_sub(history - 1).max(0);
        let next = split.saturating_add(1).max(0);
        let end = next.saturating_add(count - 1).min(last);
        Ok((first..=end).map(|k| series.bar(k, timeframe)).collect())
    }
}

/// The per-(seed, ticker, timeframe) constants of a synthetic series.
struct SeriesParams {
    key: u64,
    base_price: f64,
    base_volume: f64,
    periods: [f64; 3],
    phases: [f64; 3],
}

impl SeriesParams {
    fn new(seed: u64, ticker: &str, timeframe: Timeframe) -> Self {
        let ticker_key = mix(seed, fnv1a(ticker.as_bytes()));
        let key = mix(ticker_key, timeframe.seconds().unsigned_abs());
        let mut periods = [0.0; 3];
        let mut phases = [0.0; 3];
        for (j, (nominal, _)) in WAVES.iter().enumerate() {
            let j64 = j as u64;
            periods[j] = nominal * (0.85 + 0.3 * unit(mix(key, 10 + j64)));
            phases[j] = unit(mix(key, 20 + j64));
        }
        SeriesParams {
            key,
            base_price: 20.0 + 480.0 * unit(mix(ticker_key, 1)),
            base_volume: 10f64.powf(4.0 + 3.0 * unit(mix(ticker_key, 2))),
            periods,
            phases,
        }
    }

    /// A uniform value in [0, 1) for bar `k` and purpose `salt`.
    fn draw(&self, k: i64, salt: u64) -> f64 {
        unit(mix(self.key ^ salt, k as u64))
    }

    fn is_spike(&self, k: i64) -> bool {
        self.draw(k, SALT_SPIKE) < SPIKE_PROBABILITY
    }

    fn close(&self, k: i64) -> f64 {
        let kf = k as f64;
        let mut shape = 1.0;
        for (j, (_, amplitude)) in WAVES.iter().enumerate() {
            // fract() keeps the sine's argument small for large k.
            let turns = (kf / self.periods[j]).fract() + self.phases[j];
            shape += amplitude * (std::f64::consts::TAU * turns).sin();
        }
        shape += NOISE * (2.0 * self.draw(k, SALT_NOISE) - 1.0);
        if self.is_spike(k) {
            let jump = 0.02 + 0.01 * self.draw(k, SALT_JUMP);
            // The sign comes from an independent draw.
            let up = self.draw(k, SALT_JUMP ^ 1) < 0.5;
            shape += if up { jump } else { -jump };
        }
        self.base_price * shape
    }

    fn bar(&self, k: i64, timeframe: Timeframe) -> Bar {
        let open = self.close(k.saturating_sub(1));
        let close = self.close(k);
        let high = open.max(close) * (1.0 + WICK * self.draw(k, SALT_HIGH));
        let low = open.min(close) * (1.0 - WICK * self.draw(k, SALT_LOW));
        let mut volume = self.base_volume * (0.7 + 0.6 * self.draw(k, SALT_VOLUME));
        if self.is_spike(k) {
            volume *= SPIKE_VOLUME_FACTOR;
        }
        Bar {
            time: k.saturating_mul(timeframe.seconds()),
            open,
            high,
            low,
            close,
            volume: volume.round(),
        }
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn mix(a: u64, b: u64) -> u64 {
    splitmix64(a ^ splitmix64(b))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

/// The top 53 bits as a uniform value in [0, 1).
fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_732_550_400; // 2024-11-25T16:00:00Z

    #[tokio::test]
    async fn synthetic_feed_is_deterministic_and_stateless() {
        let feed = SyntheticFeed::new(7);
        let a = feed
            .closed_bars("AAPL", Timeframe::M5, NOW, 300)
            .await
            .unwrap();
        let b = SyntheticFeed::new(7)
            .closed_bars("AAPL", Timeframe::M5, NOW, 300)
            .await
            .unwrap();
        assert_eq!(a, b);
        // A shorter request is a suffix of a longer one: no hidden state, no drift.
        let tail = feed
            .closed_bars("AAPL", Timeframe::M5, NOW, 10)
            .await
            .unwrap();
        assert_eq!(tail[..], a[290..]);
        // Each bar is the pure function of its index.
        let k = a[17].time / Timeframe::M5.seconds();
        assert_eq!(feed.bar("AAPL", Timeframe::M5, k), a[17]);
        // Other seed, ticker or timeframe: another series.
        let other_seed = SyntheticFeed::new(8)
            .closed_bars("AAPL", Timeframe::M5, NOW, 300)
            .await
            .unwrap();
        assert_ne!(a, other_seed);
        let other_ticker = feed
            .closed_bars("MSFT", Timeframe::M5, NOW, 300)
            .await
            .unwrap();
        assert_ne!(a, other_ticker);
        let other_tf = feed
            .closed_bars("AAPL", Timeframe::M15, NOW, 300)
            .await
            .unwrap();
        assert_ne!(
            a.iter().map(|b| b.close).collect::<Vec<_>>(),
            other_tf.iter().map(|b| b.close).collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn synthetic_bars_are_aligned_continuous_and_valid() {
        let feed = SyntheticFeed::new(1);
        for tf in Timeframe::ALL {
            for ticker in ["AAPL", "BTCUSD", "BRK.B"] {
                let bars = feed.closed_bars(ticker, tf, NOW, 2_000).await.unwrap();
                assert_eq!(bars.len(), 2_000);
                for w in bars.windows(2) {
                    assert_eq!(w[1].time - w[0].time, tf.seconds());
                    assert_eq!(w[1].open, w[0].close, "open is the previous close");
                }
                for bar in &bars {
                    assert_eq!(bar.time % tf.seconds(), 0, "aligned to {tf}");
                    bar.validate().unwrap();
                    assert!(bar.close > 10.0 && bar.close < 700.0, "{}", bar.close);
                }
            }
        }
    }

    #[tokio::test]
    async fn synthetic_feed_returns_only_closed_candles() {
        let feed = SyntheticFeed::new(3);
        let tf = Timeframe::H1;
        let boundary = 1_732_550_400; // a whole hour
        // Exactly at a boundary, the candle that just ended is closed.
        let bars = feed.closed_bars("AAPL", tf, boundary, 5).await.unwrap();
        assert_eq!(bars.last().unwrap().time, boundary - 3600);
        // One second before, it is still forming.
        let bars = feed.closed_bars("AAPL", tf, boundary - 1, 5).await.unwrap();
        assert_eq!(bars.last().unwrap().time, boundary - 7200);
        for now in [boundary - 1, boundary, boundary + 1, boundary + 3599] {
            let bars = feed.closed_bars("AAPL", tf, now, 3).await.unwrap();
            let last = bars.last().unwrap();
            assert!(last.close_time(tf) <= now);
            assert!(last.close_time(tf) + tf.seconds() > now);
        }
    }

    #[tokio::test]
    async fn synthetic_feed_honours_count_and_the_start_of_time() {
        let feed = SyntheticFeed::new(3);
        assert!(
            feed.closed_bars("AAPL", Timeframe::M1, NOW, 0)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            feed.closed_bars("AAPL", Timeframe::M1, NOW, 1)
                .await
                .unwrap()
                .len(),
            1
        );
        // Only 3 candles have closed 3.5 minutes after the epoch.
        let early = feed
            .closed_bars("AAPL", Timeframe::M1, 210, 10)
            .await
            .unwrap();
        assert_eq!(
            early.iter().map(|b| b.time).collect::<Vec<_>>(),
            [0, 60, 120]
        );
        assert!(
            feed.closed_bars("AAPL", Timeframe::D1, 86_399, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            feed.closed_bars("AAPL", Timeframe::D1, -5, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            feed.closed_bars("AAPL", Timeframe::D1, i64::MIN, 10)
                .await
                .unwrap()
                .is_empty()
        );
        let capped = feed
            .closed_bars("AAPL", Timeframe::M1, i64::MAX, usize::MAX)
            .await
            .unwrap();
        assert_eq!(capped.len(), SyntheticFeed::MAX_BARS);
    }

    #[tokio::test]
    async fn synthetic_feed_rejects_tickers_that_are_not_uppercase_symbols() {
        let feed = SyntheticFeed::new(3);
        for bad in ["", "aapl", "AA PL", "ABCDEFGHIJKLMNOP", "ÄPFEL"] {
            let err = feed
                .closed_bars(bad, Timeframe::D1, NOW, 5)
                .await
                .unwrap_err();
            assert!(
                matches!(err, MarketDataError::UnknownTicker { .. }),
                "{bad:?}"
            );
            assert!(!err.is_retryable());
        }
        for good in ["BTC-USD", "BRK.B", "^GSPC", "EUR/USD", "ES=F", "X"] {
            assert_eq!(
                feed.closed_bars(good, Timeframe::D1, NOW, 5)
                    .await
                    .unwrap()
                    .len(),
                5
            );
        }
    }

    #[test]
    fn synthetic_volume_spikes_are_rare_and_large() {
        let feed = SyntheticFeed::new(11);
        let bars: Vec<Bar> = (0..5_000)
            .map(|k| feed.bar("ETHUSD", Timeframe::M15, k))
            .collect();
        let mut volumes: Vec<f64> = bars.iter().map(|b| b.volume).collect();
        volumes.sort_by(f64::total_cmp);
        let median = volumes[volumes.len() / 2];
        let spikes = volumes.iter().filter(|v| **v >= 2.0 * median).count();
        assert!((50..=150).contains(&spikes), "{spikes} spikes in 5000 bars");
    }
}
