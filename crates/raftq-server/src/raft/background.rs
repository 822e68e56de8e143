//! Snapshot encoding and decoding: seconds of CPU for a large state, run on a
//! thread of their own at a lower scheduling priority, so that on a machine
//! whose cores are busy the node's async workers (heartbeats, votes, appends)
//! still get the CPU when they need it and a snapshot never costs an election.

/// Niceness of background threads: below every async worker, not idle-only.
const BACKGROUND_NICE: i32 = 10;

/// Runs `work` on a new low-priority thread and waits for its result.
pub async fn run<T: Send + 'static>(
    name: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, std::io::Error> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(work());
        })?;
    rx.await
        .map_err(|_| std::io::Error::other(format!("{name} thread ended without a result")))
}

#[allow(unsafe_code)]
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority only changes this thread's scheduling weight (on
    // Linux, who = 0 names the calling thread); it touches no memory.
    unsafe {
        let _ = libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICE);
    }
}
