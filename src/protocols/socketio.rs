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

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Router;
use axum::http::HeaderValue;
use axum::middleware;
use serde::{Deserialize, Serialize};
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::handler::{ConnectHandler, DisconnectHandler, MessageHandler, Value};
use socketioxide::socket::{DisconnectReason, Socket};
use socketioxide::{ParserConfig, SocketIo};
use socketioxide::{SendError, SocketError};
use socketioxide_core::packet::Packet;
use socketioxide_core::parser::Parse;
use socketioxide_parser_common::CommonParser;

use tokio_util::sync::CancellationToken;

use crate::lobby::presence::SharedMemberList;
use crate::lobby::rooms::{RoomError, Seat};
use crate::lobby::{Delivery, Event, Lobby, LobbyError, Member, Outbox, OutboxRefusal};
use crate::protocol::Protocol;
use crate::refusals::Who;

/// The `name` of server announcements, as the original server sent it (no member is
/// given it: see `crate::lobby::names`).
const SERVER_NAME: &str = crate::lobby::names::SERVER;

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
        .layer(middleware::map_request(detach_head));
    (routes, io)
}

/// Gives a Socket.IO request its own copy of its URI and header values.
///
/// hyper parses them as slices of the connection's read buffer (8 KiB), and socketioxide
/// keeps a socket's first request for as long as the socket lives: without the copy, every
/// connected member would keep that whole buffer alive for a few hundred bytes of head.
async fn detach_head(mut request: axum::extract::Request) -> axum::extract::Request {
    let uri = request.uri().to_string();
    if let Ok(uri) = axum::http::Uri::try_from(uri) {
        *request.uri_mut() = uri;
    }
    for value in request.headers_mut().values_mut() {
        if let Ok(mut own) = HeaderValue::from_bytes(value.as_bytes()) {
            own.set_sensitive(value.is_sensitive());
            *value = own;
        }
    }
    request
}

/// A Socket.IO packet as socketioxide's parser encodes it (the text of an event packet,
/// `2["update",{…}]`): what [`Socket::send_raw`] sends as it is.
pub(crate) type EncodedPacket = Value;

/// The `update` event packet for `event` (with `id`, a stored line's history id, on a
/// chat line), encoded once per delivery and sent to every Socket.IO receiver as it is.
///
/// Encoded as socketioxide's `emit` would encode it for each socket (its default parser,
/// the `/` namespace, no ack): the packet of a Socket.IO v4 or v5 client, over Engine.IO
/// v3 or v4, is the same; the engine frames it for each transport.
fn update(event: &Event, line_id: Option<i64>) -> EncodedPacket {
    let (kind, name, message): (_, &str, Cow<str>) = match event {
        Event::Joined { name, .. } => {
            let says = format!("{name}님이 접속하였습니다.");
            ("connect", SERVER_NAME, says.into())
        }
        Event::Left { name, .. } => {
            let says = format!("{name}님이 나가셨습니다.");
            ("disconnect", SERVER_NAME, says.into())
        }
        Event::Message { name, text, .. } => ("message", name, Cow::Borrowed(text)),
    };
    let update = Update {
        kind,
        name,
        message: &message,
        id: line_id,
    };
    // Strings only: serde_json has no way to fail on them.
    let data = CommonParser
        .encode_value(&update, Some("update"))
        .unwrap_or_else(|e| {
            tracing::error!("cannot encode an update: {e}");
            Value::Str("[\"update\",null]".into(), None)
        });
    CommonParser.encode(Packet::event("/", data))
}

/// What an `update` event carries.
#[derive(Serialize)]
struct Update<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    message: &'a str,
    /// A chat line's history id; absent when it was not stored (`--no-history`).
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
}

/// The acknowledgement of a `message` the client asked one for: the line's history id,
/// absent when it was not stored.
#[derive(Serialize)]
struct Stored {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
}

/// What an `error` event carries.
#[derive(Serialize)]
struct ErrorReply<'a> {
    message: &'a str,
}

/// The `message` payload. Other fields (`type`, a client-claimed `name`) are ignored.
#[derive(Deserialize)]
struct ChatLine {
    message: String,
}

/// Why a Socket.IO request was refused, beyond what the lobby refuses.
#[derive(Debug, thiserror::Error)]
enum Malformed {
    #[error("newUser expects your name as a string")]
    Name,
    #[error("message expects an object {{type: \"message\", message: \"<text>\"}}")]
    Line,
    #[error("room expects a room name as a string")]
    Room,
    #[error("chat message expects a string")]
    RoomLine,
}

/// A lobby member's outbox and room seat: the socket's own bounded queue, filled with
/// `try_send` (socketioxide's `emit` never waits; it fails when the queue is full).
///
/// It holds the socket weakly: the socket holds the member (in its extensions), the
/// member the lobby, and the lobby this outbox, so a strong reference would be a cycle
/// that keeps a socket socketioxide has let go of (say, one whose `40` could not be
/// sent) in the lobby for ever.
#[derive(Clone)]
struct SocketOutbox {
    socket: Weak<Socket>,
}

impl SocketOutbox {
    fn new(socket: &Arc<Socket>) -> Self {
        Self {
            socket: Arc::downgrade(socket),
        }
    }

    fn emit<T: Serialize + ?Sized>(&self, event: &str, data: &T) -> Result<(), OutboxRefusal> {
        let Some(socket) = self.socket.upgrade() else {
            return Err(OutboxRefusal::Closed);
        };
        match socket.emit(event, data) {
            Ok(()) => Ok(()),
            Err(SendError::Socket(SocketError::InternalChannelFull)) => Err(OutboxRefusal::Full),
            Err(SendError::Socket(SocketError::Closed)) => Err(OutboxRefusal::Closed),
            Err(e) => {
                tracing::error!(socket = %socket.id, "cannot encode {event}: {e}");
                Err(OutboxRefusal::Closed)
            }
        }
    }
}

impl Outbox for SocketOutbox {
    /// Sends the delivery's `update` packet, encoded once for every receiver.
    fn offer(&self, delivery: &Arc<Delivery>) -> Result<(), OutboxRefusal> {
        let Some(socket) = self.socket.upgrade() else {
            return Err(OutboxRefusal::Closed);
        };
        if !socket.connected() {
            return Err(OutboxRefusal::Closed);
        }
        let packet = delivery.socketio_packet(update).clone();
        match socket.send_raw(packet) {
            Ok(()) => Ok(()),
            Err(SocketError::InternalChannelFull) => Err(OutboxRefusal::Full),
            Err(_) => Err(OutboxRefusal::Closed),
        }
    }

    fn queued(&self) -> usize {
        self.socket.upgrade().map_or(0, |socket| socket.queued())
    }

    fn cut_off(&self) {
        if !disconnect(&self.socket) {
            disconnect_when_room(self.socket.clone());
        }
    }
}

/// Disconnects a member's socket. False when its queue (full: the member is cut off as
/// a slow consumer) had no room for the disconnect packet.
fn disconnect(socket: &Weak<Socket>) -> bool {
    let Some(socket) = socket.upgrade() else {
        return true; // gone already
    };
    match SocketRef::from(socket.clone()).disconnect() {
        Ok(()) => true,
        Err(SocketError::InternalChannelFull) => {
            tracing::debug!(socket = %socket.id, "slow consumer's queue full: disconnect again soon");
            false
        }
        Err(e) => {
            tracing::warn!(socket = %socket.id, "slow consumer not disconnected: {e}");
            true
        }
    }
}

/// How often a member cut off as a slow consumer, whose queue had no room for the
/// disconnect packet, is disconnected again. Waiting for the heartbeat instead would
/// leave a client that catches up with its backlog before the next ping connected but
/// outside the lobby: it would answer the ping and hear nothing more.
const DISCONNECT_RETRY: Duration = Duration::from_millis(100);

/// Disconnects `socket` as soon as its queue has room for the disconnect packet (or
/// its connection ends first: a client that never reads again is closed by the
/// heartbeat, which finds the same queue full).
fn disconnect_when_room(socket: Weak<Socket>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no runtime to disconnect a slow consumer on: the heartbeat will");
        return;
    };
    runtime.spawn(async move {
        loop {
            tokio::time::sleep(DISCONNECT_RETRY).await;
            if disconnect(&socket) {
                return;
            }
        }
    });
}

impl Seat for SocketOutbox {
    fn offer_line(&self, line: &Arc<str>) -> Result<(), OutboxRefusal> {
        self.emit("chat message", &**line)
    }

    fn cut_off(&self) {
        Outbox::cut_off(self);
    }

    /// A full room: `result` `"failed"` (PROTOCOLS.md section 2); a line from a socket
    /// in no room: an `error` event, as any refusal.
    fn refused(&self, why: &RoomError) {
        let Some(socket) = self.socket.upgrade() else {
            return;
        };
        match why {
            RoomError::Full => {
                if let Err(e) = socket.emit("result", "failed") {
                    tracing::warn!(socket = %socket.id, "cannot send a room result: {e}");
                }
            }
            other => send_error(&socket, &other.to_string()),
        }
    }
}

/// Connect handler of the `/` namespace. Its middleware joins the lobby and registers the
/// event handlers before the connect packet is sent (see the module doc).
#[derive(Clone)]
struct OnConnect {
    lobby: Lobby,
    members: SharedMemberList,
}

/// Marker type for socketioxide's handler traits implemented here.
struct Inline;

impl ConnectHandler<socketioxide::adapter::LocalAdapter, Inline> for OnConnect {
    fn call_middleware<'a>(
        &'a self,
        socket: Arc<Socket>,
        _auth: &'a Option<Value>,
    ) -> Pin<Box<dyn Future<Output = MiddlewareResult> + Send + 'a>> {
        self.prepare(socket);
        Box::pin(std::future::ready(Ok(())))
    }

    fn call(&self, _socket: Arc<Socket>, _auth: Option<Value>) {
        // Everything was done in the middleware, before the client was told it is in.
    }
}

/// What socketioxide's connect middlewares return.
type MiddlewareResult = Result<(), Box<dyn std::fmt::Display + Send>>;

impl OnConnect {
    fn prepare(&self, socket: Arc<Socket>) {
        let from = socket
            .req_parts()
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|axum::extract::ConnectInfo(peer)| peer.ip());
        // A Socket.IO socket joins unnamed and unannounced: never refused here (its
        // `newUser` counts against its address's joins).
        let member = match self
            .lobby
            .join(Protocol::SocketIo, SocketOutbox::new(&socket), from)
        {
            Ok(member) => member,
            Err(e) => {
                tracing::error!(socket = %socket.id, "a socket refused a place in the lobby: {e}");
                return;
            }
        };
        socket.extensions.insert(Arc::new(member));
        socket.on("newUser", OnEvent(new_user));
        socket.on("message", OnEvent(message));
        socket.on("room", OnEvent(room));
        socket.on("chat message", OnEvent(room_line));
        socket.on(
            "members",
            SubscribeMembers {
                lobby: self.lobby.clone(),
                list: self.members.clone(),
            },
        );
        socket.on_disconnect(OnDisconnect);
    }
}

/// The disconnect handler, run inline where socketioxide lets go of the socket (an
/// `async` one would be spawned as a task, which needs a runtime on the calling thread).
struct OnDisconnect;

impl DisconnectHandler<socketioxide::adapter::LocalAdapter, Inline> for OnDisconnect {
    fn call_with_defer(
        &self,
        socket: Arc<Socket>,
        _reason: DisconnectReason,
        defer: fn(Arc<Socket>),
    ) {
        // Dropping the member leaves the lobby now, not once socketioxide lets go of the
        // socket.
        socket.extensions.remove::<Arc<Member>>();
        if let Some(PresenceWatch(watch)) = socket.extensions.remove::<PresenceWatch>() {
            watch.cancel();
        }
        defer(socket);
    }
}

/// A refused request: its metric label and what the sender is told.
struct RequestRefusal {
    reason: &'static str,
    why: String,
    /// Disconnect the socket once it is told why.
    disconnect: bool,
}

impl From<LobbyError> for RequestRefusal {
    fn from(e: LobbyError) -> Self {
        Self {
            reason: e.reason(),
            why: e.to_string(),
            disconnect: e.disconnects(),
        }
    }
}

impl From<Malformed> for RequestRefusal {
    fn from(e: Malformed) -> Self {
        Self {
            reason: "malformed",
            why: e.to_string(),
            disconnect: false,
        }
    }
}

/// An event handler run inline (see the module doc); it gets the event's ack id, if the
/// client asked for an acknowledgement.
type Handler = fn(&Arc<Socket>, &Member, Value, Option<i64>) -> Result<(), RequestRefusal>;

/// An event handler run inline (see the module doc).
struct OnEvent(Handler);

impl MessageHandler<socketioxide::adapter::LocalAdapter, Inline> for OnEvent {
    fn call(&self, socket: Arc<Socket>, data: Value, ack_id: Option<i64>) {
        let Some(member) = socket.extensions.get::<Arc<Member>>() else {
            return; // disconnecting
        };
        if let Err(RequestRefusal {
            reason,
            why,
            disconnect,
        }) = (self.0)(&socket, &member, data, ack_id)
        {
            let who = Who::Member(member.id(), None);
            member
                .refusals()
                .report(Protocol::SocketIo, who, reason, &why, disconnect);
            send_error(&socket, &why);
            if disconnect && let Err(e) = SocketRef::from(socket.clone()).disconnect() {
                tracing::warn!(socket = %socket.id, "cannot disconnect a flooding socket: {e}");
            }
        }
    }
}

/// A socket's subscription to the member list: cancelled when it disconnects.
#[derive(Clone)]
struct PresenceWatch(CancellationToken);

/// The `members` handler: sends the member list now and after every change, until the
/// socket disconnects. A list that finds the socket's queue full is skipped: the next
/// change sends the whole list again.
struct SubscribeMembers {
    lobby: Lobby,
    list: SharedMemberList,
}

impl MessageHandler<socketioxide::adapter::LocalAdapter, Inline> for SubscribeMembers {
    fn call(&self, socket: Arc<Socket>, _data: Value, _ack_id: Option<i64>) {
        if socket.extensions.get::<PresenceWatch>().is_some() {
            return; // subscribed already
        }
        let stop = CancellationToken::new();
        socket.extensions.insert(PresenceWatch(stop.clone()));
        let (lobby, list, socket) = (
            self.lobby.clone(),
            self.list.clone(),
            SocketRef::from(socket),
        );
        let mut changes = lobby.watch_presence();
        tokio::spawn(async move {
            loop {
                let version = *changes.borrow_and_update();
                let members = match list.get(&lobby, version) {
                    Ok(members) => members,
                    Err(e) => {
                        tracing::error!("cannot encode the member list: {e}");
                        return;
                    }
                };
                match socket.emit("members", &*members) {
                    Ok(()) => {}
                    Err(SendError::Socket(SocketError::InternalChannelFull)) => {
                        tracing::debug!(socket = %socket.id, "member list skipped: queue full");
                    }
                    Err(e) => {
                        tracing::debug!(socket = %socket.id, "member list not sent: {e}");
                        return;
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    changed = changes.changed() => if changed.is_err() { return },
                }
            }
        });
    }
}

/// Sends the socket an `error` event `{message}`: a refusal's reason, or the name it was
/// given instead of the one it asked for.
fn send_error(socket: &Arc<Socket>, message: &str) {
    if let Err(e) = socket.emit("error", &ErrorReply { message }) {
        // Its queue is full (it will be cut off as a slow consumer at the next delivery)
        // or closing: what it was told is logged (and a refusal counted) already, and a
        // line per unsent reply would flood the log under overload.
        tracing::debug!(socket = %socket.id, "cannot send an error event: {e}");
    }
}

fn decode<T: serde::de::DeserializeOwned>(socket: &Arc<Socket>, mut data: Value) -> Option<T> {
    use socketioxide::handler::FromMessageParts;
    Data::<T>::from_message_parts(socket, &mut data, &None)
        .ok()
        .map(|Data(value)| value)
}

fn new_user(
    socket: &Arc<Socket>,
    member: &Member,
    data: Value,
    _ack: Option<i64>,
) -> Result<(), RequestRefusal> {
    let raw: String = decode(socket, data).ok_or(Malformed::Name)?;
    // Told before its join is announced, with or without a history in between.
    member.set_name_telling(&raw, |taken| send_error(socket, &taken.to_string()))?;
    Ok(())
}

fn message(
    socket: &Arc<Socket>,
    member: &Member,
    mut data: Value,
    ack: Option<i64>,
) -> Result<(), RequestRefusal> {
    use socketioxide::handler::FromMessageParts;
    let Ok(ack_sender) = AckSender::from_message_parts(socket, &mut data, &ack);
    let line: ChatLine = decode(socket, data).ok_or(Malformed::Line)?;
    if ack.is_none() {
        return Ok(member.say(&line.message)?);
    }
    // Our page asks, to know which stored line is its own (Socket.IO does not echo).
    let ack = ack_sender;
    let stored = move |id| {
        if let Err(e) = ack.send(&Stored { id }) {
            // Its queue is full (it is being cut off) or closing.
            tracing::debug!("cannot acknowledge a line: {e}");
        }
    };
    Ok(member.say_then(&line.message, Box::new(stored))?)
}

fn room(
    socket: &Arc<Socket>,
    member: &Member,
    data: Value,
    _ack: Option<i64>,
) -> Result<(), RequestRefusal> {
    let name: String = decode(socket, data).ok_or(Malformed::Room)?;
    member.take_seat(&name, SocketOutbox::new(socket))?;
    Ok(())
}

fn room_line(
    socket: &Arc<Socket>,
    member: &Member,
    data: Value,
    _ack: Option<i64>,
) -> Result<(), RequestRefusal> {
    let line: String = decode(socket, data).ok_or(Malformed::RoomLine)?;
    Ok(member.say_in_room(&line, SocketOutbox::new(socket))?)
}
