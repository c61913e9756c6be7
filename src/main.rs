//! The chatterbox binary: configuration, logging, listeners, signals; the rest is the
//! library's [`chatterbox::run`].

use std::io::{IsTerminal, Write};
use std::net::IpAddr;

use anyhow::Context;
use chatterbox::config::{ListenPort, LogFormat};
use clap::Parser;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let config = chatterbox::Config::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = writeln!(
                std::io::stderr(),
                "chatterbox: cannot start the runtime: {e}"
            );
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever failed: what and why, no backtrace. Not `eprintln!`,
            // which panics on a closed stderr; there is nowhere else to tell.
            let _ = writeln!(std::io::stderr(), "chatterbox: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Log targets capped at `info` while the admin login is on (see `serve`).
const SECRET_LOGGING: [&str; 6] = [
    "socketioxide=info",
    "socketioxide::client=info",
    "socketioxide::parser=info",
    "engineioxide=info",
    "engineioxide::socket=info",
    "engineioxide::transport=info",
];

async fn serve(config: chatterbox::Config) -> anyhow::Result<()> {
    // Held to the end of `serve`: the lines queued then are written before the exit.
    let (writer, _flush) =
        chatterbox::logging::to_stderr().context("cannot start the log writer")?;
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if config.admin_password_hash.is_some() {
        // socketioxide logs a handshake's `auth` (the admin password) and engineioxide
        // every packet (the admin session ids) at debug and trace: never with the admin
        // login on, whatever RUST_LOG says.
        for quiet in SECRET_LOGGING {
            if let Ok(directive) = quiet.parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .log_internal_errors(false);
    match config.log_format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }

    let http = bind(config.host, config.port, "http").await?;
    let listeners = chatterbox::Listeners {
        http,
        websocket: bind_optional(config.host, config.ws_port, "websocket").await?,
        tcp_json: bind_optional(config.host, config.tcp_json_port, "tcp-json").await?,
        tcp_text: bind_optional(config.host, config.tcp_text_port, "tcp-text").await?,
    };

    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    chatterbox::run(config, listeners, shutdown).await?;
    Ok(())
}

async fn bind(host: IpAddr, port: u16, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen for {what} on {host}:{port}"))
}

async fn bind_optional(
    host: IpAddr,
    port: ListenPort,
    what: &str,
) -> anyhow::Result<Option<TcpListener>> {
    match port {
        ListenPort::Off => {
            tracing::info!("{what} listener off");
            Ok(None)
        }
        ListenPort::On(port) => bind(host, port, what).await.map(Some),
    }
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(e) => {
                tracing::error!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    // Cancelled first: the shutdown never waits on a log line.
    shutdown.cancel();
    tracing::info!("shutting down");
}
