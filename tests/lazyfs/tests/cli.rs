//! The control subcommands, as a shell script would run them.

mod support;

use std::fs;
use std::process::Command;

use support::Lazy;

fn lazyfs(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_raftq-lazyfs"))
        .args(args)
        .output()
        .expect("run raftq-lazyfs");
    let text = String::from_utf8_lossy(if out.status.success() {
        &out.stdout
    } else {
        &out.stderr
    })
    .trim()
    .to_string();
    (out.status.success(), text)
}

#[test]
fn cut_sync_and_stats_from_the_command_line() {
    let Some(lazy) = Lazy::mount("cut_sync_and_stats_from_the_command_line") else {
        return;
    };
    let socket = lazy.control.to_str().expect("utf-8 path");
    let mnt = lazy.mnt.to_str().expect("utf-8 path");
    for node in ["node1", "node2"] {
        fs::create_dir(lazy.path(node)).expect("mkdir");
        fs::write(lazy.path(&format!("{node}/f")), node).expect("write");
    }

    assert_eq!(
        lazy_ok(&["stats", "--control", socket]),
        "ok files=2 bytes=8192"
    );
    assert_eq!(
        lazy_ok(&["stats", "--mountpoint", mnt, "--subdir", "node2"]),
        "ok files=1 bytes=4096"
    );
    assert_eq!(
        lazy_ok(&["cut", "--mountpoint", mnt, "--subdir", "node1"]),
        "ok files=1 bytes=4096"
    );
    assert_eq!(fs::read(lazy.path("node1/f")).expect("read"), b"");
    assert_eq!(
        lazy_ok(&["sync", "--control", socket, "--subdir", "/node2/"]),
        "ok files=1 bytes=4096"
    );
    assert_eq!(lazy_ok(&["cut", "--control", socket]), "ok files=0 bytes=0");
    assert_eq!(fs::read(lazy.path("node2/f")).expect("read"), b"node2");

    let (ok, err) = lazyfs(&["cut", "--control", socket, "--subdir", "../x"]);
    assert!(!ok && err.contains("leaves the mount"), "{err}");
    let (ok, err) = lazyfs(&["cut", "--control", "/nonexistent/lazyfs.sock"]);
    assert!(!ok && err.contains("/nonexistent/lazyfs.sock"), "{err}");
    let (ok, _) = lazyfs(&["cut"]);
    assert!(!ok, "a socket or mountpoint is required");
}

fn lazy_ok(args: &[&str]) -> String {
    let (ok, text) = lazyfs(args);
    assert!(ok, "raftq-lazyfs {args:?}: {text}");
    text
}
