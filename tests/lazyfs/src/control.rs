//! The control socket: one text line in, one text line out.
//!
//! A Unix socket rather than a file inside the mount, so that controlling the
//! file system never goes through the file system (a cut while the kernel
//! waits on us cannot deadlock) and the mounted tree holds only what the
//! programs under test wrote.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::state::{State, Totals};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Cut(PathBuf),
    Sync(PathBuf),
    Stats(PathBuf),
}

impl Command {
    /// `cut|sync|stats [SUBDIR]`, SUBDIR relative to the mount root (a
    /// leading `/` is allowed); no SUBDIR means the whole file system.
    pub fn parse(line: &str) -> Result<Command, String> {
        let line = line.trim();
        let (verb, arg) = match line.split_once(char::is_whitespace) {
            Some((verb, arg)) => (verb, arg.trim()),
            None => (line, ""),
        };
        let subdir = subdir(arg)?;
        match verb {
            "cut" => Ok(Command::Cut(subdir)),
            "sync" => Ok(Command::Sync(subdir)),
            "stats" => Ok(Command::Stats(subdir)),
            _ => Err(format!(
                "unknown command {verb:?}: expected cut, sync or stats, each with an optional subdirectory"
            )),
        }
    }

    pub fn line(&self) -> String {
        let (verb, subdir) = match self {
            Command::Cut(s) => ("cut", s),
            Command::Sync(s) => ("sync", s),
            Command::Stats(s) => ("stats", s),
        };
        if subdir.as_os_str().is_empty() {
            verb.to_string()
        } else {
            format!("{verb} {}", subdir.display())
        }
    }
}

fn subdir(arg: &str) -> Result<PathBuf, String> {
    let mut rel = PathBuf::new();
    for part in Path::new(arg).components() {
        match part {
            Component::Normal(name) => rel.push(name),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!("subdirectory {arg:?} leaves the mount"));
            }
        }
    }
    Ok(rel)
}

pub fn execute(state: &State, command: &Command) -> String {
    let totals = |t: Totals| format!("ok files={} bytes={}", t.files, t.bytes);
    match command {
        Command::Cut(subdir) => totals(state.cut(subdir)),
        Command::Stats(subdir) => totals(state.stats(subdir)),
        Command::Sync(subdir) => match state.sync(subdir) {
            Ok(t) => totals(t),
            Err(e) => format!("err sync failed: {e}"),
        },
    }
}

/// Binds `path` and answers on it from a background thread. A socket file
/// left by a dead process is replaced; one with a live listener is not.
pub fn serve(path: &Path, state: Arc<State>) -> io::Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("another process listens on {}", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    thread::Builder::new()
        .name("lazyfs-control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(conn) => {
                        let state = state.clone();
                        // A client that connects and never writes must not
                        // block the next one.
                        let spawned = thread::Builder::new()
                            .name("lazyfs-control-conn".into())
                            .spawn(move || answer(conn, &state));
                        if let Err(e) = spawned {
                            eprintln!("raftq-lazyfs: control: cannot start a thread: {e}");
                        }
                    }
                    Err(e) => eprintln!("raftq-lazyfs: control: accept failed: {e}"),
                }
            }
        })?;
    Ok(())
}

fn answer(conn: UnixStream, state: &State) {
    let Ok(writer) = conn.try_clone() else {
        return;
    };
    let mut writer = writer;
    for line in BufReader::new(conn).lines() {
        let Ok(line) = line else {
            return;
        };
        if line.trim().is_empty() {
            continue;
        }
        let reply = match Command::parse(&line) {
            Ok(command) => execute(state, &command),
            Err(e) => format!("err {e}"),
        };
        if writeln!(writer, "{reply}").is_err() {
            return;
        }
    }
}

/// Sends one command to the file system listening on `socket`; returns its
/// `ok ...` line, or the `err ...` line as an error.
pub fn request(socket: &Path, command: &Command) -> io::Result<String> {
    let mut conn = UnixStream::connect(socket)?;
    conn.set_read_timeout(Some(Duration::from_secs(120)))?;
    writeln!(conn, "{}", command.line())?;
    conn.shutdown(std::net::Shutdown::Write)?;
    let mut reply = String::new();
    BufReader::new(conn).read_line(&mut reply)?;
    let reply = reply.trim_end().to_string();
    if reply.starts_with("ok") {
        Ok(reply)
    } else if reply.is_empty() {
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "raftq-lazyfs closed the control connection without answering",
        ))
    } else {
        Err(io::Error::other(reply))
    }
}

/// Reads `files=N bytes=M` from an `ok` reply.
pub fn parse_totals(reply: &str) -> Option<Totals> {
    let mut totals = Totals::default();
    let mut seen = 0;
    for field in reply.split_whitespace().skip(1) {
        match field.split_once('=')? {
            ("files", n) => totals.files = n.parse().ok()?,
            ("bytes", n) => totals.bytes = n.parse().ok()?,
            _ => continue,
        }
        seen += 1;
    }
    (reply.starts_with("ok") && seen == 2).then_some(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_optional_subdirectory() {
        assert_eq!(Command::parse("cut"), Ok(Command::Cut(PathBuf::new())));
        assert_eq!(
            Command::parse(" cut /node3/ \n"),
            Ok(Command::Cut(PathBuf::from("node3")))
        );
        assert_eq!(
            Command::parse("sync a/./b"),
            Ok(Command::Sync(PathBuf::from("a/b")))
        );
        assert_eq!(Command::parse("stats"), Ok(Command::Stats(PathBuf::new())));
        assert!(Command::parse("cut ../x").is_err());
        assert!(Command::parse("explode").is_err());
        assert_eq!(Command::Cut("node3".into()).line(), "cut node3");
        assert_eq!(Command::Sync(PathBuf::new()).line(), "sync");
    }

    #[test]
    fn totals_parse_from_replies() {
        assert_eq!(
            parse_totals("ok files=2 bytes=8192"),
            Some(Totals {
                files: 2,
                bytes: 8192
            })
        );
        assert_eq!(parse_totals("err nope"), None);
        assert_eq!(parse_totals("ok files=2"), None);
    }
}
