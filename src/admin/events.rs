//! The development mode (`--admin-mode development`): every request a member of this
//! node sends is an `event_received` `(nsp, id, [event, ...args], time)`, every lobby
//! event it is sent an `event_sent` of the same shape, as the Node `instrument()` sends
//! them (its `onAny`/`onAnyOutgoing`).
//!
//! | protocol | received | sent |
//! |---|---|---|
//! | Socket.IO | the event and its arguments (`["message", {type, message}]`, `["newUser", "ann"]`, …) | `["update", {…}]` |
//! | WebSocket | `["message", <the frame's JSON>]` (a frame that is not JSON: its text) | `["message", <the frame's JSON>]` |
//! | TCP JSON | `["message", {type, content}]` | `["message", "<the line>"]` |
//! | TCP text | `["message", "<the chunk>"]` | `["message", "<the chunk or line>"]` |
//!
//! The lobby's tap (`crate::lobby::tap`) hands over one message per request and one per
//! event fanned out; the receivers of an event, every member of this node but its sender
//! where its protocol does not echo, are found here, from the members listed at the
//! time. Replies to one member (errors, acks, room lines) are not shown, nor other
//! nodes' members' traffic.

use std::collections::HashMap;
use std::time::SystemTime;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Admin;
use super::sockets::Sockets;
use crate::lobby::Delivery;
use crate::lobby::tap::Tapped;
use crate::protocol::Protocol;
use crate::protocols::{socketio, tcp_json, tcp_text, websocket};

/// How many requests and events wait for the admin namespace at most; past that they
/// are dropped (and counted).
pub(super) const TAP_QUEUE: usize = 4096;

/// How many are sent per look at the members.
const BATCH: usize = 256;

impl Admin {
    /// Sends the admins what the lobby's tap hands over, until `stop`.
    pub(super) async fn relay_tapped(
        self,
        mut tapped: mpsc::Receiver<Tapped>,
        stop: CancellationToken,
    ) {
        let mut batch = Vec::with_capacity(BATCH);
        let mut dropped = 0;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                taken = tapped.recv_many(&mut batch, BATCH) => if taken == 0 { return },
            }
            let sockets = Sockets::now(&self.lobby, &self.io);
            let ids: HashMap<u64, &str> = sockets
                .0
                .values()
                .map(|socket| (socket.member, socket.id.as_str()))
                .collect();
            let time = json!(crate::lobby::presence::rfc3339(SystemTime::now()));
            for tapped in batch.drain(..) {
                match tapped {
                    Tapped::Received { member, args } => {
                        let Some(id) = ids.get(&member) else { continue };
                        let event = vec![json!("/"), json!(id), args, time.clone()];
                        self.broadcast("event_received", event).await;
                    }
                    Tapped::Sent { delivery, from } => {
                        let mut args: [Option<Value>; Protocol::ALL.len()] = Default::default();
                        for socket in sockets.0.values() {
                            let own = from == Some(socket.member);
                            if own && !socket.protocol.echoes_own_lines() {
                                continue;
                            }
                            let args = args[socket.protocol.index()]
                                .get_or_insert_with(|| sent_args(&delivery, socket.protocol))
                                .clone();
                            let event = vec![json!("/"), json!(socket.id), args, time.clone()];
                            self.broadcast("event_sent", event).await;
                        }
                    }
                }
            }
            let now = self.lobby.tap_dropped();
            if now > dropped {
                tracing::warn!(
                    dropped = now - dropped,
                    "admin UI development mode: requests and events not shown (its queue was full)"
                );
                dropped = now;
            }
        }
    }
}

/// What a member of `protocol` is sent for `delivery`, as `event_sent` shows it.
fn sent_args(delivery: &Delivery, protocol: Protocol) -> Value {
    let text = |bytes: bytes::Bytes| Value::from(String::from_utf8_lossy(&bytes).into_owned());
    match protocol {
        Protocol::SocketIo => socketio::update_args(delivery),
        Protocol::WebSocket => {
            let frame = delivery.encoded(protocol, websocket::encode);
            let sent = serde_json::from_slice(&frame).unwrap_or_else(|_| text(frame));
            json!(["message", sent])
        }
        Protocol::TcpJson => json!([
            "message",
            text(delivery.encoded(protocol, tcp_json::encode))
        ]),
        Protocol::TcpText => json!([
            "message",
            text(delivery.encoded(protocol, tcp_text::encode))
        ]),
    }
}
