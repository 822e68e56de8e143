//! Failover scenarios on virtual time, in the style of etcd raft's `testdata`:
//! each file in `tests/failover/` is a story of commands, each followed by
//! `----` and the output it must produce. `RAFTQ_REWRITE=1 cargo test -p
//! raftq-server --test failover_scenarios` rewrites the expected outputs from
//! what the code does now (then read the diff before committing it).
//!
//! Commands (times in milliseconds of virtual time):
//! - `node me=N lease=MS`: a fresh supervisor for node N (boot 1).
//! - `group id=G [role=leader|follower|other] [term=T] [leader=N|none]
//!   [voters=A,B] [last=I] [applied=I] [matched=N:I,N:I]`: set what a group's
//!   metrics show (fields not given keep their value).
//! - `heard peer=N`, `refused peer=N`, `append group=G from=N`: what the
//!   transport saw, now.
//! - `beat from=N boot=B [quiesced=G@T,..] [refresh=G,..]`: a node heartbeat.
//! - `vote group=G term=T last=T/I ours=T/I [granted]`: a vote this node
//!   answered; prints whether the answer is sent.
//! - `shutdown`: SIGTERM.
//! - `advance to=MS [hearing=N,..]`: runs every tick that falls due until MS,
//!   the peers in `hearing` heard at each; prints actions as `@MS action`.
//! - `beat-for peer=N`, `peer N`: what a heartbeat to N carries; N's health.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use raftq_server::failover::supervisor::{Beat, GroupView, Groups, Role, Settings, Supervisor};
use raftq_server::failover::vote::{LogPos, VoteSeen, Voter};

struct Views(BTreeMap<u64, GroupView>);

impl Groups for Views {
    fn ids(&self) -> Vec<u64> {
        self.0.keys().copied().collect()
    }
    fn view(&self, id: u64) -> Option<GroupView> {
        self.0.get(&id).cloned()
    }
}

struct World {
    sup: Supervisor,
    views: Views,
    now: Duration,
}

type Args = BTreeMap<String, String>;

fn parse_args(line: &str) -> (String, Args) {
    let mut words = line.split_whitespace();
    let cmd = words.next().unwrap_or_default().to_string();
    let args = words
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (w.to_string(), String::new()),
        })
        .collect();
    (cmd, args)
}

fn num(args: &Args, key: &str) -> u64 {
    let v = args.get(key).unwrap_or_else(|| panic!("missing {key}="));
    v.parse()
        .unwrap_or_else(|_| panic!("{key}={v} is not a number"))
}

fn list(v: &str) -> Vec<u64> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or_else(|_| panic!("bad number {s}")))
        .collect()
}

fn pos(v: &str) -> Option<LogPos> {
    if v == "none" {
        return None;
    }
    let (term, index) = v
        .split_once('/')
        .unwrap_or_else(|| panic!("log position {v} is not T/I"));
    Some(LogPos {
        term: term.parse().expect("term"),
        index: index.parse().expect("index"),
    })
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

impl World {
    fn new(me: u64, lease: u64) -> Self {
        World {
            sup: Supervisor::new(
                Settings {
                    me,
                    lease: Duration::from_millis(lease),
                },
                1,
            ),
            views: Views(BTreeMap::new()),
            now: Duration::ZERO,
        }
    }

    fn actions(&mut self, out: &mut String, prefix: &str) {
        for a in self.sup.take_actions() {
            let _ = writeln!(out, "{prefix}{a}");
        }
    }

    fn run(&mut self, cmd: &str, args: &Args) -> String {
        let mut out = String::new();
        match cmd {
            "group" => {
                let id = num(args, "id");
                let v = self.views.0.entry(id).or_insert(GroupView {
                    id,
                    role: Role::Follower,
                    term: 1,
                    leader: None,
                    voters: vec![],
                    last_index: 0,
                    applied: 0,
                    matched: vec![],
                });
                for (k, val) in args {
                    match k.as_str() {
                        "id" => {}
                        "role" => {
                            v.role = match val.as_str() {
                                "leader" => Role::Leader,
                                "follower" => Role::Follower,
                                "other" => Role::Other,
                                r => panic!("unknown role {r}"),
                            }
                        }
                        "term" => v.term = val.parse().expect("term"),
                        "leader" => {
                            v.leader = (val != "none").then(|| val.parse().expect("leader"))
                        }
                        "voters" => v.voters = list(val),
                        "last" => v.last_index = val.parse().expect("last"),
                        "applied" => v.applied = val.parse().expect("applied"),
                        "matched" => {
                            v.matched = val
                                .split(',')
                                .filter(|s| !s.is_empty())
                                .map(|m| {
                                    let (n, i) = m.split_once(':').expect("matched N:I");
                                    let i = (i != "none").then(|| i.parse().expect("index"));
                                    (n.parse().expect("node"), i)
                                })
                                .collect()
                        }
                        other => panic!("unknown group field {other}"),
                    }
                }
                out.push_str("ok\n");
            }
            "heard" => self.sup.heard(num(args, "peer"), self.now),
            "refused" => self.sup.refused(num(args, "peer"), self.now),
            "append" => self
                .sup
                .append_from(num(args, "group"), num(args, "from"), self.now),
            "beat" => {
                let quiesced = args
                    .get("quiesced")
                    .map(|v| {
                        v.split(',')
                            .filter(|s| !s.is_empty())
                            .map(|gt| {
                                let (g, t) = gt.split_once('@').expect("quiesced G@T");
                                (g.parse().expect("group"), t.parse().expect("term"))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let beat = Beat {
                    boot: num(args, "boot"),
                    quiesced,
                    refresh: args.get("refresh").map(|v| list(v)).unwrap_or_default(),
                };
                self.sup
                    .node_heartbeat(num(args, "from"), &beat, self.now, &self.views);
            }
            "vote" => {
                let group = num(args, "group");
                let v = self.views.0.get(&group).expect("vote for an unknown group");
                let voter = Voter {
                    term: v.term,
                    follower: v.role == Role::Follower,
                    leader: v.leader,
                };
                let seen = VoteSeen {
                    candidate_term: num(args, "term"),
                    candidate_last: pos(&args["last"]),
                    granted: args.contains_key("granted"),
                    our_last: pos(&args["ours"]),
                };
                let stands = self.sup.vote_answered(group, voter, seen, self.now);
                out.push_str(if stands {
                    "reply dropped\n"
                } else {
                    "reply sent\n"
                });
            }
            "shutdown" => self.sup.shutdown(self.now, &self.views),
            "advance" => {
                let to = Duration::from_millis(num(args, "to"));
                let hearing = args.get("hearing").map(|v| list(v)).unwrap_or_default();
                for _ in 0..100_000 {
                    let at = self.sup.next_wakeup().max(self.now);
                    if at > to {
                        break;
                    }
                    self.now = at;
                    for p in &hearing {
                        self.sup.heard(*p, at);
                    }
                    self.sup.tick(at, &self.views);
                    self.actions(&mut out, &format!("@{} ", ms(at)));
                }
                self.now = to;
            }
            "beat-for" => {
                let b = self.sup.beat_for(num(args, "peer"));
                let q: Vec<String> = b.quiesced.iter().map(|(g, t)| format!("{g}@{t}")).collect();
                let r: Vec<String> = b.refresh.iter().map(u64::to_string).collect();
                let _ = writeln!(out, "quiesced={} refresh={}", q.join(","), r.join(","));
            }
            "peer" => {
                let p = num(args, "id");
                let state = if self.sup.is_down(p, self.now) {
                    "down"
                } else {
                    "up"
                };
                let silence = match self.sup.silence(p, self.now) {
                    Some(s) => format!("{}ms", ms(s)),
                    None => "never heard".into(),
                };
                let _ = writeln!(out, "{state} silence={silence}");
            }
            other => panic!("unknown command {other}"),
        }
        if cmd != "advance" {
            self.actions(&mut out, "");
        }
        if out.is_empty() {
            out.push_str("ok\n");
        }
        out
    }
}

/// Runs one scenario file; returns it with the outputs the code produced.
fn run_file(path: &Path) -> (String, Vec<String>) {
    let text = std::fs::read_to_string(path).expect("read scenario");
    let lines: Vec<&str> = text.lines().collect();
    let mut world: Option<World> = None;
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
        let command = line;
        let at = i + 1;
        i += 1;
        assert_eq!(
            lines.get(i).copied(),
            Some("----"),
            "{}:{at}: command without ----",
            path.display()
        );
        i += 1;
        let mut expected = String::new();
        while i < lines.len() && !lines[i].trim().is_empty() {
            expected.push_str(lines[i]);
            expected.push('\n');
            i += 1;
        }
        let (cmd, args) = parse_args(command);
        let actual = if cmd == "node" {
            world = Some(World::new(num(&args, "me"), num(&args, "lease")));
            "ok\n".to_string()
        } else {
            world
                .as_mut()
                .unwrap_or_else(|| panic!("{}:{at}: no `node` command yet", path.display()))
                .run(&cmd, &args)
        };
        if actual != expected {
            failures.push(format!(
                "{}:{at}: {command}\n--- expected\n{expected}--- actual\n{actual}",
                path.display()
            ));
        }
        rewritten.push_str(command);
        rewritten.push_str("\n----\n");
        rewritten.push_str(&actual);
    }
    (rewritten, failures)
}

#[test]
fn failover_scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/failover");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("scenario dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 5,
        "scenario files missing in {}",
        dir.display()
    );
    let rewrite = std::env::var_os("RAFTQ_REWRITE").is_some();
    let mut failures = Vec::new();
    for file in &files {
        let (rewritten, failed) = run_file(file);
        if rewrite {
            std::fs::write(file, rewritten).expect("rewrite scenario");
        } else {
            failures.extend(failed);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
