//! Power faults: every node's data dir lives on one raftq-lazyfs mount, a
//! file system that keeps what was written but not yet fsynced in memory and
//! drops it on command, as a disk loses its volatile cache when the power
//! goes. A power cut of a node is SIGKILL, then the cut of its directory,
//! then a restart on what was fsynced.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use raftq_lazyfs::control::{self, Command as Ctl};

pub struct PowerDisk {
    child: Option<Child>,
    mnt: PathBuf,
    control: PathBuf,
}

/// Why power faults cannot run here, if they cannot.
pub fn unavailable(lazyfs: &Path) -> Option<String> {
    if let Some(why) = raftq_lazyfs::mount::fuse_unavailable() {
        return Some(why);
    }
    if !lazyfs.exists() {
        return Some(format!(
            "{} not found (cargo build --release --bins)",
            lazyfs.display()
        ));
    }
    None
}

impl PowerDisk {
    /// Mounts a fresh file system at `dir/disk` over `dir/backing`.
    pub fn mount(lazyfs: &Path, dir: &Path) -> anyhow::Result<Self> {
        let backing = dir.join("backing");
        let mnt = dir.join("disk");
        let control = dir.join("disk.sock");
        std::fs::create_dir_all(&backing)?;
        std::fs::create_dir_all(&mnt)?;
        let child = Command::new(lazyfs)
            .arg("mount")
            .arg("--backing")
            .arg(&backing)
            .arg("--mountpoint")
            .arg(&mnt)
            .arg("--control")
            .arg(&control)
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start raftq-lazyfs")?;
        let disk = Self {
            child: Some(child),
            mnt,
            control,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while control::request(&disk.control, &Ctl::Stats(PathBuf::new())).is_err() {
            anyhow::ensure!(Instant::now() < deadline, "raftq-lazyfs did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(disk)
    }

    /// Where the nodes' data dirs go.
    pub fn root(&self) -> &Path {
        &self.mnt
    }

    /// Drops every unsynced write under `subdir` of the mount (all of it
    /// when empty); says how much was lost.
    pub fn cut(&self, subdir: &str) -> anyhow::Result<String> {
        let reply = control::request(&self.control, &Ctl::Cut(PathBuf::from(subdir)))?;
        anyhow::ensure!(reply.starts_with("ok"), "power cut refused: {reply}");
        let lost = control::parse_totals(&reply)
            .map(|t| format!("{} unsynced bytes in {} files lost", t.bytes, t.files))
            .unwrap_or(reply);
        Ok(lost)
    }
}

impl Drop for PowerDisk {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as libc::pid_t;
            // SAFETY: our own child; SIGTERM makes it unmount and exit.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            let _ = Command::new("fusermount3")
                .arg("-u")
                .arg(&self.mnt)
                .status();
        }
    }
}
