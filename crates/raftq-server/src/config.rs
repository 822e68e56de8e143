//! Node configuration from flags, `RAFTQ_*` environment variables and an optional
//! TOML file. Precedence: flag > environment > file > default.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};
use serde::Deserialize;

use crate::raft::snapshot_trigger::SnapshotTrigger;

#[derive(Debug, Parser)]
#[command(
    name = "raftqd",
    version,
    about = "raftq node: a replicated message queue on Raft"
)]
struct Cli {
    /// TOML file with any of the settings below (keys in snake_case).
    #[arg(long, env = "RAFTQ_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    settings: Settings,
}

// Each field is a flag (`--kebab-case`), an environment variable
// (`RAFTQ_UPPER_CASE`) and a config file key (snake_case) at once, and a
// default lives only in its DEFAULT_* constant: clap shows it in --help and
// `Default` hands it to keys the file leaves out.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// This node's id (a positive integer, unique in the cluster).
    #[arg(long, env = "RAFTQ_ID")]
    pub id: Option<u64>,
    /// Where the node keeps its Raft logs, votes and snapshots.
    #[arg(long, env = "RAFTQ_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// gRPC address for clients and peers.
    #[arg(long, env = "RAFTQ_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// Address other nodes and clients use to reach this node. [default: --listen]
    #[arg(long, env = "RAFTQ_ADVERTISE")]
    pub advertise: Option<String>,
    /// "1=HOST:PORT,2=HOST:PORT,..." used only to bootstrap an empty data dir.
    #[arg(long, env = "RAFTQ_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,
    /// "HOST:PORT,..." of nodes of a running cluster, used only by an empty
    /// data dir of a node not listed in --initial-cluster: it joins that
    /// cluster as a new member.
    #[arg(long, env = "RAFTQ_JOIN")]
    pub join: Option<String>,
    /// HTTP address serving Prometheus metrics at /metrics. [default: off]
    #[arg(long, env = "RAFTQ_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    /// Log format: text or json. Filter with RUST_LOG.
    #[arg(long, env = "RAFTQ_LOG_FORMAT", default_value = DEFAULT_LOG_FORMAT)]
    pub log_format: String,
    /// Raft heartbeat interval in ms; also openraft's AppendEntries timeout.
    #[arg(long, env = "RAFTQ_HEARTBEAT_MS", default_value_t = DEFAULT_HEARTBEAT_MS)]
    pub heartbeat_ms: u64,
    /// Minimum election timeout in ms.
    #[arg(
        long,
        env = "RAFTQ_ELECTION_TIMEOUT_MIN_MS",
        default_value_t = DEFAULT_ELECTION_TIMEOUT_MIN_MS
    )]
    pub election_timeout_min_ms: u64,
    /// Maximum election timeout in ms; also the leader lease.
    #[arg(
        long,
        env = "RAFTQ_ELECTION_TIMEOUT_MAX_MS",
        default_value_t = DEFAULT_ELECTION_TIMEOUT_MAX_MS
    )]
    pub election_timeout_max_ms: u64,
    /// A group snapshots once the log since its last snapshot is as large as
    /// its state, but not before this many MiB of log.
    #[arg(long, env = "RAFTQ_SNAPSHOT_MIN_LOG_MIB", default_value_t = DEFAULT_SNAPSHOT_MIN_LOG_MIB)]
    pub snapshot_min_log_mib: u64,
    /// ... and at the latest after this many MiB of log: it bounds the unpurged
    /// log (sled holds much of it in memory) and what a restart replays.
    #[arg(long, env = "RAFTQ_SNAPSHOT_MAX_LOG_MIB", default_value_t = DEFAULT_SNAPSHOT_MAX_LOG_MIB)]
    pub snapshot_max_log_mib: u64,
    /// ... or after this many log entries, whichever comes first (for logs of
    /// many small entries).
    #[arg(long, env = "RAFTQ_SNAPSHOT_EVERY", default_value_t = DEFAULT_SNAPSHOT_EVERY)]
    pub snapshot_every: u64,
    /// Log entries kept below a snapshot for slow followers.
    #[arg(long, env = "RAFTQ_SNAPSHOT_KEEP_LOGS", default_value_t = DEFAULT_SNAPSHOT_KEEP_LOGS)]
    pub snapshot_keep_logs: u64,
    /// Prefetch used when a consumer asks for 0.
    #[arg(long, env = "RAFTQ_DEFAULT_PREFETCH", default_value_t = DEFAULT_PREFETCH)]
    pub default_prefetch: u32,
    /// Largest prefetch a consumer gets; larger requests are lowered to it.
    #[arg(long, env = "RAFTQ_MAX_PREFETCH", default_value_t = DEFAULT_MAX_PREFETCH)]
    pub max_prefetch: u32,
    /// Threads running gRPC and Raft work. Set it to cores / nodes when several
    /// nodes share one machine: fewer threads than cores hand work between
    /// threads less often. [default: one per core]
    #[arg(long, env = "RAFTQ_WORKER_THREADS")]
    pub worker_threads: Option<usize>,
    /// Largest publish batch accepted, in bytes of payloads and headers; a
    /// larger one is refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "RAFTQ_MAX_BATCH_BYTES", default_value_t = DEFAULT_MAX_BATCH_BYTES)]
    pub max_batch_bytes: u64,
    /// Largest gRPC request a node reads at all; a larger one is refused with
    /// RESOURCE_EXHAUSTED before it is read. Must exceed max_batch_bytes.
    #[arg(long, env = "RAFTQ_MAX_REQUEST_BYTES", default_value_t = DEFAULT_MAX_REQUEST_BYTES)]
    pub max_request_bytes: u64,
    /// Memory alarm: past this resident size of the node, publishes are
    /// refused cluster-wide (consumers and acks keep working); 0 turns it off.
    /// [default: 60% of the machine's memory, or of the cgroup's limit]
    #[arg(long, env = "RAFTQ_MEMORY_LIMIT_MIB")]
    pub memory_limit_mib: Option<u64>,
    /// Disk alarm: with less free space than this on the data dir's
    /// filesystem, publishes are refused cluster-wide; 0 turns it off.
    #[arg(long, env = "RAFTQ_DISK_FREE_LIMIT_MIB", default_value_t = DEFAULT_DISK_FREE_LIMIT_MIB)]
    pub disk_free_limit_mib: u64,
    /// Self-healing: replicas on a node that has been down this many seconds
    /// move to live nodes that hold none of the queue (the node keeps its id
    /// and may come back); 0 turns it off.
    #[arg(long, env = "RAFTQ_HEAL_AFTER_SECS", default_value_t = DEFAULT_HEAL_AFTER_SECS)]
    pub heal_after_secs: u64,
    /// Once a node that was down is back, move leaders so that every node
    /// leads about as many queues (as `raftq cluster rebalance` does).
    #[arg(long, env = "RAFTQ_REBALANCE_ON_RETURN", default_value_t = false)]
    pub rebalance_on_return: bool,
    /// This node's TLS certificate (PEM), signed by the cluster's CA and
    /// naming this node (`raftq cert create-node`). With --tls-key and
    /// --tls-ca it turns TLS on for clients and peers.
    #[arg(long, env = "RAFTQ_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "RAFTQ_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// The cluster's CA certificate (PEM): peers must present a node
    /// certificate it signed; client certificates must chain to it.
    #[arg(long, env = "RAFTQ_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Serve plaintext on a non-loopback address (without it, such a node
    /// refuses to start): anyone who can reach the port can then read and
    /// change everything.
    #[arg(long, env = "RAFTQ_INSECURE", default_value_t = false)]
    pub insecure: bool,
    /// Users, their tokens (hashed) and rights per queue pattern (TOML; see
    /// README "Security"). Without it, any client that reaches the node may
    /// do everything. Needs TLS. Reloaded when it changes.
    #[arg(long, env = "RAFTQ_AUTH_FILE")]
    pub auth_file: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            id: None,
            data_dir: None,
            listen: DEFAULT_LISTEN.into(),
            advertise: None,
            initial_cluster: None,
            join: None,
            metrics_listen: None,
            log_format: DEFAULT_LOG_FORMAT.into(),
            heartbeat_ms: DEFAULT_HEARTBEAT_MS,
            election_timeout_min_ms: DEFAULT_ELECTION_TIMEOUT_MIN_MS,
            election_timeout_max_ms: DEFAULT_ELECTION_TIMEOUT_MAX_MS,
            snapshot_min_log_mib: DEFAULT_SNAPSHOT_MIN_LOG_MIB,
            snapshot_max_log_mib: DEFAULT_SNAPSHOT_MAX_LOG_MIB,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            snapshot_keep_logs: DEFAULT_SNAPSHOT_KEEP_LOGS,
            default_prefetch: DEFAULT_PREFETCH,
            max_prefetch: DEFAULT_MAX_PREFETCH,
            worker_threads: None,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            memory_limit_mib: None,
            disk_free_limit_mib: DEFAULT_DISK_FREE_LIMIT_MIB,
            heal_after_secs: DEFAULT_HEAL_AFTER_SECS,
            rebalance_on_return: false,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            insecure: false,
            auth_file: None,
        }
    }
}

/// raftqd's command line and `RAFTQ_*` environment, parsed.
#[derive(Debug)]
pub struct Args {
    cli: Cli,
    /// Only the values a flag or the environment gave: clap's defaults are
    /// cleared from it, so that they do not outrank the config file.
    explicit: ArgMatches,
}

impl Args {
    /// Parses the process's arguments; prints help, the version or the
    /// error and exits as clap does.
    pub fn parse() -> Self {
        Self::parse_from(std::env::args_os())
    }

    pub fn parse_from<I, T>(itr: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        Self::try_parse_from(itr).unwrap_or_else(|e| e.exit())
    }

    pub fn try_parse_from<I, T>(itr: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let mut matches = Cli::command().try_get_matches_from(itr)?;
        let cli = Cli::from_arg_matches(&matches).map_err(|e| e.format(&mut Cli::command()))?;
        let defaulted: Vec<String> = matches
            .ids()
            .filter(|id| matches.value_source(id.as_str()) == Some(ValueSource::DefaultValue))
            .map(|id| id.as_str().to_owned())
            .collect();
        for id in &defaulted {
            // Cannot fail: the id is one of these matches'.
            let _ = matches.try_clear_id(id);
        }
        Ok(Args {
            cli,
            explicit: matches,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

// Failover time is bounded below by the leader lease (openraft 0.9: a
// follower grants no vote until election_timeout_max has passed since it last
// heard from the leader; the failover supervisor stands a follower the moment it ends
// when the leader's process is gone). 220 ms puts a SIGKILLed leader's
// replacement at about 250 ms (W5); heartbeats every 60 ms still leave three
// chances to renew the lease, three fit in the shortest election timeout, and
// bench runs that load both cores (W1 at 2,048 in flight, W3, 10 queues)
// showed no election. Not 50 ms: openraft's per-group tick task wakes every
// 1.5 heartbeats even while quiescence has it disabled, and at 50 ms those
// wake-ups put 1,000 idle queues over 5 % of a core on this machine.
pub const DEFAULT_HEARTBEAT_MS: u64 = 60;
pub const DEFAULT_ELECTION_TIMEOUT_MIN_MS: u64 = 180;
pub const DEFAULT_ELECTION_TIMEOUT_MAX_MS: u64 = 220;

// See raft::snapshot_trigger. sled keeps most of the unpurged log in memory:
// with a 128 MiB cap the 1,000,000-message backlog (bench/results/memory.md)
// held 2.00-2.02x its payload, with 64 MiB 1.75-1.78x, with 96 MiB 1.85x. The
// price of 64: a queue whose state is over 64 MiB writes more snapshot than
// log; 20,000 entries only matters for logs of small entries (acks, consumer
// changes).
pub const DEFAULT_SNAPSHOT_MIN_LOG_MIB: u64 = 16;
pub const DEFAULT_SNAPSHOT_MAX_LOG_MIB: u64 = 64;
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 20_000;
pub const DEFAULT_SNAPSHOT_KEEP_LOGS: u64 = 1000;

// A batch is one Raft entry: it is written, fsynced and sent to every replica
// whole, so its size bounds how long one publish can hold a group's
// replication (32 MiB: about 0.3 s here). RabbitMQ's default message limit is
// 16 MiB, NATS's 1 MiB (at most 64 MiB).
pub const DEFAULT_MAX_BATCH_BYTES: u64 = 32 << 20;
pub const DEFAULT_MAX_REQUEST_BYTES: u64 = 48 << 20;
/// Free space on the data dir's filesystem below which the disk alarm is raised.
pub const DEFAULT_DISK_FREE_LIMIT_MIB: u64 = 256;
/// Off: moving replicas copies whole queues, which an operator should choose
/// over waiting for a node that is rebooting (RabbitMQ and NATS do not move
/// replicas by themselves either).
pub const DEFAULT_HEAL_AFTER_SECS: u64 = 0;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:7001";
pub const DEFAULT_LOG_FORMAT: &str = "text";
/// Prefetch of a consumer that asks for 0.
pub const DEFAULT_PREFETCH: u32 = 100;
pub const DEFAULT_MAX_PREFETCH: u32 = 10_000;

fn tls_files(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
) -> Result<Option<crate::tls::TlsFiles>, ConfigError> {
    match (cert, key, ca) {
        (None, None, None) => Ok(None),
        (Some(cert), Some(key), Some(ca)) => Ok(Some(crate::tls::TlsFiles { cert, key, ca })),
        _ => Err(ConfigError::Invalid(
            "TLS needs all three of --tls-cert, --tls-key and --tls-ca".into(),
        )),
    }
}

/// Loopback addresses (and names that resolve only to loopback, like
/// localhost) are reachable from this machine alone.
fn listens_on_loopback(listen: &str) -> bool {
    use std::net::ToSocketAddrs;
    match listen.to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

fn mib(name: &str, value: u64) -> Result<u64, ConfigError> {
    if value == 0 {
        return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
    }
    value
        .checked_mul(1 << 20)
        .ok_or_else(|| ConfigError::Invalid(format!("{name} {value} is too large")))
}

/// The resolved configuration of a node.
#[derive(Debug, Clone)]
pub struct Config {
    pub id: u64,
    pub data_dir: PathBuf,
    pub listen: String,
    pub advertise: String,
    pub initial_cluster: BTreeMap<u64, String>,
    /// Nodes of a running cluster this node joins, when its data dir is empty.
    pub join: Vec<String>,
    pub metrics_listen: Option<String>,
    pub log_format: LogFormat,
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub snapshot_trigger: SnapshotTrigger,
    pub snapshot_every: u64,
    pub snapshot_keep_logs: u64,
    pub default_prefetch: u32,
    pub max_prefetch: u32,
    /// None: tokio's default (one per core).
    pub worker_threads: Option<usize>,
    pub max_batch_bytes: u64,
    pub max_request_bytes: u64,
    /// `None`: a share of total memory (alarms::monitor).
    pub memory_limit_mib: Option<u64>,
    pub disk_free_limit_mib: u64,
    /// `None`: self-healing off.
    pub heal_after: Option<std::time::Duration>,
    pub rebalance_on_return: bool,
    /// `None`: plaintext (loopback, or with --insecure).
    pub tls: Option<crate::tls::TlsFiles>,
    /// `None`: no authentication.
    pub auth_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("{0} is required (flag --{1} or env RAFTQ_{2})")]
    Missing(&'static str, &'static str, &'static str),
    #[error("invalid --initial-cluster entry {0:?}: expected ID=HOST:PORT")]
    InitialCluster(String),
    #[error("invalid setting: {0}")]
    Invalid(String),
}

/// Parses "1=host:port,2=host:port".
pub fn parse_initial_cluster(s: &str) -> Result<BTreeMap<u64, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('=')
            .ok_or_else(|| ConfigError::InitialCluster(part.to_string()))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| ConfigError::InitialCluster(part.to_string()))?;
        let addr = addr.trim();
        if id == 0 || addr.is_empty() || !addr.contains(':') {
            return Err(ConfigError::InitialCluster(part.to_string()));
        }
        out.insert(id, addr.to_string());
    }
    Ok(out)
}

fn load_file(path: &Path) -> Result<Settings, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.display().to_string(),
        source,
    })
}

impl Config {
    pub fn from_args(args: Args) -> Result<Self, ConfigError> {
        let Args { cli, explicit } = args;
        let settings = match &cli.config {
            None => cli.settings,
            Some(path) => {
                let mut settings = load_file(path)?;
                settings
                    .update_from_arg_matches(&explicit)
                    .map_err(|e| ConfigError::Invalid(e.to_string()))?;
                settings
            }
        };
        Self::resolve(settings)
    }

    fn resolve(s: Settings) -> Result<Self, ConfigError> {
        let id = s.id.ok_or(ConfigError::Missing("node id", "id", "ID"))?;
        if id == 0 {
            return Err(ConfigError::Invalid(
                "node id must be a positive integer".into(),
            ));
        }
        let data_dir = s
            .data_dir
            .ok_or(ConfigError::Missing("data dir", "data-dir", "DATA_DIR"))?;
        let advertise = s.advertise.unwrap_or_else(|| s.listen.clone());
        let initial_cluster = match s.initial_cluster {
            Some(list) => parse_initial_cluster(&list)?,
            None => BTreeMap::new(),
        };
        let join: Vec<String> = s
            .join
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        // Both may be given (one config for every node of a StatefulSet or
        // compose file): a node listed in the initial cluster bootstraps with
        // it, any other node joins.
        if !initial_cluster.is_empty() && !initial_cluster.contains_key(&id) && join.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "--initial-cluster does not contain this node's id {id}; a node that is not \
                 one of the initial cluster needs --join HOST:PORT of a running node"
            )));
        }
        let log_format = match s.log_format.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::Invalid(format!(
                    "log format {other:?}: expected text or json"
                )))
            }
        };
        let config = Config {
            id,
            data_dir,
            listen: s.listen,
            advertise,
            initial_cluster,
            join,
            metrics_listen: s.metrics_listen,
            log_format,
            heartbeat_ms: s.heartbeat_ms,
            election_timeout_min_ms: s.election_timeout_min_ms,
            election_timeout_max_ms: s.election_timeout_max_ms,
            snapshot_trigger: SnapshotTrigger {
                min_log_bytes: mib("snapshot_min_log_mib", s.snapshot_min_log_mib)?,
                max_log_bytes: mib("snapshot_max_log_mib", s.snapshot_max_log_mib)?,
            },
            snapshot_every: s.snapshot_every,
            snapshot_keep_logs: s.snapshot_keep_logs,
            default_prefetch: s.default_prefetch,
            max_prefetch: s.max_prefetch,
            worker_threads: s.worker_threads,
            max_batch_bytes: s.max_batch_bytes,
            max_request_bytes: s.max_request_bytes,
            memory_limit_mib: s.memory_limit_mib,
            disk_free_limit_mib: s.disk_free_limit_mib,
            heal_after: (s.heal_after_secs > 0)
                .then(|| std::time::Duration::from_secs(s.heal_after_secs)),
            rebalance_on_return: s.rebalance_on_return,
            tls: tls_files(s.tls_cert, s.tls_key, s.tls_ca)?,
            auth_file: s.auth_file,
        };
        if config.auth_file.is_some() && config.tls.is_none() {
            return Err(ConfigError::Invalid(
                "--auth-file needs TLS (--tls-cert, --tls-key, --tls-ca): nodes vouch for the \
                 requests they forward with their certificates, and tokens must not cross the \
                 network in clear"
                    .into(),
            ));
        }
        if config.tls.is_none() && !s.insecure && !listens_on_loopback(&config.listen) {
            return Err(ConfigError::Invalid(format!(
                "refusing to serve plaintext on {}: give --tls-cert, --tls-key and --tls-ca \
                 (raftq cert create-ca / create-node make them), listen on 127.0.0.1, or pass \
                 --insecure to accept that anyone who reaches the port can read and change \
                 everything",
                config.listen
            )));
        }
        if config.max_prefetch == 0 || config.default_prefetch > config.max_prefetch {
            return Err(ConfigError::Invalid(
                "need 0 < default_prefetch <= max_prefetch".into(),
            ));
        }
        if config.max_batch_bytes == 0 || config.max_request_bytes <= config.max_batch_bytes {
            return Err(ConfigError::Invalid(
                "need 0 < max_batch_bytes < max_request_bytes".into(),
            ));
        }
        if config.max_request_bytes > u32::MAX as u64 {
            return Err(ConfigError::Invalid(
                "max_request_bytes must be under 4 GiB (a gRPC message length is 32 bits)".into(),
            ));
        }
        if config.worker_threads == Some(0) {
            return Err(ConfigError::Invalid(
                "worker_threads must be at least 1 (leave it unset for one per core)".into(),
            ));
        }
        if config.snapshot_trigger.max_log_bytes < config.snapshot_trigger.min_log_bytes {
            return Err(ConfigError::Invalid(
                "need snapshot_min_log_mib <= snapshot_max_log_mib".into(),
            ));
        }
        if config.election_timeout_min_ms <= config.heartbeat_ms
            || config.election_timeout_max_ms <= config.election_timeout_min_ms
        {
            return Err(ConfigError::Invalid(
                "need heartbeat_ms < election_timeout_min_ms < election_timeout_max_ms".into(),
            ));
        }
        Ok(config)
    }

    pub fn raft_config(&self) -> Result<openraft::Config, ConfigError> {
        openraft::Config {
            cluster_name: "raftq".into(),
            heartbeat_interval: self.heartbeat_ms,
            election_timeout_min: self.election_timeout_min_ms,
            election_timeout_max: self.election_timeout_max_ms,
            // The log store bounds each AppendEntries by bytes too
            // (raftq_store::REPLICATION_BATCH_BYTES), so this only caps how
            // many small entries (acks, single messages) one request carries.
            max_payload_entries: 256,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every),
            max_in_snapshot_log_to_keep: self.snapshot_keep_logs,
            // The last chunk's answer waits for the whole snapshot to be
            // decoded and made durable (seconds for hundreds of MB); earlier
            // chunks get a deadline of their own in the peer client, so a
            // stalled one is resent at its offset instead of the transfer
            // starting over.
            install_snapshot_timeout: 120_000,
            snapshot_max_chunk_size: raftq_store::REPLICATION_BATCH_BYTES as u64,
            ..Default::default()
        }
        .validate()
        .map_err(|e| ConfigError::Invalid(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config_with(extra: &[&str]) -> Result<Config, ConfigError> {
        let mut args = vec!["raftqd", "--id", "1", "--data-dir", "/tmp/x"];
        args.extend_from_slice(extra);
        Config::from_args(Args::parse_from(args))
    }

    #[test]
    fn size_and_prefetch_limits_have_defaults_and_must_be_consistent() {
        let c = config_with(&[]).expect("defaults");
        assert_eq!(c.max_batch_bytes, DEFAULT_MAX_BATCH_BYTES);
        assert!(c.max_request_bytes > c.max_batch_bytes);
        assert_eq!(c.max_prefetch, DEFAULT_MAX_PREFETCH);
        assert!(config_with(&["--max-batch-bytes", "50331648"]).is_err());
        assert!(config_with(&["--max-batch-bytes", "0"]).is_err());
        assert!(config_with(&["--max-request-bytes", "5000000000"]).is_err());
        assert!(
            config_with(&["--max-prefetch", "50"]).is_err(),
            "below default_prefetch"
        );
        let small = config_with(&["--max-batch-bytes", "1000", "--max-request-bytes", "2000"])
            .expect("small limits");
        assert_eq!(
            (small.max_batch_bytes, small.max_request_bytes),
            (1000, 2000)
        );
    }

    #[test]
    fn alarm_limits_default_to_a_share_of_memory_and_256_mib_free() {
        let c = config_with(&[]).expect("defaults");
        assert_eq!(c.memory_limit_mib, None);
        assert_eq!(c.disk_free_limit_mib, DEFAULT_DISK_FREE_LIMIT_MIB);
        let off = config_with(&["--memory-limit-mib", "0", "--disk-free-limit-mib", "0"])
            .expect("alarms off");
        assert_eq!(
            (off.memory_limit_mib, off.disk_free_limit_mib),
            (Some(0), 0)
        );
    }

    #[test]
    fn a_node_outside_the_initial_cluster_needs_join_and_both_may_be_given() {
        let initial = ["--initial-cluster", "2=h2:1,3=h3:1"];
        let err = config_with(&initial).expect_err("node 1 is not in it");
        assert!(err.to_string().contains("needs --join"), "{err}");
        let mut both = initial.to_vec();
        both.extend(["--join", "h2:1,h3:1"]);
        let joining = config_with(&both).expect("node 1 joins");
        assert_eq!(joining.join, vec!["h2:1", "h3:1"]);
        let listed = config_with(&["--initial-cluster", "1=h1:1", "--join", "h2:1"])
            .expect("listed: bootstraps, join unused");
        assert!(listed.initial_cluster.contains_key(&1));
        let healing = config_with(&["--heal-after-secs", "30", "--rebalance-on-return"])
            .expect("self-healing flags");
        assert_eq!(healing.heal_after, Some(std::time::Duration::from_secs(30)));
        assert!(healing.rebalance_on_return);
        assert_eq!(config_with(&[]).expect("defaults").heal_after, None);
    }

    #[test]
    fn plaintext_beyond_loopback_needs_insecure_and_tls_needs_three_files() {
        let open = config_with(&["--listen", "0.0.0.0:7001"]).expect_err("plaintext on 0.0.0.0");
        assert!(
            open.to_string()
                .contains("refusing to serve plaintext on 0.0.0.0:7001"),
            "{open}"
        );
        config_with(&["--listen", "0.0.0.0:7001", "--insecure"]).expect("spelled out");
        config_with(&["--listen", "localhost:7001"]).expect("loopback by name");
        let partial = config_with(&["--tls-cert", "a.pem"]).expect_err("one file of three");
        assert!(partial.to_string().contains("all three"), "{partial}");
        let tls = config_with(&[
            "--listen",
            "0.0.0.0:7001",
            "--tls-cert",
            "n.pem",
            "--tls-key",
            "k.pem",
            "--tls-ca",
            "ca.pem",
        ])
        .expect("TLS on 0.0.0.0");
        assert!(tls.tls.is_some());
        let auth = config_with(&["--auth-file", "users.toml"]).expect_err("auth without TLS");
        assert!(auth.to_string().contains("--auth-file needs TLS"), "{auth}");
    }

    #[test]
    fn initial_cluster_parses_and_rejects_garbage() {
        let m = parse_initial_cluster("1=127.0.0.1:7001, 2=127.0.0.1:7002").expect("valid");
        assert_eq!(m.len(), 2);
        assert_eq!(m[&2], "127.0.0.1:7002");
        assert!(parse_initial_cluster("1:7001").is_err());
        assert!(parse_initial_cluster("0=a:1").is_err());
        assert!(parse_initial_cluster("x=a:1").is_err());
    }

    #[test]
    fn flags_override_file_and_defaults_apply() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("raftq.toml");
        std::fs::write(&path, "id = 2\ndata_dir = \"/tmp/x\"\nheartbeat_ms = 50\n").expect("write");
        let args = Args::parse_from([
            "raftqd",
            "--config",
            path.to_str().unwrap_or_default(),
            "--id",
            "3",
        ]);
        let c = Config::from_args(args).expect("valid config");
        assert_eq!(c.id, 3);
        assert_eq!(c.heartbeat_ms, 50);
        assert_eq!(c.listen, "127.0.0.1:7001");
        assert_eq!(c.advertise, c.listen);
        assert_eq!(c.worker_threads, None, "unset: one per core");
    }

    #[test]
    fn worker_threads_come_from_file_or_flag_and_zero_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("raftq.toml");
        std::fs::write(&path, "id = 1\ndata_dir = \"/tmp/x\"\nworker_threads = 2\n")
            .expect("write");
        let file = path.to_str().unwrap_or_default();
        let parse = |extra: &[&str]| {
            let base = ["raftqd", "--config", file];
            Config::from_args(Args::parse_from(base.iter().chain(extra)))
        };
        assert_eq!(parse(&[]).expect("valid").worker_threads, Some(2));
        let from_flag = parse(&["--worker-threads", "1"]);
        assert_eq!(from_flag.expect("valid").worker_threads, Some(1));
        let zero = parse(&["--worker-threads", "0"]);
        assert!(matches!(zero, Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn the_shipped_systemd_config_is_valid() {
        let text = include_str!("../../../deploy/systemd/raftq.toml");
        let file: Settings = toml::from_str(text).expect("deploy/systemd/raftq.toml parses");
        let keys: toml::Table = toml::from_str(text).expect("deploy/systemd/raftq.toml parses");
        assert!(keys.contains_key("snapshot_max_log_mib"));
        assert_eq!(file.snapshot_max_log_mib, DEFAULT_SNAPSHOT_MAX_LOG_MIB);
    }

    #[test]
    fn a_file_without_keys_resolves_like_no_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("raftq.toml");
        std::fs::write(&path, "").expect("write");
        let base = ["raftqd", "--id", "1", "--data-dir", "/tmp/x"];
        let from_flags = Args::parse_from(base);
        let file = path.to_str().unwrap_or_default();
        let from_empty_file = Args::parse_from(base.iter().chain(&["--config", file]));
        let defaults = Settings {
            id: Some(1),
            data_dir: Some("/tmp/x".into()),
            ..Settings::default()
        };
        assert_eq!(
            from_flags.cli.settings, defaults,
            "clap's defaults are Default's"
        );
        assert_eq!(
            format!("{:?}", Config::from_args(from_flags).expect("valid")),
            format!("{:?}", Config::from_args(from_empty_file).expect("valid"))
        );
    }

    #[test]
    fn snapshot_trigger_is_in_mib_and_refuses_zero_or_a_cap_below_the_floor() {
        let parse = |extra: &[&str]| {
            let base = ["raftqd", "--id", "1", "--data-dir", "/tmp/x"];
            Config::from_args(Args::parse_from(base.iter().chain(extra)))
        };
        let defaults = parse(&[]).expect("valid");
        assert_eq!(defaults.snapshot_trigger.min_log_bytes, 16 << 20);
        assert_eq!(defaults.snapshot_trigger.max_log_bytes, 64 << 20);
        assert_eq!(defaults.snapshot_every, 20_000);
        let set = parse(&["--snapshot-min-log-mib", "2", "--snapshot-max-log-mib", "3"]);
        assert_eq!(set.expect("valid").snapshot_trigger.max_log_bytes, 3 << 20);
        for bad in [
            &["--snapshot-min-log-mib", "0"][..],
            &[
                "--snapshot-min-log-mib",
                "64",
                "--snapshot-max-log-mib",
                "32",
            ],
            &["--snapshot-max-log-mib", "18446744073709551615"],
        ] {
            assert!(
                matches!(parse(bad), Err(ConfigError::Invalid(_))),
                "{bad:?} accepted"
            );
        }
    }
}
