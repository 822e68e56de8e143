//! Node counters, exported in Prometheus text format.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub struct NodeMetrics {
    pub published_batches: Counter,
    pub published_messages: Counter,
    pub delivered_messages: Counter,
    pub forwarded_requests: Counter,
    pub reads_local: Counter,
    pub reads_forwarded: Counter,
    pub read_index_requests: Counter,
}
