//! A mounted raftq-lazyfs for one test, unmounted when dropped (also when the
//! test panics).

#![allow(dead_code)] // each test file uses its own part of this module

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use raftq_lazyfs::control::Command as Ctl;
use raftq_lazyfs::control::{self, parse_totals};
pub use raftq_lazyfs::state::Totals;

pub use raftq_lazyfs::mount::fuse_unavailable;

/// Past libtest's output capture, so the line shows in a plain `cargo test`.
pub fn skipped(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED: {test}: {why}");
}

pub struct Lazy {
    child: Option<Child>,
    pub mnt: PathBuf,
    pub backing: PathBuf,
    pub control: PathBuf,
    // Last: the directories go only after the unmount.
    _dir: tempfile::TempDir,
}

impl Lazy {
    /// Mounts a fresh backing directory, or prints SKIPPED and returns None
    /// on a machine without FUSE.
    pub fn mount(test: &str) -> Option<Lazy> {
        if let Some(why) = fuse_unavailable() {
            skipped(test, &why);
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical tempdir");
        let backing = root.join("backing");
        let mnt = root.join("mnt");
        // The default socket (not --control), so that path is tested too.
        let control = raftq_lazyfs::mount::default_control_path(&mnt);
        std::fs::create_dir(&backing).expect("mkdir backing");
        std::fs::create_dir(&mnt).expect("mkdir mnt");
        let child = Command::new(env!("CARGO_BIN_EXE_raftq-lazyfs"))
            .arg("mount")
            .arg("--backing")
            .arg(&backing)
            .arg("--mountpoint")
            .arg(&mnt)
            .stdout(Stdio::null())
            .spawn()
            .expect("start raftq-lazyfs");
        let mut lazy = Lazy {
            child: Some(child),
            mnt,
            backing,
            control,
            _dir: dir,
        };
        lazy.wait_ready();
        Some(lazy)
    }

    /// The control socket answers only once the mount is up.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait().expect("try_wait") {
                    self.child = None;
                    panic!("raftq-lazyfs exited before it was ready: {status}");
                }
            }
            if control::request(&self.control, &Ctl::Stats(PathBuf::new())).is_ok() {
                assert!(
                    is_mounted(&self.mnt),
                    "control socket up but nothing mounted"
                );
                return;
            }
            assert!(Instant::now() < deadline, "raftq-lazyfs not ready in 20 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    pub fn backing_path(&self, rel: &str) -> PathBuf {
        self.backing.join(rel)
    }

    pub fn ctl(&self, command: Ctl) -> Totals {
        let reply = control::request(&self.control, &command)
            .unwrap_or_else(|e| panic!("{command:?}: {e}"));
        parse_totals(&reply).unwrap_or_else(|| panic!("unexpected reply {reply:?}"))
    }

    /// Power cut under `subdir` ("" for all); returns what was lost.
    pub fn cut(&self, subdir: &str) -> Totals {
        self.ctl(Ctl::Cut(subdir.into()))
    }

    pub fn stats(&self, subdir: &str) -> Totals {
        self.ctl(Ctl::Stats(subdir.into()))
    }

    /// Sends SIGTERM and waits for the process to unmount and exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: kill has no memory preconditions; the pid is our own child,
        // not yet waited for, so it cannot have been reused.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        wait_timeout(&mut child, Duration::from_secs(20)).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!("raftq-lazyfs did not exit within 20 s of SIGTERM");
        })
    }
}

impl Drop for Lazy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mnt)
                .stderr(Stdio::null())
                .status();
            if wait_timeout(&mut child, Duration::from_secs(10)).is_none() {
                // Kill by the child's own pid, never by name.
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if is_mounted(&self.mnt) {
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(&self.mnt)
                .stderr(Stdio::null())
                .status();
        }
    }
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => return None,
        }
    }
}

pub fn is_mounted(mnt: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let target = mnt.to_string_lossy();
    info.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .any(|point| point == target)
}
