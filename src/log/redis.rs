//! The cluster [`Log`]: several chatterbox nodes on one Redis are one lobby, in one order,
//! with one presence (`--redis-url`, issue #16).
//!
//! Keys, under the cluster's prefix `<c>` (`--cluster`, default `chatterbox`); one Redis
//! (not Redis Cluster: the scripts touch keys they compute):
//!
//! | key | type | what |
//! |---|---|---|
//! | `<c>:log` | stream | every lobby event of every node (join, rename, line, leave), in the one order every node relays; fields `n` (the entry's number: one more than the entry before it), `e` (the entry, JSON), `line` (the line's id, `0` if not a line), `last` (the newest line id when the entry was added), `count` (members present after it); room lines with `room`; trimmed to about `--cluster-log-entries` |
//! | `<c>:log-entries` | string (counter) | the number of the last entry added to `<c>:log` |
//! | `<c>:line-id` | string (counter) | the last line id given out (`INCR`) |
//! | `<c>:lines` | stream | the history: each chat line under the stream id `<line id>-0`, field `e` (the entry, JSON); trimmed to about `--history-keep-lines` when set |
//! | `<c>:members` | hash | who is present: `<node>/<id>` → `{"name","protocol","since_ms"}` ([`roster`]) |
//! | `<c>:node:<node>` | set | the keys of `<c>:members` that are that node's |
//! | `<c>:nodes` | sorted set | the nodes alive: node → when its lease runs out (ms, Redis's clock) |
//! | `<c>:epochs` | hash | node → its current epoch (bumped each time it registers) |
//! | `<c>:seqs` | hash | node → the seq of its last entry appended (a retried append is not doubled) |
//! | `<c>:seats` | hash | the two-person rooms: a seated member's key → its room |
//! | `<c>:room:<room>` | set | a room's seats (member keys), two at most |
//! | `<c>:node-seats:<node>` | set | that node's seated members (freed when it is given up) |
//! | `<c>:member-ids` | string (counter) | the last member id given out to a node, in blocks ([`ids`]): a member's id, and so its guest name, is the cluster's |
//!
//! An entry (`e`) is JSON: `{"v":1,"node":"…","seq":N,"kind":"joined"|"left"|"line",…}`
//! (`name`, `members`, `id` (the member's id on its node) for joins and leaves, and
//! `protocol`, `since_ms` for joins; `name`, `protocol`, `text`, `time_ms` and, for TCP
//! text chunks, `raw` for lines). `v` is the format's version; an entry this build
//! cannot read (another version, foreign or truncated data) is logged, counted in
//! `chatterbox_cluster_entries_skipped_total` and skipped: no node stops for it.
//!
//! Writing: the lobby appends under its lock; the entry goes, in that order, to one task
//! that runs the append script ([`scripts::append`]) on one connection, for a chat line
//! with the lines waiting behind it (up to 64 entries or 256 KiB a call: one round trip
//! and one script run for a burst of lines), for a join or leave alone (so a join storm
//! is paced by Redis's answers), so a node's entries reach Redis in the order its
//! lobby accepted them. The script gives a
//! chat line its id and its place in `<c>:lines`, applies a join or leave to
//! `<c>:members`, and adds the entry to `<c>:log` with the member count after it, all
//! atomically: line ids grow in log order, and every count is the cluster's at that
//! point of the log. When Redis does not answer, the task tries the same entries again
//! (the script's `<c>:seqs` check makes a retry after a lost reply harmless) until it
//! does; meanwhile the lobby refuses new chat lines ([`AppendRefusal::Unavailable`]:
//! "the lobby is unavailable: line not sent, try again"), counted as refusals.
//!
//! Reading: every node, the author included, reads `<c>:log` with `XREAD BLOCK` on a
//! connection of its own (never the shared multiplexed one: a blocking read there would
//! hold up every command behind it, and its response timeout would cut the read short),
//! from where the log was when the node started, applies each join and leave to its
//! [`roster`] (who is present in the whole cluster), and hands each batch, in stream
//! order, to the lobby's delivery. Nothing is relayed that is not in Redis. A node's own
//! entries come back with what only it knows (the sender to skip, the acknowledgement
//! to call, the member to replay to): it keeps its appends waiting in a FIFO, matched to
//! its entries as they come back by `seq`. After a failed read it reconnects and goes
//! on from the last entry it read. Every entry is numbered (`n`): a node that finds
//! a number that does not follow the last one it read, entries missing (the log trimmed past it while it was away, or a
//! Redis that lost its data) counts the gap, reads `<c>:members` anew and goes on.
//!
//! Leases ([`lease`]): a node registers under a new epoch at start and renews its lease
//! (`--node-lease-ms`) three times a lease. Every node, three times a lease, gives up
//! the nodes whose lease has run out: the give-up script announces each of their
//! members as left, once, and forgets them. A node that finds its own lease lost (it
//! was frozen, or cut off from Redis, for longer than a lease) drops every connection
//! (their leaves were announced), registers anew and goes on; entries of its old epoch
//! are refused (`NOLEASE`), so no ghost joins or late lines. A node shut down (SIGTERM)
//! gives itself up: its members are announced as left to the others.
//!
//! Rooms: a seat is taken, a room line sent and a seat freed by the rooms script
//! ([`scripts::rooms`]), run by the same task in the node's order, so a socket's room
//! request and the lines after it keep their order; the answer (full, not seated) is
//! told to the socket when Redis has given it. Room lines go into `<c>:log` (field
//! `room`) and every node hands them to its seats in that room.
//!
//! History: `/api/history` reads `<c>:lines` (`XREVRANGE`/`XRANGE` by line id), the
//! same lines with the same ids on every node; `--replay` too (the latest lines up to
//! the entry's `last`). A stream keyed by the line id needs no second index and pages
//! by id directly.
//!
//! Durability: a line is relayed only once Redis has accepted it; whether it survives a
//! crash of Redis is Redis's persistence (`appendonly`, `appendfsync`), logged at start.

mod ids;
mod lease;
pub(crate) mod roster;
mod scripts;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::streams::{StreamId, StreamRangeReply, StreamReadReply};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    AppendRefusal, Committed, HistoryError, Log, NewLine, Present, QueueFull, Queued, RoomLine,
    SeatAnswer, SeatTold, StoredLine,
};
use crate::locks::lock;
use crate::protocol::Protocol;
use roster::{Kept, Roster, member_key};

/// The version of the entry format this build writes and reads.
pub const ENTRY_VERSION: u32 = 1;

/// Default cluster name: the prefix of every key.
pub const DEFAULT_CLUSTER: &str = "chatterbox";

/// How long a node waits for Redis to answer at start.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one `XREAD` blocks before it is sent again (so that a stopping node is not
/// held up by a read).
const READ_BLOCK_MS: u64 = 1_000;

/// How long [`Log::finish`] waits for the node's own entries still on their way.
const FINISH_WAIT: Duration = Duration::from_secs(3);

/// Default `--node-lease-ms`.
pub const DEFAULT_LEASE_MS: u64 = 5_000;

/// Default `--redis-timeout-ms`: the redis crate's own 500 ms was passed by a busy
/// Redis during a join storm of 5,000 members (docs/performance.md, the cluster).
pub const DEFAULT_RESPONSE_TIMEOUT_MS: u64 = 2_000;

/// Default `--cluster-log-entries`: the log is read as it is written; this much lets a
/// node that lost Redis for a while catch up from it.
pub const DEFAULT_LOG_ENTRIES: u64 = 100_000;

/// The longest pause between two tries of an append Redis did not answer.
const RETRY_MAX: Duration = Duration::from_secs(1);

/// Entries skipped because this build cannot read them.
const SKIPPED: &str = "chatterbox_cluster_entries_skipped_total";
/// Appends Redis refused or that failed (each try).
const APPEND_FAILURES: &str = "chatterbox_cluster_append_failures_total";
/// 1 while Redis does not answer this node (chat lines refused), 0 otherwise.
const UNAVAILABLE: &str = "chatterbox_cluster_redis_unavailable";
/// Times a node's reading found the log trimmed past where it was.
const LOG_GAPS: &str = "chatterbox_cluster_log_gaps_total";

/// What the lobby's items are to the cluster: what goes into the log for an item of this
/// node, and the item for an entry of another node.
pub(crate) trait Replicated: Send + Sized + 'static {
    /// The entry for this item (a chat line's comes from its [`Queued::line`]), and the
    /// member it is from or about (for `<c>:members`).
    fn record(&self, line: Option<&NewLine>) -> (Record, Option<u64>);
    /// The item for an entry another node appended (`None`: not a lobby event).
    fn from_record(record: Record) -> Option<Self>;
}

/// A lobby event as the cluster log carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Record {
    /// A line for a two-person room (the room is the log's field `room`, which the
    /// cluster fills in: the sender's seat as Redis has it).
    RoomLine {
        /// The line.
        text: String,
    },
    /// A member named (or renamed) itself.
    Joined {
        /// Its name.
        name: String,
        /// Members present after the join (the log's `count` is the cluster's).
        members: usize,
        /// Its id on its node.
        id: u64,
        /// Its protocol.
        #[serde(with = "protocol_name")]
        protocol: Protocol,
        /// When it connected, in milliseconds since the Unix epoch.
        since_ms: i64,
        /// The fold of its name, by which names are compared.
        #[serde(default)]
        key: String,
    },
    /// A named member left.
    Left {
        /// Its last name.
        name: String,
        /// Members present after the leave (the log's `count` is the cluster's).
        members: usize,
        /// Its id on its node.
        id: u64,
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
        /// The sender's id on its node.
        #[serde(default)]
        id: u64,
        /// The sender as presence keeps it, when this line renamed it (a WebSocket
        /// client's line under another name than it had: renamed silently).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        renamed: Option<Kept>,
    },
}

impl Record {
    /// The member as `<c>:members` keeps it, for a join and for a line that renamed
    /// its sender.
    fn kept(&self) -> Option<Kept> {
        match self {
            Record::Joined {
                name,
                protocol,
                since_ms,
                key,
                ..
            } => Some(Kept {
                name: name.clone(),
                protocol: *protocol,
                since_ms: *since_ms,
                key: key.clone(),
            }),
            Record::Line { renamed, .. } => renamed.clone(),
            Record::Left { .. } | Record::RoomLine { .. } => None,
        }
    }
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
    /// The node's lease (`--node-lease-ms`).
    pub lease: Duration,
    /// How long a command waits for Redis's answer (`--redis-timeout-ms`).
    pub response_timeout: Duration,
    /// About how many entries `<c>:log` keeps (`--cluster-log-entries`).
    pub log_entries: u64,
    /// About how many lines `<c>:lines` keeps; 0: all (`--history-keep-lines`).
    pub history_lines: u64,
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

/// A node connected to its cluster's Redis and registered, not yet reading.
pub(crate) struct Connected {
    settings: ClusterSettings,
    client: redis::Client,
    appends: redis::aio::ConnectionManager,
    reads: redis::aio::MultiplexedConnection,
    /// The log's newest entry, and its number, when presence was read: the node relays
    /// what comes after.
    start: (String, u64),
    /// Who was present then.
    roster: Roster,
    /// The epoch the node registered under.
    epoch: u64,
    /// The first block of member ids.
    ids: std::ops::Range<u64>,
}

/// The cluster's keys, under its prefix (see the module doc).
#[derive(Debug, Clone)]
struct Keys {
    prefix: String,
    log: String,
    line_id: String,
    lines: String,
    members: String,
    nodes: String,
    epochs: String,
    seqs: String,
    member_ids: String,
    seats: String,
}

impl Keys {
    fn new(cluster: &str) -> Self {
        let key = |name: &str| format!("{cluster}:{name}");
        Self {
            prefix: cluster.to_owned(),
            log: key("log"),
            line_id: key("line-id"),
            lines: key("lines"),
            members: key("members"),
            nodes: key("nodes"),
            epochs: key("epochs"),
            seqs: key("seqs"),
            member_ids: key("member-ids"),
            seats: key("seats"),
        }
    }

    /// The set of `node`'s member keys.
    fn node_members(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }
}

/// Connects to Redis, checks that it answers, logs what its persistence means for
/// the lines relayed, registers the node and reads who is present. Fails within
/// [`CONNECT_TIMEOUT`] if Redis does not answer.
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
    let keys = Keys::new(&settings.cluster);
    let connecting = async {
        let mut reads = reading_connection(&client).await?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(settings.response_timeout));
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
        let epoch = lease::register(&mut reads, &keys, &settings).await?;
        let ids = ids::block(&mut reads, &keys).await?;
        let (newest, members, entries) = snapshot(&mut reads, &keys).await?;
        let start = (newest, entries);
        Ok::<_, redis::RedisError>((
            reads,
            appends,
            appendonly,
            appendfsync,
            epoch,
            ids,
            start,
            members,
        ))
    };
    let (reads, appends, appendonly, appendfsync, epoch, ids, start, members) =
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
    let roster = roster_of(members);
    Ok(Connected {
        settings,
        client,
        appends,
        reads,
        start,
        roster,
        epoch,
        ids,
    })
}

/// A connection for reads that block (`XREAD BLOCK`): no response timeout.
async fn reading_connection(
    client: &redis::Client,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(None);
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
}

/// The log's newest entry id, `<c>:members` and the newest entry's number, at one
/// instant.
async fn snapshot(
    connection: &mut redis::aio::MultiplexedConnection,
    keys: &Keys,
) -> redis::RedisResult<(String, Vec<(String, String)>, u64)> {
    redis::Script::new(scripts::SNAPSHOT)
        .key(&keys.log)
        .key(&keys.members)
        .invoke_async(connection)
        .await
}

/// The roster of a snapshot's members, counting those it cannot read.
fn roster_of(members: Vec<(String, String)>) -> Roster {
    let (roster, unreadable) = Roster::from_snapshot(members);
    if unreadable > 0 {
        metrics::counter!(SKIPPED).increment(unreadable as u64);
    }
    roster
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

/// What the node's tasks and the lobby share.
struct Shared<T> {
    /// This node's appends, in order, until their entries come back.
    pending: Mutex<PendingQueue<T>>,
    /// Notified whenever `pending` shrinks.
    drained: Condvar,
    /// Who is present in the whole cluster, as the log has announced it.
    roster: Mutex<Roster>,
    /// Set while Redis does not answer (an append or a renewal failed), cleared when it
    /// does again: chat lines are refused meanwhile.
    unavailable: AtomicBool,
    /// The epoch the node's entries are appended under.
    epoch: AtomicU64,
    /// Woken when an append is refused for a lost lease.
    lease_lost: tokio::sync::Notify,
    /// The member ids this node gives out.
    ids: ids::MemberIds,
    /// Woken when the member ids run low.
    refill: tokio::sync::Notify,
    /// Seats and room lines waiting for the appender (at most the log's capacity).
    rooms_waiting: std::sync::atomic::AtomicUsize,
}

impl<T> Shared<T> {
    /// Records whether Redis answers (the gauge too); returns what it was.
    fn set_unavailable(&self, unavailable: bool) -> bool {
        let was = self.unavailable.swap(unavailable, Ordering::SeqCst);
        if was != unavailable {
            metrics::gauge!(UNAVAILABLE).set(f64::from(u8::from(unavailable)));
            if !unavailable {
                tracing::info!("Redis answers again: chat lines are accepted");
            }
        }
        was
    }
}

/// The kind of an entry, as the append script takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Line,
    Join,
    Leave,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Line => "line",
            Kind::Join => "join",
            Kind::Leave => "leave",
        }
    }
}

/// A room request of this node's, in its order with the entries ([`scripts::rooms`]).
enum RoomKind {
    Seat,
    Unseat,
    Line,
}

impl RoomKind {
    fn as_str(&self) -> &'static str {
        match self {
            RoomKind::Seat => "seat",
            RoomKind::Unseat => "unseat",
            RoomKind::Line => "line",
        }
    }
}

/// A room request on its way to Redis.
struct RoomRequest {
    seq: u64,
    epoch: u64,
    kind: RoomKind,
    member: String,
    /// The room (a seat), or empty.
    room: String,
    /// The entry (a line), or empty.
    json: String,
    told: Option<SeatTold>,
}

/// What the appender does next, in the node's order.
enum Job {
    Entry(Append),
    Room(RoomRequest),
}

/// One entry on its way to the append script.
struct Append {
    seq: u64,
    epoch: u64,
    json: String,
    kind: Kind,
    member: String,
    /// The member as `<c>:members` keeps it (joins).
    kept: String,
}

/// The cluster log (see the module doc).
pub(crate) struct RedisLog<T> {
    shared: Arc<Shared<T>>,
    node: String,
    next_seq: Mutex<u64>,
    capacity: usize,
    appends: mpsc::UnboundedSender<Job>,
    history: History,
    keys: Keys,
    log_entries: u64,
    /// What this node's keys in `<c>:members` start with.
    own_members: String,
    stop: CancellationToken,
}

/// Where `/api/history` reads, and a node gives itself up at shutdown: blocking
/// commands on a connection of their own (opened on first use, reopened after a
/// failure).
struct History {
    client: redis::Client,
    key: String,
    connection: Mutex<Option<redis::Connection>>,
}

/// What the node does when it finds its lease lost, after it has registered anew:
/// drop every connection (the cluster has announced its members as left).
pub(crate) type Lost = Box<dyn Fn() + Send + Sync + 'static>;

impl<T: Replicated> RedisLog<T> {
    /// Starts the node's appender, reader and lease tasks (on the current tokio
    /// runtime); every entry read is handed to `deliver`, in log order.
    pub(crate) fn start(
        connected: Connected,
        capacity: usize,
        batch_items: usize,
        deliver: Box<dyn FnMut(Vec<Committed<T>>) + Send + 'static>,
        lost: Lost,
        room_line: RoomLine,
    ) -> Self {
        let Connected {
            settings,
            client,
            appends,
            reads,
            start,
            roster,
            epoch,
            ids,
        } = connected;
        let shared = Arc::new(Shared {
            pending: Mutex::new(PendingQueue {
                items: VecDeque::new(),
                lines: 0,
            }),
            drained: Condvar::new(),
            roster: Mutex::new(roster),
            unavailable: AtomicBool::new(false),
            epoch: AtomicU64::new(epoch),
            lease_lost: tokio::sync::Notify::new(),
            ids: ids::MemberIds::new(ids),
            refill: tokio::sync::Notify::new(),
            rooms_waiting: std::sync::atomic::AtomicUsize::new(0),
        });
        let stop = CancellationToken::new();
        let keys = Keys::new(&settings.cluster);
        // Bounded without a bound of its own: chat lines are capped at `capacity` in
        // the pending FIFO, seats and room lines at `capacity` by `rooms_waiting`
        // (`QueueFull` past either), joins, leaves and freed seats by the connections.
        let (to_appender, from_lobby) = mpsc::unbounded_channel();
        tokio::spawn(append_all(
            appends.clone(),
            keys.clone(),
            settings.clone(),
            from_lobby,
            shared.clone(),
            stop.clone(),
        ));
        tokio::spawn(read_all(
            client.clone(),
            reads,
            keys.clone(),
            settings.node_id.clone(),
            start,
            shared.clone(),
            Relay {
                deliver,
                batch_items: batch_items.max(1),
                room_line,
            },
            stop.clone(),
        ));
        tokio::spawn(lease::keep(
            appends,
            keys.clone(),
            settings.clone(),
            shared.clone(),
            lost,
            stop.clone(),
        ));
        let own_members = format!("{}/", settings.node_id);
        Self {
            shared,
            node: settings.node_id,
            next_seq: Mutex::new(1),
            capacity,
            appends: to_appender,
            history: History {
                client,
                key: keys.lines.clone(),
                connection: Mutex::new(None),
            },
            keys,
            log_entries: settings.log_entries,
            own_members,
            stop,
        }
    }
}

impl<T> RedisLog<T> {
    /// Sends a room request to the appender, in order with the node's entries. A seat
    /// or a room line is refused while [`RedisLog::capacity`] of them wait for Redis.
    fn ask_rooms(
        &self,
        kind: RoomKind,
        member: u64,
        room: String,
        json: String,
        told: Option<SeatTold>,
    ) -> Result<(), AppendRefusal> {
        let _in_order = lock(&self.shared.pending);
        let counted = !matches!(kind, RoomKind::Unseat);
        if counted {
            if self.shared.rooms_waiting.load(Ordering::SeqCst) >= self.capacity {
                return Err(QueueFull.into());
            }
            self.shared.rooms_waiting.fetch_add(1, Ordering::SeqCst);
        }
        let seq = {
            let mut next = lock(&self.next_seq);
            let seq = *next;
            *next += 1;
            seq
        };
        let request = RoomRequest {
            seq,
            epoch: self.shared.epoch.load(Ordering::SeqCst),
            kind,
            member: member_key(&self.node, member),
            room,
            json,
            told,
        };
        if self.appends.send(Job::Room(request)).is_err() {
            tracing::error!("the cluster appender has stopped: room request dropped");
        }
        Ok(())
    }
}

impl<T: Replicated> Log<T> for RedisLog<T> {
    fn append(&self, queued: Queued<T>) -> Result<(), AppendRefusal> {
        let (record, member) = queued.item.record(queued.line.as_ref());
        let kind = match &record {
            Record::Line { .. } => Kind::Line,
            Record::Joined { .. } => Kind::Join,
            Record::Left { .. } => Kind::Leave,
            Record::RoomLine { .. } => {
                tracing::error!("a room line appended as a lobby event: dropped");
                return Ok(());
            }
        };
        let kept = match record.kept().map(|kept| serde_json::to_string(&kept)) {
            None => String::new(),
            Some(Ok(json)) => json,
            Some(Err(e)) => {
                tracing::error!("cannot encode a member for the cluster's presence: {e}");
                return Ok(());
            }
        };
        let is_line = kind == Kind::Line;
        if is_line && self.shared.unavailable.load(Ordering::SeqCst) {
            return Err(AppendRefusal::Unavailable);
        }
        let mut pending = lock(&self.shared.pending);
        if is_line && pending.lines >= self.capacity {
            return Err(QueueFull.into());
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
        let append = Append {
            seq,
            epoch: self.shared.epoch.load(Ordering::SeqCst),
            json,
            kind,
            member: member_key(&self.node, member.unwrap_or(0)),
            kept,
        };
        // Sent under the lock: the appender gets the entries in the FIFO's order.
        if self.appends.send(Job::Entry(append)).is_err() {
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
        // The lobby goes on elsewhere: this node's members are announced as left.
        match self
            .history
            .give_up(&self.keys, &self.node, self.log_entries)
        {
            Ok(left) => tracing::info!(
                members = left,
                "left the cluster: its members announced as left"
            ),
            Err(e) => tracing::error!(
                "cannot leave the cluster ({e}): the other nodes announce this node's members as left once its lease runs out"
            ),
        }
    }

    fn present(&self) -> Option<Vec<Present>> {
        Some(lock(&self.shared.roster).present())
    }

    fn member_count(&self) -> Option<usize> {
        Some(lock(&self.shared.roster).len())
    }

    fn available(&self) -> bool {
        !self.shared.unavailable.load(Ordering::SeqCst)
    }

    fn name_held_elsewhere(&self, key: &str) -> bool {
        lock(&self.shared.roster).holds(key, &self.own_members)
    }

    fn member_id(&self) -> Option<u64> {
        Some(self.shared.ids.next(&self.shared.refill))
    }

    fn shared_rooms(&self) -> bool {
        true
    }

    fn take_seat(&self, member: u64, room: &str, told: SeatTold) -> Result<(), AppendRefusal> {
        self.ask_rooms(
            RoomKind::Seat,
            member,
            room.to_owned(),
            String::new(),
            Some(told),
        )
    }

    fn say_in_room(&self, member: u64, text: &str, told: SeatTold) -> Result<(), AppendRefusal> {
        if self.shared.unavailable.load(Ordering::SeqCst) {
            return Err(AppendRefusal::Unavailable);
        }
        let envelope = Envelope {
            v: ENTRY_VERSION,
            node: self.node.clone(),
            seq: 0,
            record: Record::RoomLine {
                text: text.to_owned(),
            },
        };
        match serde_json::to_string(&envelope) {
            Ok(json) => self.ask_rooms(RoomKind::Line, member, String::new(), json, Some(told)),
            Err(e) => {
                tracing::error!("cannot encode a room line: {e}");
                Ok(())
            }
        }
    }

    fn free_seat(&self, member: u64) {
        // Never refused: one a leave, bounded by the connections.
        let freed = self.ask_rooms(RoomKind::Unseat, member, String::new(), String::new(), None);
        debug_assert!(freed.is_ok());
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

    /// Gives up `node` ([`scripts::give_up`]): returns how many leaves were announced.
    fn give_up(&self, keys: &Keys, node: &str, log_entries: u64) -> redis::RedisResult<u64> {
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

/// The give-up script for `node` ('' : every node whose lease has run out), ready to
/// invoke.
fn give_up_script(keys: &Keys, node: &str, log_entries: u64) -> redis::ScriptInvocation<'static> {
    let script: &'static redis::Script = give_up_script_text();
    let mut invocation = script.prepare_invoke();
    invocation
        .key(&keys.log)
        .key(&keys.line_id)
        .key(&keys.members)
        .key(&keys.nodes)
        .key(&keys.seqs)
        .key(&keys.seats)
        .arg(&keys.prefix)
        .arg(node)
        .arg(log_entries);
    invocation
}

/// The give-up script, made once.
fn give_up_script_text() -> &'static redis::Script {
    static SCRIPT: std::sync::OnceLock<redis::Script> = std::sync::OnceLock::new();
    SCRIPT.get_or_init(|| redis::Script::new(&scripts::give_up()))
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

/// Runs the append script for each join and leave and for the chat lines waiting (a
/// batch per call), and the rooms script for each room request, in order, on one
/// connection; one Redis did not answer for is tried again until it
/// does (see the module doc).
async fn append_all<T>(
    mut connection: redis::aio::ConnectionManager,
    keys: Keys,
    settings: ClusterSettings,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    shared: Arc<Shared<T>>,
    stop: CancellationToken,
) {
    let append_script = redis::Script::new(&scripts::append());
    let rooms_script = redis::Script::new(&scripts::rooms());
    let node_members = keys.node_members(&settings.node_id);
    let node_seats = format!("{}:node-seats:{}", keys.prefix, settings.node_id);
    // What ended the last batch (a room request, a join or leave, another epoch's
    // entry): the next job.
    let mut held = None;
    loop {
        let job = match held.take() {
            Some(job) => job,
            None => tokio::select! {
                () = stop.cancelled() => return,
                job = jobs.recv() => match job {
                    Some(job) => job,
                    None => return,
                },
            },
        };
        match job {
            Job::Entry(first) => {
                // The chat lines waiting behind a line go in the same call, up to a
                // bound, in order: anything else (a join, a leave, a room request,
                // another epoch's entry) ends the batch. Joins and leaves go one a call:
                // a join storm is then paced by Redis's answers, as fast as the nodes'
                // writers can send each join to everyone (batched, the storm outran
                // them: docs/performance.md, "Batched appends").
                let mut bytes = first.json.len();
                let batching = first.kind == Kind::Line;
                let mut batch = vec![first];
                while batching && batch.len() < APPEND_BATCH_ENTRIES && bytes < APPEND_BATCH_BYTES {
                    match jobs.try_recv() {
                        Ok(Job::Entry(next))
                            if next.kind == Kind::Line && next.epoch == batch[0].epoch =>
                        {
                            bytes += next.json.len();
                            batch.push(next);
                        }
                        Ok(other) => {
                            held = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                let mut invocation = append_script.prepare_invoke();
                invocation
                    .key(&keys.log)
                    .key(&keys.line_id)
                    .key(&keys.lines)
                    .key(&keys.members)
                    .key(&keys.nodes)
                    .key(&keys.epochs)
                    .key(&keys.seqs)
                    .key(&node_members)
                    .arg(&settings.node_id)
                    .arg(batch[0].epoch)
                    .arg(settings.log_entries)
                    .arg(settings.history_lines);
                for append in &batch {
                    invocation
                        .arg(&append.json)
                        .arg(append.kind.as_str())
                        .arg(append.seq)
                        .arg(&append.member)
                        .arg(&append.kept);
                }
                let Some(outcome) =
                    answered::<T, Vec<i64>>(&invocation, &mut connection, &shared, &stop).await
                else {
                    return;
                };
                let answers = match outcome {
                    Ok(answers) => answers,
                    Err(e) => {
                        refused(&shared, batch[0].seq, &e);
                        Vec::new()
                    }
                };
                if !answers.is_empty() && answers.len() != batch.len() {
                    tracing::error!(
                        entries = batch.len(),
                        answers = answers.len(),
                        "the append script answered for another number of entries"
                    );
                }
                // An entry not in the log is relayed by nobody: its pending place goes,
                // so that the entries after it still match.
                let mut pending = None;
                for (at, append) in batch.iter().enumerate() {
                    if answers.get(at).is_none_or(|&answer| answer < -1) {
                        pending
                            .get_or_insert_with(|| lock(&shared.pending))
                            .remove(append.seq);
                    }
                }
                if pending.take().is_some() {
                    shared.drained.notify_all();
                }
            }
            Job::Room(request) => {
                if !matches!(request.kind, RoomKind::Unseat) {
                    shared.rooms_waiting.fetch_sub(1, Ordering::SeqCst);
                }
                let mut invocation = rooms_script.prepare_invoke();
                invocation
                    .key(&keys.log)
                    .key(&keys.seats)
                    .key(&keys.nodes)
                    .key(&keys.epochs)
                    .key(&keys.seqs)
                    .key(&node_seats)
                    .arg(request.kind.as_str())
                    .arg(&keys.prefix)
                    .arg(&settings.node_id)
                    .arg(request.epoch)
                    .arg(request.seq)
                    .arg(&request.member)
                    .arg(&request.room)
                    .arg(&request.json)
                    .arg(ROOM_SEATS)
                    .arg(settings.log_entries);
                let Some(outcome) =
                    answered::<T, i64>(&invocation, &mut connection, &shared, &stop).await
                else {
                    return;
                };
                let answer = match (outcome, &request.kind) {
                    (Ok(0), RoomKind::Seat) => SeatAnswer::Full,
                    (Ok(0), _) => SeatAnswer::NotSeated,
                    (Ok(_), _) => SeatAnswer::Seated,
                    (Err(e), _) => {
                        refused(&shared, request.seq, &e);
                        continue;
                    }
                };
                if let Some(told) = request.told {
                    told(answer);
                }
            }
        }
    }
}

/// The most chat lines one call of the append script takes: bounds the call's
/// arguments and how long Redis runs it (a few ms), while a node's waiting lines still
/// go in few round trips.
pub(super) const APPEND_BATCH_ENTRIES: usize = 64;

/// The most bytes of entries one call of the append script takes (it may pass this by
/// its last entry, of at most one line's size).
const APPEND_BATCH_BYTES: usize = 256 * 1024;

/// Seats a two-person room holds (PROTOCOLS.md section 2).
const ROOM_SEATS: usize = 2;

/// Runs `invocation` until Redis answers (or `stop`: `None`), marking Redis
/// unavailable while it does not.
async fn answered<T, R: redis::FromRedisValue>(
    invocation: &redis::ScriptInvocation<'_>,
    connection: &mut redis::aio::ConnectionManager,
    shared: &Shared<T>,
    stop: &CancellationToken,
) -> Option<redis::RedisResult<R>> {
    let mut pause = Duration::from_millis(50);
    loop {
        match invocation.invoke_async::<R>(connection).await {
            Err(e) if is_unreachable(&e) => {
                metrics::counter!(APPEND_FAILURES).increment(1);
                if !shared.set_unavailable(true) {
                    tracing::error!(
                        "Redis does not answer: chat lines are refused until it does ({e})"
                    );
                }
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep(pause) => {}
                }
                pause = (pause * 2).min(RETRY_MAX);
            }
            answer => {
                shared.set_unavailable(false);
                return Some(answer);
            }
        }
    }
}

/// An entry or request Redis refused: counted and logged; a lost lease is the lease
/// task's to handle.
fn refused<T>(shared: &Shared<T>, seq: u64, e: &redis::RedisError) {
    metrics::counter!(APPEND_FAILURES).increment(1);
    if e.code() == Some("NOLEASE") {
        tracing::warn!(seq, "cluster entry refused: this node's lease is lost");
        shared.lease_lost.notify_one();
    } else {
        tracing::error!(seq, "cluster append refused, entry not relayed: {e}");
    }
}

/// Whether `e` says Redis could not be reached (as opposed to a refusal by a script).
fn is_unreachable(e: &redis::RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.code() == Some("LOADING")
}

/// Reads the log from `start` (the entry and its number) on, applies joins and leaves to
/// the roster and hands each batch to `relay`, in order; reconnects after a failure.
#[allow(clippy::too_many_arguments)]
async fn read_all<T: Replicated>(
    client: redis::Client,
    mut connection: redis::aio::MultiplexedConnection,
    keys: Keys,
    node: String,
    start: (String, u64),
    shared: Arc<Shared<T>>,
    mut relay: Relay<T>,
    stop: CancellationToken,
) {
    // The last entry read, and its number.
    let (mut last, mut read_entries) = start;
    let mut failed = false;
    loop {
        if failed {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(Duration::from_millis(READ_BLOCK_MS)) => {}
            }
            match reading_connection(&client).await {
                Ok(reconnected) => {
                    connection = reconnected;
                    failed = false;
                    tracing::info!("reading the cluster log again");
                }
                Err(e) => {
                    tracing::debug!("cannot reach Redis to read the log: {e}");
                    continue;
                }
            }
        }
        let mut read = redis::cmd("XREAD");
        read.arg("COUNT")
            .arg(relay.batch_items)
            .arg("BLOCK")
            .arg(READ_BLOCK_MS)
            .arg("STREAMS")
            .arg(&keys.log)
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
                failed = true;
                continue;
            }
        };
        let read_all_it_could = entries.len() >= relay.batch_items;
        let mut batch = Vec::with_capacity(entries.len());
        for entry in entries {
            if let Some(n) = entry.get::<u64>("n") {
                if n != read_entries + 1 {
                    read_presence_anew(&mut connection, &keys, &last, &shared).await;
                }
                read_entries = n;
            }
            last = entry.id.clone();
            let Some(envelope) = entry.get::<String>("e").and_then(|e| decode(&e)) else {
                skipped(&entry.id, "undecodable");
                continue;
            };
            let line = entry.get::<i64>("line").filter(|&id| id > 0);
            let count = entry
                .get::<i64>("count")
                .and_then(|count| usize::try_from(count).ok());
            apply(&shared, &envelope);
            let members = match envelope.record {
                Record::Line { .. } => None,
                _ => count,
            };
            // seq 0: written by the cluster itself (a node given up), never pending.
            if let Record::RoomLine { text } = envelope.record {
                match entry.get::<String>("room") {
                    Some(room) => (relay.room_line)(&room, Arc::from(text)),
                    None => skipped(&entry.id, "a room line without its room"),
                }
                continue;
            }
            if envelope.node != node || envelope.seq == 0 {
                if let Some(item) = T::from_record(envelope.record) {
                    batch.push(Committed {
                        item,
                        id: line,
                        replayed: Vec::new(),
                        members,
                    });
                }
                continue;
            }
            let Some(mine) = take_pending(&shared, envelope.seq) else {
                skipped(&entry.id, "an entry of this node it is not waiting for");
                continue;
            };
            let replayed = match (mine.replay, entry.get::<i64>("last")) {
                (0, _) | (_, None | Some(0)) => Vec::new(),
                (count, Some(last_line)) => {
                    replay(&mut connection, &keys.lines, last_line, count).await
                }
            };
            batch.push(Committed {
                item: mine.item,
                id: line,
                replayed,
                members,
            });
        }
        if !batch.is_empty() {
            let delivering = Instant::now();
            (relay.deliver)(batch);
            if read_all_it_could {
                // A backlog (a burst of the cluster's, or what piled up while this node
                // was away): relaying only queues the events, the connections' writers
                // still have to send them. The next part at once would overflow the
                // queues of members that are keeping up; wait as long as this relay took.
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(delivering.elapsed()) => {}
                }
            }
        }
    }
}

/// Where the reader hands what it read: lobby events in batches of at most
/// `batch_items`, room lines to `room_line`.
struct Relay<T> {
    deliver: Box<dyn FnMut(Vec<Committed<T>>) + Send + 'static>,
    batch_items: usize,
    room_line: RoomLine,
}

/// Applies a join or leave to the roster.
fn apply<T>(shared: &Shared<T>, envelope: &Envelope) {
    match (&envelope.record, envelope.record.kept()) {
        (Record::Joined { id, .. } | Record::Line { id, .. }, Some(kept)) => {
            lock(&shared.roster).joined(member_key(&envelope.node, *id), &kept);
        }
        (Record::Left { id, .. }, _) => {
            lock(&shared.roster).left(&member_key(&envelope.node, *id));
        }
        _ => {}
    }
}

/// Presence read anew after the log lost entries this node had not read (trimmed while
/// it was away, or a Redis restarted without its data): they cannot be relayed, and
/// the gap is logged and counted. The snapshot may already hold what the entries read
/// next say; applying a join or leave twice changes nothing.
async fn read_presence_anew<T>(
    connection: &mut redis::aio::MultiplexedConnection,
    keys: &Keys,
    last: &str,
    shared: &Shared<T>,
) {
    tracing::warn!(
        after = last,
        "the cluster log lost entries this node had not read: presence read anew"
    );
    metrics::counter!(LOG_GAPS).increment(1);
    match snapshot(connection, keys).await {
        Ok((_, members, _)) => *lock(&shared.roster) = roster_of(members),
        Err(e) => tracing::error!("cannot read presence anew: {e}"),
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
                id: 3,
                renamed: None,
            },
        };
        let json = serde_json::to_string(&envelope).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"node":"n1","seq":7,"kind":"line","name":"ann","protocol":"tcp-text","text":"hi","time_ms":5,"raw":[104,105,10],"id":3}"#
        );
        assert_eq!(decode(&json).unwrap().record, envelope.record);
        assert!(decode(&json[..json.len() - 3]).is_none());
        assert!(decode(&json.replace(r#""v":1"#, r#""v":2"#)).is_none());
        assert!(decode(&json.replace("tcp-text", "carrier-pigeon")).is_none());
        assert!(decode("not json").is_none());
    }
}
