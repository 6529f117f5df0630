//! Candles replayed from recorded CSV files.

use std::collections::BTreeMap;
use std::path::Path;

use async_trait::async_trait;
use chrono::{DateTime, Timelike};

use super::{MarketData, MarketDataError, is_valid_ticker};
use crate::vocab::{Bar, BarError, Timeframe};

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
    /// The series' bars closed by `now`. Times are strictly increasing, so that is a prefix.
    fn closed(
        &self,
        ticker: &str,
        timeframe: Timeframe,
        now: i64,
    ) -> Result<&[Bar], MarketDataError> {
        let bars = self
            .bars(ticker, timeframe)
            .ok_or_else(|| MarketDataError::UnknownTicker {
                ticker: ticker.to_owned(),
                timeframe,
            })?;
        Ok(&bars[..bars.partition_point(|b| b.close_time(timeframe) <= now)])
    }

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
                check_row(bar, previous).map_err(|e| MarketDataError::InvalidData {
                    file: file.clone(),
                    line: index as u64 + 1,
                    message: e.to_string(),
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
        let closed = self.closed(ticker, timeframe, now)?;
        let start = closed.len().saturating_sub(count);
        Ok(closed[start..].to_vec())
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
        let closed = self.closed(ticker, timeframe, now)?;
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

/// Why a row (or an in-memory bar) cannot join its series.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum RowError {
    #[error(transparent)]
    Bar(#[from] BarError),
    #[error(
        "timestamp {time} is not after the previous row's {previous} (rows must be strictly increasing)"
    )]
    NotIncreasing { time: i64, previous: i64 },
}

fn check_row(bar: &Bar, previous: Option<&Bar>) -> Result<(), RowError> {
    bar.validate()?;
    match previous {
        Some(previous) if bar.time <= previous.time => Err(RowError::NotIncreasing {
            time: bar.time,
            previous: previous.time,
        }),
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
    let mut reader = ::csv::ReaderBuilder::new()
        .trim(::csv::Trim::All)
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
        let line = record.position().map_or(0, ::csv::Position::line);
        let field = |i: usize| record.get(columns[i]).unwrap_or_default();
        let time = parse_timestamp(field(0)).map_err(|e| invalid(line, e.to_string()))?;
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
        check_row(&bar, bars.last()).map_err(|e| invalid(line, e.to_string()))?;
        bars.push(bar);
    }
    Ok(bars)
}

fn csv_line(error: &::csv::Error) -> Option<u64> {
    error.position().map(::csv::Position::line)
}

/// Integer timestamps at or beyond this magnitude (year 5138) are most likely milliseconds.
const MAX_UNIX_SECONDS: i64 = 100_000_000_000;

/// A timestamp cell that is not a candle time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum TimestampError {
    #[error("timestamp {0} is out of range (milliseconds? expected Unix seconds)")]
    OutOfRange(i64),
    #[error(
        "timestamp {0:?} is neither integer Unix seconds nor RFC 3339 \
         (YYYY-MM-DDTHH:MM:SSZ, ±HH:MM offset, or YYYY-MM-DD)"
    )]
    Unrecognized(String),
}

/// Parses a timestamp cell: integer Unix seconds, RFC 3339 (`Z` or `±HH:MM`), or `YYYY-MM-DD`.
fn parse_timestamp(raw: &str) -> Result<i64, TimestampError> {
    if let Ok(seconds) = raw.parse::<i64>() {
        if seconds.abs() >= MAX_UNIX_SECONDS {
            return Err(TimestampError::OutOfRange(seconds));
        }
        return Ok(seconds);
    }
    parse_rfc3339(raw).ok_or_else(|| TimestampError::Unrecognized(raw.to_owned()))
}

/// RFC 3339 (`T`, `t` or space between date and time; `Z`, `z` or `±HH:MM`) or a bare
/// `YYYY-MM-DD` (00:00:00 UTC), to Unix seconds. Candle times are whole seconds: only a zero
/// fraction is accepted, which also refuses leap seconds (chrono keeps them as a nanosecond
/// count of 1e9 or more).
fn parse_rfc3339(raw: &str) -> Option<i64> {
    let parsed = if raw.len() == 10 {
        DateTime::parse_from_rfc3339(&format!("{raw}T00:00:00Z"))
    } else {
        DateTime::parse_from_rfc3339(raw)
    };
    let time = parsed.ok()?;
    (time.nanosecond() == 0).then(|| time.timestamp())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::path::PathBuf;

    use crate::market::SyntheticFeed;

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

    /// The CSV part of the bad-input catalogue (RELIABILITY.md): rows with gaps (empty cells,
    /// missing or extra cells) or bad numbers stop the load with the file and line; a gap in
    /// time (no candle for a while) and blank lines are fine.
    #[test]
    fn rows_with_gaps_or_bad_numbers_name_their_file_and_line() {
        const HEADER: &str = "timestamp,open,high,low,close,volume\n";
        let good = "1704153600,10,11,9,10.5,100\n";
        let cases = [
            ("empty_cell", "1704240000,,11,9,10.5,1\n", "open \"\""),
            ("empty_time", ",10,11,9,10.5,1\n", "timestamp \"\""),
            ("missing_cell", "1704240000,10,11,9,10.5\n", "fields"),
            ("extra_cell", "1704240000,10,11,9,10.5,1,7\n", "fields"),
            ("infinite", "1704240000,inf,11,9,10.5,1\n", "open"),
            ("overflow", "1704240000,1e999,11,9,10.5,1\n", "open"),
            ("comma_decimal", "1704240000,\"10,5\",11,9,10.5,1\n", "open"),
            ("hex", "1704240000,0x10,11,9,10.5,1\n", "open"),
            ("nan_volume", "1704240000,10,11,9,10.5,NaN\n", "volume"),
            (
                "far_future",
                "100000000000,10,11,9,10.5,1\n",
                "out of range",
            ),
            (
                "i64_overflow",
                "99999999999999999999,10,11,9,10.5,1\n",
                "timestamp",
            ),
        ];
        for (name, row, needle) in cases {
            let dir = TempDir::new(name);
            dir.write("AAPL_D.csv", &format!("{HEADER}{good}{row}"));
            let err = CsvReplay::from_dir(&dir.0).unwrap_err();
            let MarketDataError::InvalidData {
                file,
                line,
                message,
            } = &err
            else {
                panic!("{name}: {err:?}")
            };
            assert!(file.ends_with("AAPL_D.csv"), "{name}: {file}");
            assert_eq!(*line, 3, "{name}: {message}");
            assert!(message.contains(needle), "{name}: {message}");
            assert!(err.to_string().contains("AAPL_D.csv line 3"), "{err}");
        }
        let dir = TempDir::new("gaps_in_time");
        dir.write(
            "AAPL_D.csv",
            &format!("{HEADER}{good}\n1704672000,10,11,9,10.5,1\n"),
        );
        let replay = CsvReplay::from_dir(&dir.0).unwrap();
        assert_eq!(replay.bars("AAPL", Timeframe::D1).unwrap().len(), 2);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// Ok with valid, strictly increasing bars, or a data error naming the file and a line
        /// of the input; never a panic.
        fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
            let lines = bytes.iter().filter(|b| **b == b'\n').count() as u64 + 1;
            match parse_csv(bytes, "T_D.csv") {
                Ok(bars) => {
                    for (i, bar) in bars.iter().enumerate() {
                        prop_assert!(bar.validate().is_ok());
                        if i > 0 {
                            prop_assert!(bar.time > bars[i - 1].time);
                        }
                    }
                }
                Err(MarketDataError::InvalidData { file, line, .. }) => {
                    prop_assert_eq!(file, "T_D.csv");
                    prop_assert!(line <= lines, "line {} of {}", line, lines);
                }
                Err(other) => prop_assert!(false, "{other:?}"),
            }
            Ok(())
        }

        fn cell() -> impl Strategy<Value = String> {
            prop_oneof![
                (1i64..2_000_000_000).prop_map(|n| n.to_string()),
                (0.01f64..1000.0).prop_map(|x| x.to_string()),
                Just(String::new()),
                prop::sample::select(vec!["NaN", "inf", "-1", "0", "1e999", "2024-01-02", "x"])
                    .prop_map(str::to_owned),
                "[ -~]{0,8}",
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
                check(&bytes)?;
                let mut with_header = b"timestamp,open,high,low,close,volume\n".to_vec();
                with_header.extend(bytes);
                check(&with_header)?;
            }

            #[test]
            fn rows_of_arbitrary_cells_load_or_name_a_line(
                rows in prop::collection::vec(prop::collection::vec(cell(), 4..8), 0..8)
            ) {
                let mut text = "timestamp,open,high,low,close,volume\n".to_owned();
                for row in rows {
                    text.push_str(&row.join(","));
                    text.push('\n');
                }
                check(text.as_bytes())?;
            }

            /// Valid candles load as they were written.
            #[test]
            fn valid_rows_round_trip(
                steps in prop::collection::vec((1i64..100_000, 1.0f64..500.0, 0.0f64..0.1, 0.0f64..1e6), 0..20)
            ) {
                let mut text = "timestamp,open,high,low,close,volume\n".to_owned();
                let mut bars = Vec::new();
                let mut time = 946_684_800;
                for (gap, price, spread, volume) in steps {
                    time += gap;
                    let bar = Bar { time, open: price, high: price * (1.0 + spread), low: price * (1.0 - spread / 2.0), close: price, volume };
                    text.push_str(&format!("{},{},{},{},{},{}\n", bar.time, bar.open, bar.high, bar.low, bar.close, bar.volume));
                    bars.push(bar);
                }
                prop_assert_eq!(parse_csv(text.as_bytes(), "T_D.csv").unwrap(), bars);
            }
        }
    }
}
