//! Harness for cluster tests: real `raftqd` processes on 127.0.0.1, each with a
//! free port and its own temp dir, faults by pid (SIGKILL, SIGSTOP/SIGCONT,
//! restart), and cleanup that runs even when a test panics.

pub mod client;
pub mod cluster;
pub mod consumer;
pub mod fuzz_gen;
pub mod fuzz_methods;
pub mod load;
pub mod node;
pub mod pki;
pub mod ports;
pub mod proxy;
pub mod publish;
pub mod raw_grpc;
pub mod scrape;
pub mod wait;
