//! The listener side of TLS: accepts TCP connections and hands tonic the
//! ones whose handshake succeeds. Handshakes run in their own tasks with a
//! deadline, so a client that connects and says nothing holds up nobody.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;

use crate::metrics::NodeMetrics;
use crate::tls::reload::Reloading;

const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

pub type Accepted = Result<TlsStream<TcpStream>, std::io::Error>;

/// Connections on `listener` that completed a TLS handshake, with the
/// server config current when each arrived.
pub fn accept(
    listener: TcpListener,
    tls: Arc<Reloading>,
    metrics: Arc<NodeMetrics>,
) -> ReceiverStream<Accepted> {
    let (tx, rx) = mpsc::channel::<Accepted>(256);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors, mostly: wait, do not spin.
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = tx.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(tls.server_config());
            let (tx, metrics) = (tx.clone(), metrics.clone());
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(Err(e)) => {
                        metrics.tls_handshake_failures.inc();
                        tracing::debug!(%peer, "TLS handshake failed: {e}");
                    }
                    Err(_) => {
                        metrics.tls_handshake_failures.inc();
                        tracing::debug!(%peer, "TLS handshake did not finish within {HANDSHAKE_DEADLINE:?}");
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
