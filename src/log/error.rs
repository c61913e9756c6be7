//! The log's error: why the history cannot be opened or read, by either log (a SQLite
//! file, or the cluster's history in Redis).

use std::path::PathBuf;

/// Why the history cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The file cannot be opened, is not a SQLite database, or cannot be written.
    #[error("cannot open the history database {path}: {cause}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite said (in the message, so not also a `source`).
        cause: rusqlite::Error,
    },
    /// The file was written by a newer chatterbox.
    #[error(
        "the history database {path} has schema version {found}; this chatterbox knows up to {known}"
    )]
    TooNew {
        /// The file.
        path: PathBuf,
        /// Its version.
        found: i64,
        /// The newest version this build knows.
        known: usize,
    },
    /// A read failed.
    #[error("cannot read the history: {0}")]
    Read(rusqlite::Error),
    /// A read of the cluster's history in Redis failed.
    #[error("cannot read the history from Redis: {0}")]
    Redis(redis::RedisError),
}
