//! Everything printed: stdout lines that stop quietly on a closed pipe,
//! progress bars on stderr, short figures for tables, one-line errors.

use std::fmt;
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Prints one line to stdout; a closed pipe becomes an error the caller
/// propagates (and [`exit_code`] treats as a quiet exit) instead of a panic.
pub fn line(args: fmt::Arguments<'_>) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)?;
    out.write_all(b"\n")
}

/// `println!` that returns `io::Result`.
#[macro_export]
macro_rules! outln {
    () => { $crate::output::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::output::line(format_args!($($arg)*)) };
}

pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// An error and its causes on one line.
pub fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}")
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A panic is a bug, but it still gets one line, not a backtrace.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".into());
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("error: internal error (a bug in raftq): {what}{at}");
    }));
}

/// How a tool's run ends: the error, if any, as one line on stderr and a
/// failure exit code.
pub fn exit_code(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `raftq consume | head`: the reader left, nothing to report.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// A progress bar on stderr (hidden when stderr is not a terminal).
pub fn progress(total: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let template = format!("{label} {{bar:40}} {{pos}}/{{len}} {{per_sec}} eta {{eta}}");
    bar.set_style(
        ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// `1.23s`, `45ms`: short, for tables.
pub fn short_duration(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.2}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

pub fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_print_on_one_line() {
        let e = anyhow::anyhow!("queue 'x' does not exist\nsecond line").context("publish");
        assert_eq!(
            one_line(&e),
            "publish: queue 'x' does not exist second line"
        );
    }

    #[test]
    fn broken_pipes_are_recognized_through_context() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "closed");
        let e = anyhow::Error::from(io).context("printing");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("other")));
    }

    #[test]
    fn a_closed_pipe_is_a_quiet_success() {
        let io = std::io::Error::new(std::io::ErrorKind::BrokenPipe, "closed");
        assert_eq!(exit_code(Err(io.into())), ExitCode::SUCCESS);
        assert_eq!(exit_code(Ok(())), ExitCode::SUCCESS);
        assert_eq!(exit_code(Err(anyhow::anyhow!("boom"))), ExitCode::FAILURE);
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(Duration::from_millis(45)), "45ms");
        assert_eq!(short_duration(Duration::from_millis(1234)), "1.23s");
    }
}
