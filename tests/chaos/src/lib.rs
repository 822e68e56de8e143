//! The chaos suite's pure parts: the history of a run and the checker that
//! judges it. The runner (processes, network namespaces, faults, workload)
//! lives in the binary.
#![forbid(unsafe_code)]

pub mod checker;
pub mod history;
pub mod stream_check;
