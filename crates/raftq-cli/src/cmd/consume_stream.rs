//! `raftq consume` on a stream: print messages from a start position (or a
//! named consumer's committed offset), committing the named consumer's offset
//! as it goes. Reading a stream consumes nothing.

use std::time::Instant;

use raftq_client::{Client, StreamOptions, StreamReader, StreamStart};
use raftq_cmdline::outln;
use serde_json::json;

use crate::cmd::consume::ConsumeArgs;

/// `first`, `last`, `next`, an offset, or `@UNIX_MS`.
pub fn parse_start(s: &str) -> Result<StreamStart, String> {
    match s {
        "first" => Ok(StreamStart::First),
        "last" => Ok(StreamStart::Last),
        "next" => Ok(StreamStart::Next),
        _ => {
            let (timestamp, digits) = match s.strip_prefix('@') {
                Some(rest) => (true, rest),
                None => (false, s),
            };
            let n: u64 = digits.parse().map_err(|_| {
                format!("--from {s:?}: expected first, last, next, an offset, or @UNIX_MS")
            })?;
            Ok(if timestamp {
                StreamStart::Timestamp(n)
            } else {
                StreamStart::Offset(n)
            })
        }
    }
}

pub async fn run(client: &Client, args: &ConsumeArgs, json_out: bool) -> anyhow::Result<()> {
    let options = StreamOptions {
        start: args.from.unwrap_or_default(),
        consumer_name: args.name.clone(),
        ..Default::default()
    };
    let mut reader = client.stream_reader(&args.queue, options).await?;
    let started = Instant::now();
    let mut received = 0u64;
    let mut committed = None;
    let mut failure = None;
    while args.count.is_none_or(|c| received < c) {
        let next = if args.timeout_idle.is_zero() {
            reader.next().await.transpose()
        } else {
            reader.next_timeout(args.timeout_idle).await
        };
        let message = match next {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(e) => {
                failure = Some(e);
                break;
            }
        };
        received += 1;
        let payload = String::from_utf8_lossy(&message.payload);
        if json_out {
            outln!(
                "{}",
                json!({
                    "offset": message.offset,
                    "payload": payload,
                    "headers": message.headers,
                    "publish_time_ms": message.publish_time_ms,
                })
            )?;
        } else {
            outln!("{:>8}  {payload}", message.offset)?;
        }
        if args.name.is_some() && received.is_multiple_of(args.commit_every.max(1)) {
            committed = Some(commit(&reader).await?);
        }
    }
    if args.name.is_some() && received > 0 {
        committed = Some(commit(&reader).await?);
    }
    let elapsed_ms = started.elapsed().as_millis() as u64;
    if json_out {
        outln!(
            "{}",
            json!({
                "queue": args.queue,
                "received": received,
                "node": reader.node_id(),
                "position": reader.position(),
                "committed": committed,
                "elapsed_ms": elapsed_ms,
            })
        )?;
    } else {
        let commit_note = match committed {
            Some(offset) => format!(", committed offset {offset}"),
            None => String::new(),
        };
        eprintln!(
            "received {received} from node {}{commit_note}",
            reader.node_id()
        );
    }
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

async fn commit(reader: &StreamReader) -> anyhow::Result<u64> {
    reader.commit().await?;
    Ok(reader.position().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_positions_parse() {
        assert_eq!(parse_start("first"), Ok(StreamStart::First));
        assert_eq!(parse_start("last"), Ok(StreamStart::Last));
        assert_eq!(parse_start("next"), Ok(StreamStart::Next));
        assert_eq!(parse_start("42"), Ok(StreamStart::Offset(42)));
        assert_eq!(
            parse_start("@1700000000000"),
            Ok(StreamStart::Timestamp(1_700_000_000_000))
        );
        assert!(parse_start("yesterday").is_err());
        assert!(parse_start("@").is_err());
        assert!(parse_start("-1").is_err());
    }
}
