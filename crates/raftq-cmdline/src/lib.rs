//! What the `raftq` CLI and the `raftq-bench` benchmark tool share, so both
//! take the same connection flags, parse durations alike and print alike:
//!
//! - [`GlobalArgs`]: `--servers` / `RAFTQ_SERVERS`, `--json`, `--timeout`,
//!   and the client they describe;
//! - [`duration::parse`]: `500ms`, `30s`, `5m` on the command line;
//! - [`output`]: stdout lines that end quietly on a closed pipe ([`outln!`]),
//!   progress bars, short figures, and one-line errors and exit codes.

#![forbid(unsafe_code)]

pub mod duration;
mod global_args;
pub mod output;

pub use global_args::GlobalArgs;
