//! One tonic channel per node address, created on first use and connected
//! lazily, so a dead seed costs nothing until it is tried.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use crate::client::tls::{host_of, TlsOptions};
use crate::Error;

/// How channels connect.
#[derive(Debug, Clone)]
pub(crate) struct ChannelSettings {
    pub connect_timeout: Duration,
    pub tls: Option<TlsOptions>,
}

pub(crate) struct Pool {
    seeds: Vec<String>,
    settings: ChannelSettings,
    channels: Mutex<HashMap<String, Channel>>,
    /// Where the next round over the seeds starts, so admin calls spread out.
    next_seed: AtomicUsize,
}

/// `host:port` from what a person typed (`http://host:port/`, spaces).
pub(crate) fn normalize_address(raw: &str) -> Option<String> {
    let a = raw.trim();
    let a = a
        .strip_prefix("http://")
        .or_else(|| a.strip_prefix("https://"))
        .unwrap_or(a);
    let a = a.trim_end_matches('/');
    (!a.is_empty()).then(|| a.to_string())
}

impl Pool {
    pub(crate) fn new(seeds: Vec<String>, settings: ChannelSettings) -> Self {
        Self {
            seeds,
            settings,
            channels: Mutex::new(HashMap::new()),
            next_seed: AtomicUsize::new(0),
        }
    }

    pub(crate) fn seeds(&self) -> &[String] {
        &self.seeds
    }

    /// The channel to `addr`, shared by every request to that node.
    pub(crate) fn channel(&self, addr: &str) -> Result<Channel, Error> {
        let mut channels = self.channels.lock();
        if let Some(ch) = channels.get(addr) {
            return Ok(ch.clone());
        }
        let bad = |e: tonic::transport::Error| {
            Error::InvalidArgument(format!("bad server address {addr:?}: {e}"))
        };
        let scheme = if self.settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}")).map_err(bad)?;
        if let Some(tls) = &self.settings.tls {
            endpoint = endpoint
                .tls_config(tls.for_host(host_of(addr)))
                .map_err(bad)?;
        }
        let ch = endpoint
            .connect_timeout(self.settings.connect_timeout)
            .tcp_nodelay(true)
            // HTTP/2's default 64 KiB window is smaller than a prefetch's
            // worth of deliveries: the stream would stall a round trip for a
            // window update every 64 KiB.
            .initial_stream_window_size(Some(4 * 1024 * 1024))
            .initial_connection_window_size(Some(16 * 1024 * 1024))
            // Notice a node that stopped without closing its connections
            // (SIGSTOP, VM pause, cut cable) within a second, even on an idle
            // consume stream: pings are tiny, and a false alarm only costs a
            // reconnect and an idempotent resend.
            .http2_keep_alive_interval(Duration::from_millis(500))
            .keep_alive_timeout(Duration::from_millis(1000))
            .keep_alive_while_idle(true)
            .connect_lazy();
        channels.insert(addr.to_string(), ch.clone());
        Ok(ch)
    }

    /// The seeds followed by `discovered` nodes that are not seeds, starting
    /// one further along each call: successive calls spread over the cluster,
    /// and a cluster whose seeds all died is still found through the others.
    pub(crate) fn rotation(&self, discovered: Vec<String>) -> Vec<String> {
        let mut all = self.seeds.clone();
        for addr in discovered {
            if !all.contains(&addr) {
                all.push(addr);
            }
        }
        if all.is_empty() {
            return all;
        }
        let start = self.next_seed.fetch_add(1, Ordering::Relaxed) % all.len();
        all.rotate_left(start);
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(seeds: &[&str]) -> Pool {
        Pool::new(
            seeds.iter().map(|s| s.to_string()).collect(),
            ChannelSettings {
                connect_timeout: Duration::from_secs(1),
                tls: None,
            },
        )
    }

    #[test]
    fn addresses_are_normalized() {
        assert_eq!(
            normalize_address(" http://127.0.0.1:7001/ ").as_deref(),
            Some("127.0.0.1:7001")
        );
        assert_eq!(normalize_address("a:1").as_deref(), Some("a:1"));
        assert_eq!(normalize_address("  "), None);
    }

    #[test]
    fn rotation_visits_every_node_from_a_moving_start() {
        let p = pool(&["a:1", "b:2"]);
        let found = || vec!["b:2".to_string(), "c:3".to_string()];
        assert_eq!(p.rotation(found()), ["a:1", "b:2", "c:3"]);
        assert_eq!(p.rotation(found()), ["b:2", "c:3", "a:1"]);
        assert_eq!(p.rotation(found()), ["c:3", "a:1", "b:2"]);
        assert_eq!(
            p.rotation(Vec::new()),
            ["b:2", "a:1"],
            "4th call starts at 3 % 2"
        );
    }

    #[tokio::test]
    async fn channels_are_shared_per_address() {
        let p = pool(&["a:1"]);
        assert!(p.channel("127.0.0.1:1").is_ok());
        assert!(p.channel("127.0.0.1:1").is_ok());
        assert_eq!(p.channels.lock().len(), 1);
        assert!(matches!(
            p.channel("bad address with spaces"),
            Err(Error::InvalidArgument(_))
        ));
    }
}
