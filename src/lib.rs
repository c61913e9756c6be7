//! chatterbox: one chat server for the clients of four small Node.js chat servers, all
//! in one lobby.
//!
//! The library is the whole server; `main.rs` only parses the configuration, binds the
//! listeners and calls [`run`]. Tests bind their listeners on port 0 and call [`run`] too.
//!
//! - [`protocol`]: the four wire protocols and their differing rules (a leaf module).
//! - [`lobby`]: the one shared state: members, names, presence, ordered fan-out, slow
//!   consumers, the two-person rooms, the message rate.
//! - [`log`]: the lobby's ordered, durable log behind one trait; [`log::sqlite`], the
//!   single-node history.
//! - [`protocols`]: one module per wire protocol, each translating between its wire
//!   format and the lobby.
//! - `net`: accept loop, admission (connection limits), the outgoing queue of the raw
//!   connection protocols.
//! - `http`: the HTTP listener: pages, the Socket.IO bundle and endpoint, `/healthz`,
//!   `/metrics`, the JSON API, web origins.
//! - `admin`: the Socket.IO Admin UI's server side (every protocol's members as sockets).
//! - [`logging`]: log lines to stderr that never block nor panic; [`memory`]: the
//!   allocator's free memory given back after a storm of connections.
//! - `telemetry`: Prometheus metrics; `refusals`: every refusal counted and logged, folded
//!   under a flood; [`config`]: flags and environment.

#![warn(unreachable_pub)]

pub(crate) mod admin;
pub(crate) mod chat;
pub mod config;
pub(crate) mod http;
pub mod lobby;
pub(crate) mod locks;
pub mod log;
pub mod logging;
pub mod memory;
pub(crate) mod net;
pub mod protocol;
pub mod protocols;
pub(crate) mod refusals;
pub(crate) mod telemetry;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::lobby::Lobby;
use crate::net::accept::{close_with_error, serve_raw};
use crate::protocol::Protocol::{TcpJson, TcpText, WebSocket};
use crate::protocols::{tcp_json, tcp_text, websocket};

pub use config::Config;

/// How long a shutdown may take: connections still open after this are dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// The already-bound listeners the server serves; `None` switches a protocol off.
pub struct Listeners {
    /// HTTP: pages, Socket.IO, APIs.
    pub http: TcpListener,
    /// The plain WebSocket chat.
    pub websocket: Option<TcpListener>,
    /// The TCP JSON chat.
    pub tcp_json: Option<TcpListener>,
    /// The TCP text chat.
    pub tcp_text: Option<TcpListener>,
}

/// Why the server stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The settings do not go together.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// The history cannot be opened.
    #[error(transparent)]
    History(#[from] log::HistoryError),
    /// The cluster's Redis cannot be used.
    #[error(transparent)]
    Cluster(#[from] log::redis::ClusterError),
    /// The admin UI's settings cannot be used.
    #[error(transparent)]
    Admin(#[from] config::AdminSettingsError),
    /// The history's writer thread cannot start.
    #[error("cannot start the history writer: {0}")]
    Writer(std::io::Error),
    /// A listener failed or stopped on its own.
    #[error("the {listener} listener failed: {cause}")]
    Listener {
        /// Which listener.
        listener: &'static str,
        /// What failed (in the message, so not also a `source`).
        cause: std::io::Error,
    },
}

/// Serves every listener until `shutdown` is cancelled, then disconnects every client
/// and returns within [`SHUTDOWN_GRACE`]. A listener that fails stops them all.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    config.check()?;
    // Made once: without --node-id, each call generates another id.
    let cluster = config.cluster();
    let admin = config
        .admin()?
        .map(|admin| admin.on_cluster(cluster.as_ref()));
    // Installed before the lobby takes its metric handles.
    telemetry::prometheus();
    let lobby = match (cluster, config.history_path()) {
        (Some(cluster), _) => {
            tracing::info!(node = %cluster.node_id, cluster = %cluster.cluster, "cluster node");
            let connected = log::redis::connect(cluster).await?;
            let limits = config.limits();
            let (capacity, batch_items) = (limits.history_queue_lines, limits.relay_batch_items());
            Lobby::with_broker(limits, |up| {
                let broker = log::redis::RedisBroker::start(connected, capacity, batch_items, up);
                Ok(Box::new(broker))
            })
            .map_err(RunError::Writer)?
        }
        (None, Some(path)) => {
            let (path, durability) = (path.to_owned(), config.db_durability);
            let retention = config.retention();
            let store = tokio::task::spawn_blocking(move || {
                log::Store::open_with(&path, durability)?.keeping(retention)
            })
            .await
            .map_err(|e| RunError::Writer(std::io::Error::other(e)))??;
            Lobby::with_history(config.limits(), store).map_err(RunError::Writer)?
        }
        (None, None) => Lobby::new(config.limits()),
    };
    // The listeners stop on their own token, cancelled once the lobby is closed, so no
    // connection sees the shutdown before the lobby does.
    let stop = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn({
        let (shutdown, stop, lobby) = (shutdown.clone(), stop.clone(), lobby.clone());
        async move {
            shutdown.cancelled().await;
            lobby.close();
            stop.cancel();
        }
    });
    // The summaries of folded refusals, every interval until the server stops.
    tasks.spawn(lobby.clone().fold_every(stop.clone()));
    tasks.spawn(memory::trim_after_storms(
        lobby.clone(),
        config.trim_after_connections,
        stop.clone(),
    ));
    let settings = http::HttpSettings {
        static_dir: config.static_dir.clone(),
        ping_interval: config.ping_interval(),
        ping_timeout: config.ping_timeout(),
        max_payload_bytes: config.max_payload_bytes,
        header_timeout: config.header_timeout(),
        stall_timeout: config.timeouts().stall,
        admin,
        allowed_origins: config.allowed_origins(),
    };
    let admission =
        net::admission::Admission::new(config.max_connections, config.max_connections_per_ip)
            .trusting(net::proxy::TrustedProxies::new(&config.trusted_proxies));
    let timeouts = config.timeouts();
    let failure = Arc::new(Mutex::new(None));
    let supervise = |listener: &'static str, serve: Box<dyn ServeFuture>| {
        let (shutdown, stop, failure) = (shutdown.clone(), stop.clone(), failure.clone());
        tasks.spawn(async move {
            let result = Box::into_pin(serve).await;
            if stop.is_cancelled() {
                return;
            }
            let cause = result
                .err()
                .unwrap_or_else(|| std::io::Error::other("stopped on its own"));
            tracing::error!("the {listener} listener failed: {cause}");
            if let Ok(mut failure) = failure.lock() {
                failure.get_or_insert(RunError::Listener { listener, cause });
            }
            shutdown.cancel();
        });
    };
    supervise(
        "http",
        Box::new(http::serve(
            listeners.http,
            lobby.clone(),
            admission.clone(),
            settings,
            stop.clone(),
        )),
    );
    // The raw connection protocols: one accept loop each, a task per client.
    let served = net::accept::Served {
        lobby: lobby.clone(),
        timeouts,
        shutdown: stop.clone(),
    };
    if let Some(listener) = listeners.websocket {
        let policy = config.websocket_policy();
        let client =
            move |stream, peer, served| websocket::client(stream, peer, served, policy.clone());
        let refuse = websocket::refuse_upgrade;
        let serve = serve_raw(
            WebSocket,
            listener,
            admission.clone(),
            served.clone(),
            client,
            refuse,
        );
        supervise("websocket", Box::new(serve));
    }
    if let Some(listener) = listeners.tcp_json {
        let max_object_bytes = config.max_json_object_bytes;
        let client =
            move |stream, peer, served| tcp_json::client(stream, peer, served, max_object_bytes);
        let refuse = close_with_error;
        let serve = serve_raw(
            TcpJson,
            listener,
            admission.clone(),
            served.clone(),
            client,
            refuse,
        );
        supervise("tcp-json", Box::new(serve));
    }
    if let Some(listener) = listeners.tcp_text {
        let (client, refuse) = (tcp_text::client, close_with_error);
        let serve = serve_raw(TcpText, listener, admission.clone(), served, client, refuse);
        supervise("tcp-text", Box::new(serve));
    }
    tasks.close();

    stop.cancelled().await;
    if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}: dropping them");
    }
    // The last interval's counts, cut short by the shutdown.
    lobby.summarise();
    // Every line accepted before the shutdown is committed (and relayed, to whoever is
    // still there) before `run` returns.
    let history = lobby.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || history.finish_history()).await {
        tracing::error!("the history writer did not finish: {e}");
    }
    tracing::info!("stopped");
    match failure.lock().map(|mut failure| failure.take()) {
        Ok(Some(failure)) => Err(failure),
        _ => Ok(()),
    }
}

/// A listener's serve future, boxed so that every protocol's fits one supervisor.
trait ServeFuture: Future<Output = std::io::Result<()>> + Send + 'static {}
impl<F: Future<Output = std::io::Result<()>> + Send + 'static> ServeFuture for F {}
