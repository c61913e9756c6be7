//! The part of a cluster node that talks to Redis, behind one trait, [`Driver`]: each
//! method is one step of the cluster's state (a script run, a read), so the node's logic
//! (the appender, the reader, the lease, in order, presence, seats, gaps) is the same
//! whether the steps run in Redis ([`RedisDriver`]: the Lua scripts of [`scripts`] on
//! the connections of [`connect`](mod@super::connect)) or in memory (`super::memory`, the tests'
//! in-process cluster: N lobbies in one process, as socketioxide-redis tests N servers
//! on a stub driver).
//!
//! [`scripts`]: super::scripts

use std::future::Future;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};

use std::time::Duration;

use super::history::stored_line;
use super::keys::Keys;
use super::scripts;
use super::settings::ClusterSettings;
use crate::locks::lock;
use crate::log::{HistoryError, StoredLine};

/// How long a node waits for Redis to answer at start.
pub(super) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The kind of an entry, as the append script takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Line,
    Join,
    Leave,
}

impl Kind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Kind::Line => "line",
            Kind::Join => "join",
            Kind::Leave => "leave",
        }
    }
}

/// A room request of this node's, in its order with the entries ([`super::scripts::rooms`]).
pub(crate) enum RoomKind {
    Seat,
    Unseat,
    Line,
}

impl RoomKind {
    pub(super) fn as_str(&self) -> &'static str {
        match self {
            RoomKind::Seat => "seat",
            RoomKind::Unseat => "unseat",
            RoomKind::Line => "line",
        }
    }
}

/// One entry on its way to the append script.
pub(crate) struct Append {
    pub(super) seq: u64,
    pub(super) epoch: u64,
    pub(super) json: String,
    pub(super) kind: Kind,
    pub(super) member: String,
    /// The member's JSON for `<c>:members` (a join or a rename; empty for other entries).
    pub(super) member_json: String,
}

/// Why a step did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Failure {
    /// Redis could not be reached (or is loading): the step may be tried again.
    #[error("{0}")]
    Unreachable(String),
    /// The node's lease has run out, or its epoch is not the current one (`NOLEASE`).
    #[error("this node holds no lease")]
    NoLease,
    /// Redis refused the step otherwise.
    #[error("{0}")]
    Refused(String),
}

impl From<redis::RedisError> for Failure {
    fn from(e: redis::RedisError) -> Self {
        if e.code() == Some("NOLEASE") {
            Failure::NoLease
        } else if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.code() == Some("LOADING")
        {
            Failure::Unreachable(e.to_string())
        } else {
            Failure::Refused(e.to_string())
        }
    }
}

/// An entry of `<c>:log` as read: its stream id and fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LogEntry {
    /// Its stream id (the next read starts after it).
    pub(super) id: String,
    /// Its number in the log (`n`).
    pub(super) n: Option<u64>,
    /// The entry (`e`, JSON).
    pub(super) entry: Option<String>,
    /// The line's id (`line`; 0 if not a line).
    pub(super) line: Option<i64>,
    /// The newest line id when it was added (`last`).
    pub(super) last: Option<i64>,
    /// Members present after it (`count`).
    pub(super) count: Option<i64>,
    /// A room line's room (`room`).
    pub(super) room: Option<String>,
}

/// Where a node starts reading and who is present there, at one instant.
#[derive(Debug, Clone, Default)]
pub(crate) struct Snapshot {
    /// The log's newest entry id (`0-0` if empty).
    pub(super) newest: String,
    /// `<c>:members`: member key → member JSON.
    pub(super) members: Vec<(String, String)>,
    /// The newest entry's number (0 if none).
    pub(super) entries: u64,
}

/// Which stored lines a history page reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    /// The newest `limit` before this id (all if `None`), newest first.
    Before(Option<i64>),
    /// The oldest `limit` after this id, oldest first.
    After(i64),
}

/// One node's steps on the cluster's state (see the module doc). A clone per task: the
/// appender and the lease share one connection, the reader has its own (its reads
/// block).
pub(crate) trait Driver: Clone + Send + Sync + 'static {
    /// The append script ([`scripts::append`]) for `batch`, under `epoch`: one answer
    /// per entry.
    fn append(
        &mut self,
        epoch: u64,
        batch: &[Append],
    ) -> impl Future<Output = Result<Vec<i64>, Failure>> + Send;

    /// The rooms script ([`scripts::rooms`]) for a request of member `member`.
    fn rooms(
        &mut self,
        kind: &RoomKind,
        epoch: u64,
        seq: u64,
        member: &str,
        room: &str,
        json: &str,
    ) -> impl Future<Output = Result<i64, Failure>> + Send;

    /// Registers the node under a new epoch ([`scripts::register`]).
    fn register(&mut self) -> impl Future<Output = Result<u64, Failure>> + Send;

    /// Renews the node's lease under `epoch`: false when it is lost ([`scripts::renew`]).
    fn renew(&mut self, epoch: u64) -> impl Future<Output = Result<bool, Failure>> + Send;

    /// Gives up this node (`own`) or every node whose lease has run out
    /// ([`scripts::give_up`]): the number of leaves announced.
    fn give_up(&mut self, own: bool) -> impl Future<Output = Result<u64, Failure>> + Send;

    /// The next block of member ids.
    fn id_block(&mut self) -> impl Future<Output = Result<Range<u64>, Failure>> + Send;

    /// Up to `count` entries of the log after `after`, waiting a while for one.
    fn read(
        &mut self,
        after: &str,
        count: usize,
    ) -> impl Future<Output = Result<Vec<LogEntry>, Failure>> + Send;

    /// Opens the reading connection anew, after a failed read.
    fn reconnect(&mut self) -> impl Future<Output = Result<(), Failure>> + Send;

    /// Where the log is and who is present, at one instant ([`scripts::SNAPSHOT`]).
    fn snapshot(&mut self) -> impl Future<Output = Result<Snapshot, Failure>> + Send;

    /// The latest `count` lines up to line `last`, oldest first (a replay).
    fn replay(
        &mut self,
        last: i64,
        count: usize,
    ) -> impl Future<Output = Result<Vec<StoredLine>, Failure>> + Send;

    /// Up to `limit` stored lines, as `page` says, in the order it says. Blocking.
    fn lines(&self, page: Page, limit: usize) -> Result<Vec<StoredLine>, HistoryError>;

    /// Gives this node up at shutdown. Blocking.
    fn give_up_now(&self) -> Result<u64, Failure>;
}

/// The scripts, each made once.
fn script(
    text: fn() -> String,
    cell: &'static std::sync::OnceLock<redis::Script>,
) -> &'static redis::Script {
    cell.get_or_init(|| redis::Script::new(&text()))
}

static APPEND: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
static ROOMS: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
static REGISTER: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
static RENEW: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
static GIVE_UP: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();

/// The node's steps in Redis (see the module doc).
#[derive(Clone)]
pub(crate) struct RedisDriver {
    pub(super) keys: Keys,
    pub(super) settings: ClusterSettings,
    pub(super) client: redis::Client,
    /// The appender's and the lease's connection (with a response timeout).
    pub(super) appends: redis::aio::ConnectionManager,
    /// The reader's connection (no response timeout: `XREAD BLOCK`).
    pub(super) reads: redis::aio::MultiplexedConnection,
    /// `/api/history`'s and the shutdown's blocking connection (opened on first use,
    /// reopened after a failure).
    pub(super) blocking: Arc<Mutex<Option<redis::Connection>>>,
}

/// How long one `XREAD` blocks before it is sent again (so that a stopping node is not
/// held up by a read).
pub(super) const READ_BLOCK_MS: u64 = 1_000;

impl RedisDriver {
    fn lease_ms(&self) -> u64 {
        u64::try_from(self.settings.lease.as_millis()).unwrap_or(u64::MAX)
    }

    /// The give-up script for `node` ('' : every node whose lease has run out).
    fn give_up_invocation(&self, node: &str) -> redis::ScriptInvocation<'static> {
        let mut invocation = script(scripts::give_up, &GIVE_UP).prepare_invoke();
        invocation
            .key(&self.keys.log)
            .key(&self.keys.line_id)
            .key(&self.keys.members)
            .key(&self.keys.nodes)
            .key(&self.keys.seqs)
            .key(&self.keys.seats)
            .arg(&self.keys.prefix)
            .arg(node)
            .arg(self.settings.log_entries);
        invocation
    }

    /// Runs `command` on the blocking connection (opened first if there is none; kept
    /// only if the command succeeded).
    fn with_blocking<R>(
        &self,
        command: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<R>,
    ) -> redis::RedisResult<R> {
        let taken = lock(&self.blocking).take();
        let mut connection = match taken {
            Some(connection) => connection,
            None => self.client.get_connection_with_timeout(CONNECT_TIMEOUT)?,
        };
        connection.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        let result = command(&mut connection)?;
        *lock(&self.blocking) = Some(connection);
        Ok(result)
    }
}

impl Driver for RedisDriver {
    async fn append(&mut self, epoch: u64, batch: &[Append]) -> Result<Vec<i64>, Failure> {
        let keys = &self.keys;
        let mut invocation = script(scripts::append, &APPEND).prepare_invoke();
        invocation
            .key(&keys.log)
            .key(&keys.line_id)
            .key(&keys.lines)
            .key(&keys.members)
            .key(&keys.nodes)
            .key(&keys.epochs)
            .key(&keys.seqs)
            .key(keys.node_members(&self.settings.node_id))
            .arg(&self.settings.node_id)
            .arg(epoch)
            .arg(self.settings.log_entries)
            .arg(self.settings.history_lines);
        for append in batch {
            invocation
                .arg(&append.json)
                .arg(append.kind.as_str())
                .arg(append.seq)
                .arg(&append.member)
                .arg(&append.member_json);
        }
        Ok(invocation.invoke_async(&mut self.appends).await?)
    }

    async fn rooms(
        &mut self,
        kind: &RoomKind,
        epoch: u64,
        seq: u64,
        member: &str,
        room: &str,
        json: &str,
    ) -> Result<i64, Failure> {
        let keys = &self.keys;
        let mut invocation = script(scripts::rooms, &ROOMS).prepare_invoke();
        invocation
            .key(&keys.log)
            .key(&keys.seats)
            .key(&keys.nodes)
            .key(&keys.epochs)
            .key(&keys.seqs)
            .key(keys.node_seats(&self.settings.node_id))
            .arg(kind.as_str())
            .arg(&keys.prefix)
            .arg(&self.settings.node_id)
            .arg(epoch)
            .arg(seq)
            .arg(member)
            .arg(room)
            .arg(json)
            .arg(crate::log::seats::ROOM_SEATS)
            .arg(self.settings.log_entries);
        Ok(invocation.invoke_async(&mut self.appends).await?)
    }

    async fn register(&mut self) -> Result<u64, Failure> {
        let lease = self.lease_ms();
        Ok(script(scripts::register, &REGISTER)
            .key(&self.keys.nodes)
            .key(&self.keys.epochs)
            .key(&self.keys.seqs)
            .arg(&self.settings.node_id)
            .arg(lease)
            .invoke_async(&mut self.appends)
            .await?)
    }

    async fn renew(&mut self, epoch: u64) -> Result<bool, Failure> {
        let lease = self.lease_ms();
        let renewed: u8 = script(scripts::renew, &RENEW)
            .key(&self.keys.nodes)
            .key(&self.keys.epochs)
            .arg(&self.settings.node_id)
            .arg(epoch)
            .arg(lease)
            .invoke_async(&mut self.appends)
            .await?;
        Ok(renewed == 1)
    }

    async fn give_up(&mut self, own: bool) -> Result<u64, Failure> {
        let node = if own {
            self.settings.node_id.clone()
        } else {
            String::new()
        };
        let invocation = self.give_up_invocation(&node);
        Ok(invocation.invoke_async(&mut self.appends).await?)
    }

    async fn id_block(&mut self) -> Result<Range<u64>, Failure> {
        Ok(super::ids::block(&mut self.appends, &self.keys).await?)
    }

    async fn read(&mut self, after: &str, count: usize) -> Result<Vec<LogEntry>, Failure> {
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(READ_BLOCK_MS)
            .arg("STREAMS")
            .arg(&self.keys.log)
            .arg(after);
        let reply: Option<StreamReadReply> = read.query_async(&mut self.reads).await?;
        let entries = reply
            .into_iter()
            .flat_map(|reply| reply.keys)
            .flat_map(|key| key.ids)
            .map(|entry| log_entry(&entry))
            .collect();
        Ok(entries)
    }

    async fn reconnect(&mut self) -> Result<(), Failure> {
        self.reads = reading_connection(&self.client).await?;
        Ok(())
    }

    async fn snapshot(&mut self) -> Result<Snapshot, Failure> {
        let (newest, members, entries) = redis::Script::new(scripts::SNAPSHOT)
            .key(&self.keys.log)
            .key(&self.keys.members)
            .invoke_async(&mut self.reads)
            .await?;
        Ok(Snapshot {
            newest,
            members,
            entries,
        })
    }

    async fn replay(&mut self, last: i64, count: usize) -> Result<Vec<StoredLine>, Failure> {
        let reply: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(&self.keys.lines)
            .arg(format!("{last}-0"))
            .arg("-")
            .arg("COUNT")
            .arg(count)
            .query_async(&mut self.reads)
            .await?;
        let mut lines: Vec<_> = reply.ids.iter().filter_map(stored_line).collect();
        lines.reverse();
        Ok(lines)
    }

    fn lines(&self, page: Page, limit: usize) -> Result<Vec<StoredLine>, HistoryError> {
        let (command, from, to) = match page {
            Page::Before(Some(id)) => ("XREVRANGE", format!("({id}-0"), "-".to_owned()),
            Page::Before(None) => ("XREVRANGE", "+".to_owned(), "-".to_owned()),
            Page::After(id) => ("XRANGE", format!("({id}-0"), "+".to_owned()),
        };
        let reply: StreamRangeReply = self
            .with_blocking(|connection| {
                redis::cmd(command)
                    .arg(&self.keys.lines)
                    .arg(from)
                    .arg(to)
                    .arg("COUNT")
                    .arg(limit)
                    .query(connection)
            })
            .map_err(HistoryError::Redis)?;
        Ok(reply.ids.iter().filter_map(stored_line).collect())
    }

    fn give_up_now(&self) -> Result<u64, Failure> {
        let invocation = self.give_up_invocation(&self.settings.node_id);
        Ok(self.with_blocking(|connection| invocation.invoke(connection))?)
    }
}

/// A stream entry of `<c>:log` as the reader takes it.
fn log_entry(entry: &StreamId) -> LogEntry {
    LogEntry {
        id: entry.id.clone(),
        n: entry.get("n"),
        entry: entry.get("e"),
        line: entry.get("line"),
        last: entry.get("last"),
        count: entry.get("count"),
        room: entry.get("room"),
    }
}

/// A connection for reads that block (`XREAD BLOCK`): no response timeout.
pub(super) async fn reading_connection(
    client: &redis::Client,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}
