//! Reading the history for the API: pages of lines before or after an id, oldest first,
//! on read-only connections of the reader's own (WAL lets them read while the writer
//! commits), a few kept open between reads.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags, params};

use crate::locks::lock;
use crate::log::error::HistoryError;
use crate::log::line::StoredLine;
use crate::protocol::Protocol;

/// Reads pages of the history on connections of its own (cheap to clone).
#[derive(Clone)]
pub(crate) struct Reader {
    pub(super) path: Arc<Path>,
    /// Connections kept for the next read.
    pub(super) idle: Arc<Mutex<Vec<Connection>>>,
}

/// Connections a [`Reader`] keeps open between reads.
const IDLE_READERS: usize = 4;

impl Reader {
    /// Up to `limit` lines before id `before` (the newest if `None`), oldest first.
    /// Blocking: call it from `spawn_blocking`.
    pub(crate) fn page(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<StoredLine>, HistoryError> {
        self.read(Window::Before(before.unwrap_or(i64::MAX)), limit)
    }

    /// Up to `limit` lines after id `after` (the oldest of them), oldest first.
    /// Blocking: call it from `spawn_blocking`.
    pub(crate) fn page_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<StoredLine>, HistoryError> {
        self.read(Window::After(after), limit)
    }

    fn read(&self, window: Window, limit: usize) -> Result<Vec<StoredLine>, HistoryError> {
        let connection = match lock(&self.idle).pop() {
            Some(connection) => connection,
            None => Connection::open_with_flags(
                &self.path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(HistoryError::Read)?,
        };
        let page = read_window(&connection, window, limit).map_err(HistoryError::Read)?;
        let mut idle = lock(&self.idle);
        if idle.len() < IDLE_READERS {
            idle.push(connection);
        }
        Ok(page)
    }
}

/// Which lines a page holds.
#[derive(Debug, Clone, Copy)]
enum Window {
    /// The latest with an id below this.
    Before(i64),
    /// The oldest with an id above this.
    After(i64),
}

/// Up to `limit` lines before id `before` (the newest if `None`), oldest first, on
/// `connection`.
pub(super) fn read_page(
    connection: &Connection,
    before: Option<i64>,
    limit: usize,
) -> rusqlite::Result<Vec<StoredLine>> {
    read_window(
        connection,
        Window::Before(before.unwrap_or(i64::MAX)),
        limit,
    )
}

fn read_window(
    connection: &Connection,
    window: Window,
    limit: usize,
) -> rusqlite::Result<Vec<StoredLine>> {
    let (mut select, from) = match window {
        Window::Before(before) => (
            connection.prepare_cached(
                "SELECT id, time_ms, name, protocol, text FROM lines
                 WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
            )?,
            before,
        ),
        Window::After(after) => (
            connection.prepare_cached(
                "SELECT id, time_ms, name, protocol, text FROM lines
                 WHERE id > ?1 ORDER BY id ASC LIMIT ?2",
            )?,
            after,
        ),
    };
    let rows = select.query_map(params![from, limit as i64], |row| {
        Ok(StoredLine {
            id: row.get(0)?,
            time_ms: row.get(1)?,
            name: row.get(2)?,
            protocol: stored_protocol(row, 3)?,
            text: row.get(4)?,
        })
    })?;
    let mut page = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    if let Window::Before(_) = window {
        page.reverse();
    }
    Ok(page)
}

/// The protocol stored in column `index` (as [`Protocol::as_str`]); any other text is a
/// read error, not a guess.
fn stored_protocol(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Protocol> {
    let name: String = row.get(index)?;
    Protocol::parse(&name).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            index,
            rusqlite::types::Type::Text,
            format!("unknown protocol {name:?}").into(),
        )
    })
}
