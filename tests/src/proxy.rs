//! A TCP proxy in front of a node, for faults no signal can make: it relays
//! both ways until told to drop what the node answers, so a request reaches the
//! node and takes effect while its answer is lost on the way back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct Proxy {
    /// Where clients and peers connect.
    pub addr: String,
    drop_replies: Arc<AtomicBool>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on `addr` and relays every connection to `upstream`.
    pub async fn start(addr: String, upstream: String) -> Proxy {
        let listener = TcpListener::bind(&addr)
            .await
            .unwrap_or_else(|e| panic!("proxy listen on {addr}: {e}"));
        let drop_replies = Arc::new(AtomicBool::new(false));
        let dropping = drop_replies.clone();
        let accept = tokio::spawn(async move {
            while let Ok((downstream, _)) = listener.accept().await {
                tokio::spawn(relay(downstream, upstream.clone(), dropping.clone()));
            }
        });
        Proxy {
            addr,
            drop_replies,
            accept,
        }
    }

    /// From now on, bytes from the node are read and thrown away.
    pub fn drop_replies(&self, on: bool) {
        self.drop_replies.store(on, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// One connection: when either side closes or fails, both are closed, so a
/// node that dies is seen as a broken connection by whoever called it.
async fn relay(downstream: TcpStream, upstream: String, drop_replies: Arc<AtomicBool>) {
    let Ok(upstream) = TcpStream::connect(&upstream).await else {
        return;
    };
    let _ = downstream.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut from_client, mut to_client) = downstream.into_split();
    let (mut from_node, mut to_node) = upstream.into_split();
    let requests = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if to_node.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let replies = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from_node.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) if drop_replies.load(Ordering::SeqCst) => {}
                Ok(n) => {
                    if to_client.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = requests => {}
        _ = replies => {}
    }
}
