//! The cluster's [`Broker`]: several chatterbox nodes on one Redis are one lobby, in one order,
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
//!
//! The node's logic (the appender, the reader, the lease) takes every step on the
//! cluster's state through a [`Driver`]: [`RedisDriver`] runs each in Redis; the tests
//! run the same logic, N nodes in one process, on a cluster in memory (`memory`).
//!
//! One concern a file: [`settings`] (where the cluster is, who this node is), [`keys`]
//! (the keys' names), [`entry`] (the entry format, a member as presence keeps it),
//! [`connect`](mod@connect) (joining the cluster), [`driver`] (the steps in Redis),
//! [`shared`] (what the node's tasks share), [`appender`] and [`reader`] (the node's
//! two tasks), [`pending`] (its appends on their way back), [`history`] (a stored line
//! of `<c>:lines`), [`roster`], [`lease`], [`ids`] and [`scripts`]; here, the
//! [`Broker`] itself. No file imports one that imports it back.

mod appender;
mod connect;
mod driver;
mod entry;
mod history;
mod ids;
mod keys;
mod lease;
#[cfg(test)]
pub(crate) mod memory;
mod pending;
mod reader;
mod roster;
mod scripts;
mod settings;
mod shared;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{
    AppendRefusal, Broker, BrokerHandler, HistoryError, QueueFull, Queued, RoomRefusal, StoredLine,
};
use crate::chat::Someone;
use crate::locks::lock;
use appender::{Job, RoomRequest};
use driver::{Append, Driver, Kind, Page, RedisDriver, RoomKind};
use entry::{ENTRY_VERSION, Envelope};
use pending::{Pending, PendingQueue};
use reader::Reader;
use roster::member_key;
use shared::Shared;

pub use connect::ClusterError;
pub(crate) use connect::{Connected, connect};
use entry::Record;
pub use settings::ClusterSettings;

/// Default cluster name: the prefix of every key.
pub(crate) const DEFAULT_CLUSTER: &str = "chatterbox";

/// How long [`Broker::finish`] waits for the node's own entries still on their way.
const FINISH_WAIT: Duration = Duration::from_secs(3);

/// Default `--node-lease-ms`.
pub(crate) const DEFAULT_LEASE_MS: u64 = 5_000;

/// Default `--redis-timeout-ms`: the redis crate's own 500 ms was passed by a busy
/// Redis during a join storm of 5,000 members (docs/performance.md, the cluster).
pub(crate) const DEFAULT_RESPONSE_TIMEOUT_MS: u64 = 2_000;

/// Default `--cluster-log-entries`: the log is read as it is written; this much lets a
/// node that lost Redis for a while catch up from it.
pub(crate) const DEFAULT_LOG_ENTRIES: u64 = 100_000;

/// The cluster's broker (see the module doc).
pub(crate) struct RedisBroker<T, S, D = RedisDriver> {
    shared: Arc<Shared<T>>,
    handler: Arc<dyn BrokerHandler<T, S>>,
    node: String,
    next_seq: Mutex<u64>,
    capacity: usize,
    appends: mpsc::UnboundedSender<Job<S>>,
    /// Set once the lobby closes: a slow member's leave is no longer announced.
    closed: AtomicBool,
    /// `/api/history`'s reads, and the node's giving up at shutdown.
    driver: D,
    /// What this node's keys in `<c>:members` start with.
    own_members: String,
    stop: CancellationToken,
}

impl<T: Send + 'static, S: Send + 'static, D: Driver> RedisBroker<T, S, D> {
    /// Starts the node's appender, reader and lease tasks (on the current tokio
    /// runtime); every entry read is handed to `handler`, in log order, in batches of at
    /// most `batch_items`; at most `capacity` chat lines (and as many room requests)
    /// wait for Redis.
    pub(crate) fn start(
        connected: Connected<D>,
        capacity: usize,
        batch_items: usize,
        handler: Arc<dyn BrokerHandler<T, S>>,
    ) -> Self {
        let Connected {
            settings,
            driver,
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
        // Bounded without a bound of its own: chat lines are capped at `capacity` in
        // the pending FIFO, seats and room lines at `capacity` by `rooms_waiting`
        // (`QueueFull` past either), joins, leaves and freed seats by the connections.
        let (to_appender, from_lobby) = mpsc::unbounded_channel();
        tokio::spawn(appender::append_all(
            driver.clone(),
            from_lobby,
            shared.clone(),
            handler.clone(),
            stop.clone(),
        ));
        let reader = Reader {
            driver: driver.clone(),
            node: settings.node_id.clone(),
            start,
            shared: shared.clone(),
            handler: handler.clone(),
            batch_items: batch_items.max(1),
            stop: stop.clone(),
        };
        tokio::spawn(reader.run());
        tokio::spawn(lease::keep(
            driver.clone(),
            settings.clone(),
            shared.clone(),
            handler.clone(),
            stop.clone(),
        ));
        let own_members = format!("{}/", settings.node_id);
        Self {
            shared,
            handler,
            node: settings.node_id,
            next_seq: Mutex::new(1),
            capacity,
            appends: to_appender,
            closed: AtomicBool::new(false),
            driver,
            own_members,
            stop,
        }
    }
}

impl<T, S, D> RedisBroker<T, S, D> {
    /// Sends a room request to the appender, in order with the node's entries. A seat
    /// or a room line is refused while `capacity` of them wait for Redis.
    fn ask_rooms(
        &self,
        kind: RoomKind,
        member: u64,
        room: Arc<str>,
        json: String,
        told: Option<S>,
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
            id: member,
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

impl<T: Send + 'static, S: Send + 'static, D> RedisBroker<T, S, D> {
    /// Sends `queued` to the appender, to come back through the log.
    fn append(&self, queued: Queued<T>) -> Result<(), AppendRefusal> {
        let said = self.handler.said(&queued.item);
        let (record, member) = Record::of(said, queued.line.as_ref());
        let kind = match &record {
            Record::Line { .. } => Kind::Line,
            Record::Joined { .. } => Kind::Join,
            Record::Left { .. } => Kind::Leave,
            Record::RoomLine { .. } => {
                tracing::error!("a room line appended as a lobby event: dropped");
                return Ok(());
            }
        };
        let member_json = match record.member().map(serde_json::to_string) {
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
            member_json,
        };
        // Sent under the lock: the appender gets the entries in the FIFO's order.
        if self.appends.send(Job::Entry(append)).is_err() {
            tracing::error!("the cluster appender has stopped: entry dropped");
            pending.pop_back();
        }
        Ok(())
    }
}

impl<T: Send + 'static, S: Send + 'static, D: Driver> Broker<T, S> for RedisBroker<T, S, D> {
    fn publish(&self, queued: Queued<T>) -> Result<Option<T>, AppendRefusal> {
        self.append(queued)?;
        Ok(None)
    }

    fn slow_leave(&self, leave: T) -> Option<T> {
        if !self.closed.load(Ordering::SeqCst) {
            let queued = Queued {
                item: leave,
                line: None,
                replay: 0,
            };
            if let Err(e) = self.append(queued) {
                tracing::error!("a slow member's leave not announced: {e}");
            }
        }
        None
    }

    fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    fn keeps_history(&self) -> bool {
        true
    }

    fn page(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Option<Result<Vec<StoredLine>, HistoryError>> {
        Some(
            self.driver
                .lines(Page::Before(before), limit)
                .map(|mut lines| {
                    lines.reverse();
                    lines
                }),
        )
    }

    fn page_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Option<Result<Vec<StoredLine>, HistoryError>> {
        Some(self.driver.lines(Page::After(after), limit))
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
        match self.driver.give_up_now() {
            Ok(left) => tracing::info!(
                members = left,
                "left the cluster: its members announced as left"
            ),
            Err(e) => tracing::error!(
                "cannot leave the cluster ({e}): the other nodes announce this node's members as left once its lease runs out"
            ),
        }
    }

    fn member_id(&self) -> u64 {
        self.shared.ids.next(&self.shared.refill)
    }

    fn member_count(&self, _here: usize) -> usize {
        lock(&self.shared.roster).len()
    }

    fn present(&self, _here: &dyn Fn() -> Vec<Someone>) -> Vec<Someone> {
        lock(&self.shared.roster).present()
    }

    fn held_elsewhere(&self, key: &str) -> bool {
        lock(&self.shared.roster).holds(key, &self.own_members)
    }

    fn held_elsewhere_at_most(&self) -> usize {
        lock(&self.shared.roster).len()
    }

    fn reachable(&self) -> Option<bool> {
        Some(!self.shared.unavailable.load(Ordering::SeqCst))
    }

    fn take_seat(&self, member: u64, room: Arc<str>, seat: S) -> Result<(), AppendRefusal> {
        self.ask_rooms(RoomKind::Seat, member, room, String::new(), Some(seat))
    }

    fn say_in_room(&self, member: u64, text: &str, seat: S) -> Result<(), RoomRefusal> {
        if self.shared.unavailable.load(Ordering::SeqCst) {
            return Err(AppendRefusal::Unavailable.into());
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
            Ok(json) => {
                Ok(self.ask_rooms(RoomKind::Line, member, Arc::from(""), json, Some(seat))?)
            }
            Err(e) => {
                tracing::error!("cannot encode a room line: {e}");
                Ok(())
            }
        }
    }

    fn free_seat(&self, member: u64) {
        // Never refused: one a leave, bounded by the connections.
        let freed = self.ask_rooms(RoomKind::Unseat, member, Arc::from(""), String::new(), None);
        debug_assert!(freed.is_ok());
    }
}

/// A node id for a node started without `--node-id`: the process and the start time.
pub(crate) fn generated_node_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}-{:x}", std::process::id(), nanos & 0xffff_ffff_ffff)
}
