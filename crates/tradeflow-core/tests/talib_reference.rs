//! Every indicator of `indicators.rs` against TA-Lib's own output on real daily prices.
//!
//! The fixture `fixtures/talib_goog_daily.csv` holds 400 daily GOOG candles (2007-06-01 to
//! 2008-12-30, from the `backtesting` package) and the output of TA-Lib 0.8 (Python `ta-lib`
//! 0.8.2) for each indicator with the signal families' default parameters; the script beside it
//! regenerates it. Each column must match value for value, with the same warm-up: `None` exactly
//! where TA-Lib has NaN, and a relative error of at most 1e-9 everywhere else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use tradeflow_core::indicators;

struct Fixture {
    columns: HashMap<String, Vec<Option<f64>>>,
}

impl Fixture {
    fn load() -> Self {
        let text = include_str!("fixtures/talib_goog_daily.csv");
        let mut lines = text.lines();
        let header: Vec<String> = lines
            .next()
            .unwrap()
            .split(',')
            .map(str::to_owned)
            .collect();
        let mut columns: HashMap<String, Vec<Option<f64>>> =
            header.iter().map(|h| (h.clone(), Vec::new())).collect();
        for line in lines {
            for (name, cell) in header.iter().zip(line.split(',')) {
                let value = if name == "date" || cell.is_empty() {
                    None
                } else {
                    Some(cell.parse::<f64>().unwrap())
                };
                columns.get_mut(name).unwrap().push(value);
            }
        }
        Fixture { columns }
    }

    fn input(&self, name: &str) -> Vec<f64> {
        self.columns[name].iter().map(|v| v.unwrap()).collect()
    }

    /// Asserts `ours` equals TA-Lib's column `name`: same defined indices, relative error
    /// ≤ 1e-9 (absolute 1e-9 for values within 1 of 0). Returns the first defined index.
    fn check(&self, name: &str, ours: &[Option<f64>]) -> usize {
        let expected = &self.columns[name];
        assert_eq!(ours.len(), expected.len(), "{name}: length");
        let mut first = None;
        for (i, (o, e)) in ours.iter().zip(expected).enumerate() {
            match (o, e) {
                (None, None) => {}
                (Some(o), Some(e)) => {
                    first.get_or_insert(i);
                    let err = (o - e).abs() / e.abs().max(1.0);
                    assert!(
                        err <= 1e-9,
                        "{name}[{i}]: ours {o}, TA-Lib {e} (error {err:e})"
                    );
                }
                _ => panic!("{name}[{i}]: ours {o:?}, TA-Lib {e:?} (warm-up differs)"),
            }
        }
        first.unwrap_or_else(|| panic!("{name}: no value at all"))
    }
}

#[test]
fn every_indicator_matches_ta_lib_on_real_daily_prices() {
    let f = Fixture::load();
    let (h, l, c, v) = (
        f.input("high"),
        f.input("low"),
        f.input("close"),
        f.input("volume"),
    );
    assert_eq!(c.len(), 400);
    let mut first = Vec::new();
    let mut check =
        |name: &str, ours: &[Option<f64>]| first.push((name.to_owned(), f.check(name, ours)));

    check("sma50", &indicators::sma(&c, 50));
    check("sma200", &indicators::sma(&c, 200));
    check("sma_volume20", &indicators::sma(&v, 20));
    check("ema12", &indicators::ema(&c, 12));
    check("ema26", &indicators::ema(&c, 26));
    check("ema50", &indicators::ema(&c, 50));
    check("ema200", &indicators::ema(&c, 200));
    check("rsi14", &indicators::rsi(&c, 14));
    let m = indicators::macd(&c, 12, 26, 9);
    // TA-Lib masks the MACD line until the signal exists; ours starts it at the slow seed.
    let masked: Vec<Option<f64>> = m
        .macd
        .iter()
        .zip(&m.signal)
        .map(|(line, signal)| signal.and(*line))
        .collect();
    check("macd", &masked);
    check("macd_signal", &m.signal);
    check("macd_hist", &m.histogram);
    let bb = indicators::bollinger(&c, 20, 2.0);
    check("bb_upper", &bb.upper);
    check("bb_middle", &bb.middle);
    check("bb_lower", &bb.lower);
    check("atr14", &indicators::atr(&h, &l, &c, 14));
    let adx = indicators::adx(&h, &l, &c, 14);
    check("adx14", &adx.adx);
    check("plus_di14", &adx.plus_di);
    check("minus_di14", &adx.minus_di);
    let aroon = indicators::aroon(&h, &l, 25);
    check("aroon_down25", &aroon.down);
    check("aroon_up25", &aroon.up);
    check("cci20", &indicators::cci(&h, &l, &c, 20));
    check("mfi14", &indicators::mfi(&h, &l, &c, &v, 14));
    check("obv", &indicators::obv(&c, &v));
    check("ad", &indicators::ad(&h, &l, &c, &v));
    check("sar", &indicators::sar(&h, &l, 0.02, 0.2));
    let st = indicators::stoch(&h, &l, &c, 14, 3, 3);
    check("stoch_slowk", &st.k);
    check("stoch_slowd", &st.d);
    let sr = indicators::stochrsi(&c, 14, 14, 3);
    check("stochrsi_k", &sr.k);
    check("stochrsi_d", &sr.d);
    check("willr14", &indicators::willr(&h, &l, &c, 14));

    // The warm-ups TA-Lib documents as each function's lookback.
    let first: HashMap<String, usize> = first.into_iter().collect();
    for (name, lookback) in [
        ("sma200", 199),
        ("ema12", 11),
        ("rsi14", 14),
        ("macd_signal", 33),
        ("atr14", 14),
        ("adx14", 27),
        ("aroon_up25", 25),
        ("cci20", 19),
        ("mfi14", 14),
        ("obv", 0),
        ("sar", 1),
        ("stoch_slowk", 17),
        ("stochrsi_k", 29),
        ("willr14", 13),
    ] {
        assert_eq!(first[name], lookback, "{name}");
    }
    assert_eq!(f.columns.len(), 6 + first.len());
}
