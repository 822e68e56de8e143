//! Latency histograms and the final table / JSON line of a benchmark.

use std::time::Duration;

use hdrhistogram::Histogram;
use raftq_cmdline::outln;
use raftq_cmdline::output::{per_second, short_duration};
use serde_json::{json, Map, Value};

/// Microseconds, 1 µs .. 10 min, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    // Constant, valid bounds: this cannot fail.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(us);
}

/// What a workload measured.
pub struct Measured<'a> {
    pub workload: &'a str,
    pub queue: &'a str,
    pub messages: u64,
    pub failed: u64,
    pub elapsed: Duration,
    pub payload_bytes: usize,
    pub latency: &'a Histogram<u64>,
    /// What the latency measures, e.g. "send to confirm".
    pub latency_of: &'a str,
    /// Workload parameters and extra counts for the JSON line.
    pub extra: Vec<(&'a str, Value)>,
}

pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub fn to_json(m: &Measured<'_>) -> Value {
    let rate = per_second(m.messages, m.elapsed);
    let mut v = Map::new();
    let base = json!({
        "workload": m.workload,
        "queue": m.queue,
        "messages": m.messages,
        "failed": m.failed,
        "size": m.payload_bytes,
        "elapsed_ms": m.elapsed.as_millis() as u64,
        "msgs_per_sec": rate.round(),
        "mib_per_sec": (rate * m.payload_bytes as f64 / 1048576.0 * 100.0).round() / 100.0,
        "latency": m.latency_of,
        "p50_ms": ms(m.latency, 0.5),
        "p90_ms": ms(m.latency, 0.9),
        "p99_ms": ms(m.latency, 0.99),
        "max_ms": m.latency.max() as f64 / 1000.0,
    });
    if let Value::Object(base) = base {
        v.extend(base);
    }
    for (k, val) in &m.extra {
        v.insert((*k).to_string(), val.clone());
    }
    Value::Object(v)
}

pub fn print(json_out: bool, m: &Measured<'_>) -> std::io::Result<()> {
    if json_out {
        return outln!("{}", to_json(m));
    }
    let rate = per_second(m.messages, m.elapsed);
    let params: Vec<String> = m.extra.iter().map(|(k, v)| format!("{k} {v}")).collect();
    outln!(
        "{:<10} {:>10} {:>8} {:>9} {:>10} {:>8} {:>9} {:>9} {:>9} {:>9}",
        "WORKLOAD",
        "MESSAGES",
        "FAILED",
        "ELAPSED",
        "MSGS/S",
        "MIB/S",
        "P50 MS",
        "P90 MS",
        "P99 MS",
        "MAX MS"
    )?;
    outln!(
        "{:<10} {:>10} {:>8} {:>9} {:>10.0} {:>8.2} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
        m.workload,
        m.messages,
        m.failed,
        short_duration(m.elapsed),
        rate,
        rate * m.payload_bytes as f64 / 1048576.0,
        ms(m.latency, 0.5),
        ms(m.latency, 0.9),
        ms(m.latency, 0.99),
        m.latency.max() as f64 / 1000.0
    )?;
    outln!(
        "latency = {}; queue '{}', {} B messages, {}",
        m.latency_of,
        m.queue,
        m.payload_bytes,
        params.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_out_in_milliseconds() {
        let mut h = histogram();
        for ms in 1..=100u64 {
            record(&mut h, Duration::from_millis(ms));
        }
        let m = Measured {
            workload: "publish",
            queue: "q",
            messages: 100,
            failed: 0,
            elapsed: Duration::from_secs(2),
            payload_bytes: 256,
            latency: &h,
            latency_of: "send to confirm",
            extra: vec![("producers", json!(1))],
        };
        let v = to_json(&m);
        assert_eq!(v["msgs_per_sec"], 50.0);
        assert!((v["p50_ms"].as_f64().unwrap_or(0.0) - 50.0).abs() < 0.1);
        assert!((v["p99_ms"].as_f64().unwrap_or(0.0) - 99.0).abs() < 0.1);
        assert!((v["max_ms"].as_f64().unwrap_or(0.0) - 100.0).abs() < 0.1);
        assert_eq!(v["producers"], 1);
    }

    #[test]
    fn huge_latencies_saturate_instead_of_failing() {
        let mut h = histogram();
        record(&mut h, Duration::from_secs(86_400));
        record(&mut h, Duration::ZERO);
        assert_eq!(h.len(), 2);
    }
}
