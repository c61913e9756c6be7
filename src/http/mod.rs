//! The HTTP listener: the pages (ours at `/`, the original WebSocket chat's at `/ws/`),
//! the Socket.IO client bundle, the Socket.IO endpoint (`/socket.io/`, Engine.IO v3 and
//! v4, long-polling and WebSocket), `GET /healthz`, `GET /metrics` (Prometheus) and
//! the JSON API ([`api`]: `/api/history`, `/api/members`).
//!
//! Connections are served by hyper's HTTP/1 server directly (axum's `serve` has no
//! header timeout), with WebSocket upgrades, `TCP_NODELAY` and graceful shutdown:
//!
//! - A connection over the connection limits (`crate::net::admission`) gets one response,
//!   HTTP 503 `{"error": "too many connections …"}` (a Socket.IO client reports a
//!   `connect_error`), and is closed; `/healthz` and `/metrics` are still answered on
//!   it so operators can watch a full server. An admitted connection holds its permit
//!   as long as its socket is open, after a WebSocket upgrade too.
//! - Behind a trusted reverse proxy (`--trusted-proxies`), a proxy's connection is
//!   counted for the client its latest request's `X-Forwarded-For` names
//!   (`crate::net::proxy`): a request whose client is at its per-address limit gets the
//!   503 above; every request is logged for that client (with port 0: the header
//!   carries none).
//! - A request whose headers take longer than the header timeout (a slowloris client
//!   trickling them), and a keep-alive connection idle that long, is closed without a
//!   response; the first is counted as a refusal (`header_timeout`).
//! - A Socket.IO request whose body has not all come within the stall timeout of its
//!   headers' end gets HTTP 400 (socketioxide's answer to a body that fails) and is
//!   closed; counted as `stall` ([`deadline`]).
//! - A Socket.IO request from a web origin `--allowed-origins` does not list gets HTTP
//!   403 ([`origins`]).

pub(crate) mod api;
pub(crate) mod assets;
mod deadline;
pub(crate) mod origins;
pub(crate) mod sessions;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tower_http::compression::CompressionLayer;
use tower_http::services::ServeDir;
use tower_http::trace::TraceLayer;

use crate::lobby::Lobby;
use crate::net::accept::{Accepting, accept_with};
use crate::net::admission::{Admission, AdmissionRefusal, Permit, REFUSAL_TIMEOUT};
use crate::net::proxy::TrustedProxies;
use crate::protocol::Protocol;
use crate::protocols::socketio;
use crate::refusals::{Refusal, Refusals, Who};
use crate::telemetry;
use deadline::body_deadline;
use origins::{AllowedOrigins, behind_origin_check};
use sessions::Place;

/// Default for `--header-timeout-ms`: a browser sends a request's headers in one
/// packet, so ten seconds is generous on any network, and short enough that a slowloris
/// client trickling headers cannot hold many connections for long.
pub(crate) const DEFAULT_HEADER_TIMEOUT_MS: u64 = 10_000;

/// What the HTTP listener needs beyond the lobby.
#[derive(Debug, Clone)]
pub(crate) struct HttpSettings {
    /// Serve pages from here instead of the embedded ones.
    pub static_dir: Option<PathBuf>,
    /// Engine.IO heartbeat interval.
    pub ping_interval: Duration,
    /// Engine.IO heartbeat timeout.
    pub ping_timeout: Duration,
    /// Largest Engine.IO payload, WebSocket message and WebSocket frame, in bytes.
    pub max_payload_bytes: u64,
    /// How long a request's headers may take to arrive; `None`: no limit.
    pub header_timeout: Option<Duration>,
    /// How long a Socket.IO request's body may take to arrive, from its headers' end;
    /// `None`: no limit.
    pub stall_timeout: Option<Duration>,
    /// The admin UI (`/admin/` and its namespace); `None`: off.
    pub admin: Option<crate::admin::AdminSettings>,
    /// Web origins allowed to open Socket.IO connections.
    pub allowed_origins: AllowedOrigins,
}

/// Serves HTTP and Socket.IO on `listener` until `shutdown` is cancelled, then disconnects
/// every socket and returns once the connections have ended.
pub(crate) async fn serve(
    listener: TcpListener,
    lobby: Lobby,
    admission: Admission,
    settings: HttpSettings,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let engine_settings = socketio::Engine {
        ping_interval: settings.ping_interval,
        ping_timeout: settings.ping_timeout,
        max_payload_bytes: settings.max_payload_bytes,
        stall_timeout: settings.stall_timeout,
        connect_timeout: settings.header_timeout,
        keep_headers: settings.admin.is_some(),
    };
    let (endpoint, io) = socketio::endpoint(&lobby, engine_settings);
    let mut admin_ui = Router::new();
    if let Some(admin) = settings.admin.clone() {
        crate::admin::install(&io, &lobby, admin, shutdown.clone()).await;
        admin_ui = assets::router(assets::ADMIN_UI).route(
            "/admin",
            get(|| async { axum::response::Redirect::permanent("/admin/") }),
        );
    }

    let pages = match &settings.static_dir {
        Some(dir) => Router::new().fallback_service(ServeDir::new(dir)),
        None => assets::router(assets::PAGES),
    };
    let app = Router::new()
        .merge(assets::router(assets::BUNDLE))
        .merge(assets::router(assets::WS_CHAT_PAGE))
        .merge(admin_ui)
        .merge(pages)
        .route("/healthz", get(healthz))
        .route("/api/history", get(api::history))
        .route("/api/members", get(api::members))
        .route("/metrics", get(metrics))
        .layer(CompressionLayer::new())
        // Merged after the bundle's routes: socketioxide would claim every path under
        // /socket.io, the bundle's included.
        .merge(
            behind_origin_check(endpoint, &settings.allowed_origins, lobby.refusals())
                .layer(middleware::map_request_with_state(
                    (settings.stall_timeout, lobby.refusals().clone()),
                    body_deadline,
                ))
                .layer(middleware::from_fn_with_state(
                    (admission.clone(), lobby.refusals().clone()),
                    sessions::hold_places,
                )),
        )
        .layer(TraceLayer::new_for_http())
        .with_state(lobby.clone());
    let refusals = lobby.refusals().clone();
    // What a connection over the limits is still answered.
    let operators = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(lobby);

    // Cancelled once every socket is closed: connections finish their request and end.
    let drain = CancellationToken::new();
    let trusted = admission.trusted().clone();
    let accepting = Accepting {
        name: "http",
        protocol: Protocol::SocketIo,
        listener,
        admission,
        refusals: refusals.clone(),
        shutdown,
    };
    let connection = |stream, peer, permit: Permit| {
        let proxied = permit.is_forwarded().then(|| Proxied {
            trusted: trusted.clone(),
            operators: operators.clone(),
        });
        let place = Place::holding(permit);
        let stream = Admitted {
            stream,
            _place: place.clone(),
        };
        let connection = Connection {
            peer,
            header_timeout: settings.header_timeout,
            drain: drain.clone(),
            refusals: refusals.clone(),
            proxied,
        };
        connection.serve(stream, app.clone(), Some(place))
    };
    let refuse = |stream, peer, why| {
        // Bounded by REFUSAL_TIMEOUT as a whole, not counted as slow.
        let connection = Connection {
            peer,
            header_timeout: None,
            drain: drain.clone(),
            refusals: refusals.clone(),
            proxied: None,
        };
        let refusal = connection.serve(stream, refusal(operators.clone(), why), None);
        async move {
            if tokio::time::timeout(REFUSAL_TIMEOUT, refusal)
                .await
                .is_err()
            {
                tracing::debug!(%peer, "refusal not taken in time");
            }
        }
    };
    let stopped = async {
        io.close().await;
        drain.cancel();
    };
    accept_with(accepting, connection, refuse, stopped).await
}

/// What a connection over the limits is answered: `/healthz` and `/metrics` as usual,
/// anything else HTTP 503 with the reason.
fn refusal(operators: Router, why: AdmissionRefusal) -> Router {
    let body = json!({ "error": why.to_string() });
    operators.fallback(async move || (StatusCode::SERVICE_UNAVAILABLE, Json(body)))
}

/// One HTTP connection being served.
struct Connection {
    peer: SocketAddr,
    header_timeout: Option<Duration>,
    /// Cancelled at shutdown.
    drain: CancellationToken,
    refusals: Refusals,
    /// From a trusted proxy: its requests' clients are forwarded.
    proxied: Option<Proxied>,
}

/// What a trusted proxy's connection needs to serve each request for its client (its
/// place is counted for the client of its latest request).
struct Proxied {
    trusted: TrustedProxies,
    /// What a refused request is still answered.
    operators: Router,
}

impl Connection {
    /// Serves `app` on `stream` (with WebSocket upgrades) until the client closes, the
    /// header timeout closes it, or shutdown ends it after its current request. An
    /// admitted connection (`place`, which its requests may hand to an Engine.IO session:
    /// [`sessions`]) is kept alive between requests; a refused one is not.
    async fn serve<S>(self, stream: S, app: Router, place: Option<Place>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let requests = Arc::new(AtomicUsize::new(0));
        let service = {
            let requests = requests.clone();
            let peer = self.peer;
            let place = place.clone();
            let (proxied, refusals) = (self.proxied, self.refusals.clone());
            service_fn(move |mut request: axum::http::Request<Incoming>| {
                requests.fetch_add(1, Ordering::Relaxed);
                let mut client = peer;
                let mut app = app.clone();
                if let Some(proxied) = &proxied {
                    let ip = proxied.trusted.client_of(peer.ip(), request.headers());
                    client = SocketAddr::new(ip, 0);
                    let counted = place.as_ref().map_or(Ok(()), |place| place.count_for(ip));
                    if let Err(why) = counted {
                        // Still answered: not refused.
                        if !matches!(request.uri().path(), "/healthz" | "/metrics") {
                            let who = Who::Peer(client);
                            refusals.report(
                                Protocol::SocketIo,
                                who,
                                Refusal::new(why.reason(), why),
                            );
                        }
                        app = refusal(proxied.operators.clone(), why);
                    }
                }
                // Who a refusal of the request is logged for.
                request.extensions_mut().insert(ConnectInfo(client));
                if let Some(place) = &place {
                    request.extensions_mut().insert(place.clone());
                }
                app.oneshot(request)
            })
        };
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout)
            .keep_alive(place.is_some());
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(connection);
        let served = tokio::select! {
            served = connection.as_mut() => served,
            () = self.drain.cancelled() => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        let peer = self.peer;
        match served {
            Ok(()) => {}
            // The first request's headers did not come in time; later, the connection
            // was only idle between requests.
            Err(e) if e.is_timeout() && requests.load(Ordering::Relaxed) == 0 => {
                let why = "request headers too slow";
                let who = Who::Peer(peer);
                let refusal = Refusal::disconnecting("header_timeout", why);
                self.refusals.report(Protocol::SocketIo, who, refusal);
            }
            Err(e) => tracing::debug!(%peer, "http connection ends: {e}"),
        }
    }
}

/// An admitted connection's stream: it holds the connection's place as long as the
/// socket is open, through a WebSocket upgrade too (hyper hands the stream itself over),
/// unless an Engine.IO session took the place over ([`sessions`]).
struct Admitted {
    stream: TcpStream,
    _place: Place,
}

impl AsyncRead for Admitted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Admitted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Who sent `request`, as [`Connection::serve`] noted it.
fn peer_of<B>(request: &axum::http::Request<B>) -> Who {
    match request.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => Who::Peer(*peer),
        None => Who::Unknown,
    }
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

/// `GET /healthz`: `{"status": "ok", "members": N, "connections": C}`: `members` the
/// named lobby members (as the protocols count them; a cluster node: the whole
/// cluster's), `connections` every connection of this node's lobby, named or not (a
/// Socket.IO socket before its `newUser`, or one that only uses the two-person rooms).
/// A cluster node adds `"redis": "ok"` or `"unavailable"` (chat lines are refused
/// while Redis does not answer; connections stay).
async fn healthz(State(lobby): State<Lobby>) -> Json<serde_json::Value> {
    let mut health = json!({
        "status": "ok",
        "members": lobby.member_count(),
        "connections": lobby.connection_count(),
    });
    if let Some(available) = lobby.cluster_available() {
        health["redis"] = json!(if available { "ok" } else { "unavailable" });
    }
    Json(health)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lobby::Limits;
    use crate::net::outbox::QueueOutbox;
    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::HeaderValue;
    use axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN;

    const WITHIN: Duration = Duration::from_secs(5);

    /// `app`'s answer to `request`, with its body as text.
    pub(super) async fn answer(app: Router, request: Request) -> (StatusCode, HeaderValue, String) {
        let response = tokio::time::timeout(WITHIN, app.oneshot(request))
            .await
            .expect("answered")
            .unwrap();
        let status = response.status();
        let allowed = response
            .headers()
            .get(ACCESS_CONTROL_ALLOW_ORIGIN)
            .cloned()
            .unwrap_or(HeaderValue::from_static("none"));
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, allowed, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn healthz_counts_named_members_and_every_connection() {
        let lobby = Lobby::new(Limits::default());
        // A TCP text client is a member from its connection on; a Socket.IO socket only
        // from its newUser.
        let (guest, _inbox) = QueueOutbox::new(16);
        let _guest = lobby.join(Protocol::TcpText, guest, None).unwrap();
        let (socket, _socket_inbox) = QueueOutbox::new(16);
        let _socket = lobby.join(Protocol::SocketIo, socket, None).unwrap();
        let app = Router::new()
            .route("/healthz", get(healthz))
            .with_state(lobby);
        let request = Request::get("/healthz").body(Body::empty()).unwrap();
        let (status, _, body) = answer(app, request).await;
        assert_eq!(status, StatusCode::OK);
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            health,
            json!({"status": "ok", "members": 1, "connections": 2})
        );
    }
}
