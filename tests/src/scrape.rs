//! Reads a node's Prometheus endpoint.

use std::collections::BTreeMap;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Scrapes `/metrics` and parses `name{labels} value` lines.
pub async fn scrape(addr: &str) -> BTreeMap<String, f64> {
    match try_scrape(addr).await {
        Ok(rows) => rows,
        Err(e) => panic!("scraping {addr}: {e}"),
    }
}

/// Like [`scrape`], for a node that may not be listening yet.
pub async fn try_scrape(addr: &str) -> Result<BTreeMap<String, f64>, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: raftq\r\n\r\n")
        .await
        .map_err(|e| format!("send request: {e}"))?;
    let mut body = String::new();
    stream
        .read_to_string(&mut body)
        .await
        .map_err(|e| format!("read response: {e}"))?;
    if !(body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200")) {
        return Err(format!("bad response: {body:.200}"));
    }
    Ok(body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect())
}
