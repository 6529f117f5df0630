#!/usr/bin/env python3
# Copied unchanged (but for these comment lines) from the shared bench data of issue 9
# (`bench-data/gen_data.py` beside this project, with its README.md, which benches/data/README.md
# summarises). The benchmarks run it when data_{N}.json is missing: see benches/bench_data.rs.
"""Deterministic data generator for the trigger-dispatcher matcher benchmark.

Writes ./data_{N}.json for N in {10, 1000, 10000, 100000}.
Pipelines depend on (SEED, N); signals depend only on SEED (identical in every file).
Format: see ./README.md
"""
import bisect, itertools, json, random, sys, uuid

SEED = 20240601
N_SIGNALS = 10_000
N_TICKERS = 500
N_SIGNAL_TYPES = 40
ZIPF_S = 1.0
TIMEFRAMES = ["5", "15", "60", "D"]
SIZES = [10, 1000, 10000, 100000]

def ticker_universe():
    # 500 distinct synthetic symbols: "A".."Z", "AA".., deterministic, popularity rank = index
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = []
    for n in (1, 2, 3):
        for combo in itertools.product(letters, repeat=n):
            out.append("".join(combo))
            if len(out) == N_TICKERS:
                return out

TICKERS = ticker_universe()
SIGNAL_TYPES = [f"sigtype_{i:02d}" for i in range(N_SIGNAL_TYPES)]
_T_CUM = list(itertools.accumulate(1.0 / (r ** ZIPF_S) for r in range(1, N_TICKERS + 1)))
_S_CUM = list(itertools.accumulate(1.0 / (r ** 0.5) for r in range(1, N_SIGNAL_TYPES + 1)))  # mild skew

def zipf_pick(rng, cum, items):
    return items[bisect.bisect_right(cum, rng.random() * cum[-1])]

def zipf_sample_distinct(rng, cum, items, k):
    seen, out = set(), []
    while len(out) < k:
        x = zipf_pick(rng, cum, items)
        if x not in seen:
            seen.add(x); out.append(x)
    return out

def uid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))

def make_pipelines(n):
    rng = random.Random(f"{SEED}-pipelines-{n}")
    n_users = max(1, n // 5)
    users = [uid(rng) for _ in range(n_users)]
    out = []
    for i in range(n):
        tickers = zipf_sample_distinct(rng, _T_CUM, TICKERS, rng.randint(1, 20))
        subs = []
        if rng.random() >= 0.10:            # ~90%: 1..3 subscriptions; ~10%: [] = all types
            for st in rng.sample(SIGNAL_TYPES, rng.randint(1, 3)):
                sub = {"signal_type": st}
                if rng.random() < 0.5:
                    sub["timeframe"] = rng.choice(TIMEFRAMES)
                if rng.random() < 0.5:
                    sub["min_confidence"] = rng.randint(50, 90)
                subs.append(sub)
        out.append({
            "pipeline_id": uid(rng),
            "name": f"pipeline-{i}",
            "user_id": rng.choice(users),
            "tickers": tickers,
            "signal_subscriptions": subs,
            "is_active": True,
            "trigger_mode": "signal",
        })
    return out

def make_signals():
    rng = random.Random(f"{SEED}-signals")
    out = []
    ts0 = 1_700_000_000
    for i in range(N_SIGNALS):
        k = 1 if rng.random() >= 0.10 else rng.randint(2, 3)
        syms = zipf_sample_distinct(rng, _T_CUM, TICKERS, k)
        stype = zipf_pick(rng, _S_CUM, SIGNAL_TYPES)
        out.append({
            "signal_id": uid(rng),
            "signal_type": stype,
            "source": "bench-generator",
            "timestamp": ts0 + i * 3,
            "tickers": [{
                "ticker": s,
                "signal": rng.choice(["BULLISH", "BEARISH", "NEUTRAL"]),
                "confidence": round(rng.uniform(0.0, 100.0), 1),
                "reasoning": f"{stype} on {s}",
            } for s in syms],
            "metadata": {"timeframe": rng.choice(TIMEFRAMES)},
        })
    return out

def main(sizes):
    signals = make_signals()
    for n in sizes:
        doc = {"format_version": 1, "seed": SEED, "n_pipelines": n, "n_signals": len(signals),
               "pipelines": make_pipelines(n), "signals": signals}
        path = f"./data_{n}.json"
        with open(path, "w") as f:
            json.dump(doc, f, separators=(",", ":"))
        print("wrote", path)

if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or SIZES)
