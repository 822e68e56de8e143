//! Guarantee 7 under random input: random well-formed messages, mangled
//! messages and plain garbage sent to every method of a live 3-node cluster
//! (public API, admin, the peer transport that shares the port, health) get a
//! precise status in bounded time, no node dies, and the queues the cluster
//! held before are unchanged except by requests it accepted.
//!
//! Seeded: `RAFTQ_FUZZ_SEED` replays a run, `RAFTQ_FUZZ_SECS` (default 20)
//! and `RAFTQ_FUZZ_CALLS` (default 20,000) bound it. The peer RPCs have no
//! authentication yet, so a well-formed forged vote or heartbeat may make a
//! group elect: elections are tolerated, crashes, hangs and lost data are not.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use prost_reflect::{DynamicMessage, ReflectMessage, Value};
use raftq_proto::v1::QueueOptions;
use raftq_tests::cluster::Cluster;
use raftq_tests::fuzz_gen::Generator;
use raftq_tests::fuzz_methods::{hex, judge, methods, pool, Method};
use raftq_tests::publish::bodies;
use raftq_tests::raw_grpc::{call, Answer, Call, Shape};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use tonic::transport::{Channel, Endpoint};

const WORK: &str = "fz-work";
const STREAM: &str = "fz-stream";
const KNOWN: usize = 20;
/// Longest any one call may take before it counts as a hang.
const CALL_DEADLINE: Duration = Duration::from_secs(10);

fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok().and_then(|v| v.parse().ok())
}

/// A request that was accepted and may change a known queue.
#[derive(Default)]
struct Accepted {
    /// (offset, payload) of every message a Publish stored there.
    published: BTreeSet<(u64, Vec<u8>)>,
    /// Offsets a consumer that subscribed there settled without requeue: they
    /// may be gone.
    maybe_settled: BTreeSet<u64>,
}

struct Finding {
    what: String,
    method: String,
    node: u64,
    frames: Vec<Bytes>,
}

fn field<'a>(msg: &'a DynamicMessage, name: &str) -> Option<std::borrow::Cow<'a, Value>> {
    msg.descriptor()
        .get_field_by_name(name)
        .filter(|f| msg.has_field(f))
        .map(|f| msg.get_field(&f))
}

fn as_str(v: Option<std::borrow::Cow<'_, Value>>) -> String {
    v.and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Whether a RemoveNode request would remove one of the cluster's nodes: a
/// real removal, which the content check cannot follow.
fn names_a_member(method: &Method, frames: &[Bytes], members: &[u64]) -> bool {
    frames.iter().any(|f| {
        DynamicMessage::decode(method.input.clone(), f.clone())
            .ok()
            .and_then(|m| field(&m, "node_id").and_then(|v| v.as_u64()))
            .is_some_and(|id| members.contains(&id))
    })
}

/// What an accepted request did to the known queues, from the request and
/// answer bodies.
fn track(
    method: &Method,
    frames: &[Bytes],
    answer: &Answer,
    accepted: &mut BTreeMap<String, Accepted>,
) {
    let decoded: Vec<DynamicMessage> = frames
        .iter()
        .filter_map(|f| DynamicMessage::decode(method.input.clone(), f.clone()).ok())
        .collect();
    if method.path.ends_with("QueueService/Publish") {
        let (Some(req), Some(resp)) = (decoded.first(), answer.responses().first()) else {
            return;
        };
        let Ok(resp) = DynamicMessage::decode(method.output.clone(), resp.clone()) else {
            return;
        };
        let queue = as_str(field(req, "queue"));
        let Some(entry) = accepted.get_mut(&queue) else {
            return;
        };
        let offsets: Vec<u64> = field(&resp, "offsets")
            .and_then(|v| {
                v.as_list()
                    .map(|l| l.iter().filter_map(Value::as_u64).collect())
            })
            .unwrap_or_default();
        let payloads: Vec<Vec<u8>> = field(req, "messages")
            .and_then(|v| {
                v.as_list().map(|l| {
                    l.iter()
                        .filter_map(|m| m.as_message())
                        .map(|m| {
                            field(m, "payload")
                                .and_then(|p| p.as_bytes().map(|b| b.to_vec()))
                                .unwrap_or_default()
                        })
                        .collect()
                })
            })
            .unwrap_or_default();
        let duplicate = field(&resp, "duplicate").and_then(|v| v.as_bool()) == Some(true);
        if !duplicate {
            entry.published.extend(offsets.into_iter().zip(payloads));
        }
    }
    if method.path.ends_with("QueueService/Consume") {
        let subscribed: Vec<String> = decoded
            .iter()
            .filter_map(|m| field(m, "subscribe"))
            .filter_map(|s| s.as_message().map(|s| as_str(field(s, "queue"))))
            .collect();
        for queue in subscribed {
            let Some(entry) = accepted.get_mut(&queue) else {
                continue;
            };
            for settle in decoded.iter().filter_map(|m| field(m, "settle")) {
                let Some(settle) = settle.as_message() else {
                    continue;
                };
                let requeue = field(settle, "outcome").and_then(|v| v.as_enum_number()) == Some(1);
                if !requeue {
                    let offsets = field(settle, "offsets")
                        .and_then(|v| {
                            v.as_list()
                                .map(|l| l.iter().filter_map(Value::as_u64).collect::<Vec<_>>())
                        })
                        .unwrap_or_default();
                    entry.maybe_settled.extend(offsets);
                }
            }
        }
    }
}

async fn channel(addr: &str) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("node address")
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy()
}

/// The frames of one request: a well-formed message, a mangled one, or
/// garbage; streaming methods get a few, the first of a Consume most often a
/// well-formed Subscribe so the session gets past its first frame.
fn frames(gen: &mut Generator, method: &Method) -> Vec<Bytes> {
    let n = match method.shape {
        Shape::Unary | Shape::ServerStreaming => 1,
        Shape::ClientStreaming | Shape::Bidi => gen.rng.gen_range(0..5),
    };
    (0..n)
        .map(|_| match gen.rng.gen_range(0..10) {
            0..=5 => gen.body(&method.input, true),
            6..=7 => gen.body(&method.input, false),
            _ => gen.garbage(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_to_every_rpc_get_a_precise_answer_and_change_nothing_refused() {
    let seed = env_u64("RAFTQ_FUZZ_SEED").unwrap_or_else(|| rand::thread_rng().gen());
    let secs = env_u64("RAFTQ_FUZZ_SECS").unwrap_or(20);
    let max_calls = env_u64("RAFTQ_FUZZ_CALLS").unwrap_or(20_000);
    eprintln!("fuzz_rpc: RAFTQ_FUZZ_SEED={seed} RAFTQ_FUZZ_SECS={secs}");

    let pool = pool();
    let methods = methods(&pool);
    let services: BTreeSet<&str> = methods
        .iter()
        .filter_map(|m| m.path.split('/').nth(1))
        .collect();
    for wanted in [
        "raftq.v1.QueueService",
        "raftq.v1.AdminService",
        "raftq.internal.v1.RaftPeer",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.contains(wanted),
            "{wanted} missing from {services:?}"
        );
    }

    let mut cluster = Cluster::start(3).await;
    let work = cluster.create_queue(WORK, QueueOptions::default()).await;
    let stream = cluster
        .create_queue(
            STREAM,
            QueueOptions {
                kind: raftq_proto::v1::QueueKind::Stream as i32,
                ..Default::default()
            },
        )
        .await;
    let mut known: BTreeMap<String, BTreeSet<(u64, Vec<u8>)>> = BTreeMap::new();
    for queue in [WORK, STREAM] {
        let stored = cluster
            .publish_all(1, queue, &bodies(&format!("{queue}-"), 0..KNOWN as u64))
            .await;
        known.insert(
            queue.to_string(),
            stored.into_iter().map(|(o, p)| (o, p.to_vec())).collect(),
        );
    }
    let mut accepted: BTreeMap<String, Accepted> = known
        .keys()
        .map(|k| (k.clone(), Accepted::default()))
        .collect();

    let mut ids = cluster.ids();
    ids.extend([0, work.group_id, stream.group_id]);
    let not_members: Vec<u64> = vec![0, 99, work.group_id + 100];
    let names = vec![WORK.to_string(), STREAM.to_string(), "fz-other".to_string()];
    let mut gen = Generator::new(StdRng::seed_from_u64(seed), names.clone(), ids.clone());
    let mut channels = Vec::new();
    for id in cluster.ids() {
        channels.push((id, channel(&cluster.addr(id)).await));
    }

    let started = Instant::now();
    let mut seen: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut findings: Vec<Finding> = Vec::new();
    let mut calls = 0u64;
    while calls < max_calls && started.elapsed() < Duration::from_secs(secs) {
        calls += 1;
        let method = methods.choose(&mut gen.rng).expect("methods").clone();
        // Deleting a known queue, moving its replicas or removing a node are
        // accepted and end the content check: those requests are never made
        // (every other method may name the known queues and nodes).
        let path = method.path.as_str();
        if path.ends_with("AdminService/DeleteQueue")
            || path.ends_with("AdminService/ChangeReplicas")
        {
            gen.names.retain(|n| !known.contains_key(n));
        } else {
            gen.names = names.clone();
        }
        gen.ids = if path.ends_with("AdminService/RemoveNode") {
            not_members.clone()
        } else {
            ids.clone()
        };
        let frames = frames(&mut gen, &method);
        if path.ends_with("AdminService/RemoveNode")
            && names_a_member(&method, &frames, &cluster.ids())
        {
            continue;
        }
        let (node, channel) = channels.choose(&mut gen.rng).expect("nodes").clone();
        let answer = call(
            channel,
            Call {
                path: method.path.clone(),
                shape: method.shape,
                frames: frames.clone(),
                half_close: gen.rng.gen_bool(0.7),
                deadline: CALL_DEADLINE,
                idle: Duration::from_millis(300),
                max_responses: 50,
            },
        )
        .await;
        let code = answer
            .code()
            .map_or_else(|| "hang".to_string(), |c| format!("{c:?}"));
        *seen.entry((method.path.clone(), code)).or_default() += 1;
        if let Some(what) = judge(&method, &frames, &answer) {
            findings.push(Finding {
                what,
                method: method.path.clone(),
                node,
                frames: frames.clone(),
            });
        }
        if answer.code() == Some(tonic::Code::Ok) {
            track(&method, &frames, &answer, &mut accepted);
        }
        for n in cluster.nodes.iter_mut() {
            if let Some(status) = n.exited() {
                findings.push(Finding {
                    what: format!("node {} exited ({status}) after this call", n.id),
                    method: method.path.clone(),
                    node,
                    frames: frames.clone(),
                });
            }
        }
        if findings.iter().any(|f| f.what.contains("exited")) {
            break;
        }
    }
    eprintln!(
        "fuzz_rpc: {calls} calls in {:?}; (method, code) -> count:",
        started.elapsed()
    );
    for ((path, code), n) in &seen {
        eprintln!("  {path:<45} {code:<18} {n}");
    }
    let called: BTreeSet<&str> = seen.keys().map(|(p, _)| p.as_str()).collect();
    eprintln!(
        "fuzz_rpc: {} of {} methods called",
        called.len(),
        methods.len()
    );

    if !findings.is_empty() {
        for f in &findings {
            let hexes: Vec<String> = f.frames.iter().map(|b| hex(b)).collect();
            eprintln!(
                "FINDING: {} | reproduce: RAFTQ_FUZZ_SEED={seed} method={} node={} frames=[{}]",
                f.what,
                f.method,
                f.node,
                hexes.join(",")
            );
        }
        cluster.dump_logs();
        panic!("{} findings (seed {seed})", findings.len());
    }

    // The known queues: every replica holds exactly what was stored before,
    // plus what accepted publishes added, minus at most what an accepted
    // consumer settled.
    for (queue, before) in &known {
        let acc = &accepted[queue];
        let mut expected = before.clone();
        expected.extend(acc.published.iter().cloned());
        for id in cluster.ids() {
            cluster
                .wait_caught_up(id, queue, Duration::from_secs(30))
                .await;
            let held: BTreeSet<(u64, Vec<u8>)> = cluster
                .read_all_stale(id, queue)
                .await
                .into_iter()
                .map(|m| (m.offset, m.payload.to_vec()))
                .collect();
            let missing: Vec<u64> = expected
                .difference(&held)
                .map(|(o, _)| *o)
                .filter(|o| !acc.maybe_settled.contains(o))
                .collect();
            let extra: Vec<u64> = held.difference(&expected).map(|(o, _)| *o).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "node {id}, {queue}: missing {missing:?}, unexpected {extra:?} (seed {seed})"
            );
        }
        eprintln!(
            "fuzz_rpc: {queue} unchanged on every node but for {} accepted publishes, {} offsets settled",
            acc.published.len(),
            acc.maybe_settled.len()
        );
    }

    // And the cluster still does its job.
    cluster
        .create_queue("fz-after", QueueOptions::default())
        .await;
    let after = bodies("after-", 0..10);
    let stored = cluster.publish_all(2, "fz-after", &after).await;
    assert_eq!(stored.len(), after.len());
    cluster
        .wait_caught_up(3, "fz-after", Duration::from_secs(30))
        .await;
    let read = cluster.read_all_stale(3, "fz-after").await;
    assert_eq!(read.len(), after.len(), "read after the fuzzing");
    let drained = cluster
        .consume_all(3, "fz-after", after.len(), Duration::from_secs(30))
        .await;
    assert_eq!(
        drained.acked.len(),
        after.len(),
        "consumed after the fuzzing"
    );
}
