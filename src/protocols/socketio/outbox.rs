//! A Socket.IO socket as the lobby sees it: the member's outbox (the socket's own
//! bounded queue, filled with `try_send`) and its seat in a two-person room.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::Serialize;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Socket;
use socketioxide::{SendError, SocketError};

use super::wire::send_error;
use super::wire::update;
use crate::lobby::rooms::{RoomError, Seat};
use crate::lobby::{Delivery, Outbox, OutboxRefusal};

/// A lobby member's outbox and room seat: the socket's own bounded queue, filled with
/// `try_send` (socketioxide's `emit` never waits; it fails when the queue is full).
///
/// It holds the socket weakly: the socket holds the member (in its extensions), the
/// member the lobby, and the lobby this outbox, so a strong reference would be a cycle
/// that keeps a socket socketioxide has let go of (say, one whose `40` could not be
/// sent) in the lobby for ever.
#[derive(Clone)]
pub(super) struct SocketOutbox {
    socket: Weak<Socket>,
}

impl SocketOutbox {
    pub(super) fn new(socket: &Arc<Socket>) -> Self {
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
