//! The cluster's history, `<c>:lines`, as `/api/history` reads it (`XREVRANGE`/`XRANGE`
//! by line id) on a blocking connection of its own, which also gives the node up at
//! shutdown.

use std::sync::Mutex;

use redis::streams::{StreamId, StreamRangeReply};

use super::connect::CONNECT_TIMEOUT;
use super::entry::{Envelope, Record, decode, skipped};
use super::keys::Keys;
use super::lease::give_up_script;
use crate::locks::lock;
use crate::log::{HistoryError, StoredLine};

/// Where `/api/history` reads, and a node gives itself up at shutdown: blocking
/// commands on a connection of their own (opened on first use, reopened after a
/// failure).
pub(super) struct History {
    pub(super) client: redis::Client,
    pub(super) key: String,
    pub(super) connection: Mutex<Option<redis::Connection>>,
}

impl History {
    /// Up to `limit` lines of `{cluster}:lines` from `from` to `to` (`command`: `XRANGE`
    /// or `XREVRANGE`), in the order Redis gives them.
    pub(super) fn read(
        &self,
        command: &str,
        from: &str,
        to: &str,
        limit: usize,
    ) -> Result<Vec<StoredLine>, HistoryError> {
        let reply: StreamRangeReply = self
            .with_connection(|connection| {
                redis::cmd(command)
                    .arg(&self.key)
                    .arg(from)
                    .arg(to)
                    .arg("COUNT")
                    .arg(limit)
                    .query(connection)
            })
            .map_err(HistoryError::Redis)?;
        Ok(reply.ids.iter().filter_map(stored_line).collect())
    }

    /// Gives up `node` ([`super::scripts::give_up`]): returns how many leaves were announced.
    pub(super) fn give_up(
        &self,
        keys: &Keys,
        node: &str,
        log_entries: u64,
    ) -> redis::RedisResult<u64> {
        self.with_connection(|connection| {
            give_up_script(keys, node, log_entries).invoke(connection)
        })
    }

    /// Runs `command` on the connection (opened first if there is none; kept only if
    /// the command succeeded).
    fn with_connection<R>(
        &self,
        command: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<R>,
    ) -> redis::RedisResult<R> {
        let taken = lock(&self.connection).take();
        let mut connection = match taken {
            Some(connection) => connection,
            None => self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?,
        };
        connection.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        let result = command(&mut connection)?;
        *lock(&self.connection) = Some(connection);
        Ok(result)
    }
}

/// A history entry as a stored line; `None` (logged, counted) if it cannot be read.
pub(super) fn stored_line(entry: &StreamId) -> Option<StoredLine> {
    let id = entry
        .id
        .split_once('-')
        .and_then(|(id, _)| id.parse::<i64>().ok());
    let record = entry.get::<String>("e").and_then(|e| decode(&e));
    match (id, record) {
        (
            Some(id),
            Some(Envelope {
                record:
                    Record::Line {
                        name,
                        protocol,
                        text,
                        time_ms,
                        ..
                    },
                ..
            }),
        ) => Some(StoredLine {
            id,
            time_ms,
            name,
            protocol,
            text,
        }),
        _ => {
            skipped(&entry.id, "not a chat line this build can read");
            None
        }
    }
}
