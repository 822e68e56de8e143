//! `raftq cert` end to end: the built binary in a temporary directory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn raftq(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftq"))
        .current_dir(dir)
        // Nothing listens there: a cert command that tried to connect
        // would fail.
        .env("RAFTQ_SERVERS", "127.0.0.1:1")
        .args(args)
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = raftq(dir, args);
    assert!(
        out.status.success(),
        "raftq {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn failure(dir: &Path, args: &[&str]) -> String {
    let out = raftq(dir, args);
    assert!(!out.status.success(), "raftq {args:?} succeeded");
    String::from_utf8(out.stderr).unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn first_cert(path: &Path) -> Vec<u8> {
    let pem = fs::read_to_string(path).unwrap();
    raftq_certs::pem_to_der_chain(&pem).unwrap().swap_remove(0)
}

#[test]
fn creates_a_ca_node_and_client_certificates() {
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    let certs = work.join("certs");

    let printed = ok(work, &["cert", "create-ca"]);
    assert_eq!(
        printed,
        "wrote ./certs/ca.pem\nwrote ./certs/ca-key.pem (private key, mode 0600)\n"
    );
    assert_eq!(mode(&certs.join("ca-key.pem")), 0o600);

    ok(
        work,
        &[
            "cert",
            "create-node",
            "--id",
            "7",
            "--host",
            "raftq-7.internal",
            "--host",
            "10.0.0.7",
        ],
    );
    assert_eq!(mode(&certs.join("node-7-key.pem")), 0o600);
    let node = first_cert(&certs.join("node-7.pem"));
    assert_eq!(raftq_certs::node_id_of(&node), Some(7));
    assert_eq!(raftq_certs::user_of(&node), None);

    let printed = ok(
        work,
        &["--json", "cert", "create-client", "--user", "alice"],
    );
    let printed: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(printed["user"], "alice");
    assert_eq!(
        printed["files"],
        serde_json::json!(["./certs/client-alice.pem", "./certs/client-alice-key.pem"])
    );
    assert_eq!(mode(&certs.join("client-alice-key.pem")), 0o600);
    let client = first_cert(&certs.join("client-alice.pem"));
    assert_eq!(raftq_certs::user_of(&client), Some("alice".into()));
    assert_eq!(raftq_certs::node_id_of(&client), None);
}

#[test]
fn existing_files_are_kept_unless_forced() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let dir_arg = dir.to_str().unwrap();
    ok(tmp.path(), &["cert", "create-ca", "--dir", dir_arg]);
    let ca = fs::read(dir.join("ca.pem")).unwrap();
    let ca_key = fs::read(dir.join("ca-key.pem")).unwrap();

    let err = failure(tmp.path(), &["cert", "create-ca", "--dir", dir_arg]);
    assert!(err.contains("exists: pass --force"), "{err}");
    assert_eq!(fs::read(dir.join("ca.pem")).unwrap(), ca);
    assert_eq!(fs::read(dir.join("ca-key.pem")).unwrap(), ca_key);

    // A key left readable by others is tightened when replaced.
    fs::set_permissions(dir.join("ca-key.pem"), fs::Permissions::from_mode(0o644)).unwrap();
    ok(
        tmp.path(),
        &["cert", "create-ca", "--dir", dir_arg, "--force"],
    );
    assert_ne!(fs::read(dir.join("ca.pem")).unwrap(), ca);
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
}

#[test]
fn certificates_need_a_ca_and_valid_names() {
    let tmp = tempfile::tempdir().unwrap();
    let err = failure(
        tmp.path(),
        &["cert", "create-node", "--id", "1", "--host", "a"],
    );
    assert!(
        err.contains("no CA in ./certs: run raftq cert create-ca first"),
        "{err}"
    );

    ok(tmp.path(), &["cert", "create-ca"]);
    let err = failure(tmp.path(), &["cert", "create-client", "--user", "a/b"]);
    assert!(err.contains("invalid user name"), "{err}");
    let err = failure(
        tmp.path(),
        &["cert", "create-node", "--id", "1", "--host", "a:7001"],
    );
    assert!(err.contains("without a port"), "{err}");
    let mut left: Vec<_> = fs::read_dir(tmp.path().join("certs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["ca-key.pem", "ca.pem"]);
}
