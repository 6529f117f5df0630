//! Every indicator of `indicators.rs` against TA-Lib's own output on real daily prices.
//!
//! The fixture `fixtures/talib_goog_daily.csv` holds 400 daily GOOG candles (2009-08-06 to
//! 2011-03-08, from the `backtesting` package) and the output of TA-Lib 0.8 (Python `ta-lib`
//! 0.8.2) for each indicator with the signal families' default parameters; the script beside it
//! regenerates it. Each column must match value for value, with the same warm-up: `None` exactly
//! where TA-Lib has NaN, and a relative error of at most 1e-9 everywhere else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use tradeflow_core::detectors::*;
use tradeflow_core::indicators;
use tradeflow_core::vocab::Bar;

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

/// The candles of the fixture.
fn bars(f: &Fixture) -> Vec<Bar> {
    let (o, h, l, c, v) = (
        f.input("open"),
        f.input("high"),
        f.input("low"),
        f.input("close"),
        f.input("volume"),
    );
    (0..c.len())
        .map(|i| Bar {
            time: 1_180_656_000 + 86_400 * i as i64,
            open: o[i],
            high: h[i],
            low: l[i],
            close: c[i],
            volume: v[i],
        })
        .collect()
}

/// Every (index, signal_type) the family fires on over the fixture's candles.
fn fired(detector: &dyn Detector, bars: &[Bar]) -> Vec<(usize, &'static str)> {
    (0..bars.len())
        .filter_map(|i| detector.detect(bars, i).map(|d| (i, d.signal_type)))
        .collect()
}

/// The indices where `a` crosses `b` upwards / downwards (from `<=` to `>`, from `>=` to
/// `<`), both defined on the two candles.
fn crosses(a: &[Option<f64>], b: &[Option<f64>]) -> Vec<(usize, bool)> {
    (1..a.len())
        .filter_map(|i| {
            let (a0, a1, b0, b1) = (a[i - 1]?, a[i]?, b[i - 1]?, b[i]?);
            if a0 <= b0 && a1 > b1 {
                Some((i, true))
            } else if a0 >= b0 && a1 < b1 {
                Some((i, false))
            } else {
                None
            }
        })
        .collect()
}

fn level(f: &Fixture, value: f64) -> Vec<Option<f64>> {
    vec![Some(value); f.columns["close"].len()]
}

/// Zone entries below `low` and above `high` first, then crosses of `mid` (if any).
fn zones(
    f: &Fixture,
    x: &[Option<f64>],
    low: f64,
    high: f64,
    mid: Option<f64>,
    names: [&'static str; 4],
) -> Vec<(usize, &'static str)> {
    let below = crosses(x, &level(f, low));
    let above = crosses(x, &level(f, high));
    let middle = mid.map(|m| crosses(x, &level(f, m))).unwrap_or_default();
    let mut out = Vec::new();
    for i in 1..x.len() {
        if below.contains(&(i, false)) {
            out.push((i, names[0]));
        } else if above.contains(&(i, true)) {
            out.push((i, names[1]));
        } else if middle.contains(&(i, true)) {
            out.push((i, names[2]));
        } else if middle.contains(&(i, false)) {
            out.push((i, names[3]));
        }
    }
    out
}

fn named(
    crosses: Vec<(usize, bool)>,
    up: &'static str,
    down: &'static str,
) -> Vec<(usize, &'static str)> {
    crosses
        .into_iter()
        .map(|(i, is_up)| (i, if is_up { up } else { down }))
        .collect()
}

/// Each of the 19 indicator families fires exactly where its rule, applied to TA-Lib's own
/// columns, says:
/// on the first candle TA-Lib's values allow, and only on the candle where the condition
/// starts.
#[test]
fn the_indicator_families_fire_where_ta_libs_values_say() {
    let f = Fixture::load();
    let bars = bars(&f);
    let col = |name: &str| f.columns[name].clone();
    let close = col("close");
    let mut checked = 0;
    let mut check = |detector: &dyn Detector, expected: Vec<(usize, &'static str)>| {
        let got = fired(detector, &bars);
        assert_eq!(got, expected, "{}", detector.name());
        assert!(
            !got.is_empty(),
            "{} never fires on the fixture",
            detector.name()
        );
        checked += 1;
    };

    check(
        &RsiDetector::default(),
        zones(
            &f,
            &col("rsi14"),
            30.0,
            70.0,
            None,
            ["rsi_oversold", "rsi_overbought", "", ""],
        ),
    );
    check(
        &MacdDetector::default(),
        named(
            crosses(&col("macd"), &col("macd_signal")),
            "macd_bullish",
            "macd_bearish",
        ),
    );
    check(
        &EmaCrossoverDetector::default(),
        named(
            crosses(&col("ema12"), &col("ema26")),
            "ema_bullish_crossover",
            "ema_bearish_crossover",
        ),
    );
    let sma = crosses(&col("sma50"), &col("sma200"));
    check(
        &GoldenCrossDetector::default(),
        named(
            sma.iter().copied().filter(|c| c.1).collect(),
            "golden_cross",
            "",
        ),
    );
    check(
        &DeathCrossDetector::default(),
        named(
            sma.iter().copied().filter(|c| !c.1).collect(),
            "",
            "death_cross",
        ),
    );
    check(
        &Ema200CrossoverDetector::default(),
        named(
            crosses(&close, &col("ema200")),
            "ema_200_bullish_crossover",
            "ema_200_bearish_crossover",
        ),
    );
    let mut bb: Vec<(usize, &'static str)> = named(
        crosses(&close, &col("bb_upper"))
            .into_iter()
            .filter(|c| c.1)
            .chain(
                crosses(&close, &col("bb_lower"))
                    .into_iter()
                    .filter(|c| !c.1),
            )
            .collect(),
        "bbands_upper_breakout",
        "bbands_lower_breakout",
    );
    bb.sort();
    check(&BollingerDetector::default(), bb);
    let adx = col("adx14");
    let mut adx_events: Vec<(usize, &'static str)> = named(
        crosses(&adx, &level(&f, 25.0))
            .into_iter()
            .filter(|c| c.1)
            .collect(),
        "adx_strong_trend",
        "",
    );
    adx_events.extend(named(
        crosses(&adx, &level(&f, 20.0))
            .into_iter()
            .filter(|c| !c.1)
            .collect(),
        "",
        "adx_weak_trend",
    ));
    adx_events.sort();
    check(&AdxDetector::default(), adx_events);
    check(
        &CciDetector::default(),
        zones(
            &f,
            &col("cci20"),
            -100.0,
            100.0,
            Some(0.0),
            [
                "cci_oversold",
                "cci_overbought",
                "cci_bullish_zero_cross",
                "cci_bearish_zero_cross",
            ],
        ),
    );
    check(
        &MfiDetector::default(),
        zones(
            &f,
            &col("mfi14"),
            20.0,
            80.0,
            None,
            ["mfi_oversold", "mfi_overbought", "", ""],
        ),
    );
    check(
        &WillrDetector::default(),
        zones(
            &f,
            &col("willr14"),
            -80.0,
            -20.0,
            Some(-50.0),
            [
                "willr_oversold",
                "willr_overbought",
                "willr_bullish_momentum",
                "willr_bearish_momentum",
            ],
        ),
    );
    check(
        &StochasticDetector::default(),
        named(
            crosses(&col("stoch_slowk"), &col("stoch_slowd")),
            "stoch_bullish",
            "stoch_bearish",
        ),
    );
    // Aroon: the first matching rule of the family's documentation, on TA-Lib's lines.
    let (up, down) = (col("aroon_up25"), col("aroon_down25"));
    let trend = |u: f64, d: f64| u > 70.0 && d < 30.0;
    let low = |u: f64, d: f64| u < 50.0 && d < 50.0;
    let aroon: Vec<(usize, &'static str)> = (1..up.len())
        .filter_map(|i| {
            let (u0, u, d0, d) = (up[i - 1]?, up[i]?, down[i - 1]?, down[i]?);
            if trend(u, d) {
                (!trend(u0, d0)).then_some((i, "aroon_uptrend"))
            } else if trend(d, u) {
                (!trend(d0, u0)).then_some((i, "aroon_downtrend"))
            } else if u > d && u0 <= d0 {
                Some((i, "aroon_bullish_cross"))
            } else if d > u && d0 <= u0 {
                Some((i, "aroon_bearish_cross"))
            } else if low(u, d) && !low(u0, d0) {
                Some((i, "aroon_consolidation"))
            } else {
                None
            }
        })
        .collect();
    check(&AroonDetector::default(), aroon);
    // SAR: the side of the candle's midpoint it is on flips.
    let sar = col("sar");
    let sar_events: Vec<(usize, &'static str)> = (2..sar.len())
        .filter_map(|i| {
            let long = |j: usize| sar[j].map(|s| s < (bars[j].high + bars[j].low) / 2.0);
            match (long(i - 1)?, long(i)?) {
                (false, true) => Some((i, "sar_bullish_reversal")),
                (true, false) => Some((i, "sar_bearish_reversal")),
                _ => None,
            }
        })
        .collect();
    check(&SarDetector::default(), sar_events);
    // StochRSI: zones on %K first, then %K/%D crosses (%D within 1e-9 of %K equals it).
    let k = col("stochrsi_k");
    let d: Vec<Option<f64>> = col("stochrsi_d")
        .iter()
        .zip(&k)
        .map(|(d, k)| match (d, k) {
            (Some(d), Some(k)) if (d - k).abs() < 1e-9 => Some(*k),
            _ => *d,
        })
        .collect();
    let zone = zones(
        &f,
        &col("stochrsi_k"),
        20.0,
        80.0,
        None,
        ["stochrsi_oversold", "stochrsi_overbought", "", ""],
    );
    let kd = crosses(&k, &d);
    let stochrsi: Vec<(usize, &'static str)> = (1..k.len())
        .filter_map(|i| {
            if let Some(z) = zone.iter().find(|z| z.0 == i) {
                Some(*z)
            } else {
                kd.iter().find(|c| c.0 == i).map(|c| {
                    (
                        i,
                        if c.1 {
                            "stochrsi_bullish_cross"
                        } else {
                            "stochrsi_bearish_cross"
                        },
                    )
                })
            }
        })
        .collect();
    check(&StochRsiDetector::default(), stochrsi);

    // ATR against the mean of its 30 previous TA-Lib values.
    let atr = col("atr14");
    let atr_events: Vec<(usize, &'static str)> = (31..atr.len())
        .filter_map(|t| {
            let before: Option<Vec<f64>> = atr[t - 30..t].iter().copied().collect();
            let mean = before?.iter().sum::<f64>() / 30.0;
            let (prev, cur) = (atr[t - 1]?, atr[t]?);
            if cur > 1.5 * mean && prev <= 1.5 * mean {
                Some((t, "atr_volatility_spike"))
            } else if cur < 0.7 * mean && prev >= 0.7 * mean {
                Some((t, "atr_volatility_compression"))
            } else {
                None
            }
        })
        .collect();
    check(&AtrDetector::default(), atr_events);

    // Volume spike: volume ≥ 2 × TA-Lib's SMA(volume, 20) of the candles before.
    let (volume, sma_volume) = (f.input("volume"), col("sma_volume20"));
    let spikes: Vec<(usize, &'static str)> = (1..volume.len())
        .filter(|&t| sma_volume[t - 1].is_some_and(|m| volume[t] / m >= 2.0))
        .map(|t| (t, "volume_spike"))
        .collect();
    check(&VolumeSpikeDetector::default(), spikes);

    // OBV: net flow over 10 candles from TA-Lib's OBV, a state that held on none of the 10
    // candles before.
    let obv = col("obv");
    let c = f.input("close");
    let state = |e: usize| -> Option<&'static str> {
        let start = e.checked_sub(10)?;
        let flow = (obv[e]? - obv[start]?) / volume[start + 1..=e].iter().sum::<f64>();
        let dp = (c[e] - c[start]) / c[start] * 100.0;
        if flow > 0.2 && dp < -2.0 {
            Some("obv_bullish_divergence")
        } else if flow < -0.2 && dp > 2.0 {
            Some("obv_bearish_divergence")
        } else if flow > 0.4 && dp > 2.0 {
            Some("obv_bullish_breakout")
        } else if flow < -0.4 && dp < -2.0 {
            Some("obv_bearish_breakdown")
        } else {
            None
        }
    };
    let obv_events: Vec<(usize, &'static str)> = (0..obv.len())
        .filter_map(|e| {
            let s = state(e)?;
            (e.saturating_sub(10)..e)
                .all(|p| state(p) != Some(s))
                .then_some((e, s))
        })
        .collect();
    check(&ObvDetector::default(), obv_events);

    // A/D: TA-Lib's AD line change over 14 candles per unit of their volume, crossing ±0.25.
    let ad = col("ad");
    let slope: Vec<Option<f64>> = (0..ad.len())
        .map(|e| {
            let start = e.checked_sub(14)?;
            Some((ad[e]? - ad[start]?) / volume[start + 1..=e].iter().sum::<f64>())
        })
        .collect();
    let mut ad_events = named(
        crosses(&slope, &level(&f, 0.25))
            .into_iter()
            .filter(|c| c.1)
            .collect(),
        "accumulation_signal",
        "",
    );
    ad_events.extend(named(
        crosses(&slope, &level(&f, -0.25))
            .into_iter()
            .filter(|c| !c.1)
            .collect(),
        "",
        "distribution_signal",
    ));
    ad_events.sort();
    check(&AccumulationDistributionDetector::default(), ad_events);
    assert_eq!(checked, 19, "every indicator family");
}
