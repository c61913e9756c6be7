//! What the lobby sends its members: an [`Event`], wrapped once per fan-out in a
//! [`Delivery`] that every receiver shares (each protocol's encoding is made once, by
//! its first receiver), offered to each member's [`Outbox`].

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
// A Socket.IO packet as socketioxide's parser encodes it (`crate::protocols::socketio`
// makes it): named here in socketioxide's own type, so the lobby imports no protocol.
use socketioxide::handler::Value as EncodedPacket;

pub use crate::chat::Event;
use crate::protocol::Protocol;

/// An [`Event`] on its way to every member, with each protocol's encoding made once,
/// by the first receiver of that protocol, and shared by the rest.
#[derive(Debug)]
pub(crate) struct Delivery {
    event: Event,
    encoded: [OnceLock<Bytes>; Protocol::ALL.len()],
    /// The WebSocket encoding for browser pages (escaped), besides the one for programs.
    for_page: OnceLock<Bytes>,
    /// The event as a Socket.IO packet, in socketioxide's type: each receiver's socket
    /// takes a clone of it (its `Bytes`), not a copy.
    socketio: OnceLock<EncodedPacket>,
    /// The history id of the event's chat line, set once the log has stored it (before
    /// the delivery is fanned out, so that every encoding can carry it).
    line_id: OnceLock<i64>,
}

impl Delivery {
    pub(crate) fn new(event: Event) -> Arc<Self> {
        Arc::new(Self {
            event,
            encoded: Default::default(),
            for_page: OnceLock::new(),
            socketio: OnceLock::new(),
            line_id: OnceLock::new(),
        })
    }

    /// A delivery of a stored chat line with history id `id`.
    pub(crate) fn stored(event: Event, id: i64) -> Arc<Self> {
        let delivery = Self::new(event);
        delivery.set_line_id(id);
        delivery
    }

    /// Records the history id of the event's line; before any receiver encodes it.
    pub(crate) fn set_line_id(&self, id: i64) {
        if self.line_id.set(id).is_err() {
            tracing::error!(id, "a delivery's line id was set twice");
        }
    }

    /// The history id of the event's chat line, once the log has stored it.
    pub(crate) fn line_id(&self) -> Option<i64> {
        self.line_id.get().copied()
    }

    /// The event.
    pub(crate) fn event(&self) -> &Event {
        &self.event
    }

    /// The event in `protocol`'s wire format: `encode` runs once per delivery and
    /// protocol, every other receiver shares its bytes.
    pub(crate) fn encoded(
        &self,
        protocol: Protocol,
        encode: impl FnOnce(&Event) -> Bytes,
    ) -> Bytes {
        self.encoded[protocol.index()]
            .get_or_init(|| encode(&self.event))
            .clone()
    }

    /// The event as a WebSocket page sees it (see `crate::protocols::websocket`):
    /// `encode` runs once per delivery, every other such receiver shares its bytes.
    pub(crate) fn encoded_for_page(&self, encode: impl FnOnce(&Event) -> Bytes) -> Bytes {
        self.for_page.get_or_init(|| encode(&self.event)).clone()
    }

    /// The length of the event's Socket.IO packet, once a receiver has encoded it (0
    /// before).
    pub(crate) fn socketio_len(&self) -> usize {
        self.socketio.get().map_or(0, EncodedPacket::len)
    }

    /// The event as a Socket.IO packet: `encode` runs once per delivery (with the
    /// history id of its line, if it was stored), every other receiver shares it.
    pub(crate) fn socketio_packet(
        &self,
        encode: impl FnOnce(&Event, Option<i64>) -> EncodedPacket,
    ) -> &EncodedPacket {
        self.socketio
            .get_or_init(|| encode(&self.event, self.line_id()))
    }
}

/// What an event weighs in a member's backlog besides its name and text, whatever the
/// protocol: its framing and fields (a Socket.IO `update` adds about 60 bytes).
const FRAMING_BYTES: usize = 64;

impl Delivery {
    /// What the event weighs in a member's backlog (`--outbox-bytes`): its name and text
    /// in UTF-8 (a TCP text chunk: its bytes) plus [`FRAMING_BYTES`], for every protocol.
    pub(crate) fn weight(&self) -> usize {
        let content = match &self.event {
            Event::Joined { name, .. } | Event::Left { name, .. } => name.len(),
            Event::Message {
                name, text, raw, ..
            } => {
                name.len()
                    + raw
                        .as_ref()
                        .map_or(text.len(), |raw| raw.len().max(text.len()))
            }
        };
        content + FRAMING_BYTES
    }
}

/// Why a member's [`Outbox`] did not take an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutboxRefusal {
    /// The member's queue is full: it does not keep up and will be cut off.
    Full,
    /// The member's connection is closing; its [`Member`] guard will leave on its own.
    Closed,
}

/// A member's outgoing side, implemented by each protocol.
pub(crate) trait Outbox: Send + Sync + 'static {
    /// Queues `event` for the member. Must not block or wait: it is called with the
    /// lobby's lock held.
    fn offer(&self, delivery: &Arc<Delivery>) -> Result<(), OutboxRefusal>;

    /// How many messages wait in the member's queue, not yet taken by its connection's
    /// writer (the slow-consumer rule, `super::backlog`). Called with the lobby's lock
    /// held.
    fn queued(&self) -> usize;

    /// Ends the member's connection because it did not keep up. Called without the lobby's
    /// lock, after the member has been removed and its leave announced.
    fn cut_off(&self);
}
