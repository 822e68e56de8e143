//! The files of `raftq cert`: the CA read back, and new certificates and
//! keys written without clobbering and with keys readable by their owner only.

use std::fs::{self, OpenOptions};
use std::io::{ErrorKind, Write};
#[cfg(unix)]
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{bail, Context};
use raftq_certs::Pem;

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca-key.pem";

pub struct NewFile<'a> {
    pub path: &'a Path,
    pub contents: &'a str,
    /// A private key: mode 0600.
    pub secret: bool,
}

/// The CA that `raftq cert create-ca` wrote to `dir`.
pub fn read_ca(dir: &Path) -> anyhow::Result<Pem> {
    let cert_path = dir.join(CA_CERT);
    let cert_pem = match fs::read_to_string(&cert_path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == ErrorKind::NotFound => bail!(
            "no CA in {}: run raftq cert create-ca first (or pass --dir)",
            dir.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("read {}", cert_path.display())),
    };
    let key_path = dir.join(CA_KEY);
    let key_pem = match fs::read_to_string(&key_path) {
        Ok(pem) => pem,
        Err(e) if e.kind() == ErrorKind::NotFound => bail!(
            "no CA key {} beside {}: certificates are signed with it",
            key_path.display(),
            cert_path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("read {}", key_path.display())),
    };
    Ok(Pem { cert_pem, key_pem })
}

/// Writes `files` into `dir` (created if missing). Without `force`, an
/// existing file stops the command before anything is written, so a rerun
/// never leaves a key that no longer matches its certificate.
pub fn write_new(dir: &Path, files: &[NewFile<'_>], force: bool) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    if !force {
        if let Some(f) = files.iter().find(|f| f.path.symlink_metadata().is_ok()) {
            bail!("{} exists: pass --force to replace it", f.path.display());
        }
    }
    for f in files {
        write_one(f, force).with_context(|| format!("write {}", f.path.display()))?;
    }
    Ok(())
}

fn write_one(f: &NewFile<'_>, force: bool) -> std::io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        // Another writer between the check and here still loses no file.
        options.create_new(true);
    }
    #[cfg(unix)]
    options.mode(if f.secret { 0o600 } else { 0o644 });
    let mut file = options.open(f.path)?;
    // The mode above applies only to a file this call creates; a key that
    // --force replaces must not stay readable by others.
    #[cfg(unix)]
    if f.secret {
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(f.contents.as_bytes())?;
    file.sync_all()
}
