//! chatterbox: one chat server for the clients of four small Node.js chat servers.
//!
//! The library is the whole server; `main.rs` only parses the configuration, binds the
//! listeners and calls [`run`]. Tests bind their listeners on port 0 and call [`run`] too.
//!
//! - [`lobby`]: the one shared state: members, names, validation, fan-out.
//! - [`socketio`]: the Socket.IO lobby protocol.
//! - [`http`]: the HTTP listener: pages, the Socket.IO bundle and endpoint, health.
//! - [`assets`]: the files embedded in the binary.
//! - [`config`]: flags and environment variables.

pub mod assets;
pub mod config;
pub mod http;
pub mod lobby;
pub mod socketio;

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
pub use lobby::Lobby;

/// How long a shutdown may take: connections still open after this are dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// The already-bound listeners the server serves.
pub struct Listeners {
    /// HTTP: pages, Socket.IO, APIs.
    pub http: TcpListener,
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A listener failed.
    #[error("the {listener} listener failed: {source}")]
    Listener {
        /// Which listener.
        listener: &'static str,
        /// What failed.
        source: std::io::Error,
    },
}

/// Serves every listener until `shutdown` is cancelled, then disconnects every client
/// and returns within [`SHUTDOWN_GRACE`].
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let lobby = Lobby::new(config.lobby_settings());
    let settings = http::HttpSettings {
        static_dir: config.static_dir.clone(),
        ping_interval: config.ping_interval(),
        ping_timeout: config.ping_timeout(),
        max_payload_bytes: config.max_payload_bytes,
        outbox_messages: config.outbox_messages,
    };
    let tracker = TaskTracker::new();
    let http = tracker.spawn(http::serve(
        listeners.http,
        lobby,
        settings,
        shutdown.clone(),
    ));
    tracker.close();

    tokio::select! {
        biased;
        () = shutdown.cancelled() => {}
        result = http => {
            // A listener that stops before shutdown is an error, whatever it returned.
            if !shutdown.is_cancelled() {
                shutdown.cancel();
                let source = match result {
                    Ok(Ok(())) => std::io::Error::other("stopped unexpectedly"),
                    Ok(Err(e)) => e,
                    Err(join) => std::io::Error::other(join),
                };
                return Err(RunError::Listener {
                    listener: "http",
                    source,
                });
            }
        }
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}: dropping them");
    }
    tracing::info!("stopped");
    Ok(())
}
