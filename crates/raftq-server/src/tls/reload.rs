//! Certificates change without a restart: the files are looked at every few
//! seconds and loaded again when any of them changed. A set that does not load
//! (a key written before its certificate, a typo) is logged and the previous
//! one kept, so a botched rotation never takes a node off the network.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustls::ServerConfig;
use tonic::transport::ClientTlsConfig;

use crate::tls::material::{self, Material};
use crate::tls::{TlsError, TlsFiles};

const LOOK_EVERY: Duration = Duration::from_secs(5);

/// Modification time and length of each file: a rewrite changes one of them.
type Stamp = Vec<Option<(SystemTime, u64)>>;

pub struct Reloading {
    files: TlsFiles,
    node: u64,
    current: RwLock<Material>,
    stamp: Mutex<Stamp>,
    /// Bumped on every reload: peer channels made before it are redialled.
    generation: AtomicU64,
}

fn stamp(files: &TlsFiles) -> Stamp {
    [&files.cert, &files.key, &files.ca]
        .iter()
        .map(|p| {
            let meta = std::fs::metadata(p).ok()?;
            Some((meta.modified().ok()?, meta.len()))
        })
        .collect()
}

impl Reloading {
    pub fn load(files: TlsFiles, node: u64) -> Result<Arc<Self>, TlsError> {
        let stamp_now = stamp(&files);
        let current = material::load(&files, node)?;
        Ok(Arc::new(Self {
            files,
            node,
            current: RwLock::new(current),
            stamp: Mutex::new(stamp_now),
            generation: AtomicU64::new(0),
        }))
    }

    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current.read().server.clone()
    }

    pub fn peer_client(&self) -> ClientTlsConfig {
        self.current.read().peer_client.clone()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Loads the files again if they changed since last time.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = stamp(&self.files);
        if *self.stamp.lock() == now {
            return Ok(false);
        }
        // Recorded before loading: a set that fails is tried again only once
        // it changes again, not every few seconds with the same error.
        *self.stamp.lock() = now;
        let fresh = material::load(&self.files, self.node)?;
        *self.current.write() = fresh;
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }
}

/// Until exit: reloads the node's certificates when their files change.
pub async fn watch(tls: Arc<Reloading>) {
    let mut ticks = tokio::time::interval(LOOK_EVERY);
    loop {
        ticks.tick().await;
        match tls.reload_if_changed() {
            Ok(true) => tracing::info!(
                cert = %tls.files.cert.display(),
                "TLS certificate, key or CA changed: new connections use them"
            ),
            Ok(false) => {}
            Err(e) => {
                tracing::error!("TLS files changed but do not load; keeping the previous ones: {e}")
            }
        }
    }
}
