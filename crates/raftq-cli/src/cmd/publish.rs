//! `raftq publish`: idempotent, pipelined, confirmed publishing of arguments,
//! stdin lines, or generated messages.

use std::collections::HashMap;
use std::io::{BufRead, IsTerminal};
use std::time::Instant;

use bytes::Bytes;
use clap::Args;
use futures::stream::{FuturesUnordered, StreamExt};
use indicatif::ProgressBar;
use raftq_client::{Client, Error, ProducerOptions, PublishMessage};
use raftq_cmdline::outln;
use raftq_cmdline::output::{per_second, progress, short_duration};
use serde_json::json;
use tokio::sync::mpsc;

#[derive(Debug, Args)]
pub struct PublishArgs {
    queue: String,
    /// Message payloads; without them (and without --count) stdin lines are sent.
    messages: Vec<String>,
    /// Generate this many messages instead.
    #[arg(long)]
    count: Option<u64>,
    /// Payload size of generated messages, in bytes.
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Header `key=value` on every message, repeatable.
    #[arg(long = "header", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Most messages per publish request.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Publish requests in flight at once.
    #[arg(long, default_value_t = 8)]
    inflight: usize,
}

pub fn parse_header(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("header {s:?} must look like key=value")),
    }
}

/// A generated payload: its number first (so each is unique and findable),
/// padded to `size`.
pub fn generated_payload(i: u64, size: usize) -> Bytes {
    let mut p = format!("msg-{i:010}-").into_bytes();
    p.resize(size.max(p.len()), b'x');
    Bytes::from(p)
}

/// Where payloads come from; stdin is read on a blocking thread, line by line,
/// so `tail -f log | raftq publish q` streams.
fn payload_source(args: &PublishArgs) -> mpsc::Receiver<std::io::Result<Bytes>> {
    let (tx, rx) = mpsc::channel(1024);
    if let Some(count) = args.count {
        let size = args.size;
        tokio::spawn(async move {
            for i in 0..count {
                if tx.send(Ok(generated_payload(i, size))).await.is_err() {
                    return;
                }
            }
        });
    } else if !args.messages.is_empty() {
        let messages = args.messages.clone();
        tokio::spawn(async move {
            for m in messages {
                if tx.send(Ok(Bytes::from(m))).await.is_err() {
                    return;
                }
            }
        });
    } else {
        if std::io::stdin().is_terminal() {
            eprintln!("reading messages from stdin, one per line (Ctrl-D to finish)");
        }
        std::thread::spawn(move || {
            let mut input = std::io::stdin().lock();
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match input.read_until(b'\n', &mut buf) {
                    Ok(0) => return,
                    Ok(_) => {
                        let line = buf
                            .strip_suffix(b"\n")
                            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                            .unwrap_or(&buf);
                        if tx.blocking_send(Ok(Bytes::copy_from_slice(line))).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
        });
    }
    rx
}

#[derive(Default)]
struct Tally {
    confirmed: u64,
    failed: u64,
    first_offset: Option<u64>,
    last_offset: Option<u64>,
    error: Option<Error>,
}

impl Tally {
    fn take(&mut self, result: Result<u64, Error>, bar: &ProgressBar) {
        match result {
            Ok(offset) => {
                self.confirmed += 1;
                self.first_offset = Some(self.first_offset.map_or(offset, |o| o.min(offset)));
                self.last_offset = Some(self.last_offset.map_or(offset, |o| o.max(offset)));
            }
            Err(e) => {
                self.failed += 1;
                self.error.get_or_insert(e);
            }
        }
        bar.inc(1);
    }
}

pub async fn run(client: &Client, args: &PublishArgs, json_out: bool) -> anyhow::Result<()> {
    if args.batch == 0 || args.inflight == 0 {
        anyhow::bail!("--batch and --inflight must be at least 1");
    }
    let headers: HashMap<String, String> = args.headers.iter().cloned().collect();
    let options = ProducerOptions {
        max_in_flight_batches: args.inflight,
        max_batch_messages: args.batch,
        ..Default::default()
    };
    let producer = client.producer_with(&args.queue, options);
    let bar = match args.count {
        Some(n) => progress(n, "publish"),
        None => ProgressBar::hidden(),
    };
    // Enough unconfirmed messages to keep every request slot full, no more:
    // memory stays bounded however much is published.
    let window = args.batch.saturating_mul(args.inflight).saturating_mul(2);
    let mut source = payload_source(args);
    let mut confirms = FuturesUnordered::new();
    let mut tally = Tally::default();
    let started = Instant::now();
    let mut input_error = None;
    // Stop feeding at the first failure: the rest would most likely fail the
    // same way (unknown queue, queue full, cluster down).
    while tally.error.is_none() {
        if confirms.len() >= window {
            if let Some(result) = confirms.next().await {
                tally.take(result, &bar);
            }
            continue;
        }
        let payload = tokio::select! {
            biased;
            Some(result) = confirms.next(), if !confirms.is_empty() => {
                tally.take(result, &bar);
                continue;
            }
            next = source.recv() => match next {
                Some(Ok(p)) => p,
                Some(Err(e)) => {
                    input_error = Some(e);
                    break;
                }
                None => break,
            },
        };
        confirms.push(producer.send(PublishMessage {
            payload,
            headers: headers.clone(),
        }));
    }
    while let Some(result) = confirms.next().await {
        tally.take(result, &bar);
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed();
    let unsent = args
        .count
        .map(|n| n.saturating_sub(tally.confirmed + tally.failed))
        .unwrap_or(0);
    let rate = per_second(tally.confirmed, elapsed);
    let error = tally
        .error
        .as_ref()
        .map(|e| e.to_string())
        .or_else(|| input_error.as_ref().map(|e| format!("reading stdin: {e}")));
    if json_out {
        outln!(
            "{}",
            json!({
                "queue": args.queue,
                "confirmed": tally.confirmed,
                "failed": tally.failed + unsent,
                "first_offset": tally.first_offset,
                "last_offset": tally.last_offset,
                "elapsed_ms": elapsed.as_millis() as u64,
                "msgs_per_sec": rate.round(),
                "error": error,
            })
        )?;
    } else if tally.confirmed > 0 || error.is_none() {
        let offsets = match (tally.first_offset, tally.last_offset) {
            (Some(a), Some(b)) if a == b => format!(" at offset {a}"),
            (Some(a), Some(b)) => format!(", offsets {a}..={b}"),
            _ => String::new(),
        };
        outln!(
            "confirmed {} message(s) to '{}'{offsets} in {} ({rate:.0} msgs/s)",
            tally.confirmed,
            args.queue,
            short_duration(elapsed),
        )?;
    }
    match error {
        Some(e) => {
            let not = tally.failed + unsent;
            anyhow::bail!("{not} message(s) not confirmed: {e}")
        }
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_need_a_key_and_an_equals_sign() {
        assert_eq!(parse_header("k=v=w"), Ok(("k".into(), "v=w".into())));
        assert_eq!(parse_header("k="), Ok(("k".into(), String::new())));
        assert!(parse_header("=v").is_err());
        assert!(parse_header("kv").is_err());
    }

    #[test]
    fn generated_payloads_are_numbered_and_sized() {
        let p = generated_payload(7, 32);
        assert_eq!(p.len(), 32);
        assert!(p.starts_with(b"msg-0000000007-"));
        assert_eq!(generated_payload(7, 1).len(), 15, "never cut the number");
    }
}
