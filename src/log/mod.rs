//! The lobby's ordered, durable log: every lobby event goes in ([`Log::append`]) and
//! comes back out, in one order, once the log has made it durable (chat lines stored,
//! with their ids); the lobby fans out only what comes back. Relay order is log order,
//! and nothing is relayed that the log has not accepted. Behind the one small trait
//! [`Log`]: [`sqlite`], the single-node history (one writer thread, group commit), and
//! [`redis`], the cluster log of several nodes on one Redis (`--redis-url`).
//!
//! Entries are the lobby's own items ([`Queued::item`], generic: the SQLite log never
//! looks into them), each with the chat line to store first, if any. The cluster log
//! must send the event itself to other nodes: it asks the item for it through
//! [`redis::Replicated`], which the lobby implements, so this module never imports the
//! lobby.

mod error;
pub mod redis;
pub mod sqlite;

use std::sync::Arc;
use std::time::SystemTime;

use crate::protocol::Protocol;

pub(crate) use error::HistoryError;
pub(crate) use sqlite::{Sequencer, Store};

/// The lobby's ordered, durable log (see the module doc). The lobby gives it its
/// delivery when it starts it; everything appended is handed back there, in order.
pub(crate) trait Log<T>: Send + Sync + 'static {
    /// Queues `queued`, to be handed back once its line (if any) is stored. Refused only
    /// for a chat line, when the log cannot take more lines now or cannot be reached.
    fn append(&self, queued: Queued<T>) -> Result<(), AppendRefusal>;

    /// Up to `limit` stored lines before id `before` (the newest if `None`), oldest
    /// first. Blocking: call it from `spawn_blocking`.
    fn page(&self, before: Option<i64>, limit: usize) -> Result<Vec<StoredLine>, HistoryError>;

    /// Up to `limit` stored lines after id `after` (the oldest of them), oldest first.
    /// Blocking: call it from `spawn_blocking`.
    fn page_after(&self, after: i64, limit: usize) -> Result<Vec<StoredLine>, HistoryError>;

    /// Stores and hands back everything queued, then stops. Blocking.
    fn finish(&self);

    /// Who is present in the whole lobby, when presence lives in the log (a cluster:
    /// every node's members, as the log has announced them, in the order they
    /// connected); `None` when the lobby's own table is the presence.
    fn present(&self) -> Option<Vec<Present>> {
        None
    }

    /// How many [`Log::present`] would list.
    fn member_count(&self) -> Option<usize> {
        None
    }

    /// Whether the log can be reached now (a cluster's Redis answers).
    fn available(&self) -> bool {
        true
    }

    /// Whether a member of another node holds the name whose fold is `key` (a
    /// cluster); this node's own members are the lobby's table to look at.
    fn name_held_elsewhere(&self, _key: &str) -> bool {
        false
    }

    /// A new member's id, unique in the whole cluster (a cluster: ids come in blocks
    /// from Redis); `None`: the lobby numbers its members itself.
    fn member_id(&self) -> Option<u64> {
        None
    }

    /// Whether the two-person rooms are the log's (a cluster's: seats are taken in
    /// Redis, room lines go through the log, [`Log::take_seat`], [`Log::say_in_room`]);
    /// false: the lobby's own rooms decide.
    fn shared_rooms(&self) -> bool {
        false
    }

    /// Asks for a seat in `room` for member `member` (leaving its previous one);
    /// `told` gets the answer, [`SeatAnswer::Seated`] or [`SeatAnswer::Full`]. Refused
    /// when too many room requests wait.
    fn take_seat(&self, _member: u64, _room: &str, _told: SeatTold) -> Result<(), AppendRefusal> {
        Ok(())
    }

    /// Sends `text` to whoever sits in member `member`'s room, the member included;
    /// `told` hears [`SeatAnswer::NotSeated`] if it holds no seat.
    fn say_in_room(&self, _member: u64, _text: &str, _told: SeatTold) -> Result<(), AppendRefusal> {
        Ok(())
    }

    /// Frees member `member`'s seat, if it holds one.
    fn free_seat(&self, _member: u64) {}
}

/// The answer to a room request made through the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SeatAnswer {
    /// The member sits in the room now (or its line went out).
    Seated,
    /// The room holds two members: the member keeps the seat it had.
    Full,
    /// A room line from a member that holds no seat: not sent.
    NotSeated,
}

/// Told the answer to a room request, once, from the log's task (must not block).
pub(crate) type SeatTold = Box<dyn FnOnce(SeatAnswer) + Send + 'static>;

/// Hands a room line read from a cluster's log to the lobby: the room, the line.
pub(crate) type RoomLine = Box<dyn Fn(&str, Arc<str>) + Send + Sync + 'static>;

/// A named member present in the lobby, for the presence API and the counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Present {
    /// Its name.
    pub(crate) name: Arc<str>,
    /// Its protocol.
    pub(crate) protocol: Protocol,
    /// When it connected.
    pub(crate) since: SystemTime,
}

/// Default for the sequencer's queue, in chat lines waiting for their commit. One
/// commit takes a few milliseconds; thousands of lines queued means the disk does not
/// keep up, and senders are better told so than kept waiting without bound.
pub(crate) const DEFAULT_HISTORY_QUEUE_LINES: usize = 8_192;

/// Most lines `GET /api/history` returns by default.
pub(crate) const DEFAULT_PAGE_LINES: usize = 100;

/// Most lines `GET /api/history` returns at all: a page is one SQLite read and one JSON
/// body, held in memory while it is written.
pub(crate) const MAX_PAGE_LINES: usize = 1_000;

/// A chat line to store.
#[derive(Debug, Clone)]
pub(crate) struct NewLine {
    /// When the lobby accepted it.
    pub(crate) time: SystemTime,
    /// The sender's name.
    pub(crate) name: Arc<str>,
    /// The sender's protocol.
    pub(crate) protocol: Protocol,
    /// The line.
    pub(crate) text: Arc<str>,
}

/// A stored chat line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredLine {
    /// Its place in the history: ids only grow, in relay order.
    pub(crate) id: i64,
    /// When the lobby accepted it, in milliseconds since the Unix epoch.
    pub(crate) time_ms: i64,
    /// The sender's name.
    pub(crate) name: String,
    /// The sender's protocol.
    pub(crate) protocol: Protocol,
    /// The line.
    pub(crate) text: String,
}

/// Something for the sequencer to put in order: an item of the lobby's, with the chat
/// line to commit before it is handed back, if any.
pub(crate) struct Queued<T> {
    /// The lobby's item, handed back after the commit.
    pub(crate) item: T,
    /// The line to commit first.
    pub(crate) line: Option<NewLine>,
    /// How many stored lines to read for the item: the latest of those queued before it
    /// (and its own), none queued after it (replay to a new member).
    pub(crate) replay: usize,
}

/// An item handed back by the sequencer, in queue order.
pub(crate) struct Committed<T> {
    /// The lobby's item.
    pub(crate) item: T,
    /// The id its line was stored under, if it had one.
    pub(crate) id: Option<i64>,
    /// The lines read for it (oldest first) when it asked for a replay.
    pub(crate) replayed: Vec<StoredLine>,
    /// For a join or leave, the lobby's member count the log gave it, where that is not
    /// the lobby's own (a cluster: the whole lobby's count at that point of the log).
    pub(crate) members: Option<usize>,
}

/// The sequencer's queue is full of lines waiting for their commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the history does not keep up: line not sent, try again")]
pub struct QueueFull;

/// Why the log refused a chat line: the text is what its sender is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AppendRefusal {
    /// Too many lines wait for the log.
    #[error(transparent)]
    Full(#[from] QueueFull),
    /// The log cannot be reached (a cluster's Redis is down): nothing is relayed until
    /// it is back.
    #[error("the lobby is unavailable: line not sent, try again")]
    Unavailable,
}
