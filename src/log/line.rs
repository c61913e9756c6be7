//! What travels through a broker and what a history keeps: a chat line to store, a
//! stored line, an item queued with its line and handed back, and why a line is
//! refused. A leaf of the log: it imports none of its modules, so that a backend
//! (`sqlite`, `redis`) names these without importing the seam that re-exports it.

use std::sync::Arc;
use std::time::SystemTime;

use crate::protocol::Protocol;

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
