//! The shared bench data at 10 and 1,000 pipelines (`benches/data/README.md`): our matching gives
//! the README's pairs and checksum, and the dispatcher's fan-outs are exactly the first match of
//! each (pipeline, ticker) per batch of 20. The data is generated into the target directory with
//! python3 (`benches/data/gen_data.py`); without python3 the test says so and passes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../benches/support/bench_data.rs"]
mod bench_data;

use std::collections::HashSet;

use tradeflow_core::dispatch::fan_out;
use tradeflow_core::ids::execution_id;
use tradeflow_core::matching::PipelineIndex;

const NOW_MS: i64 = 1_750_000_000_000;

fn check(n: usize) {
    if !bench_data::python3_available() {
        eprintln!(
            "python3 not found: the bench data at {n} pipelines cannot be generated, skipped"
        );
        return;
    }
    let data = bench_data::load(n).unwrap();
    let index = PipelineIndex::new(data.pipelines);
    assert_eq!(index.len(), n);
    let (pairs, checksum) = bench_data::pair_checksum(&index, &data.signals);
    let (want_pairs, want_checksum) = bench_data::expected(n).unwrap();
    assert_eq!(
        (pairs, format!("{checksum:016x}")),
        (want_pairs, format!("{want_checksum:016x}"))
    );

    // The dispatch path against the rule written plainly: per batch, every match in order, the
    // first of each (pipeline id, ticker) kept.
    let mut executions = 0;
    for batch in bench_data::batches(&data.signals) {
        let mut seen = HashSet::new();
        let mut want = Vec::new();
        let mut matched = 0;
        for (i, signal) in &batch {
            let matches = index.matches(signal);
            matched += matches.len();
            for m in matches {
                if seen.insert((m.pipeline.pipeline_id.clone(), m.ticker.clone())) {
                    want.push((
                        *i,
                        execution_id(
                            &m.pipeline.pipeline_id,
                            m.ticker.as_str(),
                            &signal.signal_id,
                        ),
                        m.confidence,
                    ));
                }
            }
        }
        let out = fan_out(&index, &batch, NOW_MS);
        let got: Vec<_> = out
            .fanouts
            .iter()
            .map(|f| {
                let request = out.request(f).unwrap();
                let id = out.execution_id(f).unwrap();
                assert_eq!(out.lease(f).unwrap().execution_id, id.as_str());
                assert_eq!(request.execution_id, id);
                (
                    f.message_index(),
                    id.as_str().to_owned(),
                    request.signal_context().confidence,
                )
            })
            .collect();
        assert_eq!(got, want);
        assert_eq!(out.deduplicated, matched - want.len());
        executions += got.len();
    }
    assert!(executions > 0);
}

#[test]
fn bench_data_at_10_pipelines_matches_the_readme() {
    check(10);
}

#[test]
fn bench_data_at_1000_pipelines_matches_the_readme() {
    check(1_000);
}
