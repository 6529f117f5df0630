use opentelemetry::KeyValue;
use tradeflow_telemetry::Telemetry;

#[tokio::main]
async fn main() {
    let t = Telemetry::init("naming-probe2");
    let m = t.meter();
    let l = [KeyValue::new("probe", "y")];
    m.f64_histogram("probe2_duration_seconds").with_unit("s").with_boundaries(vec![0.1, 1.0]).build().record(0.5, &l);
    m.u64_histogram("probe2_batch_size").with_boundaries(vec![1.0, 10.0]).build().record(5, &l);
    m.u64_counter("probe2_things_total").with_unit("1").build().add(1, &l);
    m.f64_gauge("probe2_lag_max_seconds").with_unit("s").build().record(0.5, &l);
    m.u64_gauge("probe2_cache_size").build().record(3, &l);
    t.flush().await;
    t.shutdown();
}
