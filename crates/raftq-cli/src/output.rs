//! Everything printed: stdout lines that stop quietly on a closed pipe, the
//! JSON shape of a queue, progress bars on stderr, one-line errors.

use std::fmt;
use std::io::Write;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use raftq_client::{QueueInfo, QueueKind};
use serde_json::{json, Value};

/// Prints one line to stdout; a closed pipe becomes an error the caller
/// propagates (and `main` treats as a quiet exit) instead of a panic.
pub fn line(args: fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")
}

/// `println!` that returns `io::Result`.
#[macro_export]
macro_rules! outln {
    () => { $crate::output::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::output::line(format_args!($($arg)*)) };
}

pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// An error and its causes on one line.
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A panic is a bug, but it still gets one line, not a backtrace.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error (a bug in raftq): {what}{at}");
    }));
}

pub fn leader_text(id: u64) -> String {
    if id == 0 {
        "none".into()
    } else {
        id.to_string()
    }
}

pub fn kind_name(kind: i32) -> &'static str {
    if kind == QueueKind::Stream as i32 {
        "stream"
    } else {
        "work"
    }
}

/// The JSON shape of a queue everywhere in the CLI.
pub fn queue_json(q: &QueueInfo) -> Value {
    let o = q.options.clone().unwrap_or_default();
    json!({
        "name": q.name,
        "kind": kind_name(o.kind),
        "leader": q.leader_id,
        "replicas": q.replicas,
        "depth": q.depth,
        "ready": q.ready,
        "unacked": q.unacked,
        "consumers": q.consumers,
        "term": q.term,
        "applied_index": q.applied_index,
        "group_id": q.group_id,
        "answered_by": q.answered_by,
        "bytes": q.bytes,
        "first_offset": q.first_offset,
        "next_offset": q.next_offset,
        "consumer_offsets": q.consumer_offsets,
        "replica_status": q.replica_status.iter().map(|r| json!({
            "node": r.node_id, "matched_index": r.matched_index, "lag": r.lag,
            "lag_bytes": r.lag_bytes, "snapshot_bytes_sent": r.snapshot_bytes_sent
        })).collect::<Vec<_>>(),
        "options": {
            "replicas": if o.replicas_all { json!("all") } else { json!(o.replicas) },
            "max_deliveries": o.max_deliveries,
            "dead_letter_queue": o.dead_letter_queue,
            "message_ttl_ms": o.message_ttl_ms,
            "max_length": o.max_length,
            "max_bytes": o.max_bytes,
            "overflow": if o.overflow == 1 { "drop-head" } else { "reject-publish" },
            "ack_timeout_ms": o.ack_timeout_ms,
            "max_message_bytes": o.max_message_bytes,
            "dedup_window": o.dedup_window,
            "single_active_consumer": o.single_active_consumer,
            "max_age_ms": o.max_age_ms,
        },
    })
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress(total: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!("{label} {{bar:40}} {{pos}}/{{len}} {{per_sec}} eta {{eta}}");
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// `1.23s`, `45ms`: short, for tables.
pub fn short_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_print_on_one_line() {
        let e = anyhow::anyhow!("queue 'x' does not exist\nsecond line").context("publish");
        assert_eq!(
            one_line(&e),
            "publish: queue 'x' does not exist second line"
        );
    }

    #[test]
    fn broken_pipes_are_recognized_through_context() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "closed");
        let e = anyhow::Error::from(io).context("printing");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }

    #[test]
    fn queue_json_has_what_scripts_read() {
        let q = QueueInfo {
            name: "q".into(),
            leader_id: 2,
            replicas: vec![1, 2, 3],
            depth: 5,
            ..Default::default()
        };
        let v = queue_json(&q);
        assert_eq!(v["leader"], 2);
        assert_eq!(v["replicas"], json!([1, 2, 3]));
        assert_eq!(v["depth"], 5);
        assert_eq!(v["kind"], "work");
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(Duration::from_millis(45)), "45ms");
        assert_eq!(short_duration(Duration::from_millis(1234)), "1.23s");
    }
}
