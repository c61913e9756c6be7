//! The HTTP listener: the pages (ours at `/`, the original WebSocket chat's at `/ws/`),
//! the Socket.IO client bundle, the Socket.IO endpoint (`/socket.io/`, Engine.IO v3 and
//! v4, long-polling and WebSocket), `GET /healthz`, `GET /metrics` (Prometheus) and
//! the JSON API ([`crate::api`]: `/api/history`, `/api/members`).

use std::path::PathBuf;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, ORIGIN};
use axum::http::{HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt;
use serde_json::json;
use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

use crate::lobby::{Lobby, Protocol};
use crate::origins::AllowedOrigins;
use crate::{api, assets, socketio, telemetry};

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
        .route("/api/history", get(api::history))
        .route("/api/members", get(api::members))
        .route("/metrics", get(metrics))
        .layer(CompressionLayer::new())
        // Merged after the bundle's routes: socketioxide would claim every path under
        // /socket.io, the bundle's included.
        .merge(socketio_routes(engine, &lobby.limits().allowed_origins))
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

/// The Socket.IO endpoint, behind the origin check and its CORS headers.
fn socketio_routes<S>(engine: S, origins: &AllowedOrigins) -> Router<Lobby>
where
    S: tower::Service<axum::extract::Request, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
{
    let allowed = if origins.is_restricted() {
        AllowOrigin::list(
            origins
                .list()
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    } else {
        AllowOrigin::any()
    };
    let cors = CorsLayer::new()
        .allow_origin(allowed)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([CONTENT_TYPE]);
    Router::new()
        .route_service("/socket.io/", engine.clone())
        .route_service("/socket.io", engine)
        .layer(middleware::from_fn_with_state(
            origins.clone(),
            check_origin,
        ))
        .layer(cors)
}

/// Refuses a Socket.IO request from an origin that is not allowed, with HTTP 403.
async fn check_origin(
    State(origins): State<AllowedOrigins>,
    request: axum::extract::Request,
    next: Next,
) -> Response {
    let origin = request.headers().get(ORIGIN);
    if origins.allows_header(origin) {
        return next.run(request).await;
    }
    tracing::info!(?origin, "refused: origin not allowed");
    telemetry::refused(Protocol::SocketIo, "origin");
    (StatusCode::FORBIDDEN, "origin not allowed\n").into_response()
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
