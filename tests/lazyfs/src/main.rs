//! `raftq-lazyfs`: see the library's documentation for the model and the
//! control commands.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use raftq_lazyfs::control::{self, Command};
use raftq_lazyfs::mount;

#[derive(Parser)]
#[command(
    name = "raftq-lazyfs",
    about = "FUSE passthrough that keeps unsynced writes in memory and loses them on `cut`"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Mount BACKING at MOUNTPOINT and serve in the foreground until unmounted
    /// or sent SIGTERM (then unmount cleanly, writing unsynced data out).
    Mount {
        #[arg(long, value_name = "DIR")]
        backing: PathBuf,
        #[arg(long, value_name = "DIR")]
        mountpoint: PathBuf,
        /// Control socket [default: MOUNTPOINT.lazyfs.sock]
        #[arg(long, value_name = "SOCKET")]
        control: Option<PathBuf>,
        /// FUSE request threads.
        #[arg(long, default_value_t = 4)]
        threads: usize,
    },
    /// Power cut: discard every unsynced write (under --subdir only, if given).
    Cut(Target),
    /// Write unsynced data out to the backing directory, as fsync would.
    Sync(Target),
    /// Print files with unsynced data and the bytes they hold.
    Stats(Target),
}

#[derive(Args)]
struct Target {
    /// Control socket of the mount.
    #[arg(
        long,
        value_name = "SOCKET",
        required_unless_present = "mountpoint",
        conflicts_with = "mountpoint"
    )]
    control: Option<PathBuf>,
    /// Mountpoint, to use its default control socket.
    #[arg(long, value_name = "DIR")]
    mountpoint: Option<PathBuf>,
    /// Only this directory of the mount (relative to its root).
    #[arg(long, value_name = "DIR", default_value = "")]
    subdir: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (target, make): (Target, fn(PathBuf) -> Command) = match cli.command {
        Cmd::Mount {
            backing,
            mountpoint,
            control,
            threads,
        } => {
            let options = mount::Options {
                backing,
                mountpoint,
                control,
                threads,
            };
            return match mount::run(&options) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("raftq-lazyfs: {e}");
                    ExitCode::FAILURE
                }
            };
        }
        Cmd::Cut(t) => (t, Command::Cut),
        Cmd::Sync(t) => (t, Command::Sync),
        Cmd::Stats(t) => (t, Command::Stats),
    };
    let socket = match (target.control, target.mountpoint) {
        (Some(socket), _) => socket,
        (None, Some(mountpoint)) => mount::default_control_path(&mountpoint),
        (None, None) => {
            eprintln!("raftq-lazyfs: give --control or --mountpoint");
            return ExitCode::FAILURE;
        }
    };
    // Parsed like a socket line, so `..` is refused the same way.
    let command = match Command::parse(&make(PathBuf::from(&target.subdir)).line()) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("raftq-lazyfs: {e}");
            return ExitCode::FAILURE;
        }
    };
    match control::request(&socket, &command) {
        Ok(reply) => {
            println!("{reply}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("raftq-lazyfs: {}: {e}", socket.display());
            ExitCode::FAILURE
        }
    }
}
