//! `raftqd`: start one raftq node.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use raftq_server::config::{Args, Config, LogFormat};
use tracing_subscriber::EnvFilter;

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,openraft=error,sled=warn,h2=warn,tower=warn"));
    // Colour codes only for a person at a terminal: log files, journald and
    // `docker logs` would otherwise carry raw escape sequences.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// A panic (a bug, or a library's answer to damaged data) is reported as one
/// log line with its place; the backtrace only when RUST_BACKTRACE asks.
fn report_panics_in_one_line() {
    let with_backtrace = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
    if with_backtrace {
        return;
    }
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        let place = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current();
        tracing::error!(
            thread = thread.name().unwrap_or("unnamed"),
            at = %place,
            "internal panic: {message}"
        );
    }));
}

fn main() -> ExitCode {
    report_panics_in_one_line();
    raftq_server::alarms::keep_large_allocations_mapped();
    let config = match Config::from_args(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("raftqd: {e}");
            return ExitCode::from(2);
        }
    };
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = config.worker_threads {
        runtime.worker_threads(n);
    }
    match runtime.build() {
        Ok(rt) => rt.block_on(run(config)),
        Err(e) => {
            eprintln!("raftqd: cannot start the async runtime: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(config: Config) -> ExitCode {
    init_logging(config.log_format);
    let addr: SocketAddr = match config.listen.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("raftqd: invalid --listen {:?}: {e}", config.listen);
            return ExitCode::from(2);
        }
    };
    // Bind before starting Raft so a port clash fails fast and loudly.
    if let Err(e) = std::net::TcpListener::bind(addr) {
        eprintln!("raftqd: cannot listen on {addr}: {e}");
        return ExitCode::from(1);
    }
    let node = match raftq_server::boot::start_node(config.clone()).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("raftqd: {e}");
            return ExitCode::from(1);
        }
    };
    if let Some(metrics_addr) = &config.metrics_listen {
        match metrics_addr.parse::<SocketAddr>() {
            Ok(maddr) => {
                let node = node.clone();
                tokio::spawn(async move {
                    if let Err(e) = raftq_server::metrics::exposition::serve(node, maddr).await {
                        tracing::error!("metrics endpoint on {maddr} failed: {e}");
                    }
                });
            }
            Err(e) => {
                eprintln!("raftqd: invalid --metrics-listen {metrics_addr:?}: {e}");
                return ExitCode::from(2);
            }
        }
    }
    tracing::info!(id = config.id, listen = %config.listen, advertise = %config.advertise, "raftqd started");
    let draining = node.clone();
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutting down: handing off leadership");
        raftq_server::failover::driver::hand_off_leadership(&draining).await;
    };
    let served = raftq_server::server::serve(node.clone(), addr, shutdown).await;
    node.shutdown().await;
    match served {
        Ok(()) => {
            tracing::info!("raftqd stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("raftqd: server error: {e}");
            ExitCode::from(1)
        }
    }
}
