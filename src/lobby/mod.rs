//! The lobby: the one piece of shared state of chatterbox.
//!
//! Every client connection joins the lobby as a [`Member`] and gets an [`Outbox`] of its
//! own protocol. The lobby decides everything that is not wire format: what a name may be,
//! which lines are accepted, who is present, and who receives which [`Event`]. Protocol
//! modules only translate between their wire format and these calls and events.
//!
//! Delivery rules:
//! - Events are fanned out under one lock, so every member sees every event in the same
//!   order, and a sender's lines arrive in the order it sent them.
//! - Fan-out never waits: [`Outbox::offer`] must not block. A member whose outbox is full
//!   is a slow consumer: it is removed from the lobby, announced as left to the others, and
//!   cut off ([`Outbox::cut_off`]). Nobody else waits for it. Its leave is announced
//!   after the batch of events in which it was found slow.
//! - A member that never named itself is a connection, not a member: it receives events
//!   (a Socket.IO socket gets the lobby's `update`s from its connection, as every socket
//!   did from the original server, even one that only uses the two-person rooms), but it
//!   is not counted ([`Lobby::member_count`], the counts in `Joined` and `Left`) and its
//!   arrival and departure are not announced. [`Lobby::connection_count`] counts both.
//!
//! With a history ([`Lobby::with_history`]), every event goes through the lobby's
//! [`Log`] instead of straight to the outboxes: chat lines are committed to disk
//! first, and every event (joins and leaves too, so that their order with the lines
//! stays) is fanned out by the writer thread, in the order the lobby accepted it. A
//! member receives what is fanned out while it is present: a member that joins may
//! receive a line said a few milliseconds before its join, still on its way to disk.

//!
//! With a cluster ([`Lobby::with_cluster`], `--redis-url`), the log is the cluster's
//! log in Redis ([`crate::log::redis`]): every node appends there and relays what it
//! reads back, its own events included, in the log's one order. Presence is then the
//! log's ([`Log::present`]): counts, `/healthz` and `/api/members` are the whole
//! cluster's, each join's and leave's count the one the log gave it; a slow member's
//! leave goes through the log too; and a node that lost its lease drops every
//! connection ([`Lobby::drop_everyone`]).
//!
//! The parts: [`member`] (what a connection may ask of the lobby), [`event`] (what
//! members receive), [`fanout`] (delivery in order, replay, slow consumers),
//! [`presence`] (who is here), [`names`], [`rooms`], [`rate`], [`limits`], [`error`].

pub(crate) mod backlog;
pub(crate) mod churn;
mod cluster;
pub(crate) mod error;
pub(crate) mod event;
pub(crate) mod fanout;
pub(crate) mod limits;
pub(crate) mod member;
pub(crate) mod names;
pub(crate) mod presence;
pub(crate) mod rate;
pub(crate) mod rooms;
pub(crate) mod roster;
mod table;
pub(crate) mod tap;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use error::LobbyError;
pub use event::Event;
pub(crate) use event::{Delivery, Outbox, OutboxRefusal};
pub(crate) use limits::Limits;
pub(crate) use member::Member;
pub use rooms::RoomError;

pub use crate::log::QueueFull;
use crate::log::{
    self, AppendRefusal, Committed, Log, NewLine, Queued, Sequencer, Store, StoredLine,
};
use crate::protocol::Protocol;
use crate::refusals::Refusals;
use crate::telemetry::LobbyMetrics;
use churn::{Churn, LogLine};
pub(crate) use fanout::Stored;
use fanout::{Outgoing, SlowLeaves, Someone, cut_off, fan_out, fan_out_with, remove_member};
use rate::Bucket;
use rooms::Rooms;
use table::Table;

/// A handle to the lobby. Cheap to clone; all clones share one lobby.
#[derive(Clone)]
pub(crate) struct Lobby {
    inner: Arc<Inner>,
}

struct Inner {
    limits: Limits,
    next_id: AtomicU64,
    members: Mutex<Table>,
    rooms: Rooms,
    /// Set once the server shuts down: members leave silently from then on.
    closed: AtomicBool,
    metrics: LobbyMetrics,
    /// The log every event goes through when there is a history.
    log: Option<Box<dyn Log<Outgoing>>>,
    /// Whether presence (who is here, the counts) is the log's ([`Log::present`]): a
    /// cluster's, where the whole lobby is every node's members.
    log_presence: bool,
    /// Bumped whenever the list of named members changes.
    presence: watch::Sender<u64>,
    /// Every refusal's count and log line.
    refusals: Refusals,
    /// Every client address's joins, and the folding of join and leave log lines.
    churn: Churn,
    /// The admin UI's development mode's view of the traffic ([`tap`]).
    tap: tap::Tap,
}

/// A member's place in the lobby's table.
struct Entry {
    protocol: Protocol,
    name: Option<Arc<str>>,
    /// The fold of its name and the name it asked for ([`names`]).
    naming: names::Naming,
    since: SystemTime,
    /// The client's address, if known.
    from: Option<IpAddr>,
    outbox: Arc<dyn Outbox>,
    /// The history id of the first chat line relayed to it: a replay stops before it,
    /// since everything from there on reached the member live (even unnamed).
    first_live_line: Option<i64>,
    /// What it was offered since it last caught up (the slow-consumer rule).
    backlog: backlog::Backlog,
}

impl Entry {
    /// Who member `id` is, for the announcement of its join or leave.
    fn someone(&self, id: u64) -> Someone {
        Someone {
            id,
            protocol: self.protocol,
            since: self.since,
            key: self.naming.key().map(Box::from),
        }
    }
}

/// Where the log hands each committed batch, in order.
type Deliver = Box<dyn FnMut(Vec<Committed<Outgoing>>) + Send + 'static>;

impl Inner {
    fn new(limits: Limits, log: Option<Box<dyn Log<Outgoing>>>) -> Self {
        Self {
            log_presence: log.as_ref().is_some_and(|log| log.present().is_some()),
            refusals: Refusals::new(limits.log_fold),
            churn: Churn::new(limits.joins),
            limits,
            next_id: AtomicU64::new(1),
            members: Mutex::new(Table::default()),
            rooms: Rooms::default(),
            closed: AtomicBool::new(false),
            metrics: LobbyMetrics::new(),
            log,
            presence: watch::Sender::new(0),
            tap: tap::Tap::default(),
        }
    }
}

/// The most events a log hands the lobby in one batch: half a member's queue, so that a
/// batch fits even in a queue the previous one has not been written out of yet (the
/// lobby hands a whole batch to each member's queue at once).
fn relay_batch_items(limits: &Limits) -> usize {
    (limits.outbox_messages / 2).clamp(1, MAX_RELAY_BATCH_ITEMS)
}

/// The most events a log hands the lobby in one batch, whatever the queues hold.
const MAX_RELAY_BATCH_ITEMS: usize = 512;

impl Lobby {
    /// An empty lobby applying `limits`, without history: events go straight out.
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            inner: Arc::new(Inner::new(limits, None)),
        }
    }

    /// An empty lobby applying `limits` that commits every chat line to `store` before
    /// relaying it (see the module doc). Fails only if the writer thread cannot start.
    pub(crate) fn with_history(limits: Limits, store: Store) -> std::io::Result<Self> {
        let capacity = limits.history_queue_lines;
        let batch_items = relay_batch_items(&limits);
        Self::with_log(limits, |deliver, _, _| {
            let log: Box<dyn Log<Outgoing>> =
                Box::new(Sequencer::start(store, capacity, batch_items, deliver)?);
            Ok(log)
        })
    }

    /// An empty lobby of a cluster node: every event goes through the cluster's log in
    /// Redis and is relayed as every node reads it back (see the module doc).
    pub(crate) fn with_cluster(
        limits: Limits,
        connected: log::redis::Connected,
    ) -> std::io::Result<Self> {
        let capacity = limits.history_queue_lines;
        let batch_items = relay_batch_items(&limits);
        Self::with_log(limits, |deliver, lost, room_line| {
            let log: Box<dyn Log<Outgoing>> = Box::new(log::redis::RedisLog::start(
                connected,
                capacity,
                batch_items,
                deliver,
                lost,
                room_line,
            ));
            Ok(log)
        })
    }

    /// An empty lobby whose events go through the log `start` makes; `start` gets the
    /// delivery the log hands every committed batch to, and what a cluster's log calls
    /// when the node lost its place in the cluster ([`Lobby::drop_everyone`]).
    fn with_log(
        limits: Limits,
        start: impl FnOnce(
            Deliver,
            log::redis::Lost,
            log::RoomLine,
        ) -> std::io::Result<Box<dyn Log<Outgoing>>>,
    ) -> std::io::Result<Self> {
        let mut failure = None;
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let for_delivery = weak.clone();
            let deliver: Deliver = Box::new(move |batch| {
                if let Some(inner) = for_delivery.upgrade() {
                    Lobby { inner }.deliver(batch);
                }
            });
            let for_lost = weak.clone();
            let lost: log::redis::Lost = Box::new(move || {
                if let Some(inner) = for_lost.upgrade() {
                    Lobby { inner }.drop_everyone();
                }
            });
            let for_rooms = weak.clone();
            let room_line: log::RoomLine = Box::new(move |room, line| {
                if let Some(inner) = for_rooms.upgrade() {
                    Lobby { inner }.relay_in_room(room, &line);
                }
            });
            let log = start(deliver, lost, room_line)
                .map_err(|e| failure = Some(e))
                .ok();
            Inner::new(limits, log)
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(Self { inner }),
        }
    }

    /// Commits and relays whatever is still queued for the history, then stops its
    /// writer. Blocking: call it from `spawn_blocking`, once the listeners have stopped.
    pub(crate) fn finish_history(&self) {
        if let Some(log) = &self.inner.log {
            log.finish();
        }
    }

    /// Whether this lobby keeps a history.
    pub(crate) fn has_history(&self) -> bool {
        self.inner.log.is_some()
    }

    /// Up to `limit` stored lines before id `before` (the newest if `None`), oldest
    /// first; `None` without a history. Blocking: call it from `spawn_blocking`.
    pub(crate) fn history_page(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Option<Result<Vec<StoredLine>, log::HistoryError>> {
        let log = self.inner.log.as_ref()?;
        Some(log.page(before, limit))
    }

    /// Up to `limit` stored lines after id `after`, oldest first; `None` without a
    /// history. Blocking: call it from `spawn_blocking`.
    pub(crate) fn history_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Option<Result<Vec<StoredLine>, log::HistoryError>> {
        let log = self.inner.log.as_ref()?;
        Some(log.page_after(after, limit))
    }

    /// Sends `event` on its way: straight to every member, or through the log. Called
    /// with the members' lock held, so that the log's order is the lobby's. Returns the
    /// outboxes to cut off once the lock is released.
    fn announce(
        &self,
        members: &mut Table,
        event: Event,
        from: Option<u64>,
        replay_to: Option<u64>,
        stored: Option<Stored>,
        someone: Option<Someone>,
    ) -> Result<Vec<Arc<dyn Outbox>>, AppendRefusal> {
        let Some(log) = &self.inner.log else {
            let out = Outgoing {
                stored,
                someone,
                ..Outgoing::new(event, from)
            };
            return Ok(fan_out(
                members,
                &self.inner.metrics,
                &self.inner.tap,
                &self.inner.limits.slow,
                vec![out],
            ));
        };
        let line = match &event {
            Event::Message {
                name, text, origin, ..
            } => Some(NewLine {
                time: SystemTime::now(),
                name: name.clone(),
                protocol: *origin,
                text: text.clone(),
            }),
            _ => None,
        };
        let replay = match replay_to {
            Some(_) => self.inner.limits.replay_lines.min(log::MAX_PAGE_LINES),
            None => 0,
        };
        let item = Outgoing {
            replay: replay_to.map(|to| (to, Vec::new())),
            stored,
            someone,
            ..Outgoing::new(event, from)
        };
        log.append(Queued { item, line, replay })?;
        Ok(Vec::new())
    }

    /// [`Lobby::announce`] for a join or leave, which the log never refuses (only chat
    /// lines count against its queue).
    fn announce_presence(
        &self,
        members: &mut Table,
        event: Event,
        someone: Someone,
        replay_to: Option<u64>,
    ) -> Vec<Arc<dyn Outbox>> {
        self.announce(members, event, None, replay_to, None, Some(someone))
            .unwrap_or_default()
    }

    /// Fans out a committed batch, in order (the log's writer calls this).
    fn deliver(&self, batch: Vec<Committed<Outgoing>>) {
        let mut presence = false;
        let batch = batch
            .into_iter()
            .map(|done| {
                let mut out = done.item;
                if let Some(count) = done.members {
                    presence = true;
                    out.count_as(count);
                }
                if let Some(id) = done.id {
                    out.delivery.set_line_id(id);
                }
                if let Some((_, lines)) = &mut out.replay {
                    *lines = done.replayed;
                }
                out
            })
            .collect();
        // Where presence lives in the log, a slow member's leave goes through it too,
        // so that every node hears it, in its place in the one order.
        let slow_leaves = match self.inner.log_presence {
            true => SlowLeaves::Returned,
            false => SlowLeaves::FannedOut,
        };
        let cut = {
            let mut members = self.lock();
            let (cut, leaves) = fan_out_with(
                &mut members,
                &self.inner.metrics,
                &self.inner.tap,
                &self.inner.limits.slow,
                batch,
                slow_leaves,
            );
            let closed = self.inner.closed.load(Ordering::SeqCst);
            if let (Some(log), false) = (&self.inner.log, closed) {
                for item in leaves {
                    let queued = Queued {
                        item,
                        line: None,
                        replay: 0,
                    };
                    if let Err(e) = log.append(queued) {
                        tracing::error!("a slow member's leave not announced: {e}");
                    }
                }
            }
            cut
        };
        if presence || !cut.is_empty() {
            self.presence_changed();
        }
        cut_off(cut);
    }

    /// The limits in force.
    pub(crate) fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Where every refusal is counted and logged.
    pub(crate) fn refusals(&self) -> &Refusals {
        &self.inner.refusals
    }

    /// Adds a connection from `from` to the lobby: from now on it receives every event
    /// through `outbox`. A member of a protocol [announced on
    /// connect](Protocol::announced_on_connect) is named `guest-<id>` and announced, a
    /// join that counts against its address's budget ([`churn`]: refused over it); any
    /// other stays unnamed and unannounced until [`Member::set_name`]. Dropping the
    /// returned [`Member`] removes it.
    pub(crate) fn join(
        &self,
        protocol: Protocol,
        outbox: impl Outbox,
        from: Option<IpAddr>,
    ) -> Result<Member, LobbyError> {
        if protocol.announced_on_connect() {
            self.inner.churn.check(from)?;
        }
        let id = match self.inner.log.as_ref().and_then(|log| log.member_id()) {
            Some(id) => id,
            None => self.inner.next_id.fetch_add(1, Ordering::Relaxed),
        };
        let name = protocol
            .announced_on_connect()
            .then(|| names::guest_name(id));
        let entry = Entry {
            protocol,
            naming: names::Naming::new(name.as_deref()),
            name: name.clone(),
            since: SystemTime::now(),
            from,
            outbox: Arc::new(outbox),
            first_live_line: None,
            backlog: Default::default(),
        };
        let someone = entry.someone(id);
        let cut = {
            let mut members = self.lock();
            members.insert(id, entry);
            tracing::debug!(member = id, protocol = protocol.as_str(), "connected");
            match name {
                Some(name) => {
                    self.log_presence_line(true, id, &name, protocol.as_str());
                    self.inner.metrics.members[protocol.index()].increment(1.0);
                    self.inner.metrics.joins[protocol.index()].increment(1);
                    let event = Event::Joined {
                        name,
                        members: members.named(),
                    };
                    self.announce_presence(&mut members, event, someone, None)
                }
                None => Vec::new(),
            }
        };
        if protocol.announced_on_connect() {
            self.presence_changed();
        }
        cut_off(cut);
        Ok(Member {
            lobby: self.clone(),
            id,
            rate: Bucket::new(self.inner.limits.rate),
            from,
        })
    }

    /// Logs a member's join (or leave): a line of its own, or at `debug` and counted in
    /// the interval's summary once joins and leaves churn ([`churn`]).
    fn log_presence_line(&self, join: bool, member: u64, name: &str, protocol: &'static str) {
        let folding = !self.inner.limits.log_fold.is_zero();
        let what = if join { "joined" } else { "left" };
        match self.inner.churn.log_line(join, folding) {
            LogLine::Own => tracing::info!(member, %name, protocol, "{what}"),
            LogLine::Folded => tracing::debug!(member, %name, protocol, "{what} (folded)"),
        }
    }

    /// Ends an interval of the log's folding: the refusals' summaries, the joins' and
    /// leaves' ([`churn`]), and the join budgets of addresses that came back to full.
    pub(crate) fn summarise(&self) {
        self.inner.refusals.summarise();
        self.inner
            .churn
            .end_interval(self.inner.limits.log_fold.as_secs());
    }

    /// [`Lobby::summarise`] at the end of every `--log-fold-secs` interval until
    /// `stop`; with no folding, only the join budgets are trimmed, every ten seconds.
    /// The caller summarises once more when the server stops.
    pub(crate) async fn fold_every(self, stop: CancellationToken) {
        let interval = match self.inner.limits.log_fold {
            zero if zero.is_zero() => std::time::Duration::from_secs(10),
            interval => interval,
        };
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = ticks.tick() => self.summarise(),
            }
        }
    }

    /// Closes the lobby for shutdown: members still leave it, but their leaves are no
    /// longer announced (every one of them is going).
    pub(crate) fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
    }

    /// Named members in the lobby now: those the protocols count (a Socket.IO socket
    /// from its `newUser`, a TCP JSON client from its `CONNECT`, a WebSocket or TCP text
    /// client from its connection).
    pub(crate) fn member_count(&self) -> usize {
        match &self.inner.log {
            Some(log) if self.inner.log_presence => log.member_count().unwrap_or(0),
            _ => self.lock().named(),
        }
    }

    /// Ends every connection at once, silently: for a cluster node whose members the
    /// cluster has already announced as left (its lease ran out while it was frozen or
    /// cut off from Redis). Their clients reconnect and join anew.
    pub(crate) fn drop_everyone(&self) {
        let cut: Vec<_> = {
            let mut members = self.lock();
            let ids: Vec<u64> = members.keys().copied().collect();
            ids.into_iter()
                .filter_map(|id| remove_member(&mut members, &self.inner.metrics, id))
                .map(|(entry, _)| entry.outbox)
                .collect()
        };
        tracing::warn!(
            connections = cut.len(),
            "this node's lease ran out: every connection dropped (the cluster announced its members as left)"
        );
        self.presence_changed();
        cut_off(cut);
    }

    /// For a cluster node, whether its Redis answers now; `None` for a single node.
    pub(crate) fn cluster_available(&self) -> Option<bool> {
        let log = self.inner.log.as_ref()?;
        self.inner.log_presence.then(|| log.available())
    }

    /// Connections in the lobby now, named or not.
    pub(crate) fn connection_count(&self) -> usize {
        self.lock().len()
    }

    /// Refuses a chat line over the length limit.
    fn check_message(&self, text: &str) -> Result<(), LobbyError> {
        let max = self.inner.limits.max_message_chars;
        // Counting stops at the first character over the limit: a huge line costs no more
        // than a line of exactly the limit.
        if text.chars().nth(max).is_some() {
            return Err(LobbyError::MessageTooLong { max });
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        crate::locks::lock(&self.inner.members)
    }

    fn leave(&self, id: u64) {
        self.inner.rooms.leave(id);
        self.free_cluster_seat(id);
        self.inner.refusals.left(id);
        let named;
        let cut = {
            let mut members = self.lock();
            let Some((entry, left)) = remove_member(&mut members, &self.inner.metrics, id) else {
                return; // already cut off
            };
            named = left.is_some();
            let protocol = entry.protocol.as_str();
            tracing::debug!(member = id, protocol, "disconnected");
            match (left, &entry.name) {
                (Some(_), _) if self.inner.closed.load(Ordering::SeqCst) => Vec::new(),
                (Some(left), Some(name)) => {
                    self.log_presence_line(false, id, name, protocol);
                    self.announce_presence(&mut members, left, entry.someone(id), None)
                }
                _ => Vec::new(),
            }
        };
        // Out of the table now: a seat a cluster gave it meanwhile goes too
        // ([`Lobby::seat_if_present`]).
        self.inner.rooms.leave(id);
        if named {
            self.presence_changed();
        }
        cut_off(cut);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Condvar;
    use std::time::{Duration, Instant};

    use super::*;

    /// How long a test waits for what it expects.
    const WAIT: Duration = Duration::from_secs(10);

    /// An outbox that records what it was offered and can be made to refuse.
    #[derive(Clone, Default)]
    pub(crate) struct Recorder {
        seen: Arc<(Mutex<Seen>, Condvar)>,
        pub(crate) refuse: Arc<Mutex<Option<OutboxRefusal>>>,
        /// Takes this many more events, then is full.
        pub(crate) room: Arc<Mutex<Option<usize>>>,
        /// Never reads: what it is offered stays queued (else it is taken at once).
        pub(crate) behind: Arc<AtomicBool>,
    }

    #[derive(Default)]
    struct Seen {
        events: Vec<Event>,
        cut: usize,
    }

    impl Recorder {
        /// What it has received so far.
        pub(crate) fn take(&self) -> Vec<Event> {
            std::mem::take(&mut self.seen.0.lock().unwrap().events)
        }

        /// Waits until it has received `count` events (a lobby with a log delivers from
        /// the log's writer thread), then takes all it has.
        pub(crate) fn take_when(&self, count: usize) -> Vec<Event> {
            let seen = self.wait(|seen| seen.events.len() >= count);
            std::mem::take(&mut { seen }.events)
        }

        /// Waits until it has been cut off `times` times.
        pub(crate) fn wait_cut(&self, times: usize) -> usize {
            self.wait(|seen| seen.cut >= times).cut
        }

        fn wait(&self, done: impl Fn(&Seen) -> bool) -> MutexGuard<'_, Seen> {
            let (seen, changed) = &*self.seen;
            let deadline = Instant::now() + WAIT;
            let mut seen = seen.lock().unwrap();
            while !done(&seen) {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "not received within {WAIT:?}");
                seen = changed.wait_timeout(seen, left).unwrap().0;
            }
            seen
        }

        fn record(&self, change: impl FnOnce(&mut Seen)) {
            change(&mut self.seen.0.lock().unwrap());
            self.seen.1.notify_all();
        }
    }

    impl Outbox for Recorder {
        fn offer(&self, delivery: &Arc<Delivery>) -> Result<(), OutboxRefusal> {
            if let Some(refusal) = *self.refuse.lock().unwrap() {
                return Err(refusal);
            }
            if let Some(room) = self.room.lock().unwrap().as_mut() {
                *room = room.checked_sub(1).ok_or(OutboxRefusal::Full)?;
            }
            let event = delivery.event().clone();
            self.record(|seen| seen.events.push(event));
            Ok(())
        }
        fn queued(&self) -> usize {
            match self.behind.load(Ordering::SeqCst) {
                true => self.seen.0.lock().unwrap().events.len(),
                false => 0,
            }
        }
        fn cut_off(&self) {
            self.record(|seen| seen.cut += 1);
        }
    }

    pub(crate) fn joined(name: &str, members: usize) -> Event {
        Event::Joined {
            name: name.into(),
            members,
        }
    }

    fn said(name: &str, text: &str) -> Event {
        Event::Message {
            name: name.into(),
            text: text.into(),
            origin: Protocol::SocketIo,
            raw: None,
        }
    }

    fn left(name: &str, members: usize) -> Event {
        Event::Left {
            name: name.into(),
            members,
        }
    }

    /// Runs `test` on a lobby without history, then on one with the default path: every
    /// event through the SQLite log.
    fn with_each_lobby(limits: Limits, test: impl Fn(&Lobby)) {
        test(&Lobby::new(limits.clone()));
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("history.db")).unwrap();
        let lobby = Lobby::with_history(limits, store).unwrap();
        test(&lobby);
        lobby.finish_history();
    }

    #[test]
    fn lines_skip_a_non_echoing_sender_and_use_the_stored_name() {
        with_each_lobby(Limits::default(), |lobby| {
            let (a_box, b_box) = (Recorder::default(), Recorder::default());
            let a = lobby.join(Protocol::SocketIo, a_box.clone(), None).unwrap();
            let b = lobby.join(Protocol::SocketIo, b_box.clone(), None).unwrap();
            assert_eq!(a.say("too early"), Err(LobbyError::Unnamed));
            a.set_name("ann").unwrap();
            b.set_name("bob").unwrap();
            a.say("hi").unwrap();
            assert_eq!(
                b_box.take_when(3),
                [joined("ann", 1), joined("bob", 2), said("ann", "hi")]
            );
            assert_eq!(a_box.take_when(2), [joined("ann", 1), joined("bob", 2)]);
            drop(a);
            assert_eq!(b_box.take_when(1), [left("ann", 1)]);
            assert_eq!(lobby.member_count(), 1);
            drop(b);
            assert_eq!(lobby.member_count(), 0);
        });
    }

    #[test]
    fn unnamed_members_leave_silently_and_long_lines_are_refused() {
        let limits = Limits {
            max_message_chars: 3,
            ..Limits::default()
        };
        with_each_lobby(limits, |lobby| {
            let watcher = Recorder::default();
            let _w = lobby
                .join(Protocol::SocketIo, watcher.clone(), None)
                .unwrap();
            let quiet = lobby
                .join(Protocol::SocketIo, Recorder::default(), None)
                .unwrap();
            drop(quiet);
            let talker = lobby
                .join(Protocol::SocketIo, Recorder::default(), None)
                .unwrap();
            talker.set_name("t").unwrap();
            assert_eq!(
                talker.say("four"),
                Err(LobbyError::MessageTooLong { max: 3 })
            );
            talker.say("가나다").unwrap();
            // The unnamed watcher hears the lobby but is not counted in it.
            assert_eq!(watcher.take_when(2), [joined("t", 1), said("t", "가나다")]);
            assert_eq!((lobby.member_count(), lobby.connection_count()), (1, 2));
        });
    }

    #[test]
    fn a_full_outbox_is_cut_off_and_announced_once() {
        with_each_lobby(Limits::default(), |lobby| {
            let (fast, slow) = (Recorder::default(), Recorder::default());
            let f = lobby.join(Protocol::SocketIo, fast.clone(), None).unwrap();
            let s = lobby.join(Protocol::SocketIo, slow.clone(), None).unwrap();
            s.set_name("slow").unwrap();
            f.set_name("fast").unwrap();
            assert_eq!(fast.take_when(2), [joined("slow", 1), joined("fast", 2)]);
            slow.take_when(2);
            *slow.refuse.lock().unwrap() = Some(OutboxRefusal::Full);
            f.say("one").unwrap();
            assert_eq!(slow.wait_cut(1), 1);
            assert_eq!(fast.take_when(1), [left("slow", 1)]);
            assert_eq!(s.say("late"), Err(LobbyError::Gone));
            drop(s); // its guard leaves again: nothing more is announced
            let w = lobby
                .join(Protocol::WebSocket, Recorder::default(), None)
                .unwrap();
            // The next thing `fast` hears is the newcomer: no second leave before it.
            assert_eq!(fast.take_when(1), [joined(&format!("guest-{}", w.id()), 2)]);
            assert_eq!(slow.wait_cut(1), 1);
            assert_eq!(lobby.member_count(), 2);
        });
    }

    #[test]
    fn a_closed_lobby_announces_no_leaves() {
        with_each_lobby(Limits::default(), |lobby| {
            let stays = Recorder::default();
            let s = lobby.join(Protocol::SocketIo, stays.clone(), None).unwrap();
            let goes = lobby
                .join(Protocol::SocketIo, Recorder::default(), None)
                .unwrap();
            goes.set_name("goes").unwrap();
            assert_eq!(stays.take_when(1), [joined("goes", 1)]);
            lobby.close();
            drop(goes);
            // The next thing `stays` hears is its own join: no leave before it.
            s.set_name("stays").unwrap();
            assert_eq!(stays.take_when(1), [joined("stays", 1)]);
            assert_eq!(lobby.member_count(), 1);
        });
    }

    #[test]
    fn through_the_log_lines_are_relayed_in_order_and_stored_with_their_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("history.db")).unwrap();
        let lobby = Lobby::with_history(Limits::default(), store).unwrap();
        let (ann_box, bob_box) = (Recorder::default(), Recorder::default());
        let ann = lobby
            .join(Protocol::SocketIo, ann_box.clone(), None)
            .unwrap();
        let bob = lobby
            .join(Protocol::TcpJson, bob_box.clone(), None)
            .unwrap();
        ann.set_name("ann").unwrap();
        bob.set_name("bob").unwrap();
        ann.say("one").unwrap();
        bob.say("two").unwrap();
        let two = Event::Message {
            name: "bob".into(),
            text: "two".into(),
            origin: Protocol::TcpJson,
            raw: None,
        };
        let heard = bob_box.take_when(4);
        assert_eq!(
            heard,
            [joined("ann", 1), joined("bob", 2), said("ann", "one"), two]
        );
        let stored = lobby.history_page(None, 10).unwrap().unwrap();
        let lines: Vec<_> = stored
            .iter()
            .map(|line| (line.name.as_str(), line.protocol, line.text.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                ("ann", Protocol::SocketIo, "one"),
                ("bob", Protocol::TcpJson, "two")
            ]
        );
        assert!(stored[0].id < stored[1].id);
        drop((ann, bob));
        lobby.finish_history();
    }
}
