//! The cluster [`Log`]: several chatterbox nodes on one Redis are one lobby, in one order
//! (`--redis-url`; first increment of issue #16).
//!
//! Keys, under the cluster's prefix (`--cluster`, default `chatterbox`):
//!
//! | key | type | what |
//! |---|---|---|
//! | `{cluster}:log` | stream | every lobby event of every node (join, rename, line, leave), in the one order every node relays; fields `e` (the entry, JSON), `line` (the line's id, `0` if not a line), `last` (the newest line id when the entry was added) |
//! | `{cluster}:line-id` | string (counter) | the last line id given out (`INCR`) |
//! | `{cluster}:lines` | stream | the history: each chat line under the stream id `<line id>-0`, field `e` (the entry, JSON) |
//!
//! An entry (`e`) is JSON: `{"v":1,"node":"…","seq":N,"kind":"joined"|"left"|"line",…}`
//! (`name` and `members` for joins and leaves; `name`, `protocol`, `text`, `time_ms` and,
//! for TCP text chunks, `raw` for lines). `v` is the format's version; an entry this
//! build cannot read (another version, foreign or truncated data) is logged, counted in
//! `chatterbox_cluster_entries_skipped_total` and skipped: no node stops for it.
//!
//! Writing: the lobby appends under its lock; the entry goes, in that order, to one task
//! that runs one Lua script per entry on one connection (so a node's entries reach Redis
//! in the order its lobby accepted them). The script gives a chat line its id (`INCR`),
//! adds it to `{cluster}:lines` under that id, and adds the entry to `{cluster}:log`, all
//! atomically: line ids grow in log order, on every node the same.
//!
//! Reading: every node, the author included, reads `{cluster}:log` with `XREAD BLOCK`
//! on a connection of its own (never the shared multiplexed one: a blocking read there
//! would hold up every command behind it, and its response timeout would cut the read
//! short), from where the log was when the node started, and hands each batch, in
//! stream order, to the lobby's delivery, exactly as the SQLite log does. Nothing is
//! relayed that is not in Redis. A node's own entries come back with what only it knows
//! (the sender to skip, the acknowledgement to call, the member to replay to): it keeps
//! its appends waiting in a FIFO, matched to its entries as they come back by `seq`.
//! Entries of other nodes are delivered as they are (no sender of this node skipped).
//!
//! History: `/api/history` reads `{cluster}:lines` (`XREVRANGE`/`XRANGE` by line id), the
//! same lines with the same ids on every node; `--replay` too (the latest lines up to
//! the entry's `last`). A sorted set was the other choice; a stream keyed by the line id
//! needs no second index and pages by id directly. Nothing is trimmed yet: both streams
//! grow (retention in cluster mode is for a later increment).
//!
//! Durability: a line is relayed only once Redis has accepted it; whether it survives a
//! crash of Redis is Redis's persistence (`appendonly`, `appendfsync`), logged at start.
//!
//! What this increment does not do yet (issue #16): member counts, `/healthz`,
//! `/api/members` and the `members` event are the local node's (the count in a join or
//! leave announced by another node is that node's); names are unique per node only;
//! two-person rooms are per node; a node that dies, freezes or loses Redis is not
//! detected (an append that fails is logged, counted and dropped: its line is not
//! relayed, and its sender gets no acknowledgement).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Committed, HistoryError, Log, NewLine, QueueFull, Queued, StoredLine};
use crate::locks::lock;
use crate::protocol::Protocol;

/// The version of the entry format this build writes and reads.
pub const ENTRY_VERSION: u32 = 1;

/// Default cluster name: the prefix of every key.
pub const DEFAULT_CLUSTER: &str = "chatterbox";

/// How long a node waits for Redis to answer at start.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Most entries one `XREAD` takes: one batch handed to the lobby.
const READ_COUNT: usize = 512;

/// How long one `XREAD` blocks before it is sent again (so that a stopping node is not
/// held up by a read).
const READ_BLOCK_MS: u64 = 1_000;

/// How long [`Log::finish`] waits for the node's own entries still on their way.
const FINISH_WAIT: Duration = Duration::from_secs(3);

/// Entries skipped because this build cannot read them.
const SKIPPED: &str = "chatterbox_cluster_entries_skipped_total";
/// Appends Redis refused or that failed.
const APPEND_FAILURES: &str = "chatterbox_cluster_append_failures_total";

/// The script that appends one entry: a line gets the next id and its place in the
/// history; every entry goes to the log with that id and the newest id at that point.
const APPEND: &str = r"
local line = 0
if ARGV[2] == '1' then
  line = redis.call('INCR', KEYS[2])
  redis.call('XADD', KEYS[3], line .. '-0', 'e', ARGV[1])
end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
redis.call('XADD', KEYS[1], '*', 'e', ARGV[1], 'line', line, 'last', last)
return line
";

/// What the lobby's items are to the cluster: what goes into the log for an item of this
/// node, and the item for an entry of another node.
pub(crate) trait Replicated: Send + Sized + 'static {
    /// The entry for this item (a chat line's comes from its [`Queued::line`]).
    fn record(&self, line: Option<&NewLine>) -> Record;
    /// The item for an entry another node appended.
    fn from_record(record: Record) -> Self;
}

/// A lobby event as the cluster log carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Record {
    /// A member named (or renamed) itself.
    Joined {
        /// Its name.
        name: String,
        /// Named members after the join, on the node it joined.
        members: usize,
    },
    /// A named member left.
    Left {
        /// Its last name.
        name: String,
        /// Named members after the leave, on the node it left.
        members: usize,
    },
    /// A chat line.
    Line {
        /// The sender's stored name.
        name: String,
        /// The sender's protocol.
        #[serde(with = "protocol_name")]
        protocol: Protocol,
        /// The line.
        text: String,
        /// When its node accepted it, in milliseconds since the Unix epoch.
        time_ms: i64,
        /// A TCP text chunk's bytes as received.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raw: Option<Vec<u8>>,
    },
}

/// Protocols by their [`Protocol::as_str`] name.
mod protocol_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::protocol::Protocol;

    pub(super) fn serialize<S: Serializer>(p: &Protocol, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(p.as_str())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
        let name = String::deserialize(d)?;
        Protocol::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown protocol {name:?}")))
    }
}

/// An entry of the log: a record, with who wrote it.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    v: u32,
    node: String,
    seq: u64,
    #[serde(flatten)]
    record: Record,
}

/// Where the cluster is and who this node is.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// `redis://…` or `redis+unix://…`.
    pub url: String,
    /// The key prefix.
    pub cluster: String,
    /// This node's id in the log.
    pub node_id: String,
}

/// Why the cluster cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The URL is not one the client understands.
    #[error("--redis-url {url}: {cause}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        cause: redis::RedisError,
    },
    /// Redis does not answer.
    #[error("cannot reach Redis at {url}: {cause}")]
    Unreachable {
        /// The URL.
        url: String,
        /// What failed.
        cause: String,
    },
}

/// A node connected to its cluster's Redis, not yet reading.
pub(crate) struct Connected {
    settings: ClusterSettings,
    client: redis::Client,
    appends: redis::aio::ConnectionManager,
    reads: redis::aio::MultiplexedConnection,
    /// The log's newest entry at start: the node relays what comes after it.
    start: String,
}

/// Connects to Redis, checks that it answers and logs what its persistence means for
/// the lines relayed. Fails within [`CONNECT_TIMEOUT`] if Redis does not answer.
pub(crate) async fn connect(settings: ClusterSettings) -> Result<Connected, ClusterError> {
    let url = settings.url.clone();
    let client = redis::Client::open(url.as_str()).map_err(|cause| ClusterError::Url {
        url: url.clone(),
        cause,
    })?;
    let unreachable = |cause: String| ClusterError::Unreachable {
        url: url.clone(),
        cause,
    };
    let connecting = async {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(None);
        let mut reads = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT));
        let appends = client
            .get_connection_manager_with_config(manager_config)
            .await?;
        let _: String = redis::cmd("PING").query_async(&mut reads).await?;
        let appendonly: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendonly")
            .query_async(&mut reads)
            .await?;
        let appendfsync: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendfsync")
            .query_async(&mut reads)
            .await?;
        let newest: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(log_key(&settings.cluster))
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut reads)
            .await?;
        Ok::<_, redis::RedisError>((reads, appends, appendonly, appendfsync, newest))
    };
    let (reads, appends, appendonly, appendfsync, newest) =
        match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Err(_) => return Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
            Ok(Err(e)) => return Err(unreachable(e.to_string())),
            Ok(Ok(connected)) => connected,
        };
    let setting = |pair: &[String]| pair.get(1).cloned().unwrap_or_default();
    let (appendonly, appendfsync) = (setting(&appendonly), setting(&appendfsync));
    tracing::info!(
        node = %settings.node_id,
        cluster = %settings.cluster,
        appendonly = %appendonly,
        appendfsync = %appendfsync,
        "cluster log in Redis: {}",
        durability(&appendonly, &appendfsync)
    );
    let start = newest
        .ids
        .first()
        .map(|entry| entry.id.clone())
        .unwrap_or_else(|| "0-0".to_owned());
    Ok(Connected {
        settings,
        client,
        appends,
        reads,
        start,
    })
}

/// What Redis's persistence promises for a line once it is relayed.
fn durability(appendonly: &str, appendfsync: &str) -> &'static str {
    match (appendonly, appendfsync) {
        ("yes", "always") => {
            "every relayed line is on Redis's disk first (survives kill -9 of Redis and a power cut)"
        }
        ("yes", "everysec") => {
            "a relayed line reaches Redis's disk within a second (a crash of the Redis machine may lose the last second)"
        }
        ("yes", _) => {
            "Redis leaves fsync to its operating system (a crash of the Redis machine may lose recent lines)"
        }
        _ => {
            "Redis keeps no append-only file: relayed lines are in its memory only (a restart of Redis may lose them)"
        }
    }
}

fn log_key(cluster: &str) -> String {
    format!("{cluster}:log")
}

/// An append of this node's on its way to Redis and back.
struct Pending<T> {
    seq: u64,
    item: T,
    is_line: bool,
    replay: usize,
}

/// This node's appends, in order, until their entries come back, and how many of them
/// are chat lines (kept as it changes: `append` checks it under the lobby's lock).
struct PendingQueue<T> {
    items: VecDeque<Pending<T>>,
    lines: usize,
}

impl<T> PendingQueue<T> {
    fn push_back(&mut self, pending: Pending<T>) {
        self.lines += usize::from(pending.is_line);
        self.items.push_back(pending);
    }

    fn pop_back(&mut self) -> Option<Pending<T>> {
        let pending = self.items.pop_back()?;
        self.lines -= usize::from(pending.is_line);
        Some(pending)
    }

    fn pop_front(&mut self) -> Option<Pending<T>> {
        let pending = self.items.pop_front()?;
        self.lines -= usize::from(pending.is_line);
        Some(pending)
    }

    /// Drops append `seq` (it never reached the log).
    fn remove(&mut self, seq: u64) {
        if let Some(at) = self.items.iter().position(|p| p.seq == seq)
            && let Some(pending) = self.items.remove(at)
        {
            self.lines -= usize::from(pending.is_line);
        }
    }
}

struct Shared<T> {
    /// This node's appends, in order, until their entries come back.
    pending: Mutex<PendingQueue<T>>,
    /// Notified whenever `pending` shrinks.
    drained: Condvar,
}

/// The cluster log (see the module doc).
pub(crate) struct RedisLog<T> {
    shared: Arc<Shared<T>>,
    node: String,
    next_seq: Mutex<u64>,
    capacity: usize,
    appends: mpsc::UnboundedSender<(u64, String, bool)>,
    history: History,
    stop: CancellationToken,
}

/// Where `/api/history` reads: blocking reads of `{cluster}:lines` on a connection of
/// their own (opened on first use, reopened after a failure).
struct History {
    client: redis::Client,
    key: String,
    connection: Mutex<Option<redis::Connection>>,
}

impl<T: Replicated> RedisLog<T> {
    /// Starts the node's appender and reader tasks (on the current tokio runtime);
    /// every entry read is handed to `deliver`, in log order.
    pub(crate) fn start(
        connected: Connected,
        capacity: usize,
        deliver: Box<dyn FnMut(Vec<Committed<T>>) + Send + 'static>,
    ) -> Self {
        let Connected {
            settings,
            client,
            appends,
            reads,
            start,
        } = connected;
        let shared = Arc::new(Shared {
            pending: Mutex::new(PendingQueue {
                items: VecDeque::new(),
                lines: 0,
            }),
            drained: Condvar::new(),
        });
        let stop = CancellationToken::new();
        // Holds no more than the pending FIFO does: chat lines are capped there at
        // `capacity` (`QueueFull` past it), joins and leaves by the connections.
        let (to_appender, from_lobby) = mpsc::unbounded_channel();
        let cluster = settings.cluster.clone();
        tokio::spawn(append_all(
            appends,
            cluster.clone(),
            from_lobby,
            shared.clone(),
            stop.clone(),
        ));
        tokio::spawn(read_all(
            reads,
            cluster.clone(),
            settings.node_id.clone(),
            start,
            shared.clone(),
            deliver,
            stop.clone(),
        ));
        Self {
            shared,
            node: settings.node_id,
            next_seq: Mutex::new(1),
            capacity,
            appends: to_appender,
            history: History {
                client,
                key: format!("{cluster}:lines"),
                connection: Mutex::new(None),
            },
            stop,
        }
    }
}

impl<T: Replicated> Log<T> for RedisLog<T> {
    fn append(&self, queued: Queued<T>) -> Result<(), QueueFull> {
        let record = queued.item.record(queued.line.as_ref());
        let is_line = matches!(record, Record::Line { .. });
        let mut pending = lock(&self.shared.pending);
        if is_line && pending.lines >= self.capacity {
            return Err(QueueFull);
        }
        let seq = {
            let mut next = lock(&self.next_seq);
            let seq = *next;
            *next += 1;
            seq
        };
        let envelope = Envelope {
            v: ENTRY_VERSION,
            node: self.node.clone(),
            seq,
            record,
        };
        let json = match serde_json::to_string(&envelope) {
            Ok(json) => json,
            Err(e) => {
                tracing::error!("cannot encode a cluster entry: {e}");
                return Ok(());
            }
        };
        pending.push_back(Pending {
            seq,
            item: queued.item,
            is_line,
            replay: queued.replay,
        });
        // Sent under the lock: the appender gets the entries in the FIFO's order.
        if self.appends.send((seq, json, is_line)).is_err() {
            tracing::error!("the cluster appender has stopped: entry dropped");
            pending.pop_back();
        }
        Ok(())
    }

    fn page(&self, before: Option<i64>, limit: usize) -> Result<Vec<StoredLine>, HistoryError> {
        let end = match before {
            Some(id) => format!("({id}-0"),
            None => "+".to_owned(),
        };
        let mut lines = self.history.read("XREVRANGE", &end, "-", limit)?;
        lines.reverse();
        Ok(lines)
    }

    fn page_after(&self, after: i64, limit: usize) -> Result<Vec<StoredLine>, HistoryError> {
        self.history
            .read("XRANGE", &format!("({after}-0"), "+", limit)
    }

    fn finish(&self) {
        let deadline = std::time::Instant::now() + FINISH_WAIT;
        let mut pending = lock(&self.shared.pending);
        while !pending.items.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    entries = pending.items.len(),
                    "cluster entries still on their way at shutdown: not relayed here"
                );
                break;
            }
            pending = match self.shared.drained.wait_timeout(pending, left) {
                Ok((pending, _)) => pending,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        drop(pending);
        self.stop.cancel();
    }
}

impl History {
    /// Up to `limit` lines of `{cluster}:lines` from `from` to `to` (`command`: `XRANGE`
    /// or `XREVRANGE`), in the order Redis gives them.
    fn read(
        &self,
        command: &str,
        from: &str,
        to: &str,
        limit: usize,
    ) -> Result<Vec<StoredLine>, HistoryError> {
        let taken = lock(&self.connection).take();
        let mut connection = match taken {
            Some(connection) => connection,
            None => self
                .client
                .get_connection_with_timeout(CONNECT_TIMEOUT)
                .map_err(HistoryError::Redis)?,
        };
        let reply: StreamRangeReply = redis::cmd(command)
            .arg(&self.key)
            .arg(from)
            .arg(to)
            .arg("COUNT")
            .arg(limit)
            .query(&mut connection)
            .map_err(HistoryError::Redis)?;
        *lock(&self.connection) = Some(connection);
        Ok(reply.ids.iter().filter_map(stored_line).collect())
    }
}

/// A history entry as a stored line; `None` (logged, counted) if it cannot be read.
fn stored_line(entry: &StreamId) -> Option<StoredLine> {
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

/// Decodes an entry; `None` (logged, counted) for one this build cannot read.
fn decode(json: &str) -> Option<Envelope> {
    match serde_json::from_str::<Envelope>(json) {
        Ok(envelope) if envelope.v == ENTRY_VERSION => Some(envelope),
        Ok(envelope) => {
            tracing::warn!(version = envelope.v, "a cluster entry of another version");
            None
        }
        Err(e) => {
            tracing::warn!("an undecodable cluster entry: {e}");
            None
        }
    }
}

fn skipped(id: &str, why: &str) {
    tracing::warn!(entry = id, "cluster entry skipped: {why}");
    metrics::counter!(SKIPPED).increment(1);
}

/// Runs the append script for each entry, in order, on one connection.
async fn append_all<T>(
    mut connection: redis::aio::ConnectionManager,
    cluster: String,
    mut entries: mpsc::UnboundedReceiver<(u64, String, bool)>,
    shared: Arc<Shared<T>>,
    stop: CancellationToken,
) {
    let script = redis::Script::new(APPEND);
    let keys = [
        log_key(&cluster),
        format!("{cluster}:line-id"),
        format!("{cluster}:lines"),
    ];
    loop {
        let (seq, json, is_line) = tokio::select! {
            () = stop.cancelled() => return,
            entry = entries.recv() => match entry {
                Some(entry) => entry,
                None => return,
            },
        };
        let appended: redis::RedisResult<i64> = script
            .key(&keys[0])
            .key(&keys[1])
            .key(&keys[2])
            .arg(&json)
            .arg(if is_line { "1" } else { "0" })
            .invoke_async(&mut connection)
            .await;
        if let Err(e) = appended {
            // Not in the log: nobody relays it. Its pending place goes, so that the
            // entries after it still match.
            tracing::error!(seq, "cluster append failed, entry not relayed: {e}");
            metrics::counter!(APPEND_FAILURES).increment(1);
            lock(&shared.pending).remove(seq);
            shared.drained.notify_all();
        }
    }
}

/// Reads the log from `start` on and hands each batch to `deliver`, in order.
async fn read_all<T: Replicated>(
    mut connection: redis::aio::MultiplexedConnection,
    cluster: String,
    node: String,
    start: String,
    shared: Arc<Shared<T>>,
    mut deliver: Box<dyn FnMut(Vec<Committed<T>>) + Send + 'static>,
    stop: CancellationToken,
) {
    let key = log_key(&cluster);
    let lines_key = format!("{cluster}:lines");
    let mut last = start;
    loop {
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT")
            .arg(READ_COUNT)
            .arg("BLOCK")
            .arg(READ_BLOCK_MS)
            .arg("STREAMS")
            .arg(&key)
            .arg(&last);
        let reply = tokio::select! {
            () = stop.cancelled() => return,
            reply = read.query_async::<Option<StreamReadReply>>(&mut connection) => reply,
        };
        let entries = match reply {
            Ok(Some(reply)) => reply.keys.into_iter().flat_map(|k| k.ids).collect(),
            Ok(None) => Vec::new(),
            Err(e) => {
                tracing::error!("cannot read the cluster log: {e}");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(READ_BLOCK_MS)) => {}
                }
                continue;
            }
        };
        let mut batch = Vec::with_capacity(entries.len());
        for entry in entries {
            last = entry.id.clone();
            let Some(envelope) = entry.get::<String>("e").and_then(|e| decode(&e)) else {
                skipped(&entry.id, "undecodable");
                continue;
            };
            let line = entry.get::<i64>("line").filter(|&id| id > 0);
            if envelope.node != node {
                batch.push(Committed {
                    item: T::from_record(envelope.record),
                    id: line,
                    replayed: Vec::new(),
                });
                continue;
            }
            let Some(mine) = take_pending(&shared, envelope.seq) else {
                skipped(&entry.id, "an entry of this node it is not waiting for");
                continue;
            };
            let replayed = match (mine.replay, entry.get::<i64>("last")) {
                (0, _) | (_, None | Some(0)) => Vec::new(),
                (count, Some(last_line)) => {
                    replay(&mut connection, &lines_key, last_line, count).await
                }
            };
            batch.push(Committed {
                item: mine.item,
                id: line,
                replayed,
            });
        }
        if !batch.is_empty() {
            deliver(batch);
        }
    }
}

/// This node's pending append `seq`, dropping any before it (their appends failed).
fn take_pending<T>(shared: &Shared<T>, seq: u64) -> Option<Pending<T>> {
    let mut pending = lock(&shared.pending);
    while pending.items.front().is_some_and(|p| p.seq < seq) {
        if let Some(lost) = pending.pop_front() {
            tracing::warn!(
                seq = lost.seq,
                "a cluster entry of this node never came back"
            );
        }
    }
    let mine = pending.items.front().is_some_and(|p| p.seq == seq);
    let mine = if mine { pending.pop_front() } else { None };
    drop(pending);
    shared.drained.notify_all();
    mine
}

/// The latest `count` lines up to line `last`, oldest first (a replay).
async fn replay(
    connection: &mut redis::aio::MultiplexedConnection,
    key: &str,
    last: i64,
    count: usize,
) -> Vec<StoredLine> {
    let reply: redis::RedisResult<StreamRangeReply> = redis::cmd("XREVRANGE")
        .arg(key)
        .arg(format!("{last}-0"))
        .arg("-")
        .arg("COUNT")
        .arg(count)
        .query_async(connection)
        .await;
    match reply {
        Ok(reply) => {
            let mut lines: Vec<_> = reply.ids.iter().filter_map(stored_line).collect();
            lines.reverse();
            lines
        }
        Err(e) => {
            tracing::error!("cannot read the lines to replay: {e}");
            Vec::new()
        }
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A node id for a node started without `--node-id`: the process and the start time.
pub fn generated_node_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}-{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_bad_ones_are_refused() {
        let envelope = Envelope {
            v: ENTRY_VERSION,
            node: "n1".into(),
            seq: 7,
            record: Record::Line {
                name: "ann".into(),
                protocol: Protocol::TcpText,
                text: "hi".into(),
                time_ms: 5,
                raw: Some(b"hi\n".to_vec()),
            },
        };
        let json = serde_json::to_string(&envelope).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"node":"n1","seq":7,"kind":"line","name":"ann","protocol":"tcp-text","text":"hi","time_ms":5,"raw":[104,105,10]}"#
        );
        assert_eq!(decode(&json).unwrap().record, envelope.record);
        assert!(decode(&json[..json.len() - 3]).is_none());
        assert!(decode(&json.replace(r#""v":1"#, r#""v":2"#)).is_none());
        assert!(decode(&json.replace("tcp-text", "carrier-pigeon")).is_none());
        assert!(decode("not json").is_none());
    }
}
