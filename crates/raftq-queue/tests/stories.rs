//! Data-driven stories in `testdata/*.txt`, in the style of etcd-io/raft's
//! interaction tests: each case is a command line, `----`, and the expected
//! output up to the next blank line. `REWRITE=1 cargo test -p raftq-queue --test
//! stories` regenerates the expected output (review the diff before committing).
//!
//! Commands (time is set by `tick` and used by every later command):
//!   options [max_deliveries=N] [dlq=NAME] [ttl=MS] [max_length=N] [max_bytes=N]
//!           [overflow=drop-head|reject-publish] [ack_timeout=MS]
//!           [max_message_bytes=N] [dedup_window=N] [sac]   (new empty queue)
//!   publish [producer=ID seq=N] PAYLOAD...
//!   attach cN [prefetch=N]     detach cN
//!   ack cN OFFSET...           nack cN OFFSET... (requeue)    reject cN OFFSET...
//!   tick MS                    reset (new leader)             dead-lettered SEQ
//!   state                      browse [from=N] [count=N]      snapshot

use std::fmt::Write as _;
use std::path::Path;

use raftq_queue::{
    Command, ConsumerId, Effect, Message, Outcome, Overflow, ProducerSeq, QueueOptions, Settlement,
    WorkQueue, HEADER_DEATH_REASON,
};

struct Story {
    queue: WorkQueue,
    now: u64,
}

fn consumer(token: &str) -> ConsumerId {
    token
        .strip_prefix('c')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("consumer must look like c1, got {token:?}"))
}

fn number(token: &str) -> u64 {
    token
        .parse()
        .unwrap_or_else(|_| panic!("expected a number, got {token:?}"))
}

/// Splits `key=value` arguments from positional ones.
fn args<'a>(tokens: &[&'a str]) -> (Vec<(&'a str, &'a str)>, Vec<&'a str>) {
    let mut named = Vec::new();
    let mut positional = Vec::new();
    for t in tokens {
        match t.split_once('=') {
            Some(kv) => named.push(kv),
            None => positional.push(*t),
        }
    }
    (named, positional)
}

fn list(offsets: &[u64]) -> String {
    let items: Vec<String> = offsets.iter().map(u64::to_string).collect();
    format!("[{}]", items.join(" "))
}

fn text(message: &Message) -> String {
    String::from_utf8_lossy(&message.payload).into_owned()
}

fn options(tokens: &[&str]) -> QueueOptions {
    let mut o = QueueOptions::default();
    for t in tokens {
        match t.split_once('=').unwrap_or((t, "")) {
            ("max_deliveries", v) => o.max_deliveries = Some(number(v) as u32),
            ("dlq", v) => o.dead_letter_queue = Some(v.to_string()),
            ("ttl", v) => o.message_ttl_ms = Some(number(v)),
            ("max_length", v) => o.max_length = Some(number(v)),
            ("max_bytes", v) => o.max_bytes = Some(number(v)),
            ("overflow", "drop-head") => o.overflow = Overflow::DropHead,
            ("overflow", "reject-publish") => o.overflow = Overflow::RejectPublish,
            ("ack_timeout", v) => o.ack_timeout_ms = Some(number(v)),
            ("max_message_bytes", v) => o.max_message_bytes = number(v),
            ("dedup_window", v) => o.dedup_window = number(v) as u32,
            ("sac", _) => o.single_active_consumer = true,
            _ => panic!("unknown option {t:?}"),
        }
    }
    o
}

impl Story {
    fn new() -> Self {
        Self {
            queue: WorkQueue::new(QueueOptions::default()),
            now: 0,
        }
    }

    fn run(&mut self, line: &str) -> String {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let (verb, rest) = tokens.split_first().expect("empty command");
        let now_ms = self.now;
        let settle = |outcome, rest: &[&str]| Command::Settle {
            now_ms,
            consumer: consumer(rest[0]),
            offsets: rest[1..].iter().map(|t| number(t)).collect(),
            outcome,
        };
        let cmd = match *verb {
            "options" => {
                self.queue = WorkQueue::new(options(rest));
                return "ok".into();
            }
            "state" => return self.state(),
            "browse" => return self.browse(rest),
            "snapshot" => return self.snapshot(),
            "publish" => {
                let (named, payloads) = args(rest);
                let get = |k: &str| named.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
                let producer = get("producer").map(|id| ProducerSeq {
                    producer_id: id.to_string(),
                    sequence: number(get("seq").expect("producer needs seq=")),
                });
                let messages = payloads
                    .iter()
                    .map(|p| Message::new(p.to_string()))
                    .collect();
                Command::Publish {
                    now_ms,
                    producer,
                    key: None,
                    messages,
                }
            }
            "attach" => {
                let (named, positional) = args(rest);
                let prefetch = named
                    .iter()
                    .find(|(k, _)| *k == "prefetch")
                    .map_or(1, |(_, v)| number(v) as u32);
                Command::Attach {
                    now_ms,
                    consumer: consumer(positional[0]),
                    prefetch,
                }
            }
            "detach" => Command::Detach {
                now_ms,
                consumer: consumer(rest[0]),
            },
            "ack" => settle(Settlement::Ack, rest),
            "nack" => settle(Settlement::Requeue, rest),
            "reject" => settle(Settlement::Reject, rest),
            "tick" => {
                self.now = number(rest[0]);
                Command::Tick { now_ms: self.now }
            }
            "reset" => Command::ResetConsumers { now_ms },
            "dead-lettered" => Command::DeadLettered {
                up_to_seq: number(rest[0]),
            },
            other => panic!("unknown command {other:?}"),
        };
        let mut effects = Vec::new();
        let outcome = self.queue.apply(cmd, &mut effects);
        let mut out = String::new();
        match outcome {
            Outcome::Published { offsets, duplicate } => {
                let what = if duplicate { "duplicate" } else { "published" };
                writeln!(out, "{what} {}", list(&offsets)).unwrap();
            }
            Outcome::PublishRejected(e) => writeln!(out, "rejected: {e}").unwrap(),
            Outcome::Settled { settled, unknown } => {
                write!(out, "settled {}", list(&settled)).unwrap();
                if !unknown.is_empty() {
                    write!(out, " unknown {}", list(&unknown)).unwrap();
                }
                out.push('\n');
            }
            Outcome::Done => {}
            Outcome::Invalid(reason) => writeln!(out, "invalid: {reason}").unwrap(),
        }
        for effect in effects {
            match effect {
                Effect::Deliver { consumer, delivery } => {
                    let d = &delivery;
                    write!(out, "deliver c{consumer} {} {}", d.offset, text(&d.message)).unwrap();
                    if d.redelivered {
                        write!(out, " redelivered count={}", d.delivery_count).unwrap();
                    }
                    out.push('\n');
                }
                Effect::DeadLetter(dl) => {
                    let headers = &dl.message.headers;
                    assert_eq!(
                        headers.get(HEADER_DEATH_REASON).map(String::as_str),
                        Some(dl.reason.as_str())
                    );
                    write!(
                        out,
                        "dead-letter #{} {} {} -> {}",
                        dl.seq,
                        dl.source_offset,
                        text(&dl.message),
                        dl.target
                    )
                    .unwrap();
                    for (k, v) in headers {
                        write!(out, " {k}={v}").unwrap();
                    }
                    out.push('\n');
                }
            }
        }
        if out.is_empty() {
            out.push_str("ok\n");
        }
        out.trim_end().to_string()
    }

    fn state(&self) -> String {
        let q = &self.queue;
        let deadline = q
            .next_deadline()
            .map_or("none".to_string(), |d| d.to_string());
        let mut out = format!(
            "depth={} ready={} unacked={} bytes={} next_offset={} deadline={}",
            q.depth(),
            q.ready(),
            q.unacked(),
            q.bytes(),
            q.next_offset(),
            deadline
        );
        for c in q.consumer_ids() {
            write!(out, "\nc{c} holds {}", list(&q.held_by(c))).unwrap();
        }
        let pending: Vec<u64> = q.pending_dead_letters().map(|d| d.seq).collect();
        if !pending.is_empty() {
            write!(out, "\npending dead letters {}", list(&pending)).unwrap();
        }
        out
    }

    fn browse(&self, rest: &[&str]) -> String {
        let (named, _) = args(rest);
        let get = |k: &str, default: u64| {
            named
                .iter()
                .find(|(n, _)| *n == k)
                .map_or(default, |(_, v)| number(v))
        };
        let views = self
            .queue
            .browse(get("from", 0), get("count", 100) as usize);
        let lines: Vec<String> = views
            .iter()
            .map(|v| {
                format!(
                    "{} {} count={} published={}",
                    v.offset,
                    text(&v.message),
                    v.delivery_count,
                    v.publish_time_ms
                )
            })
            .collect();
        if lines.is_empty() {
            "empty".into()
        } else {
            lines.join("\n")
        }
    }

    fn snapshot(&mut self) -> String {
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&self.queue, config).expect("encode");
        let (restored, _): (WorkQueue, usize) =
            bincode::serde::decode_from_slice(&bytes, config).expect("decode");
        assert_eq!(restored, self.queue);
        self.queue = restored;
        format!("restored from {} bytes", bytes.len())
    }
}

/// Runs one file; returns the file with actual outputs and whether all matched.
fn run_file(path: &Path) -> (String, Vec<String>) {
    let input = std::fs::read_to_string(path).expect("read story");
    let lines: Vec<&str> = input.lines().collect();
    let mut story = Story::new();
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim().is_empty() || line.starts_with('#') {
            rewritten.push_str(line);
            rewritten.push('\n');
            i += 1;
            continue;
        }
        let command_line = i + 1;
        assert_eq!(
            lines.get(i + 1).copied(),
            Some("----"),
            "{}:{command_line}: command must be followed by ----",
            path.display()
        );
        let mut end = i + 2;
        while end < lines.len() && !lines[end].trim().is_empty() {
            end += 1;
        }
        let expected = lines[i + 2..end].join("\n");
        let actual = story.run(line);
        if actual != expected {
            failures.push(format!(
                "{}:{command_line}: {line}\n--- expected\n{expected}\n--- actual\n{actual}\n",
                path.display()
            ));
        }
        writeln!(rewritten, "{line}\n----\n{actual}").unwrap();
        i = end;
    }
    (rewritten, failures)
}

#[test]
fn stories() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("testdata dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no stories in {}", dir.display());
    let rewrite = std::env::var_os("REWRITE").is_some();
    let mut failures = Vec::new();
    for path in paths {
        let (rewritten, mut fails) = run_file(&path);
        if rewrite {
            std::fs::write(&path, rewritten).expect("rewrite story");
        } else {
            failures.append(&mut fails);
        }
    }
    assert!(
        failures.is_empty(),
        "{} story steps differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
