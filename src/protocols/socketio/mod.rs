//! The Socket.IO lobby chat (PROTOCOLS.md section 1), on the `/` namespace.
//!
//! Wire format (event names and payloads as the original Node server had them):
//!
//! | direction | event | payload |
//! |---|---|---|
//! | client → server | `newUser` | the name, a string |
//! | client → server | `message` | `{type: "message", message: "<text>"}` |
//! | server → sender | ack of `message` | `{id}` (`{}` without a history): sent only if the client asked for one (our page), once the line is stored, where its own line would be among the others' |
//! | server → client | `update` | `{type: "connect" \| "disconnect", name: "SERVER", message: "<X>님이 접속하였습니다." \| "<X>님이 나가셨습니다."}` |
//! | server → client | `update` | `{type: "message", name: "<stored name>", message: "<text>", id}`: `id` the line's `/api/history` id (an extra field original clients ignore; absent without a history) |
//! | server → sender | `error` | `{message: "<why>"}`: its request was refused, nothing was relayed |
//! | server → sender | `error` | `{message: "the name \"X\" is taken: you are \"Y\""}`: its `newUser` asked for a name it cannot have (`crate::lobby::names`); it is Y, told before its join |
//! | client → server | `members` | none: subscribe to the member list (our page; original clients never send it) |
//! | server → subscriber | `members` | `{count, members: [{name, protocol, since}]}` (as `GET /api/members`), at once and after every change |
//!
//! With `--replay N`, a member's first `newUser` is answered with the latest N stored
//! lines as `update` messages, before its join is announced: those older than the
//! first line it got live (a socket gets the chat before it names itself).
//!
//! The two-person rooms (section 2) share the namespace:
//!
//! | direction | event | payload |
//! |---|---|---|
//! | client → server | `room` | a room name, a string: take a seat there (leaving any other room) |
//! | server → that client | `result` | `"failed"`: the room already holds two members |
//! | client → server | `chat message` | a string: a line for the room |
//! | server → everyone in the room, sender included | `chat message` | the same string |
//!
//! A request over the member's message rate is refused with an `error` event; too many
//! refused in a row: the `error` event, then the socket is disconnected. A connection
//! over the connection limits is refused at the HTTP layer (see `crate::http`).
//!
//! Every socket joins the lobby when it connects (it receives `update`s before it names
//! itself, as with the original server, even if it only ever uses the rooms) and leaves
//! it when it disconnects; it is counted as a member, and announced, from its first
//! `newUser` on only.
//!
//! Event handlers run inline, in the order the socket's packets arrive: socketioxide
//! spawns one task per event for `async` handlers, which may run a socket's second line
//! before its first. The handlers here implement socketioxide's handler traits directly
//! so that nothing is spawned and nothing is reordered. They are registered, and the
//! socket joins the lobby, in the namespace's connect *middleware*: socketioxide sends
//! the connect packet (`40`) after its middlewares and before its connect handler, and a
//! client may emit the moment `40` arrives (the official client sends what it buffered).
//!
//! The parts: [`wire`] (the events' payloads, the `update` packet encoded once per
//! delivery), [`outbox`] (a socket as the lobby's outbox and a room's seat), [`handlers`]
//! (the connect, event and disconnect handlers, run inline).

mod handlers;
mod outbox;
mod wire;

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, SEC_WEBSOCKET_KEY};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware;
use socketioxide::{ParserConfig, SocketIo};

use crate::lobby::Lobby;
use crate::lobby::presence::SharedMemberList;
use handlers::OnConnect;
pub(crate) use wire::update_args;

/// The chunk in which a Socket.IO WebSocket connection reads (socketioxide's default is
/// 4 KiB). A chat client's frames are a few hundred bytes, and this buffer is kept for
/// as long as the member is connected, so it is a large share of an idle member's memory;
/// a larger frame is still read whole, in several chunks (a 1 KiB line in two or three
/// reads: members send far less than they are sent).
const WS_READ_BUFFER_BYTES: usize = 512;

/// The Engine.IO settings of the Socket.IO endpoint.
pub(crate) struct Engine {
    /// Heartbeat interval.
    pub(crate) ping_interval: Duration,
    /// Heartbeat timeout.
    pub(crate) ping_timeout: Duration,
    /// Largest Engine.IO payload, WebSocket message and WebSocket frame, in bytes
    /// (`max_payload` alone applies to long-polling only), and the most a socket's
    /// binary attachments may hold in all while their packet is incomplete.
    pub(crate) max_payload_bytes: u64,
    /// How long a binary packet's attachments may take to arrive (`--stall-timeout-ms`);
    /// `None`: no limit.
    pub(crate) stall_timeout: Option<Duration>,
    /// How long a session may stay without connecting to a namespace
    /// (`--header-timeout-ms`: a client sends `40` as soon as it has its session);
    /// `None`: socketioxide's default, 45 s. The session holds its place under the
    /// connection limits until then (`crate::http::sessions`).
    pub(crate) connect_timeout: Option<Duration>,
    /// Whether a socket keeps all of its first request's headers for as long as it
    /// lives (the admin UI shows them); otherwise only those the engine reads
    /// ([`own_head`]).
    pub(crate) keep_headers: bool,
}

/// The most binary attachments one Socket.IO packet may announce. The chat carries no
/// binary data; socketioxide's default, 10,000, lets a client make a socket buffer
/// thousands of empty attachments (each an entry of its own) outside the byte limit.
/// A packet announcing more is refused by closing the socket, before any is buffered.
pub(crate) const MAX_ATTACHMENTS: usize = 16;

/// The Socket.IO endpoint (the routes of `/socket.io/`) with the lobby chat and the rooms
/// on its `/` namespace, and its handle (to close every socket at shutdown). Each
/// socket's queue holds `--outbox-messages` packets (the backstop of the lobby's
/// slow-consumer rule, `crate::lobby::backlog`).
pub(crate) fn endpoint(lobby: &Lobby, engine: Engine) -> (Router<Lobby>, SocketIo) {
    let payload = usize::try_from(engine.max_payload_bytes).unwrap_or(usize::MAX);
    // A binary packet's attachments are buffered until the last one arrives: at most
    // the payload limit in all (socketioxide's default is 10 MB a socket), closing the
    // socket past it, or past the stall timeout.
    let parser = ParserConfig::common()
        .max_incoming_binary_buf_size(payload)
        .max_incoming_binaries(MAX_ATTACHMENTS)
        .packet_completion_timeout(engine.stall_timeout.unwrap_or(Duration::MAX));
    let mut builder = SocketIo::builder().with_parser(parser);
    if let Some(timeout) = engine.connect_timeout {
        builder = builder.connect_timeout(timeout);
    }
    let (service, io) = builder
        .ping_interval(engine.ping_interval)
        .ping_timeout(engine.ping_timeout)
        .max_payload(engine.max_payload_bytes)
        .ws_max_message_size(payload)
        .ws_max_frame_size(payload)
        .max_buffer_size(lobby.limits().outbox_messages)
        .ws_read_buffer_size(WS_READ_BUFFER_BYTES)
        .build_svc();
    io.ns(
        "/",
        OnConnect {
            lobby: lobby.clone(),
            members: SharedMemberList::default(),
        },
    );
    let routes = Router::new()
        .route_service("/socket.io/", service.clone())
        .route_service("/socket.io", service)
        .layer(middleware::map_request_with_state(
            engine.keep_headers,
            own_head,
        ));
    (routes, io)
}

/// The request headers Engine.IO reads: a long-polling POST's `Content-Type` (how its
/// payload is encoded) and a WebSocket upgrade's `Sec-WebSocket-Key` (its answer). The
/// checks before the endpoint (origins, the connection limits) have read the rest.
const ENGINE_HEADERS: [HeaderName; 2] = [CONTENT_TYPE, SEC_WEBSOCKET_KEY];

/// Gives a Socket.IO request its own copy of its URI and of the headers kept: all of
/// them with `keep_all` (`--admin-*`: the admin UI shows them), else only
/// [`ENGINE_HEADERS`].
///
/// socketioxide keeps a socket's first request for as long as the socket lives. hyper
/// parses its head as slices of the connection's read buffer (8 KiB): without the copy,
/// every connected member would keep that whole buffer alive for a few hundred bytes of
/// head; and the header map of a browser's request (a dozen headers, cookies) is a
/// kilobyte or more of each member's memory that nothing reads after the handshake.
async fn own_head(
    State(keep_all): State<bool>,
    mut request: axum::extract::Request,
) -> axum::extract::Request {
    let uri = request.uri().to_string();
    if let Ok(uri) = axum::http::Uri::try_from(uri) {
        *request.uri_mut() = uri;
    }
    let own = |value: &HeaderValue| {
        let mut own = HeaderValue::from_bytes(value.as_bytes()).ok()?;
        own.set_sensitive(value.is_sensitive());
        Some(own)
    };
    if keep_all {
        for value in request.headers_mut().values_mut() {
            if let Some(copy) = own(value) {
                *value = copy;
            }
        }
    } else {
        let headers = request.headers();
        let kept: Vec<(HeaderName, HeaderValue)> = ENGINE_HEADERS
            .iter()
            .filter_map(|name| Some((name.clone(), own(headers.get(name)?)?)))
            .collect();
        // Sized to what it holds: a map grown from empty reserves room for six.
        let mut fewer = HeaderMap::with_capacity(kept.len());
        fewer.extend(kept);
        *request.headers_mut() = fewer;
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lobby::Limits;
    use axum::body::Body;
    use axum::extract::Request;
    use tower::ServiceExt;

    const WITHIN: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_session_is_opened_with_the_engines_settings() {
        let lobby = Lobby::new(Limits::default());
        let engine = Engine {
            ping_interval: Duration::from_millis(25_000),
            ping_timeout: Duration::from_millis(20_000),
            max_payload_bytes: 1_000_000,
            stall_timeout: None,
            connect_timeout: None,
            keep_headers: false,
        };
        let (routes, _io) = endpoint(&lobby, engine);
        let open = Request::get("/socket.io/?EIO=4&transport=polling")
            .body(Body::empty())
            .unwrap();
        let response = tokio::time::timeout(WITHIN, routes.with_state(lobby).oneshot(open))
            .await
            .expect("answered")
            .unwrap();
        assert_eq!(response.status(), axum::http::StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = std::str::from_utf8(&body).unwrap();
        let handshake: serde_json::Value =
            serde_json::from_str(body.strip_prefix('0').expect("an open packet")).unwrap();
        assert_eq!(handshake["pingInterval"], 25_000);
        assert_eq!(handshake["pingTimeout"], 20_000);
        assert_eq!(handshake["maxPayload"], 1_000_000);
        assert_eq!(handshake["upgrades"], serde_json::json!(["websocket"]));
    }

    #[tokio::test]
    async fn with_the_admin_ui_a_requests_head_is_copied_whole() {
        let request = Request::get("/socket.io/?EIO=4&transport=websocket&sid=abc")
            .header("origin", "http://localhost:8000")
            .header("cookie", "io=abc")
            .body(Body::empty())
            .unwrap();
        let (uri, headers) = (request.uri().clone(), request.headers().clone());
        let owned = own_head(State(true), request).await;
        assert_eq!(owned.uri(), &uri);
        assert_eq!(owned.headers(), &headers);
    }

    #[tokio::test]
    async fn without_it_only_the_headers_the_engine_reads_are_kept() {
        let upgrade = Request::get("/socket.io/?EIO=4&transport=websocket")
            .header("host", "localhost:8000")
            .header("origin", "http://localhost:8000")
            .header("upgrade", "websocket")
            .header("connection", "Upgrade")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-version", "13")
            .header("user-agent", "Mozilla/5.0")
            .body(Body::empty())
            .unwrap();
        let uri = upgrade.uri().clone();
        let owned = own_head(State(false), upgrade).await;
        assert_eq!(owned.uri(), &uri);
        let kept: Vec<(&str, &str)> = owned
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str(), value.to_str().unwrap()))
            .collect();
        assert_eq!(kept, [("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")]);

        let post = Request::post("/socket.io/?EIO=4&transport=polling&sid=abc")
            .header("content-type", "text/plain;charset=UTF-8")
            .header("cookie", "io=abc")
            .body(Body::empty())
            .unwrap();
        let owned = own_head(State(false), post).await;
        let kept: Vec<&str> = owned.headers().keys().map(|name| name.as_str()).collect();
        assert_eq!(kept, ["content-type"]);
    }
}
