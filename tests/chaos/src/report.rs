//! A self-contained HTML page (inline SVG, no scripts) of confirmed publishes
//! per second and their confirm latency (p99 per second), with the fault
//! windows shaded, so a gap can be matched to the fault that caused it.

use std::fmt::Write as _;

use raftq_chaos::history::Event;

pub fn html(events: &[Event], title: &str) -> String {
    let end_s = events
        .iter()
        .map(|e| match e {
            Event::PublishOk { t, .. } | Event::Delivered { t, .. } => *t,
            Event::Fault { end, .. } => *end,
            _ => 0,
        })
        .max()
        .unwrap_or(0)
        / 1000
        + 1;
    let secs = end_s as usize;
    let mut per_sec = vec![0u32; secs + 1];
    let mut lat: Vec<Vec<u64>> = vec![Vec::new(); secs + 1];
    for e in events {
        if let Event::PublishOk { t, lat_ms, .. } = e {
            let s = (*t / 1000) as usize;
            if s <= secs {
                per_sec[s] += 1;
                lat[s].push(*lat_ms);
            }
        }
    }
    let p99: Vec<u64> = lat
        .iter_mut()
        .map(|l| {
            l.sort_unstable();
            l.get(l.len().saturating_sub(1).min(l.len() * 99 / 100))
                .copied()
                .unwrap_or(0)
        })
        .collect();
    let (w, h) = (1200.0f64, 300.0f64);
    let x = |s: f64| s / (secs.max(1) as f64) * w;
    let max_rate = per_sec.iter().copied().max().unwrap_or(1).max(1) as f64;
    let max_lat = p99.iter().copied().max().unwrap_or(1).max(1) as f64;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{}">"#,
        h * 2.0 + 60.0
    );
    for e in events {
        if let Event::Fault { t, end, kind, .. } = e {
            let (a, b) = (x(*t as f64 / 1000.0), x(*end as f64 / 1000.0));
            let _ = write!(
                svg,
                r##"<rect x="{a:.1}" y="0" width="{:.1}" height="{}" fill="#f4a0a0" opacity="0.45"><title>{kind}</title></rect>"##,
                (b - a).max(1.0),
                h * 2.0 + 20.0
            );
        }
    }
    for (s, n) in per_sec.iter().enumerate() {
        let bh = *n as f64 / max_rate * (h - 10.0);
        let _ = write!(
            svg,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{bh:.1}" fill="#3870c0"/>"##,
            x(s as f64),
            h - bh,
            (w / secs.max(1) as f64).max(0.5)
        );
    }
    let points: Vec<String> = p99
        .iter()
        .enumerate()
        .map(|(s, l)| {
            format!(
                "{:.1},{:.1}",
                x(s as f64),
                h * 2.0 + 10.0 - *l as f64 / max_lat * (h - 10.0)
            )
        })
        .collect();
    let _ = write!(
        svg,
        r##"<polyline points="{}" fill="none" stroke="#c05020" stroke-width="1.5"/>"##,
        points.join(" ")
    );
    let _ = write!(
        svg,
        r##"<text x="4" y="14" font-size="12">confirmed publishes per second (max {max_rate:.0})</text><text x="4" y="{}" font-size="12">confirm latency p99 per second, ms (max {max_lat:.0}); red: fault windows</text></svg>"##,
        h + 24.0
    );
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head><body><h3>{title}</h3>{svg}</body></html>\n"
    )
}
