//! The lobby's handle ([`Lobby`]): the one piece of shared state and every operation on
//! it, in one place (see the parent module's doc for the rules). Beside it, a member's
//! guard ([`Member`], whose requests are in [`super::member`]) and the lobby as its
//! broker sees it ([`Up`], the way up: [`super::up`]). Who is in the lobby (presence,
//! the operator's roster, the admin tap) is in [`presence`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::SystemTime;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::churn::{Churn, LogLine};
use super::error::{LobbyError, RoomError};
use super::event::{Event, Outbox};
use super::fanout::{Outgoing, Stored, cut_off, fan_out, remove_member};
use super::limits::Limits;
use super::names::{self, Elsewhere, Given};
use super::rate::Bucket;
use super::rooms::{Rooms, Seat};
use super::table::{Entry, Table};
use super::tap::Tap;
use crate::chat::Someone;
use crate::log::{
    self, AppendRefusal, Broker, BrokerHandler, Committed, NewLine, Queued, Store, StoredLine,
};
use crate::protocol::Protocol;
use crate::refusals::Refusals;
use crate::telemetry::LobbyMetrics;

mod presence;

/// A handle to the lobby. Cheap to clone; all clones share one lobby.
#[derive(Clone)]
pub(crate) struct Lobby {
    pub(super) inner: Arc<Inner>,
}

/// The lobby's broker: how its events travel, who is present, who sits where.
type LobbyBroker = dyn Broker<Outgoing, Arc<dyn Seat>>;

pub(super) struct Inner {
    pub(super) limits: Limits,
    pub(super) members: Mutex<Table>,
    /// This node's seated members, to hand room lines to (the broker counts the seats).
    pub(super) rooms: Rooms,
    /// Set once the server shuts down: members leave silently from then on.
    pub(super) closed: AtomicBool,
    pub(super) metrics: LobbyMetrics,
    /// How every event travels (see the module doc).
    pub(super) broker: Box<LobbyBroker>,
    /// Bumped whenever the list of named members changes.
    pub(super) presence: watch::Sender<u64>,
    /// Every refusal's count and log line.
    pub(super) refusals: Refusals,
    /// Every client address's joins, and the folding of join and leave log lines.
    pub(super) churn: Churn,
    /// The admin UI's development mode's view of the traffic ([`super::tap`]).
    pub(super) tap: Tap,
}

impl Inner {
    fn new(limits: Limits, broker: Box<LobbyBroker>) -> Self {
        Self {
            refusals: Refusals::new(limits.log_fold),
            churn: Churn::new(limits.joins),
            limits,
            members: Mutex::new(Table::default()),
            rooms: Rooms::default(),
            closed: AtomicBool::new(false),
            metrics: LobbyMetrics::new(),
            broker,
            presence: watch::Sender::new(0),
            tap: Tap::default(),
        }
    }
}

impl Lobby {
    /// An empty lobby applying `limits`, without history: events go straight out.
    pub(crate) fn new(limits: Limits) -> Self {
        Self::started(limits, |up| Box::new(log::local::LocalBroker::new(up)))
    }

    /// An empty lobby applying `limits` that commits every chat line to `store` before
    /// relaying it (see the module doc). Fails only if the writer thread cannot start.
    pub(crate) fn with_history(limits: Limits, store: Store) -> std::io::Result<Self> {
        let capacity = limits.history_queue_lines;
        let batch_items = limits.relay_batch_items();
        Self::with_broker(limits, |up| {
            let broker = log::local::LocalBroker::with_history(store, capacity, batch_items, up)?;
            Ok(Box::new(broker))
        })
    }

    /// An empty lobby whose events travel through the broker `start` makes; `start`
    /// gets the way up ([`BrokerHandler`]) the broker hands back to.
    pub(crate) fn with_broker(
        limits: Limits,
        start: impl FnOnce(
            Arc<dyn BrokerHandler<Outgoing, Arc<dyn Seat>>>,
        ) -> std::io::Result<Box<LobbyBroker>>,
    ) -> std::io::Result<Self> {
        let mut failure = None;
        let lobby = Self::started(limits, |up| {
            start(up.clone()).unwrap_or_else(|e| {
                failure = Some(e);
                // Never used: the lobby is dropped with the error.
                Box::new(log::local::LocalBroker::new(up))
            })
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(lobby),
        }
    }

    /// An empty lobby whose broker `start` makes, given the way up.
    fn started(
        limits: Limits,
        start: impl FnOnce(Arc<dyn BrokerHandler<Outgoing, Arc<dyn Seat>>>) -> Box<LobbyBroker>,
    ) -> Self {
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            Inner::new(limits, start(Arc::new(Up(weak.clone()))))
        });
        Self { inner }
    }

    /// Relays whatever is still on its way (a history's lines committed first), then
    /// stops the broker. Blocking: call it from `spawn_blocking`, once the listeners
    /// have stopped.
    pub(crate) fn finish_history(&self) {
        self.inner.broker.finish();
    }

    /// Whether this lobby keeps a history.
    pub(crate) fn has_history(&self) -> bool {
        self.inner.broker.keeps_history()
    }

    /// Up to `limit` stored lines before id `before` (the newest if `None`), oldest
    /// first; `None` without a history. Blocking: call it from `spawn_blocking`.
    pub(crate) fn history_page(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Option<Result<Vec<StoredLine>, log::HistoryError>> {
        self.inner.broker.page(before, limit)
    }

    /// Up to `limit` stored lines after id `after`, oldest first; `None` without a
    /// history. Blocking: call it from `spawn_blocking`.
    pub(crate) fn history_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Option<Result<Vec<StoredLine>, log::HistoryError>> {
        self.inner.broker.page_after(after, limit)
    }

    /// Sends `event` on its way through the broker, and relays it at once if the broker
    /// hands it straight back. Called with the members' lock held, so that the broker's
    /// order is the lobby's. Returns the outboxes to cut off once the lock is released.
    pub(super) fn announce(
        &self,
        members: &mut Table,
        event: Event,
        from: Option<u64>,
        replay_to: Option<u64>,
        stored: Option<Stored>,
        someone: Option<Someone>,
    ) -> Result<Vec<Arc<dyn Outbox>>, AppendRefusal> {
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
        match self.inner.broker.publish(Queued { item, line, replay })? {
            Some(now) => Ok(self.fan_out(members, vec![now])),
            None => Ok(Vec::new()),
        }
    }

    /// Fans `batch` out to every member, in order, then the leaves of the members it
    /// found too slow, as the broker routes them ([`Broker::slow_leave`]). Returns the
    /// outboxes to cut off once the lock is released.
    fn fan_out(&self, members: &mut Table, batch: Vec<Outgoing>) -> Vec<Arc<dyn Outbox>> {
        let broker = &self.inner.broker;
        fan_out(
            members,
            &self.inner.metrics,
            &self.inner.tap,
            &self.inner.limits.slow,
            batch,
            &mut |leave| broker.slow_leave(leave),
        )
    }

    /// [`Lobby::announce`] for a join or leave, which the log never refuses (only chat
    /// lines count against its queue).
    pub(super) fn announce_presence(
        &self,
        members: &mut Table,
        event: Event,
        someone: Someone,
        replay_to: Option<u64>,
    ) -> Vec<Arc<dyn Outbox>> {
        self.announce(members, event, None, replay_to, None, Some(someone))
            .unwrap_or_default()
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
    /// join that counts against its address's budget ([`churn`](super::churn): refused over it); any
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
        let id = self.inner.broker.member_id();
        let name = protocol
            .announced_on_connect()
            .then(|| names::guest_name(id));
        let entry = Entry::new(id, protocol, name.clone(), from, Arc::new(outbox));
        let someone = entry.someone.clone();
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
    /// the interval's summary once joins and leaves churn ([`churn`](super::churn)).
    pub(super) fn log_presence_line(
        &self,
        join: bool,
        member: u64,
        name: &str,
        protocol: &'static str,
    ) {
        let folding = !self.inner.limits.log_fold.is_zero();
        let what = if join { "joined" } else { "left" };
        match self.inner.churn.log_line(join, folding) {
            LogLine::Own => tracing::info!(member, %name, protocol, "{what}"),
            LogLine::Folded => tracing::debug!(member, %name, protocol, "{what} (folded)"),
        }
    }

    /// Ends an interval of the log's folding: the refusals' summaries, the joins' and
    /// leaves' ([`churn`](super::churn)), and the join budgets of addresses that came back to full.
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
        self.inner.broker.close();
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

    /// Refuses a chat line over the length limit.
    pub(super) fn check_message(&self, text: &str) -> Result<(), LobbyError> {
        let max = self.inner.limits.max_message_chars;
        // Counting stops at the first character over the limit: a huge line costs no more
        // than a line of exactly the limit.
        if text.chars().nth(max).is_some() {
            return Err(LobbyError::MessageTooLong { max });
        }
        Ok(())
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Table> {
        crate::locks::lock(&self.inner.members)
    }

    pub(super) fn leave(&self, id: u64) {
        self.inner.rooms.leave(id);
        self.inner.broker.free_seat(id);
        self.inner.refusals.left(id);
        let named;
        let cut = {
            let mut members = self.lock();
            let Some((entry, left)) = remove_member(&mut members, &self.inner.metrics, id) else {
                return; // already cut off
            };
            named = left.is_some();
            let protocol = entry.someone.protocol.as_str();
            tracing::debug!(member = id, protocol, "disconnected");
            match (left, &entry.someone.name) {
                (Some(_), _) if self.inner.closed.load(Ordering::SeqCst) => Vec::new(),
                (Some(left), Some(name)) => {
                    self.log_presence_line(false, id, name, protocol);
                    self.announce_presence(&mut members, left, entry.someone.clone(), None)
                }
                _ => Vec::new(),
            }
        };
        // Out of the table now: a seat the broker gave it meanwhile goes too
        // ([`Lobby::seat_if_present`]).
        self.inner.rooms.leave(id);
        if named {
            self.presence_changed();
        }
        cut_off(cut);
    }

    /// The name member `id` is given when it asks for `asked` (cleaned), with `members`
    /// the lobby's table, locked: `asked` if it is free, else the nearest free name (see
    /// the module doc). The caller stores it ([`Table::give`](super::table::Table::give))
    /// before it lets go of the lock. A cluster node also looks at the names the other
    /// nodes' members hold, as its broker knows them ([`Broker::held_elsewhere`]).
    ///
    /// [`Broker::held_elsewhere`]: crate::log::Broker::held_elsewhere
    pub(super) fn give_name(
        &self,
        members: &HashMap<u64, Entry>,
        id: u64,
        asked: Arc<str>,
    ) -> Given {
        let others = || {
            members
                .iter()
                .filter(move |(other, _)| **other != id)
                .filter_map(|(_, entry)| entry.someone.key.as_deref())
        };
        let broker = &self.inner.broker;
        let elsewhere = Elsewhere {
            held: &|key| broker.held_elsewhere(key),
            count: broker.held_elsewhere_at_most(),
        };
        names::decide(
            asked,
            id,
            self.inner.limits.max_name_chars,
            others,
            elsewhere,
        )
    }

    /// A room line the broker hands over, to this node's seats in `room`; a seat that
    /// does not keep up is given back.
    pub(super) fn relay_in_room(&self, room: &str, line: &Arc<str>) {
        for id in self.inner.rooms.relay(room, line) {
            self.inner.broker.free_seat(id);
        }
    }

    /// Seats member `id` in `room` here, as the broker decided, if it is still in the
    /// lobby (checked under the lobby's lock: a member leaving frees its seats after
    /// it is out of the table, so no seat outlives it).
    pub(super) fn seat_if_present(&self, id: u64, room: Arc<str>, seat: Arc<dyn Seat>) {
        let members = self.lock();
        if members.contains_key(&id) {
            self.inner.rooms.seat(id, room, seat);
        }
    }

    /// Tells member `id` its room request was refused, and counts it.
    pub(super) fn refuse_seat(&self, id: u64, seat: &dyn Seat, why: RoomError) {
        seat.refused(&why);
        let why = LobbyError::Room(why);
        let who = crate::refusals::Who::Member(id, None);
        let refusal = crate::refusals::Refusal::new(why.reason(), &why);
        self.inner.refusals.report(Protocol::SocketIo, who, refusal);
    }

    /// Fans out a batch the broker handed back, in order.
    pub(super) fn deliver(&self, batch: Vec<Committed<Outgoing>>) {
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
        let cut = self.fan_out(&mut self.lock(), batch);
        if presence || !cut.is_empty() {
            self.presence_changed();
        }
        super::fanout::cut_off(cut);
    }
}

/// The lobby as its broker sees it: held weakly (the lobby holds the broker).
pub(super) struct Up(pub(super) Weak<Inner>);

impl Up {
    pub(super) fn lobby(&self) -> Option<Lobby> {
        self.0.upgrade().map(|inner| Lobby { inner })
    }
}

/// One connection's place in the lobby. Dropping it leaves the lobby (announced if the
/// member had a name), so presence cannot leak on any error path.
pub(crate) struct Member {
    pub(super) lobby: Lobby,
    pub(super) id: u64,
    pub(super) rate: Bucket,
    /// The client's address, whose join budget its joins and renames count against
    /// ([`super::churn`]); `None`: not known (not limited).
    pub(super) from: Option<IpAddr>,
}

impl Drop for Member {
    fn drop(&mut self) {
        self.lobby.leave(self.id);
    }
}
