//! The seam between the lobby and how its events travel: one trait, [`Broker`], with two
//! implementations, in the style of socketioxide's `CoreAdapter` and centrifuge's
//! `Broker` and `PresenceManager`:
//! - [`local::LocalBroker`], the single node: events go out at once, or, with a history,
//!   through the SQLite [`sqlite::Sequencer`] (committed first, relayed in commit order);
//!   presence is the lobby's own table; seats are counted here.
//! - [`redis::RedisBroker`], a cluster node (`--redis-url`): every event goes through the
//!   cluster's log in Redis and is relayed as every node reads it back, in its one
//!   order; presence, member ids and seats are the cluster's.
//!
//! The lobby holds one `Box<dyn Broker>` and never asks which it has. The way back up is
//! one named interface, [`BrokerHandler`], which the lobby implements and hands to the
//! broker when it starts it: committed batches, room lines, answers to room requests,
//! the loss of a cluster node's place, and, for a cluster, what an item says (to append
//! it) and the item for what another node said. This module never imports the lobby:
//! what both speak is in [`crate::chat`].
//!
//! Relay order is the broker's order, and nothing is relayed that the broker has not
//! accepted. The hot path stays the lobby's: one dyn call per accepted event, then the
//! lobby's own fan-out (no call per receiver).

mod error;
mod line;
pub(crate) mod local;
pub mod redis;
pub(crate) mod seats;
pub mod sqlite;

use std::sync::Arc;

use crate::chat::{Event, Someone};

pub(crate) use error::HistoryError;
pub use line::{AppendRefusal, QueueFull};
pub(crate) use line::{
    Committed, DEFAULT_HISTORY_QUEUE_LINES, DEFAULT_PAGE_LINES, MAX_PAGE_LINES, NewLine, Queued,
    StoredLine,
};
pub(crate) use sqlite::{Sequencer, Store};

/// How the lobby's events travel, who is present, and who sits where: the seam (see the
/// module doc). `T` is the lobby's item (an event on its way), `S` a seated member's
/// outgoing side. Every method is called without waiting on anything but a short lock.
pub(crate) trait Broker<T, S>: Send + Sync + 'static {
    /// Sends `queued` on its way, called under the lobby's lock (so the broker's order
    /// is the lobby's). Returns the item when it may be relayed at once (nothing to pass
    /// through first), else `None`: it comes back through
    /// [`BrokerHandler::deliver`]. Refused only for a chat line, when the broker cannot
    /// take more lines now or cannot reach what it depends on.
    fn publish(&self, queued: Queued<T>) -> Result<Option<T>, AppendRefusal>;

    /// The leave of a member found too slow while relaying: returned to be relayed here
    /// right after the batch, or taken (`None`) to go the way [`Broker::publish`] goes
    /// (a cluster: through its log, so that every node hears it in its place).
    fn slow_leave(&self, leave: T) -> Option<T>;

    /// The lobby closes for shutdown: members leave silently from now on.
    fn close(&self);

    /// Relays what is still on its way, then stops. Blocking.
    fn finish(&self);

    /// Whether a history is kept ([`Broker::page`]).
    fn keeps_history(&self) -> bool;

    /// Up to `limit` stored lines before id `before` (the newest if `None`), oldest
    /// first; `None` when no history is kept. Blocking: call it from `spawn_blocking`.
    fn page(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Option<Result<Vec<StoredLine>, HistoryError>>;

    /// Up to `limit` stored lines after id `after`, oldest first; `None` when no
    /// history is kept. Blocking: call it from `spawn_blocking`.
    fn page_after(&self, after: i64, limit: usize)
    -> Option<Result<Vec<StoredLine>, HistoryError>>;

    /// A new member's id, unique in the whole lobby (a cluster's included).
    fn member_id(&self) -> u64;

    /// Named members in the whole lobby, `here` being this node's.
    fn member_count(&self, here: usize) -> usize;

    /// The named members of the whole lobby, in the order they connected; `here` lists
    /// this node's.
    fn present(&self, here: &dyn Fn() -> Vec<Someone>) -> Vec<Someone>;

    /// Whether a member of another node holds the name whose fold is `key` (this
    /// node's members are the lobby's table to look at).
    fn held_elsewhere(&self, key: &str) -> bool;

    /// At most how many names members of other nodes hold.
    fn held_elsewhere_at_most(&self) -> usize;

    /// Whether what the broker depends on answers now (a cluster's Redis); `None` when
    /// it depends on nothing but this process.
    fn reachable(&self) -> Option<bool>;

    /// Asks for a seat in `room` for `member` (leaving its previous one); the answer,
    /// [`SeatAnswer::Seated`] or [`SeatAnswer::Full`], comes through
    /// [`BrokerHandler::seat_answered`] with `seat`. Refused when too many room requests
    /// wait.
    fn take_seat(&self, member: u64, room: Arc<str>, seat: S) -> Result<(), AppendRefusal>;

    /// Sends `text` to whoever sits in `member`'s room, the member included (through
    /// [`BrokerHandler::relay_in_room`] on every node). A member that holds no seat is
    /// refused now ([`RoomRefusal::NotSeated`]) or, where the seats are elsewhere, told
    /// through [`BrokerHandler::seat_answered`] with [`SeatAnswer::NotSeated`].
    fn say_in_room(&self, member: u64, text: &str, seat: S) -> Result<(), RoomRefusal>;

    /// Frees `member`'s seat, if it holds one.
    fn free_seat(&self, member: u64);
}

/// The way back up: what a [`Broker`] hands the lobby and asks of it. The lobby
/// implements it and hands it to the broker it starts. Called from the broker's own
/// threads and tasks; none of these may block.
pub(crate) trait BrokerHandler<T, S>: Send + Sync + 'static {
    /// A batch of items, in the broker's order, to relay.
    fn deliver(&self, batch: Vec<Committed<T>>);

    /// A room line, to this node's seats in `room`.
    fn relay_in_room(&self, room: &str, line: &Arc<str>);

    /// The answer to a room request of `member`'s ([`Broker::take_seat`],
    /// [`Broker::say_in_room`]); `room` is the room asked for (a seat).
    fn seat_answered(&self, member: u64, room: Arc<str>, seat: S, answer: SeatAnswer);

    /// This node lost its place in the cluster (its lease ran out) and has taken a new
    /// one: the cluster has announced its members as left.
    fn lost_place(&self);

    /// What an item of this node's says, for a broker that sends it elsewhere.
    fn said<'a>(&self, item: &'a T) -> Said<'a>;

    /// The item for an event another node said.
    fn heard(&self, event: Event) -> T;
}

/// What an item says, for a broker that sends it to other nodes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Said<'a> {
    /// The event.
    pub(crate) event: &'a Event,
    /// Its sender (a chat line).
    pub(crate) from: Option<u64>,
    /// Who joined or left, or the sender a line renamed.
    pub(crate) someone: Option<&'a Someone>,
}

/// The answer to a room request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeatAnswer {
    /// The member sits in the room now.
    Seated,
    /// The room holds two members: the member keeps the seat it had.
    Full,
    /// A room line from a member that holds no seat: not sent.
    NotSeated,
}

/// Why a room line was refused at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RoomRefusal {
    /// The member holds no seat.
    NotSeated,
    /// The broker cannot take it now.
    Refused(AppendRefusal),
}

impl From<AppendRefusal> for RoomRefusal {
    fn from(refusal: AppendRefusal) -> Self {
        RoomRefusal::Refused(refusal)
    }
}
