//! The single node's history: durable chat lines in SQLite, and the sequencer that
//! commits every lobby chat line before it is relayed (what the single node's
//! [`LocalBroker`] sends every event through when a history is kept).
//!
//! Storage: one table, `lines(id, time_ms, name, protocol, text)`, in a SQLite file
//! (`rusqlite`, SQLite compiled in: nothing to install). The schema is created and
//! migrated at start (`PRAGMA user_version`). The file is in WAL mode; with
//! [`Durability::Full`] (the default, `synchronous = FULL`) a committed line survives a
//! crash of the process and of the machine, with [`Durability::Normal`] (`synchronous =
//! NORMAL`) a crash of the process only: a power cut may take the latest commits back,
//! and commits wait for no fsync.
//!
//! The [`Sequencer`] is the lobby's one writer: a thread of its own (SQLite is blocking;
//! no tokio worker ever waits for the disk) that takes what is queued, commits every
//! chat line that arrived while the previous commit ran in one transaction (group
//! commit: one fsync per batch, never one per line), and only then hands the batch, in
//! queue order, back to the lobby for relaying. Relay order is therefore commit order,
//! which is id order, and nothing is relayed that is not on disk. A batch holds at most
//! a set number of items: what piled up behind a slow commit is released in parts,
//! each of which every member's queue can take, paced so that the connections' writers
//! send one part out before the next comes (see [`Sequencer::start`]).
//!
//! Readers ([`reader`]) open their own connections; WAL lets them read while the writer
//! commits. The log is copied into the database file by a checkpointer thread, and
//! emptied by the writer once it is past [`WAL_MAX_BYTES`] (see [`upkeep`]).
//!
//! Retention ([`Retention`], off by default: every line is kept): the writer deletes the
//! lines past it after each commit (and, while no line comes, every [`RETENTION_IDLE`]),
//! in transactions of their own of at most [`TRIM_BATCH_ROWS`] lines, so that a commit
//! never waits long behind a deletion. Lines are deleted oldest first: by count, every id
//! but the newest `keep_lines` ones (ids are given without gaps, so that is the latest
//! `keep_lines` lines); by age, lines from the oldest on up to the first one still young
//! enough (a line stamped earlier than one before it, the clock having been set back,
//! waits for those before it). A file kept with retention is in `auto_vacuum =
//! INCREMENTAL` mode (an existing file is converted, one `VACUUM`, the first time it is
//! opened with retention) and gives back to the file system the pages a deletion frees
//! beyond [`FREE_PAGES_KEPT`].
//!
//! One concern a file: [`store`] (the file, its schema, a commit), [`reader`] (pages
//! for the API), [`writer`] (the sequencer and the checkpointer), [`upkeep`] (retention
//! and the write-ahead log's size).
//!
//! [`LocalBroker`]: super::local::LocalBroker
//! [`WAL_MAX_BYTES`]: upkeep::WAL_MAX_BYTES
//! [`RETENTION_IDLE`]: store::RETENTION_IDLE
//! [`TRIM_BATCH_ROWS`]: upkeep::TRIM_BATCH_ROWS
//! [`FREE_PAGES_KEPT`]: upkeep::FREE_PAGES_KEPT

mod reader;
mod store;
mod upkeep;
mod writer;

pub use super::error::HistoryError;
pub use store::{Durability, Retention, Store};
pub(crate) use writer::Sequencer;

/// What the files' tests share.
#[cfg(test)]
mod testing {
    use std::time::SystemTime;

    use crate::log::line::NewLine;
    use crate::protocol::Protocol;

    /// A line from ann, now.
    pub(super) fn line(text: &str) -> NewLine {
        NewLine {
            time: SystemTime::now(),
            name: "ann".into(),
            protocol: Protocol::SocketIo,
            text: text.into(),
        }
    }
}
