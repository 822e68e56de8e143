//! Mounting: the FUSE session in the foreground, the control socket beside
//! it, and a clean unmount on SIGTERM, SIGINT or SIGHUP.

use std::ffi::{CString, OsString};
use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;

use fuser::{Config, MountOption, Session, SessionACL};

use crate::control;
use crate::fs::LazyFs;
use crate::inodes::Inodes;
use crate::state::State;

#[derive(Debug, Clone)]
pub struct Options {
    pub backing: PathBuf,
    pub mountpoint: PathBuf,
    /// Defaults to [`default_control_path`] of the mountpoint.
    pub control: Option<PathBuf>,
    /// FUSE request threads: several nodes on one mount must not wait on one
    /// another's fsyncs.
    pub threads: usize,
}

/// `MOUNTPOINT.lazyfs.sock`, beside the mountpoint rather than in it.
pub fn default_control_path(mountpoint: &Path) -> PathBuf {
    let trimmed = mountpoint.components().as_path();
    let mut name = OsString::from(trimmed.as_os_str());
    name.push(".lazyfs.sock");
    PathBuf::from(name)
}

const SIGNALS: [libc::c_int; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

/// Mounts and serves until unmounted (by `fusermount3 -u`, `umount`,
/// SIGTERM, SIGINT or SIGHUP); unsynced data is written out at a clean
/// unmount.
pub fn run(options: &Options) -> io::Result<()> {
    let backing = dir(&options.backing, "--backing")?;
    let mountpoint = dir(&options.mountpoint, "--mountpoint")?;
    if mountpoint.starts_with(&backing) || backing.starts_with(&mountpoint) {
        return Err(invalid(format!(
            "the backing directory {} and the mountpoint {} must not contain each other",
            backing.display(),
            mountpoint.display()
        )));
    }
    let control_path = options
        .control
        .clone()
        .unwrap_or_else(|| default_control_path(&options.mountpoint));
    // Blocked before any thread starts, so every thread inherits the mask and
    // only the signal thread below ever takes these signals.
    let signals = block_signals()?;

    let root = fs::metadata(&backing)?;
    let state = Arc::new(State::new(
        backing.clone(),
        Inodes::new((root.dev(), root.ino())),
    ));
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("raftq-lazyfs".into()),
        MountOption::Subtype("raftq-lazyfs".into()),
        MountOption::DefaultPermissions,
        // fusermount3 stays behind and unmounts if this process dies, even
        // by SIGKILL: no dead mount is left to trip up the next test.
        MountOption::AutoUnmount,
    ];
    config.acl = SessionACL::All;
    config.n_threads = Some(options.threads.max(1));
    let session = Session::new(LazyFs::new(state.clone()), &mountpoint, &config)?;
    if let Err(e) = control::serve(&control_path, state) {
        let _ = unmount(&mountpoint);
        return Err(io::Error::new(
            e.kind(),
            format!("control socket {}: {e}", control_path.display()),
        ));
    }
    let target = mountpoint.clone();
    thread::Builder::new()
        .name("lazyfs-signals".into())
        .spawn(move || wait_and_unmount(signals, &target))?;

    let mut out = io::stdout().lock();
    writeln!(
        out,
        "raftq-lazyfs: mounted {} at {} (control socket {})",
        backing.display(),
        mountpoint.display(),
        control_path.display()
    )?;
    out.flush()?;
    drop(out);

    let served = session.run();
    let _ = fs::remove_file(&control_path);
    served
}

fn dir(path: &Path, flag: &str) -> io::Result<PathBuf> {
    let canonical = path
        .canonicalize()
        .map_err(|e| io::Error::new(e.kind(), format!("{flag} {}: {e}", path.display())))?;
    if !canonical.is_dir() {
        return Err(invalid(format!(
            "{flag} {} is not a directory",
            path.display()
        )));
    }
    Ok(canonical)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn block_signals() -> io::Result<libc::sigset_t> {
    // SAFETY: sigset_t is plain data; sigemptyset initializes it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid sigset_t owned by this frame.
    unsafe {
        libc::sigemptyset(&mut set);
        for signal in SIGNALS {
            libc::sigaddset(&mut set, signal);
        }
    }
    // SAFETY: `set` is initialized; the old mask is not wanted.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(set)
}

fn wait_and_unmount(signals: libc::sigset_t, mountpoint: &Path) {
    let mut signal: libc::c_int = 0;
    // SAFETY: `signals` is an initialized set blocked in every thread.
    let rc = unsafe { libc::sigwait(&signals, &mut signal) };
    if rc != 0 {
        eprintln!(
            "raftq-lazyfs: waiting for signals failed: {}",
            io::Error::from_raw_os_error(rc)
        );
        return;
    }
    eprintln!("raftq-lazyfs: signal {signal}: unmounting");
    if let Err(e) = unmount(mountpoint) {
        eprintln!("raftq-lazyfs: unmount failed: {e}");
    }
}

/// Unmounts; the session then ends by itself. Not through fuser's unmounter:
/// with auto_unmount that only closes fusermount3's socket, and fusermount3
/// unmounts only file systems whose process has died.
fn unmount(mountpoint: &Path) -> io::Result<()> {
    let c = CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|_| invalid(format!("{} has a NUL byte", mountpoint.display())))?;
    // SAFETY: `c` is a NUL-terminated path that outlives the calls.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        // Busy (a process still has a file open there): detach it now; the
        // kernel ends the session when the last user lets go.
        // SAFETY: as above.
        Some(libc::EBUSY) if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 => Ok(()),
        // Not root: fusermount3 is allowed to unmount what it mounted.
        Some(libc::EPERM) => {
            let status = std::process::Command::new("fusermount3")
                .arg("-u")
                .arg("-z")
                .arg(mountpoint)
                .status()?;
            if status.success() {
                Ok(())
            } else {
                Err(io::Error::other(format!("fusermount3 -u: {status}")))
            }
        }
        _ => Err(err),
    }
}

/// Why this machine cannot mount the file system, if it cannot: for tests
/// and tools that then skip with one line.
pub fn fuse_unavailable() -> Option<String> {
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is missing".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root (mounting needs it here)".into());
    }
    let probe = std::process::Command::new("fusermount3")
        .arg("-V")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
    if probe.is_err() {
        return Some("fusermount3 is not installed (apt-get install fuse3)".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_socket_sits_beside_the_mountpoint() {
        assert_eq!(
            default_control_path(Path::new("/tmp/t/mnt/")),
            PathBuf::from("/tmp/t/mnt.lazyfs.sock")
        );
    }
}
