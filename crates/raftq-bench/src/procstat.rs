//! What a node process costs, read from /proc by pid (Linux), and a node's
//! Prometheus counters: the measuring side of `idle` and `backlog`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads the pid of node `id` from a pid directory as `scripts/cluster.sh`
/// writes it (`DIR/node<ID>`).
pub fn pid_of(dir: &Path, id: u64) -> anyhow::Result<i32> {
    let file = dir.join(format!("node{id}"));
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read the pid of node {id} from {}", file.display()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .with_context(|| format!("{} does not hold a pid", file.display()))?;
    anyhow::ensure!(pid > 1, "{} holds an invalid pid {pid}", file.display());
    Ok(pid)
}

pub fn signal(pid: i32, sig: libc::c_int) -> anyhow::Result<()> {
    // SAFETY: kill(2) touches no memory of ours; the pid comes from a pid file.
    let rc = unsafe { libc::kill(pid, sig) };
    anyhow::ensure!(
        rc == 0,
        "kill({pid}, {sig}) failed: {}",
        std::io::Error::last_os_error()
    );
    Ok(())
}

/// CPU time (user + system) the process has used so far.
pub fn cpu_time(pid: i32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("process {pid} is not running"))?;
    parse_cpu_ticks(&stat)
        .map(|ticks| Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second()))
        .with_context(|| format!("unexpected /proc/{pid}/stat"))
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// utime + stime from a /proc/PID/stat line. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last ')'.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of the process in bytes.
pub fn rss_bytes(pid: i32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is not running"))?;
    parse_rss(&status).with_context(|| format!("no VmRSS in /proc/{pid}/status"))
}

fn parse_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// One counter (all label sets summed) from a node's `/metrics`.
pub async fn scrape_sum(addr: &str, metric: &str) -> anyhow::Result<f64> {
    let mut stream =
        tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr))
            .await
            .with_context(|| format!("metrics at {addr}: connect timed out"))?
            .with_context(|| format!("metrics at {addr}"))?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: raftq\r\n\r\n")
        .await?;
    let mut body = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut body))
        .await
        .with_context(|| format!("metrics at {addr}: read timed out"))??;
    Ok(sum_metric(&body, metric))
}

fn sum_metric(body: &str, metric: &str) -> f64 {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            let base = name.split('{').next()?;
            (base == metric).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_survive_odd_command_names() {
        let stat = "1234 (raft q) d) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
    }

    #[test]
    fn rss_is_read_in_bytes() {
        let status = "Name:\traftqd\nVmRSS:\t  2048 kB\nThreads:\t9\n";
        assert_eq!(parse_rss(status), Some(2048 * 1024));
    }

    #[test]
    fn labelled_series_are_summed() {
        let body = "# HELP x\nraftq_peer_rpcs_sent_total{rpc=\"vote\"} 2\nraftq_peer_rpcs_sent_total{rpc=\"append_entries\"} 40\nraftq_other 7\n";
        assert_eq!(sum_metric(body, "raftq_peer_rpcs_sent_total"), 42.0);
    }
}
