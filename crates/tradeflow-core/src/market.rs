//! Market data: candles, timeframes, the [`MarketData`] port and two implementations that need
//! no network — a deterministic [`SyntheticFeed`] and a [`CsvReplay`] of recorded files.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// One OHLCV candle. `time` is the candle's OPEN time, integer Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub time: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

impl Bar {
    /// The instant the candle closes: open time + the timeframe's length.
    pub fn close_time(&self, timeframe: Timeframe) -> i64 {
        self.time.saturating_add(timeframe.seconds())
    }

    /// Why this candle is not a plausible OHLCV record, if it is not: prices finite and > 0,
    /// `high >= max(open, close)`, `low <= min(open, close)`, volume finite and >= 0.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("open", self.open),
            ("high", self.high),
            ("low", self.low),
            ("close", self.close),
        ] {
            if !value.is_finite() || value <= 0.0 {
                return Err(format!(
                    "{name} must be a finite positive price, got {value}"
                ));
            }
        }
        if self.high < self.open.max(self.close) {
            return Err(format!(
                "high {} is below max(open {}, close {})",
                self.high, self.open, self.close
            ));
        }
        if self.low > self.open.min(self.close) {
            return Err(format!(
                "low {} is above min(open {}, close {})",
                self.low, self.open, self.close
            ));
        }
        if !self.volume.is_finite() || self.volume < 0.0 {
            return Err(format!(
                "volume must be finite and >= 0, got {}",
                self.volume
            ));
        }
        Ok(())
    }
}

/// Candle timeframe, wire strings `"1"`, `"5"`, `"15"`, `"60"`, `"240"`, `"D"` (minutes, or
/// daily), which serde uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Timeframe {
    #[serde(rename = "1")]
    M1,
    #[serde(rename = "5")]
    M5,
    #[serde(rename = "15")]
    M15,
    #[serde(rename = "60")]
    H1,
    #[serde(rename = "240")]
    H4,
    #[serde(rename = "D")]
    D1,
}

impl Timeframe {
    /// Every timeframe, shortest first.
    pub const ALL: [Timeframe; 6] = [
        Timeframe::M1,
        Timeframe::M5,
        Timeframe::M15,
        Timeframe::H1,
        Timeframe::H4,
        Timeframe::D1,
    ];

    /// Parses a wire string (`"1"`, `"5"`, `"15"`, `"60"`, `"240"`, `"D"`), exactly.
    pub fn parse(raw: &str) -> Result<Self, MarketDataError> {
        Self::ALL
            .into_iter()
            .find(|tf| tf.as_str() == raw)
            .ok_or_else(|| MarketDataError::InvalidTimeframe(raw.to_owned()))
    }

    /// The wire string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Timeframe::M1 => "1",
            Timeframe::M5 => "5",
            Timeframe::M15 => "15",
            Timeframe::H1 => "60",
            Timeframe::H4 => "240",
            Timeframe::D1 => "D",
        }
    }

    /// Length of one candle in seconds.
    pub const fn seconds(self) -> i64 {
        match self {
            Timeframe::M1 => 60,
            Timeframe::M5 => 5 * 60,
            Timeframe::M15 => 15 * 60,
            Timeframe::H1 => 60 * 60,
            Timeframe::H4 => 4 * 60 * 60,
            Timeframe::D1 => 24 * 60 * 60,
        }
    }
}

impl fmt::Display for Timeframe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Timeframe {
    type Err = MarketDataError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Timeframe::parse(s)
    }
}

/// Why market data could not be served.
#[derive(Debug, thiserror::Error)]
pub enum MarketDataError {
    /// The source has no series for this ticker (and timeframe). Permanent.
    #[error("unknown ticker {ticker:?} at timeframe {timeframe}")]
    UnknownTicker {
        ticker: String,
        timeframe: Timeframe,
    },
    /// Not one of the timeframe wire strings. Permanent.
    #[error("invalid timeframe {0:?}: expected one of 1, 5, 15, 60, 240, D")]
    InvalidTimeframe(String),
    /// Stored data that cannot be parsed or is not a valid candle series. `line` is 1-based
    /// (line 1 is a CSV header); 0 means the file as a whole (e.g. its name). Permanent.
    #[error("invalid market data in {file} line {line}: {message}")]
    InvalidData {
        file: String,
        line: u64,
        message: String,
    },
    /// Reading the source failed. Retryable.
    #[error("I/O error reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl MarketDataError {
    /// Whether trying again later may succeed (I/O), as opposed to a permanent fault of the
    /// request or of the data.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MarketDataError::Io { .. })
    }
}

/// Source of closed candles.
///
/// Contract of [`MarketData::closed_bars`]:
/// - returns the most recent bars, at most `count`, of `ticker`/`timeframe` whose candle has
///   CLOSED at or before `now` (Unix seconds): `bar.time + timeframe.seconds() <= now`. A candle
///   still forming is never returned;
/// - oldest first, open times strictly increasing;
/// - deterministic: the same arguments give the same bars;
/// - fewer than `count` bars (possibly none) when the history is shorter;
/// - an unknown ticker is [`MarketDataError::UnknownTicker`] (permanent); I/O problems are
///   [`MarketDataError::Io`] (retryable, see [`MarketDataError::is_retryable`]).
#[async_trait]
pub trait MarketData: Send + Sync {
    async fn closed_bars(
        &self,
        ticker: &str,
        timeframe: Timeframe,
        now: i64,
        count: usize,
    ) -> Result<Vec<Bar>, MarketDataError>;

    /// Catching up from a cursor: of the bars closed at or before `now`, up to `history` of
    /// those that opened at or before `after` (the most recent of them), followed by the first
    /// `count` of those that opened after `after`. Oldest first; otherwise the contract of
    /// [`MarketData::closed_bars`]. Repeating a call returns the same bars, however far `after`
    /// lies behind `now`.
    async fn closed_bars_after(
        &self,
        ticker: &str,
        timeframe: Timeframe,
        now: i64,
        after: i64,
        history: usize,
        count: usize,
    ) -> Result<Vec<Bar>, MarketDataError>;
}

/// Whether `ticker` is an uppercase instrument symbol: 1–15 of `A-Z 0-9 . - / ^ _ =` (the
/// alphabet of the signal's ticker, already normalised to uppercase).
fn is_valid_ticker(ticker: &str) -> bool {
    (1..=15).contains(&ticker.len())
        && ticker.chars().all(|c| {
            c.is_ascii_uppercase()
                || c.is_ascii_digit()
                || matches!(c, '.' | '-' | '/' | '^' | '_' | '=')
        })
}

// ---------------------------------------------------------------------------------------------
// Synthetic feed
// ---------------------------------------------------------------------------------------------

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
        if !is_valid_ticker(ticker) {
            return Err(MarketDataError::UnknownTicker {
                ticker: ticker.to_owned(),
                timeframe,
            });
        }
        let tf = timeframe.seconds();
        // Bar k is closed when (k + 1) * tf <= now, i.e. k <= now / tf - 1.
        let last = now.div_euclid(tf) - 1;
        let count = count.min(Self::MAX_BARS) as i64;
        if last < 0 || count == 0 {
            return Ok(Vec::new());
        }
        let first = (last - count + 1).max(0);
        let series = SeriesParams::new(self.seed, ticker, timeframe);
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
        if !is_valid_ticker(ticker) {
            return Err(MarketDataError::UnknownTicker {
                ticker: ticker.to_owned(),
                timeframe,
            });
        }
        let tf = timeframe.seconds();
        let last = now.div_euclid(tf) - 1;
        // The last bar that opened at or before `after`, among the closed ones.
        let split = after.div_euclid(tf).min(last);
        let history = history.min(Self::MAX_BARS) as i64;
        let count = count.min(Self::MAX_BARS) as i64;
        let first = split.saturating_sub(history - 1).max(0);
        let next = split.saturating_add(1).max(0);
        let end = next.saturating_add(count - 1).min(last);
        let series = SeriesParams::new(self.seed, ticker, timeframe);
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

// ---------------------------------------------------------------------------------------------
// CSV replay
// ---------------------------------------------------------------------------------------------

/// Candles replayed from CSV files, loaded and validated eagerly.
///
/// A directory holds one file per series named `<TICKER>_<TIMEFRAME>.csv` (`AAPL_D.csv`,
/// `BTCUSD_5.csv`; the ticker is everything before the last `_`, uppercase). Each file has the
/// header `timestamp,open,high,low,close,volume` (any column order, extra columns ignored) and
/// one candle per row, `timestamp` being the candle's OPEN time as either
/// - integer Unix seconds (`1704153600`), or
/// - RFC 3339 with a `Z` or `±HH:MM` offset and no sub-second part other than zeros
///   (`2024-01-02T00:00:00Z`, `2024-01-02T09:30:00-05:00`), or
/// - a bare date `YYYY-MM-DD`, meaning 00:00:00 UTC.
///
/// Rows must be in strictly increasing time order and be valid candles ([`Bar::validate`]);
/// the first offending row is reported with its file and line. Files not ending in `.csv` are
/// ignored; sub-directories are not read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CsvReplay {
    series: BTreeMap<String, BTreeMap<Timeframe, Vec<Bar>>>,
}

impl CsvReplay {
    /// Loads every `*.csv` file of `dir` (see the type's documentation).
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, MarketDataError> {
        let dir = dir.as_ref();
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| MarketDataError::Io { path, source }
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let path = entry.map_err(io(dir))?.path();
            if path.extension().is_some_and(|e| e == "csv") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();

        let mut replay = CsvReplay::default();
        for path in paths {
            let file = path.display().to_string();
            let (ticker, timeframe) =
                series_of_file_name(&path).ok_or_else(|| MarketDataError::InvalidData {
                    file: file.clone(),
                    line: 0,
                    message: "file name must be <TICKER>_<TIMEFRAME>.csv with an uppercase \
                              ticker and a timeframe of 1, 5, 15, 60, 240 or D"
                        .to_owned(),
                })?;
            // Bytes, not a String: bad UTF-8 is a data error on a line, not an I/O error.
            let bytes = std::fs::read(&path).map_err(io(&path))?;
            let bars = parse_csv(&bytes, &file)?;
            replay
                .series
                .entry(ticker)
                .or_default()
                .insert(timeframe, bars);
        }
        Ok(replay)
    }

    /// Builds a replay from in-memory series, validated like files (errors name the series as
    /// `<memory:TICKER_TIMEFRAME>` and the 1-based position of the bar as the line).
    pub fn from_bars(
        series: impl IntoIterator<Item = ((String, Timeframe), Vec<Bar>)>,
    ) -> Result<Self, MarketDataError> {
        let mut replay = CsvReplay::default();
        for ((ticker, timeframe), bars) in series {
            let file = format!("<memory:{ticker}_{timeframe}>");
            if !is_valid_ticker(&ticker) {
                return Err(MarketDataError::InvalidData {
                    file,
                    line: 0,
                    message: format!("ticker {ticker:?} is not an uppercase symbol"),
                });
            }
            for (index, bar) in bars.iter().enumerate() {
                let previous = index.checked_sub(1).and_then(|p| bars.get(p));
                check_row(bar, previous).map_err(|message| MarketDataError::InvalidData {
                    file: file.clone(),
                    line: index as u64 + 1,
                    message,
                })?;
            }
            replay
                .series
                .entry(ticker)
                .or_default()
                .insert(timeframe, bars);
        }
        Ok(replay)
    }

    /// The loaded series as (ticker, timeframe), sorted.
    pub fn series(&self) -> Vec<(&str, Timeframe)> {
        self.series
            .iter()
            .flat_map(|(t, by_tf)| by_tf.keys().map(move |tf| (t.as_str(), *tf)))
            .collect()
    }

    /// Every loaded bar of a series, oldest first.
    pub fn bars(&self, ticker: &str, timeframe: Timeframe) -> Option<&[Bar]> {
        self.series
            .get(ticker)
            .and_then(|by_tf| by_tf.get(&timeframe))
            .map(Vec::as_slice)
    }
}

#[async_trait]
impl MarketData for CsvReplay {
    async fn closed_bars(
        &self,
        ticker: &str,
        timeframe: Timeframe,
        now: i64,
        count: usize,
    ) -> Result<Vec<Bar>, MarketDataError> {
        let bars = self
            .bars(ticker, timeframe)
            .ok_or_else(|| MarketDataError::UnknownTicker {
                ticker: ticker.to_owned(),
                timeframe,
            })?;
        // Times are strictly increasing, so "closed by now" is a prefix.
        let end = bars.partition_point(|b| b.close_time(timeframe) <= now);
        let start = end.saturating_sub(count);
        Ok(bars[start..end].to_vec())
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
        let bars = self
            .bars(ticker, timeframe)
            .ok_or_else(|| MarketDataError::UnknownTicker {
                ticker: ticker.to_owned(),
                timeframe,
            })?;
        let closed = &bars[..bars.partition_point(|b| b.close_time(timeframe) <= now)];
        let split = closed.partition_point(|b| b.time <= after);
        let start = split.saturating_sub(history);
        let end = split.saturating_add(count).min(closed.len());
        Ok(closed[start..end].to_vec())
    }
}

fn series_of_file_name(path: &Path) -> Option<(String, Timeframe)> {
    let stem = path.file_stem()?.to_str()?;
    let (ticker, timeframe) = stem.rsplit_once('_')?;
    let timeframe = Timeframe::parse(timeframe).ok()?;
    is_valid_ticker(ticker).then(|| (ticker.to_owned(), timeframe))
}

fn check_row(bar: &Bar, previous: Option<&Bar>) -> Result<(), String> {
    bar.validate()?;
    match previous {
        Some(previous) if bar.time <= previous.time => Err(format!(
            "timestamp {} is not after the previous row's {} (rows must be strictly increasing)",
            bar.time, previous.time
        )),
        _ => Ok(()),
    }
}

const CSV_COLUMNS: [&str; 6] = ["timestamp", "open", "high", "low", "close", "volume"];

fn parse_csv(bytes: &[u8], file: &str) -> Result<Vec<Bar>, MarketDataError> {
    let invalid = |line: u64, message: String| MarketDataError::InvalidData {
        file: file.to_owned(),
        line,
        message,
    };
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| invalid(csv_line(&e).unwrap_or(1), e.to_string()))?
        .clone();
    let mut columns = [0usize; 6];
    for (slot, name) in columns.iter_mut().zip(CSV_COLUMNS) {
        *slot = headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                invalid(
                    1,
                    format!(
                        "missing column {name:?}; the header must be {}",
                        CSV_COLUMNS.join(",")
                    ),
                )
            })?;
    }

    let mut bars: Vec<Bar> = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| invalid(csv_line(&e).unwrap_or(0), e.to_string()))?;
        let line = record.position().map_or(0, csv::Position::line);
        let field = |i: usize| record.get(columns[i]).unwrap_or_default();
        let time = parse_timestamp(field(0)).map_err(|m| invalid(line, m))?;
        let mut prices = [0.0; 5];
        for (value, i) in prices.iter_mut().zip(1..) {
            *value = field(i).parse::<f64>().map_err(|_| {
                invalid(
                    line,
                    format!("{} {:?} is not a number", CSV_COLUMNS[i], field(i)),
                )
            })?;
        }
        let [open, high, low, close, volume] = prices;
        let bar = Bar {
            time,
            open,
            high,
            low,
            close,
            volume,
        };
        check_row(&bar, bars.last()).map_err(|m| invalid(line, m))?;
        bars.push(bar);
    }
    Ok(bars)
}

fn csv_line(error: &csv::Error) -> Option<u64> {
    error.position().map(csv::Position::line)
}

/// Integer timestamps at or beyond this magnitude (year 5138) are most likely milliseconds.
const MAX_UNIX_SECONDS: i64 = 100_000_000_000;

/// Parses a timestamp cell: integer Unix seconds, RFC 3339 (`Z` or `±HH:MM`), or `YYYY-MM-DD`.
fn parse_timestamp(raw: &str) -> Result<i64, String> {
    if let Ok(seconds) = raw.parse::<i64>() {
        if seconds.abs() >= MAX_UNIX_SECONDS {
            return Err(format!(
                "timestamp {seconds} is out of range (milliseconds? expected Unix seconds)"
            ));
        }
        return Ok(seconds);
    }
    parse_rfc3339(raw).ok_or_else(|| {
        format!(
            "timestamp {raw:?} is neither integer Unix seconds nor RFC 3339 \
             (YYYY-MM-DDTHH:MM:SSZ, ±HH:MM offset, or YYYY-MM-DD)"
        )
    })
}

fn parse_rfc3339(s: &str) -> Option<i64> {
    let digits = |from: usize, to: usize| -> Option<i64> {
        let part = s.get(from..to)?;
        if part.bytes().all(|b| b.is_ascii_digit()) {
            part.parse().ok()
        } else {
            None
        }
    };
    let byte = |at: usize| s.as_bytes().get(at).copied();

    let year = digits(0, 4)?;
    (byte(4) == Some(b'-') && byte(7) == Some(b'-')).then_some(())?;
    let month = digits(5, 7)?;
    let day = digits(8, 10)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if s.len() == 10 {
        return Some(days * 86_400);
    }

    matches!(byte(10), Some(b'T' | b't' | b' ')).then_some(())?;
    (byte(13) == Some(b':') && byte(16) == Some(b':')).then_some(())?;
    let hour = digits(11, 13)?;
    let minute = digits(14, 16)?;
    let second = digits(17, 19)?;
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }

    let mut rest = s.get(19..)?;
    if let Some(fraction) = rest.strip_prefix('.') {
        let len = fraction.bytes().take_while(u8::is_ascii_digit).count();
        // Candle times are whole seconds: only a zero fraction is accepted.
        if len == 0 || !fraction[..len].bytes().all(|b| b == b'0') {
            return None;
        }
        rest = &fraction[len..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let tz = rest.get(1..)?;
            if tz.len() != 5 || tz.as_bytes().get(2) != Some(&b':') {
                return None;
            }
            let oh: i64 = tz.get(0..2)?.parse().ok()?;
            let om: i64 = tz.get(3..5)?.parse().ok()?;
            if oh > 23
                || om > 59
                || !tz
                    .bytes()
                    .enumerate()
                    .all(|(i, b)| i == 2 || b.is_ascii_digit())
            {
                return None;
            }
            sign * (oh * 3600 + om * 60)
        }
    };
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    const NOW: i64 = 1_732_550_400; // 2024-11-25T16:00:00Z

    fn testdata() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/replay")
    }

    /// A fresh, empty directory for one test; removed by the returned guard.
    struct TempDir(PathBuf);
    impl TempDir {
        fn new(name: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "tradeflow-core-market-{}-{name}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
        fn write(&self, file: &str, text: &str) {
            std::fs::write(self.0.join(file), text).unwrap();
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn timeframes_round_trip_through_their_wire_strings() {
        for tf in Timeframe::ALL {
            assert_eq!(Timeframe::parse(tf.as_str()).unwrap(), tf);
            assert_eq!(tf.as_str().parse::<Timeframe>().unwrap(), tf);
            assert_eq!(tf.to_string(), tf.as_str());
            let json = serde_json::to_string(&tf).unwrap();
            assert_eq!(json, format!("\"{}\"", tf.as_str()));
            assert_eq!(serde_json::from_str::<Timeframe>(&json).unwrap(), tf);
        }
        let seconds: Vec<i64> = Timeframe::ALL.iter().map(|t| t.seconds()).collect();
        assert_eq!(seconds, [60, 300, 900, 3600, 14_400, 86_400]);
        for bad in ["", "2", "1D", "d", "M5", " 5"] {
            let err = Timeframe::parse(bad).unwrap_err();
            assert!(matches!(err, MarketDataError::InvalidTimeframe(_)), "{bad}");
            assert!(!err.is_retryable());
        }
        let err = serde_json::from_str::<Timeframe>("\"7\"").unwrap_err();
        assert!(err.to_string().contains("unknown variant `7`"), "{err}");
        assert!(
            serde_json::from_str::<Timeframe>("5").is_err(),
            "a number is not a wire string"
        );
        // Owned input (no borrowing possible) works too.
        let v = serde_json::Value::String("240".into());
        assert_eq!(
            serde_json::from_value::<Timeframe>(v).unwrap(),
            Timeframe::H4
        );
    }

    #[test]
    fn bars_serialize_with_their_field_names() {
        let bar = Bar {
            time: 60,
            open: 1.0,
            high: 2.0,
            low: 0.5,
            close: 1.5,
            volume: 10.0,
        };
        let json = serde_json::to_value(bar).unwrap();
        assert_eq!(json["time"], 60);
        assert_eq!(serde_json::from_value::<Bar>(json).unwrap(), bar);
        assert_eq!(bar.close_time(Timeframe::M1), 120);
    }

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

    #[test]
    fn rfc3339_and_integer_timestamps_parse_to_unix_seconds() {
        let cases = [
            ("0", 0),
            ("1704153600", 1_704_153_600),
            ("1970-01-01T00:00:00Z", 0),
            ("2024-01-02T00:00:00Z", 1_704_153_600),
            ("2024-01-02", 1_704_153_600),
            ("2024-01-02t00:00:00z", 1_704_153_600),
            ("2024-01-02 00:00:00Z", 1_704_153_600),
            ("2024-01-02T01:00:00+01:00", 1_704_153_600),
            ("2024-01-01T19:00:00-05:00", 1_704_153_600),
            ("2024-01-02T00:00:00.000Z", 1_704_153_600),
            ("2000-03-01T00:00:00Z", 951_868_800),
            ("2024-02-29T12:34:56Z", 1_709_210_096),
            ("1969-12-31T23:59:59Z", -1),
        ];
        for (raw, expected) in cases {
            assert_eq!(parse_timestamp(raw), Ok(expected), "{raw}");
        }
        for bad in [
            "",
            "2024-01-02T00:00:00",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-02T24:00:00Z",
            "2024-01-02T00:00:60Z",
            "2024-01-02T00:00:00.5Z",
            "2024-01-02T00:00:00+1:00",
            "2024-01-02T00:00:00+01:0x",
            "2024-1-02",
            "1704153600000",
            "12.5",
            "2024-01-02T00:00:00Zjunk",
            "2024-01-0é",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[tokio::test]
    async fn csv_replay_loads_the_testdata_directory() {
        let replay = CsvReplay::from_dir(testdata()).unwrap();
        assert_eq!(
            replay.series(),
            [("AAPL", Timeframe::D1), ("BTCUSD", Timeframe::M5)]
        );
        let aapl = replay.bars("AAPL", Timeframe::D1).unwrap();
        assert_eq!(aapl.len(), 10);
        assert_eq!(aapl[0].time, 1_704_153_600); // 2024-01-02T00:00:00Z
        assert_eq!(aapl[0].close, 185.64);
        let btc = replay.bars("BTCUSD", Timeframe::M5).unwrap();
        assert_eq!(btc[0].time, 1_704_067_200);
        assert_eq!(btc.len(), 8);
    }

    #[tokio::test]
    async fn csv_replay_serves_only_closed_candles_latest_first_count() {
        let replay = CsvReplay::from_dir(testdata()).unwrap();
        let tf = Timeframe::M5;
        let first = 1_704_067_200;
        let all = replay
            .closed_bars("BTCUSD", tf, i64::MAX, 100)
            .await
            .unwrap();
        assert_eq!(all.len(), 8);
        // The third candle closes at first + 3 * 300.
        let bars = replay
            .closed_bars("BTCUSD", tf, first + 900, 100)
            .await
            .unwrap();
        assert_eq!(bars, all[..3]);
        let bars = replay
            .closed_bars("BTCUSD", tf, first + 899, 100)
            .await
            .unwrap();
        assert_eq!(bars, all[..2]);
        // The most recent `count`.
        let bars = replay
            .closed_bars("BTCUSD", tf, first + 900, 2)
            .await
            .unwrap();
        assert_eq!(bars, all[1..3]);
        assert!(
            replay
                .closed_bars("BTCUSD", tf, first, 5)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            replay
                .closed_bars("BTCUSD", tf, i64::MAX, 0)
                .await
                .unwrap()
                .is_empty()
        );

        for (ticker, tf) in [("MSFT", Timeframe::D1), ("BTCUSD", Timeframe::D1)] {
            let err = replay.closed_bars(ticker, tf, NOW, 5).await.unwrap_err();
            assert!(matches!(err, MarketDataError::UnknownTicker { .. }));
            assert!(!err.is_retryable());
        }
    }

    #[test]
    fn csv_replay_reports_the_file_and_line_of_bad_rows() {
        const HEADER: &str = "timestamp,open,high,low,close,volume\n";
        let good = "1704153600,10,11,9,10.5,100\n";
        let cases = [
            (
                "unsorted",
                "1704240000,10,11,9,10.5,100\n1704153600,10,11,9,10.5,100\n",
                4,
                "increasing",
            ),
            (
                "duplicate",
                "1704153600,10,11,9,10.5,100\n1704153600,10,11,9,10.5,100\n",
                3,
                "increasing",
            ),
            ("high", "1704240000,10,10.2,9,10.5,100\n", 3, "high"),
            ("low", "1704240000,10,11,10.1,10.5,100\n", 3, "low"),
            (
                "negative_volume",
                "1704240000,10,11,9,10.5,-1\n",
                3,
                "volume",
            ),
            ("zero_price", "1704240000,0,11,0,10.5,1\n", 3, "open"),
            ("nan_price", "1704240000,NaN,11,9,10.5,1\n", 3, "open"),
            ("not_a_number", "1704240000,ten,11,9,10.5,1\n", 3, "open"),
            ("bad_time", "yesterday,10,11,9,10.5,1\n", 3, "timestamp"),
            (
                "milliseconds",
                "1704240000000,10,11,9,10.5,1\n",
                3,
                "milliseconds",
            ),
            ("short_row", "1704240000,10,11\n", 3, ""),
        ];
        for (name, rows, line, needle) in cases {
            let dir = TempDir::new(name);
            dir.write("AAPL_D.csv", &format!("{HEADER}{good}{rows}"));
            let err = CsvReplay::from_dir(&dir.0).unwrap_err();
            match &err {
                MarketDataError::InvalidData {
                    file,
                    line: l,
                    message,
                } => {
                    assert!(file.ends_with("AAPL_D.csv"), "{name}: {file}");
                    assert_eq!(*l, line, "{name}: {message}");
                    assert!(message.contains(needle), "{name}: {message}");
                }
                other => panic!("{name}: unexpected {other:?}"),
            }
            assert!(!err.is_retryable());
            assert!(err.to_string().contains("AAPL_D.csv line"), "{err}");
        }
    }

    #[test]
    fn csv_replay_checks_headers_and_file_names() {
        let dir = TempDir::new("header");
        dir.write(
            "AAPL_D.csv",
            "time,open,high,low,close,volume\n1,1,1,1,1,1\n",
        );
        let err = CsvReplay::from_dir(&dir.0).unwrap_err();
        let MarketDataError::InvalidData { line, message, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(*line, 1);
        assert!(message.contains("timestamp"), "{message}");

        for bad_name in ["AAPL.csv", "aapl_D.csv", "AAPL_7.csv", "AAPL_1D.csv"] {
            let dir = TempDir::new("name");
            dir.write(bad_name, "timestamp,open,high,low,close,volume\n");
            let err = CsvReplay::from_dir(&dir.0).unwrap_err();
            let MarketDataError::InvalidData { line, file, .. } = &err else {
                panic!("{bad_name}: {err:?}")
            };
            assert_eq!(*line, 0, "{bad_name}");
            assert!(file.ends_with(bad_name), "{file}");
        }

        // Column order is free, extra columns and other files are ignored, a header-only file
        // is an empty series, a ticker may contain underscores.
        let dir = TempDir::new("flexible");
        dir.write(
            "BRK_B_60.csv",
            "Volume,Close,Low,High,Open,Timestamp,Note\n5,10.5,9,11,10,2024-01-02T00:00:00Z,x\n",
        );
        dir.write("MSFT_D.csv", "timestamp,open,high,low,close,volume\n");
        dir.write("README.txt", "not a csv");
        let replay = CsvReplay::from_dir(&dir.0).unwrap();
        let bars = replay.bars("BRK_B", Timeframe::H1).unwrap();
        assert_eq!(bars.len(), 1);
        assert_eq!((bars[0].open, bars[0].volume), (10.0, 5.0));
        assert_eq!(replay.bars("MSFT", Timeframe::D1).unwrap().len(), 0);
    }

    #[test]
    fn csv_replay_reports_bad_utf8_as_data_not_io() {
        let dir = TempDir::new("utf8");
        let mut bytes =
            b"timestamp,open,high,low,close,volume\n1704153600,10,11,9,10.5,1\n".to_vec();
        bytes.extend_from_slice(b"1704240000,10,11,9,\xff,1\n");
        std::fs::write(dir.0.join("AAPL_D.csv"), bytes).unwrap();
        let err = CsvReplay::from_dir(&dir.0).unwrap_err();
        assert!(
            matches!(err, MarketDataError::InvalidData { line: 3, .. }),
            "{err:?}"
        );
        assert!(!err.is_retryable());
    }

    #[test]
    fn csv_replay_of_a_missing_directory_is_a_retryable_io_error() {
        let err = CsvReplay::from_dir("/nonexistent/tradeflow/replay").unwrap_err();
        assert!(matches!(err, MarketDataError::Io { .. }));
        assert!(err.is_retryable());
        assert!(std::error::Error::source(&err).is_some());
    }

    #[tokio::test]
    async fn csv_replay_from_bars_validates_like_files() {
        let bar = |time: i64, close: f64| Bar {
            time,
            open: 10.0,
            high: 12.0,
            low: 9.0,
            close,
            volume: 1.0,
        };
        let replay = CsvReplay::from_bars([(
            ("AAPL".to_owned(), Timeframe::M1),
            vec![bar(0, 10.0), bar(60, 11.0)],
        )])
        .unwrap();
        let bars = replay
            .closed_bars("AAPL", Timeframe::M1, 120, 10)
            .await
            .unwrap();
        assert_eq!(bars.len(), 2);

        let err = CsvReplay::from_bars([(
            ("AAPL".to_owned(), Timeframe::M1),
            vec![bar(0, 10.0), bar(0, 11.0)],
        )])
        .unwrap_err();
        assert!(
            matches!(err, MarketDataError::InvalidData { line: 2, .. }),
            "{err:?}"
        );
        let err = CsvReplay::from_bars([(("AAPL".to_owned(), Timeframe::M1), vec![bar(0, 13.0)])])
            .unwrap_err();
        assert!(
            matches!(err, MarketDataError::InvalidData { line: 1, .. }),
            "{err:?}"
        );
        let err = CsvReplay::from_bars([(("aapl".to_owned(), Timeframe::M1), vec![])]).unwrap_err();
        assert!(
            matches!(err, MarketDataError::InvalidData { line: 0, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn the_port_is_object_safe() {
        let sources: Vec<Box<dyn MarketData>> = vec![
            Box::new(SyntheticFeed::new(1)),
            Box::new(CsvReplay::default()),
        ];
        assert_eq!(sources.len(), 2);
    }

    #[tokio::test]
    async fn closed_bars_after_gives_history_then_the_first_new_bars() {
        // Reference: every closed bar, split at `after` by open time.
        async fn check(source: &dyn MarketData, tf: Timeframe, now: i64, all: &[Bar]) {
            let closed: Vec<Bar> = all
                .iter()
                .copied()
                .filter(|b| b.close_time(tf) <= now)
                .collect();
            for after in [
                i64::MIN,
                -1,
                0,
                all[3].time,
                all[3].time + 1,
                all[9].time,
                now,
                i64::MAX,
            ] {
                for (history, count) in [(0, 0), (0, 3), (2, 0), (2, 3), (100, 100)] {
                    let split = closed.partition_point(|b| b.time <= after);
                    let want =
                        &closed[split.saturating_sub(history)..(split + count).min(closed.len())];
                    let got = source
                        .closed_bars_after("AAPL", tf, now, after, history, count)
                        .await
                        .unwrap();
                    assert_eq!(got, want, "after {after}, history {history}, count {count}");
                }
            }
        }
        let feed = SyntheticFeed::new(3);
        let tf = Timeframe::H1;
        let all: Vec<Bar> = (0..40).map(|k| feed.bar("AAPL", tf, k)).collect();
        check(&feed, tf, 20 * 3600 + 5, &all).await;
        // Gaps, as in a replay of trading days.
        let sparse: Vec<Bar> = all.iter().copied().step_by(3).collect();
        let replay = CsvReplay::from_bars([(("AAPL".to_owned(), tf), sparse.clone())]).unwrap();
        check(&replay, tf, 30 * 3600, &sparse).await;
        assert!(matches!(
            replay.closed_bars_after("MSFT", tf, 0, 0, 1, 1).await,
            Err(MarketDataError::UnknownTicker { .. })
        ));
    }
}
