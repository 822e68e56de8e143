//! One `raftqd` child process: how it is started, signalled and reaped.
//!
//! Every signal goes to the pid of a child this harness spawned and has not reaped
//! yet, so it can never hit an unrelated process (no kill by name).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Path of the `raftqd` binary: `RAFTQD_BIN`, else the newer of the debug and
/// release builds in `CARGO_TARGET_DIR` (or the workspace's `target/`). A test
/// crate cannot make cargo build another crate's binary, so `scripts/test.sh`
/// runs `cargo build --bins` first (and sets `RAFTQD_BIN` to what it built).
pub fn raftqd_bin() -> PathBuf {
    if let Ok(p) = std::env::var("RAFTQD_BIN") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "RAFTQD_BIN={} does not exist: build it or unset RAFTQD_BIN",
            p.display()
        );
        return p;
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    [target.join("debug/raftqd"), target.join("release/raftqd")]
        .into_iter()
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .max()
        .map(|(_, p)| p)
        .unwrap_or_else(|| {
            panic!(
                "raftqd is not built (looked in {}/{{debug,release}}): run `cargo build --bins` \
                 first (scripts/test.sh does), or set RAFTQD_BIN",
                target.display()
            )
        })
}

/// Sends `sig` to `pid`, one of our own unreaped children.
fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    if rc != 0 {
        eprintln!(
            "kill({pid}, {sig}) failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Polls `/proc/<pid>/task/*/stat` until every thread is in state `T`
/// (stopped); a thread in an uninterruptible wait (`D`, e.g. an fsync) stops as
/// soon as it returns from the kernel.
fn wait_all_threads_stopped(pid: u32, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        match threads_not_stopped(pid) {
            Ok(0) => return,
            Ok(running) if Instant::now() >= deadline => {
                panic!("pid {pid}: {running} threads still running {limit:?} after SIGSTOP")
            }
            Ok(_) => std::thread::sleep(Duration::from_micros(200)),
            Err(e) => panic!("pid {pid}: cannot read its threads' state: {e}"),
        }
    }
}

fn threads_not_stopped(pid: u32) -> std::io::Result<usize> {
    let mut running = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let stat = match std::fs::read_to_string(task?.path().join("stat")) {
            Ok(s) => s,
            // The thread exited between the listing and the read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        // The state follows the parenthesised command name, which may itself
        // contain spaces or parentheses.
        let state = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next());
        if !matches!(state, Some("T") | Some("t")) {
            running += 1;
        }
    }
    Ok(running)
}

pub struct NodeProc {
    pub id: u64,
    /// The address clients and peers use (one port serves both).
    pub addr: String,
    /// Prometheus endpoint (`--metrics-listen`).
    pub metrics_addr: String,
    /// Where the process listens: `addr`, unless a proxy stands in front.
    pub listen: String,
    pub data_dir: PathBuf,
    /// stdout and stderr of every run of this node, appended across restarts.
    pub log_path: PathBuf,
    /// Addresses it joins through (`--join`) instead of bootstrapping with the
    /// initial cluster.
    pub join: Option<String>,
    child: Option<Child>,
    stopped: bool,
}

impl NodeProc {
    pub fn new(id: u64, addr: String, metrics_addr: String, data_dir: PathBuf) -> NodeProc {
        NodeProc {
            id,
            listen: addr.clone(),
            addr,
            metrics_addr,
            log_path: data_dir.join("raftqd.log"),
            data_dir,
            join: None,
            child: None,
            stopped: false,
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The exit status if the process has ended (crashed, aborted) since it
    /// was started; `None` while it runs or when it was never started.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// The process exists (it may be stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process exists and is not SIGSTOPped: it can answer.
    pub fn is_live(&self) -> bool {
        self.child.is_some() && !self.stopped
    }

    /// Starts the process with `args`; output goes to `log_path`.
    pub fn spawn(&mut self, bin: &Path, args: &[String], log_filter: Option<&str>) {
        assert!(self.child.is_none(), "node {} is already running", self.id);
        std::fs::create_dir_all(&self.data_dir).expect("create node data dir");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("open node log");
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup node log"))
            .stderr(log);
        // Flags only: a developer's RAFTQ_* or RUST_LOG must not change the nodes.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("RAFTQ_") {
                cmd.env_remove(key);
            }
        }
        match log_filter {
            Some(filter) => cmd.env("RUST_LOG", filter),
            None => cmd.env_remove("RUST_LOG"),
        };
        // If the test process dies without running Drop (killed by a CI timeout),
        // the kernel kills its nodes instead of leaving them running forever.
        // The signal fires when the spawning *thread* exits: spawn from the test's
        // own thread or a runtime worker, never from a `spawn_blocking` thread.
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: prctl and getppid are async-signal-safe, as pre_exec requires.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    return Err(std::io::Error::other("test process already gone"));
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        self.child = Some(child);
        self.stopped = false;
    }

    /// SIGKILL without waiting; `reap` collects the exit. Splitting the two lets a
    /// test kill several nodes at the same instant.
    pub fn send_kill(&mut self) {
        // One that ended by itself (refused to start) is reaped already.
        if self.exited().is_some() {
            return;
        }
        if let Some(pid) = self.pid() {
            // A stopped process dies on SIGKILL too; SIGCONT first anyway, so no
            // signal is left pending for a process that is about to go.
            signal(pid, libc::SIGCONT);
            signal(pid, libc::SIGKILL);
        }
    }

    pub fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
        self.stopped = false;
    }

    /// SIGKILL: the process dies at once, its disk state stays.
    pub fn kill(&mut self) {
        self.send_kill();
        self.reap();
    }

    /// SIGTERM (graceful shutdown), waiting up to `timeout` before falling back to
    /// SIGKILL. Returns how long the node took to exit.
    pub fn terminate(&mut self, timeout: Duration) -> Duration {
        let started = Instant::now();
        if let Some(pid) = self.pid() {
            signal(pid, libc::SIGCONT);
            signal(pid, libc::SIGTERM);
            while started.elapsed() < timeout {
                if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                    self.reap();
                    return started.elapsed();
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            eprintln!("node {} ignored SIGTERM for {timeout:?}: SIGKILL", self.id);
            self.kill();
        }
        started.elapsed()
    }

    /// SIGSTOP: the process hangs with its sockets open (no FIN, no RST), the
    /// fault a failure detector must catch by timeout.
    ///
    /// Returns only once every thread is stopped: the kernel hands a group stop
    /// to one thread, and the others (tokio workers) keep running until that
    /// thread is scheduled, which on a loaded machine can take milliseconds. A
    /// request sent after `stop` returns must find the process frozen.
    pub fn stop(&mut self) {
        if let Some(pid) = self.pid() {
            signal(pid, libc::SIGSTOP);
            self.stopped = true;
            wait_all_threads_stopped(pid, Duration::from_secs(10));
        }
    }

    pub fn cont(&mut self) {
        if let Some(pid) = self.pid() {
            signal(pid, libc::SIGCONT);
            self.stopped = false;
        }
    }

    /// The last `bytes` of this node's log.
    pub fn log_tail(&self, bytes: u64) -> String {
        let Ok(mut f) = File::open(&self.log_path) else {
            return "(no log)".into();
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = f.seek(SeekFrom::Start(len.saturating_sub(bytes)));
        let mut raw = Vec::new();
        let _ = f.read_to_end(&mut raw);
        String::from_utf8_lossy(&raw).into_owned()
    }

    /// The whole log (for tests that look for a specific event).
    pub fn log(&self) -> String {
        std::fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}
