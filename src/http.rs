//! The HTTP listener: the pages (ours at `/`, the original WebSocket chat's at `/ws/`),
//! the Socket.IO client bundle, the Socket.IO endpoint (`/socket.io/`, Engine.IO v3 and
//! v4, long-polling and WebSocket), `GET /healthz` and `GET /metrics` (Prometheus).

use std::path::PathBuf;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use serde_json::json;
use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

use crate::lobby::Lobby;
use crate::{assets, socketio, telemetry};

/// What the HTTP listener needs beyond the lobby.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Serve pages from here instead of the embedded ones.
    pub static_dir: Option<PathBuf>,
    /// Engine.IO heartbeat interval.
    pub ping_interval: Duration,
    /// Engine.IO heartbeat timeout.
    pub ping_timeout: Duration,
    /// Largest Engine.IO payload, WebSocket message and WebSocket frame, in bytes.
    pub max_payload_bytes: u64,
}

/// Serves HTTP and Socket.IO on `listener` until `shutdown` is cancelled, then disconnects
/// every socket and returns once the connections have ended.
pub async fn serve(
    listener: TcpListener,
    lobby: Lobby,
    settings: HttpSettings,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let payload = usize::try_from(settings.max_payload_bytes).unwrap_or(usize::MAX);
    let (engine, io) = SocketIo::builder()
        .ping_interval(settings.ping_interval)
        .ping_timeout(settings.ping_timeout)
        .max_payload(settings.max_payload_bytes)
        .ws_max_message_size(payload)
        .ws_max_frame_size(payload)
        .max_buffer_size(lobby.limits().outbox_messages)
        .build_svc();
    socketio::attach(&io, lobby.clone());

    let pages = match &settings.static_dir {
        Some(dir) => Router::new().fallback_service(ServeDir::new(dir)),
        None => assets::router(assets::PAGES),
    };
    let app = Router::new()
        .merge(assets::router(assets::BUNDLE))
        .merge(assets::router(assets::WS_CHAT_PAGE))
        .merge(pages)
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .layer(CompressionLayer::new())
        // Placed after the bundle's routes: socketioxide would claim every path under
        // /socket.io, the bundle's included.
        .route_service("/socket.io/", engine.clone())
        .route_service("/socket.io", engine)
        .layer(TraceLayer::new_for_http())
        .with_state(lobby);

    tracing::info!("listening http={}", listener.local_addr()?);
    // Chat frames are small and latency matters: no Nagle delay.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!("cannot set TCP_NODELAY: {e}");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.cancelled().await;
            io.close().await;
        })
        .await
}

async fn metrics() -> Response {
    match telemetry::prometheus() {
        Some(prometheus) => (
            [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
            prometheus.render(),
        )
            .into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "metrics are off\n").into_response(),
    }
}

async fn healthz(State(lobby): State<Lobby>) -> Json<serde_json::Value> {
    Json(json!({ "status": "ok", "members": lobby.member_count() }))
}
