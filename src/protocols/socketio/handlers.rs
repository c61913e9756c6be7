//! The handlers of the `/` namespace, run inline in the order a socket's packets arrive
//! (see the module doc of `crate::protocols::socketio`): the connect middleware that
//! joins the lobby and registers the rest, one handler per event, and the disconnect
//! handler.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::handler::{ConnectHandler, DisconnectHandler, MessageHandler, Value};
use socketioxide::socket::{DisconnectReason, Socket};
use socketioxide::{SendError, SocketError};
use tokio_util::sync::CancellationToken;

use super::outbox::SocketOutbox;
use super::wire::{ChatLine, Malformed, Stored, send_error};
use crate::lobby::presence::SharedMemberList;
use crate::lobby::{Lobby, LobbyError, Member};
use crate::protocol::Protocol;
use crate::refusals::{Refusal, Who};
use crate::telemetry;

/// Connect handler of the `/` namespace. Its middleware joins the lobby and registers the
/// event handlers before the connect packet is sent (see the module doc).
#[derive(Clone)]
pub(super) struct OnConnect {
    pub(super) lobby: Lobby,
    pub(super) members: SharedMemberList,
}

/// Marker type for socketioxide's handler traits implemented here.
pub(super) struct Inline;

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

/// A refused request: what the sender is told (in an `error` event), and whether the
/// socket is disconnected once it is told.
type RequestRefusal = Refusal<String>;

impl From<LobbyError> for RequestRefusal {
    fn from(e: LobbyError) -> Self {
        Self {
            reason: e.reason(),
            why: e.to_string(),
            disconnects: e.disconnects(),
        }
    }
}

impl From<Malformed> for RequestRefusal {
    fn from(e: Malformed) -> Self {
        Self::new("malformed", e.to_string())
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
        received(&member, &data, ack_id);
        if let Err(refusal) = (self.0)(&socket, &member, data, ack_id) {
            let who = Who::Member(member.id(), None);
            member
                .refusals()
                .report(Protocol::SocketIo, who, refusal.by_ref());
            send_error(&socket, &refusal.why);
            if refusal.disconnects
                && let Err(e) = SocketRef::from(socket.clone()).disconnect()
            {
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
    fn call(&self, socket: Arc<Socket>, data: Value, ack_id: Option<i64>) {
        if let Some(member) = socket.extensions.get::<Arc<Member>>() {
            received(&member, &data, ack_id);
        }
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

/// Counts a request a member's socket sent (its bytes: its Socket.IO packet, as the
/// Node `instrument()` counts them: the type, the ack id and the data, `[event,
/// ...args]` as the common parser keeps it), and hands it to the admin UI's tap (always
/// an array: the UI takes the event's name from it; a binary packet's is not shown).
fn received(member: &Member, data: &Value, ack: Option<i64>) {
    let ack_digits = ack.map_or(0, |id| {
        id.checked_ilog10().map_or(1, |digits| digits as usize + 1)
    });
    telemetry::TRAFFIC.received(1 + ack_digits + data.len());
    member.tap_received(|| {
        data.as_str()
            .and_then(|json| serde_json::from_str(json).ok())
            .unwrap_or_else(|| serde_json::json!([]))
    });
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
