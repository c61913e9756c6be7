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
//! - A member that never named itself is present (it receives events and counts as a
//!   connection) but its arrival and departure are not announced.
//!
//! With a history ([`Lobby::with_history`]), every event goes through the history's
//! [`Sequencer`] instead of straight to the outboxes: chat lines are committed to disk
//! first, and every event (joins and leaves too, so that their order with the lines
//! stays) is fanned out by the writer thread, in the order the lobby accepted it. A
//! member receives what is fanned out while it is present: a member that joins may
//! receive a line said a few milliseconds before its join, still on its way to disk.

use serde_json::value::RawValue;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use bytes::Bytes;
use tokio::sync::watch;

use crate::history::{self, Committed, NewLine, QueueFull, Queued, Sequencer, Store};
use crate::origins::AllowedOrigins;
use crate::rate::{Bucket, RateLimit};
use crate::rooms::{RoomError, Rooms, Seat};
use crate::telemetry::LobbyMetrics;
use std::time::SystemTime;

/// The name given to a member whose chosen name is empty: "anonymous", as the original
/// page sends when its prompt is left empty.
pub const ANONYMOUS: &str = "익명";

/// Default for [`Limits::max_name_chars`]: long enough for any real nickname,
/// short enough that a join line stays one line on a terminal.
pub const DEFAULT_MAX_NAME_CHARS: usize = 32;

/// Default for [`Limits::max_message_chars`]: a long paragraph; more is a paste or
/// a flood, not a chat line.
pub const DEFAULT_MAX_MESSAGE_CHARS: usize = 2_000;

/// Default for [`Limits::max_room_name_chars`].
pub const DEFAULT_MAX_ROOM_NAME_CHARS: usize = 64;

/// Default for [`Limits::outbox_messages`]: about a minute of a busy lobby. A member
/// this far behind does not keep up.
pub const DEFAULT_OUTBOX_MESSAGES: usize = 1_024;

/// Default for [`Limits::max_ws_message_bytes`]: a chat frame is a few hundred bytes;
/// 64 KiB leaves room for any legitimate one.
pub const DEFAULT_MAX_WS_MESSAGE_BYTES: usize = 64 * 1024;

/// Default for [`Limits::max_json_object_bytes`], as for WebSocket messages.
pub const DEFAULT_MAX_JSON_OBJECT_BYTES: usize = 64 * 1024;

/// Every limit on what members send and on what is kept for them. Shared by all
/// protocols through [`Lobby::limits`].
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest name, in characters (Unicode scalar values); longer names are cut to it.
    pub max_name_chars: usize,
    /// Longest chat line, in characters; a longer line is refused with an error.
    pub max_message_chars: usize,
    /// Longest room name, in characters; a longer one is refused with an error.
    pub max_room_name_chars: usize,
    /// Depth of each member's outgoing queue, in messages; a member whose queue is full
    /// is cut off as a slow consumer.
    pub outbox_messages: usize,
    /// Largest WebSocket message (and frame) on the plain WebSocket listener, in bytes.
    pub max_ws_message_bytes: usize,
    /// Largest JSON object on the TCP JSON listener, in bytes.
    pub max_json_object_bytes: usize,
    /// The message rate each member is held to (see [`crate::rate`]).
    pub rate: RateLimit,
    /// Web origins allowed to open Socket.IO and WebSocket connections.
    pub allowed_origins: AllowedOrigins,
    /// Chat lines (at most) waiting for their commit to the history; past it, lines are
    /// refused with [`LobbyError::Busy`].
    pub history_queue_lines: usize,
    /// Latest stored lines sent to a Socket.IO member when it first names itself, before
    /// its join is announced (needs a history).
    pub replay_lines: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_name_chars: DEFAULT_MAX_NAME_CHARS,
            max_message_chars: DEFAULT_MAX_MESSAGE_CHARS,
            max_room_name_chars: DEFAULT_MAX_ROOM_NAME_CHARS,
            outbox_messages: DEFAULT_OUTBOX_MESSAGES,
            max_ws_message_bytes: DEFAULT_MAX_WS_MESSAGE_BYTES,
            max_json_object_bytes: DEFAULT_MAX_JSON_OBJECT_BYTES,
            rate: RateLimit::default(),
            allowed_origins: AllowedOrigins::default(),
            history_queue_lines: history::DEFAULT_HISTORY_QUEUE_LINES,
            replay_lines: 0,
        }
    }
}

/// The wire protocol a member is connected with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// The Socket.IO lobby chat (PROTOCOLS.md section 1).
    SocketIo,
    /// The plain WebSocket JSON chat (section 3).
    WebSocket,
    /// The raw TCP chat with JSON commands (section 4a).
    TcpJson,
    /// The raw TCP chat with plain text (section 4b).
    TcpText,
}

impl Protocol {
    /// Every protocol, in the order of [`Protocol::index`].
    pub const ALL: [Protocol; 4] = [
        Protocol::SocketIo,
        Protocol::WebSocket,
        Protocol::TcpJson,
        Protocol::TcpText,
    ];

    /// Whether a member of this protocol receives its own chat lines back. Socket.IO
    /// lobby clients print their own lines locally and TCP text clients never got theirs
    /// back; WebSocket and TCP JSON clients show the server's echo.
    pub fn echoes_own_lines(self) -> bool {
        match self {
            Protocol::SocketIo | Protocol::TcpText => false,
            Protocol::WebSocket | Protocol::TcpJson => true,
        }
    }

    /// Whether a member is announced (under a guest name) as soon as it connects: the
    /// protocols whose clients never name themselves, or name themselves per line.
    pub fn announced_on_connect(self) -> bool {
        matches!(self, Protocol::WebSocket | Protocol::TcpText)
    }

    /// The protocol's name in logs and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::SocketIo => "socketio",
            Protocol::WebSocket => "websocket",
            Protocol::TcpJson => "tcp-json",
            Protocol::TcpText => "tcp-text",
        }
    }

    /// The protocol named by [`Protocol::as_str`].
    pub fn parse(name: &str) -> Option<Protocol> {
        Protocol::ALL.into_iter().find(|p| p.as_str() == name)
    }

    /// A dense index, for per-protocol tables.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Something that happened in the lobby, as delivered to members' outboxes. Shared by
/// all receivers (`Arc`), never copied per receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A member named itself (or renamed itself) and is now known under `name`.
    Joined {
        /// The member's name.
        name: Arc<str>,
        /// Connections in the lobby after the join.
        members: usize,
    },
    /// A named member left (disconnected, or was cut off as a slow consumer).
    Left {
        /// The member's last name.
        name: Arc<str>,
        /// Connections in the lobby after the leave.
        members: usize,
    },
    /// A chat line.
    Message {
        /// The sender's name as the lobby stores it (never what the client claimed).
        name: Arc<str>,
        /// The line, as sent (TCP text: the chunk, lossily decoded, one line end trimmed).
        text: Arc<str>,
        /// The protocol of the sender.
        origin: Protocol,
        /// A TCP text chunk's bytes exactly as received, relayed as they are to other
        /// TCP text clients.
        raw: Option<Bytes>,
    },
}

/// An [`Event`] on its way to every member, with each protocol's encoding made once,
/// by the first receiver of that protocol, and shared by the rest.
#[derive(Debug)]
pub struct Delivery {
    event: Event,
    encoded: [OnceLock<Bytes>; Protocol::ALL.len()],
    /// The event as a JSON value, for a protocol whose library does the framing
    /// (Socket.IO's `emit`): it then copies these bytes instead of serialising anew.
    json: OnceLock<Box<RawValue>>,
}

impl Delivery {
    fn new(event: Event) -> Arc<Self> {
        Arc::new(Self {
            event,
            encoded: Default::default(),
            json: OnceLock::new(),
        })
    }

    /// The event.
    pub fn event(&self) -> &Event {
        &self.event
    }

    /// The event in `protocol`'s wire format: `encode` runs once per delivery and
    /// protocol, every other receiver shares its bytes.
    pub fn encoded(&self, protocol: Protocol, encode: impl FnOnce(&Event) -> Bytes) -> Bytes {
        self.encoded[protocol.index()]
            .get_or_init(|| encode(&self.event))
            .clone()
    }

    /// The event as a JSON value: `encode` runs once per delivery, every other receiver
    /// shares it.
    pub fn json(&self, encode: impl FnOnce(&Event) -> Box<RawValue>) -> &RawValue {
        self.json.get_or_init(|| encode(&self.event))
    }
}

/// Why an [`Outbox`] did not take an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The member's queue is full: it does not keep up and will be cut off.
    Full,
    /// The member's connection is closing; its [`Member`] guard will leave on its own.
    Closed,
}

/// A member's outgoing side, implemented by each protocol.
pub trait Outbox: Send + Sync + 'static {
    /// Queues `event` for the member. Must not block or wait: it is called with the
    /// lobby's lock held.
    fn offer(&self, delivery: &Arc<Delivery>) -> Result<(), Refusal>;

    /// Ends the member's connection because it did not keep up. Called without the lobby's
    /// lock, after the member has been removed and its leave announced.
    fn cut_off(&self);
}

/// Why the lobby refused a member's request. The text is what the sender is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LobbyError {
    /// A chat line before the member named itself.
    #[error("choose a name before sending messages")]
    Unnamed,
    /// A chat line over [`Limits::max_message_chars`].
    #[error("message is longer than {max} characters")]
    MessageTooLong {
        /// The limit in force.
        max: usize,
    },
    /// The member was removed from the lobby (cut off as a slow consumer).
    #[error("you are no longer in the lobby")]
    Gone,
    /// A two-person room refused the request.
    #[error(transparent)]
    Room(#[from] RoomError),
    /// Over the member's message rate ([`Limits::rate`]): this request is refused.
    #[error("too many messages: at most {lines_per_sec} a second")]
    RateLimited {
        /// The rate in force.
        lines_per_sec: u32,
    },
    /// Over the rate this many times in a row: the member is disconnected.
    #[error("too many messages refused in a row ({strikes}): disconnecting")]
    Flooding {
        /// Refusals in a row.
        strikes: u32,
    },
    /// The history does not keep up with the lines coming in: the line was not sent.
    #[error("{0}")]
    Busy(#[from] QueueFull),
}

/// A handle to the lobby. Cheap to clone; all clones share one lobby.
#[derive(Clone)]
pub struct Lobby {
    inner: Arc<Inner>,
}

struct Inner {
    limits: Limits,
    next_id: AtomicU64,
    members: Mutex<HashMap<u64, Entry>>,
    rooms: Rooms,
    /// Set once the server shuts down: members leave silently from then on.
    closed: AtomicBool,
    metrics: LobbyMetrics,
    /// The history's writer, through which every event goes when there is a history.
    sequencer: Option<Sequencer<Announcement>>,
    /// Reads the history for the API.
    reader: Option<history::Reader>,
    /// Bumped whenever the list of named members changes.
    presence: watch::Sender<u64>,
}

struct Entry {
    protocol: Protocol,
    name: Option<Arc<str>>,
    since: SystemTime,
    outbox: Arc<dyn Outbox>,
    /// The history id of the first chat line relayed to it: a replay stops before it,
    /// since everything from there on reached the member live (even unnamed).
    first_live_line: Option<i64>,
}

/// An event waiting in the sequencer for its turn (and its line's commit).
struct Announcement {
    event: Event,
    /// The sender, skipped if its protocol does not echo.
    from: Option<u64>,
    /// A member to send the replayed lines to before the event.
    replay_to: Option<u64>,
}

/// A named member present in the lobby, for the presence API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    /// Its name.
    pub name: Arc<str>,
    /// Its protocol.
    pub protocol: Protocol,
    /// When it connected.
    pub since: SystemTime,
}

impl Inner {
    fn new(
        limits: Limits,
        sequencer: Option<Sequencer<Announcement>>,
        reader: Option<history::Reader>,
    ) -> Self {
        Self {
            limits,
            next_id: AtomicU64::new(1),
            members: Mutex::new(HashMap::new()),
            rooms: Rooms::default(),
            closed: AtomicBool::new(false),
            metrics: LobbyMetrics::new(),
            sequencer,
            reader,
            presence: watch::Sender::new(0),
        }
    }
}

impl LobbyError {
    /// The refusal's reason as a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            LobbyError::Unnamed => "unnamed",
            LobbyError::MessageTooLong { .. } => "message_too_long",
            LobbyError::Gone => "gone",
            LobbyError::Room(RoomError::Full) => "room_full",
            LobbyError::Room(RoomError::NotSeated) => "not_seated",
            LobbyError::Room(RoomError::EmptyName | RoomError::NameTooLong { .. }) => "room_name",
            LobbyError::RateLimited { .. } => "rate",
            LobbyError::Flooding { .. } => "flood",
            LobbyError::Busy(_) => "busy",
        }
    }

    /// Whether the protocol must disconnect the member after telling it why.
    pub fn disconnects(&self) -> bool {
        matches!(self, LobbyError::Flooding { .. })
    }
}

impl Lobby {
    /// An empty lobby applying `limits`, without history: events go straight out.
    pub fn new(limits: Limits) -> Self {
        Self {
            inner: Arc::new(Inner::new(limits, None, None)),
        }
    }

    /// An empty lobby applying `limits` that commits every chat line to `store` before
    /// relaying it (see the module doc). Fails only if the writer thread cannot start.
    pub fn with_history(limits: Limits, store: Store) -> std::io::Result<Self> {
        let reader = store.reader();
        let capacity = limits.history_queue_lines;
        let mut failure = None;
        let inner = Arc::new_cyclic(|weak: &std::sync::Weak<Inner>| {
            let weak = weak.clone();
            let deliver = move |batch: Vec<Committed<Announcement>>| {
                if let Some(inner) = weak.upgrade() {
                    Lobby { inner }.deliver(batch);
                }
            };
            // Half a member's queue: a batch fits even in a queue the previous one has
            // not been written out of yet.
            let batch_items = limits.outbox_messages / 2;
            let sequencer = match Sequencer::start(store, capacity, batch_items, deliver) {
                Ok(sequencer) => Some(sequencer),
                Err(e) => {
                    failure = Some(e);
                    None
                }
            };
            Inner::new(limits, sequencer, Some(reader))
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(Self { inner }),
        }
    }

    /// Commits and relays whatever is still queued for the history, then stops its
    /// writer. Blocking: call it from `spawn_blocking`, once the listeners have stopped.
    pub fn finish_history(&self) {
        if let Some(sequencer) = &self.inner.sequencer {
            sequencer.finish();
        }
    }

    /// Reads the history, if there is one.
    pub fn history(&self) -> Option<&history::Reader> {
        self.inner.reader.as_ref()
    }

    /// The named members present now, in the order they connected.
    pub fn present(&self) -> Vec<Present> {
        let members = self.lock();
        let mut present: Vec<(u64, Present)> = members
            .iter()
            .filter_map(|(&id, entry)| {
                let name = entry.name.clone()?;
                Some((
                    id,
                    Present {
                        name,
                        protocol: entry.protocol,
                        since: entry.since,
                    },
                ))
            })
            .collect();
        drop(members);
        present.sort_unstable_by_key(|(id, _)| *id);
        present.into_iter().map(|(_, present)| present).collect()
    }

    /// Changes whenever [`Lobby::present`] may have changed.
    pub fn watch_presence(&self) -> watch::Receiver<u64> {
        self.inner.presence.subscribe()
    }

    fn presence_changed(&self) {
        self.inner.presence.send_modify(|version| *version += 1);
    }

    /// Sends `event` on its way: straight to every member, or through the history's
    /// sequencer. Called with the members' lock held, so that the sequencer's order is
    /// the lobby's. Returns the outboxes to cut off once the lock is released.
    fn announce(
        &self,
        members: &mut HashMap<u64, Entry>,
        event: Event,
        from: Option<u64>,
        replay_to: Option<u64>,
    ) -> Result<Vec<Arc<dyn Outbox>>, QueueFull> {
        let Some(sequencer) = &self.inner.sequencer else {
            let batch = vec![Outgoing::new(event, from)];
            return Ok(fan_out(members, &self.inner.metrics, batch));
        };
        let line = match &event {
            Event::Message {
                name, text, origin, ..
            } => Some(NewLine {
                time: SystemTime::now(),
                name: name.clone(),
                protocol: origin.as_str(),
                text: text.clone(),
            }),
            _ => None,
        };
        let replay = match replay_to {
            Some(_) => self.inner.limits.replay_lines.min(history::MAX_PAGE_LINES),
            None => 0,
        };
        let item = Announcement {
            event,
            from,
            replay_to,
        };
        sequencer.push(Queued { item, line, replay })?;
        Ok(Vec::new())
    }

    /// [`Lobby::announce`] for a join or leave, which the sequencer never refuses (only
    /// chat lines count against its queue).
    fn announce_presence(
        &self,
        members: &mut HashMap<u64, Entry>,
        event: Event,
        replay_to: Option<u64>,
    ) -> Vec<Arc<dyn Outbox>> {
        self.announce(members, event, None, replay_to)
            .unwrap_or_default()
    }

    /// Fans out a committed batch, in order (the sequencer's writer thread calls this).
    fn deliver(&self, batch: Vec<Committed<Announcement>>) {
        let batch = batch
            .into_iter()
            .map(|done| {
                let Announcement {
                    event,
                    from,
                    replay_to,
                } = done.item;
                Outgoing {
                    line_id: done.id,
                    replay: replay_to.map(|id| (id, done.replayed)),
                    ..Outgoing::new(event, from)
                }
            })
            .collect();
        let cut = fan_out(&mut self.lock(), &self.inner.metrics, batch);
        if !cut.is_empty() {
            self.presence_changed();
        }
        cut_off(cut);
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Adds a connection to the lobby: from now on it receives every event through
    /// `outbox`. A member of a protocol [announced on connect](Protocol::announced_on_connect)
    /// is named `guest-<id>` and announced; any other stays unnamed and unannounced
    /// until [`Member::set_name`]. Dropping the returned [`Member`] removes it.
    pub fn join(&self, protocol: Protocol, outbox: impl Outbox) -> Member {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let name = protocol
            .announced_on_connect()
            .then(|| Arc::<str>::from(format!("guest-{id}")));
        let entry = Entry {
            protocol,
            name: name.clone(),
            since: SystemTime::now(),
            outbox: Arc::new(outbox),
            first_live_line: None,
        };
        let cut = {
            let mut members = self.lock();
            members.insert(id, entry);
            self.inner.metrics.members[protocol.index()].increment(1.0);
            tracing::debug!(member = id, protocol = protocol.as_str(), "connected");
            match name {
                Some(name) => {
                    tracing::info!(member = id, %name, protocol = protocol.as_str(), "joined");
                    self.inner.metrics.joins[protocol.index()].increment(1);
                    let event = Event::Joined {
                        name,
                        members: members.len(),
                    };
                    self.announce_presence(&mut members, event, None)
                }
                None => Vec::new(),
            }
        };
        if protocol.announced_on_connect() {
            self.presence_changed();
        }
        cut_off(cut);
        Member {
            lobby: self.clone(),
            id,
            rate: Bucket::new(self.inner.limits.rate),
        }
    }

    /// The two-person rooms (they are separate from the lobby's chat).
    pub fn rooms(&self) -> &Rooms {
        &self.inner.rooms
    }

    /// Closes the lobby for shutdown: members still leave it, but their leaves are no
    /// longer announced (every one of them is going).
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
    }

    /// Connections in the lobby now, named or not.
    pub fn member_count(&self) -> usize {
        self.lock().len()
    }

    /// Cleans a name the way every protocol's names are cleaned: control characters
    /// removed, surrounding white space trimmed, cut to the limit, empty → [`ANONYMOUS`].
    pub fn clean_name(&self, raw: &str) -> Arc<str> {
        let kept: String = raw.chars().filter(|c| !c.is_control()).collect();
        let cut: String = kept
            .trim()
            .chars()
            .take(self.inner.limits.max_name_chars)
            .collect();
        let name = cut.trim();
        if name.is_empty() {
            Arc::from(ANONYMOUS)
        } else {
            Arc::from(name)
        }
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

    fn lock(&self) -> MutexGuard<'_, HashMap<u64, Entry>> {
        // A panic while fanning out leaves the map consistent (entries are inserted and
        // removed whole), so a poisoned lock is still safe to use.
        self.inner
            .members
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn leave(&self, id: u64) {
        self.inner.rooms.leave(id);
        let named;
        let cut = {
            let mut members = self.lock();
            let Some(entry) = members.remove(&id) else {
                return; // already cut off
            };
            named = entry.name.is_some();
            tracing::debug!(
                member = id,
                protocol = entry.protocol.as_str(),
                "disconnected"
            );
            let metrics = &self.inner.metrics;
            metrics.members[entry.protocol.index()].decrement(1.0);
            if entry.name.is_some() {
                metrics.leaves[entry.protocol.index()].increment(1);
            }
            match entry.name {
                Some(_) if self.inner.closed.load(Ordering::SeqCst) => Vec::new(),
                Some(name) => {
                    tracing::info!(member = id, %name, protocol = entry.protocol.as_str(), "left");
                    let event = Event::Left {
                        name,
                        members: members.len(),
                    };
                    self.announce_presence(&mut members, event, None)
                }
                None => Vec::new(),
            }
        };
        if named {
            self.presence_changed();
        }
        cut_off(cut);
    }
}

/// One event of a batch on its way to every member.
struct Outgoing {
    delivery: Arc<Delivery>,
    /// The sender, skipped if its protocol does not echo.
    from: Option<u64>,
    /// The history id of the event's chat line, if it was stored.
    line_id: Option<i64>,
    /// A member and the lines replayed to it just before the event.
    replay: Option<(u64, Vec<history::StoredLine>)>,
}

impl Outgoing {
    fn new(event: Event, from: Option<u64>) -> Self {
        Self {
            delivery: Delivery::new(event),
            from,
            line_id: None,
            replay: None,
        }
    }
}

/// Delivers a batch of events, in order, to every member (except, where its protocol
/// does not echo, each event's sender), then the leaves of any member it found too slow.
/// Returns the outboxes to cut off once the lock is released.
///
/// Member by member, each taking the whole batch: a member's outbox (for Socket.IO its
/// socket and that socket's queue) is then fetched into the cache once per batch, not
/// once per event. With thousands of members that is most of a delivery's cost (a burst
/// of joins: each is announced to everyone). Each member still sees the batch in order.
fn fan_out(
    members: &mut HashMap<u64, Entry>,
    metrics: &LobbyMetrics,
    mut batch: Vec<Outgoing>,
) -> Vec<Arc<dyn Outbox>> {
    let mut cut = Vec::new();
    while !batch.is_empty() {
        let mut slow = Vec::new();
        let mut sent = [0; Protocol::ALL.len()];
        for (&id, entry) in members.iter_mut() {
            for out in batch.iter_mut() {
                if let Some((_, lines)) = out.replay.take_if(|(to, _)| *to == id) {
                    replay(entry, lines);
                }
                if entry.first_live_line.is_none() {
                    entry.first_live_line = out.line_id;
                }
                if out.from == Some(id) && !entry.protocol.echoes_own_lines() {
                    continue;
                }
                match entry.outbox.offer(&out.delivery) {
                    Ok(()) => sent[entry.protocol.index()] += 1,
                    Err(Refusal::Full) => {
                        slow.push(id);
                        break;
                    }
                    // Closing: its guard leaves on its own, nothing more can reach it.
                    Err(Refusal::Closed) => break,
                }
            }
        }
        for (protocol, count) in sent.into_iter().enumerate() {
            metrics.lines_out[protocol].increment(count);
        }
        // The leaves of the slow members go out as the next batch (which may find more).
        batch = Vec::new();
        for id in slow {
            let Some(entry) = members.remove(&id) else {
                continue;
            };
            tracing::warn!(
                member = id,
                protocol = entry.protocol.as_str(),
                "outbox full: cut off as a slow consumer"
            );
            let protocol = entry.protocol.index();
            metrics.cut_offs[protocol].increment(1);
            metrics.members[protocol].decrement(1.0);
            if let Some(name) = entry.name {
                metrics.leaves[protocol].increment(1);
                let left = Event::Left {
                    name,
                    members: members.len(),
                };
                batch.push(Outgoing::new(left, None));
            }
            cut.push(entry.outbox);
        }
    }
    cut
}

/// Sends a member the lines replayed for it (oldest first), as chat lines, up to the
/// first it got live. A member whose queue cannot take them all gets the first that
/// fit: replay is a courtesy, the live chat after it must not be lost.
fn replay(entry: &Entry, mut lines: Vec<history::StoredLine>) {
    if let Some(first_live) = entry.first_live_line {
        lines.retain(|line| line.id < first_live);
    }
    let total = lines.len();
    for (sent, line) in lines.into_iter().enumerate() {
        let event = Event::Message {
            name: Arc::from(line.name),
            text: Arc::from(line.text),
            origin: Protocol::parse(&line.protocol).unwrap_or(entry.protocol),
            raw: None,
        };
        if let Err(refusal) = entry.outbox.offer(&Delivery::new(event)) {
            tracing::warn!(
                sent,
                total,
                ?refusal,
                "replay stopped: the member's queue is full"
            );
            return;
        }
    }
}

fn cut_off(outboxes: Vec<Arc<dyn Outbox>>) {
    for outbox in outboxes {
        outbox.cut_off();
    }
}

/// One connection's place in the lobby. Dropping it leaves the lobby (announced if the
/// member had a name), so presence cannot leak on any error path.
pub struct Member {
    lobby: Lobby,
    id: u64,
    rate: Bucket,
}

impl Member {
    /// The member's id, unique for the life of the process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Names (or renames) the member and announces its join under the cleaned name to
    /// everyone, the member included. Returns the name as stored.
    pub fn set_name(&self, raw: &str) -> Result<Arc<str>, LobbyError> {
        let name = self.lobby.clean_name(raw);
        let cut = {
            let mut members = self.lobby.lock();
            let entry = members.get_mut(&self.id).ok_or(LobbyError::Gone)?;
            // The first name is part of connecting; a rename is announced to everyone
            // like a line, and costs one.
            if entry.name.is_some() {
                self.rate.check()?;
            }
            let first = entry.name.replace(name.clone()).is_none();
            let protocol = entry.protocol;
            tracing::info!(member = self.id, %name, protocol = protocol.as_str(), "joined");
            self.lobby.inner.metrics.joins[protocol.index()].increment(1);
            let replay_to = (first
                && protocol == Protocol::SocketIo
                && self.lobby.inner.limits.replay_lines > 0)
                .then_some(self.id);
            let event = Event::Joined {
                name: name.clone(),
                members: members.len(),
            };
            self.lobby.announce_presence(&mut members, event, replay_to)
        };
        self.lobby.presence_changed();
        cut_off(cut);
        Ok(name)
    }

    /// Relays a chat line under the member's stored name.
    pub fn say(&self, text: &str) -> Result<(), LobbyError> {
        self.relay(None, text, None)
    }

    /// Relays a chat line under `claimed_name` (cleaned), for protocols whose clients
    /// send their name with every line: the member's stored name follows it silently.
    pub fn say_as(&self, claimed_name: &str, text: &str) -> Result<(), LobbyError> {
        self.relay(Some(self.lobby.clean_name(claimed_name)), text, None)
    }

    /// Relays a raw chunk (TCP text): the bytes go as they are to other TCP text
    /// members, the text (lossily decoded, one line end trimmed) to everyone else.
    pub fn say_chunk(&self, chunk: Bytes) -> Result<(), LobbyError> {
        let decoded = String::from_utf8_lossy(&chunk);
        let text = decoded
            .strip_suffix('\n')
            .map(|line| line.strip_suffix('\r').unwrap_or(line))
            .unwrap_or(&decoded);
        self.relay(None, text, Some(chunk.clone()))
    }

    fn relay(
        &self,
        rename: Option<Arc<str>>,
        text: &str,
        raw: Option<Bytes>,
    ) -> Result<(), LobbyError> {
        self.rate.check()?;
        self.lobby.check_message(text)?;
        let cut = {
            let mut members = self.lobby.lock();
            let entry = members.get(&self.id).ok_or(LobbyError::Gone)?;
            let protocol = entry.protocol;
            let name = match &rename {
                Some(name) => name.clone(),
                None => entry.name.clone().ok_or(LobbyError::Unnamed)?,
            };
            let event = Event::Message {
                name,
                text: Arc::from(text),
                origin: protocol,
                raw,
            };
            let cut = self
                .lobby
                .announce(&mut members, event, Some(self.id), None)?;
            self.lobby.inner.metrics.lines_in[protocol.index()].increment(1);
            if let (Some(name), Some(entry)) = (rename, members.get_mut(&self.id)) {
                entry.name = Some(name);
            }
            cut
        };
        cut_off(cut);
        Ok(())
    }

    /// Takes a seat in the two-person room `room` (cleaned like a name), leaving the
    /// member's previous room. A full room leaves the member where it was.
    pub fn take_seat(&self, room: &str, seat: impl Seat) -> Result<Arc<str>, LobbyError> {
        let limits = &self.lobby.inner.limits;
        let kept: String = room.chars().filter(|c| !c.is_control()).collect();
        let room = kept.trim();
        if room.is_empty() {
            return Err(LobbyError::Room(RoomError::EmptyName));
        }
        if room.chars().nth(limits.max_room_name_chars).is_some() {
            return Err(LobbyError::Room(RoomError::NameTooLong {
                max: limits.max_room_name_chars,
            }));
        }
        let room = Arc::<str>::from(room);
        self.lobby
            .inner
            .rooms
            .take_seat(self.id, room.clone(), Arc::new(seat))?;
        Ok(room)
    }

    /// Sends a line to everyone in the member's room, the member included.
    pub fn say_in_room(&self, text: &str) -> Result<(), LobbyError> {
        self.rate.check()?;
        self.lobby.check_message(text)?;
        Ok(self.lobby.inner.rooms.say(self.id, text)?)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.lobby.leave(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outbox that records what it was offered and can be made to refuse.
    #[derive(Clone, Default)]
    struct Recorder {
        events: Arc<Mutex<Vec<Event>>>,
        refuse: Arc<Mutex<Option<Refusal>>>,
        /// Takes this many more events, then is full.
        room: Arc<Mutex<Option<usize>>>,
        cut: Arc<AtomicU64>,
    }

    impl Recorder {
        fn take(&self) -> Vec<Event> {
            std::mem::take(&mut *self.events.lock().unwrap())
        }
    }

    impl Outbox for Recorder {
        fn offer(&self, delivery: &Arc<Delivery>) -> Result<(), Refusal> {
            if let Some(refusal) = *self.refuse.lock().unwrap() {
                return Err(refusal);
            }
            if let Some(room) = self.room.lock().unwrap().as_mut() {
                *room = room.checked_sub(1).ok_or(Refusal::Full)?;
            }
            self.events.lock().unwrap().push(delivery.event().clone());
            Ok(())
        }
        fn cut_off(&self) {
            self.cut.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn joined(name: &str, members: usize) -> Event {
        Event::Joined {
            name: name.into(),
            members,
        }
    }

    #[test]
    fn names_are_cleaned_trimmed_and_cut() {
        let lobby = Lobby::new(Limits {
            max_name_chars: 5,
            ..Limits::default()
        });
        assert_eq!(&*lobby.clean_name("  ann\u{7}ie \n"), "annie");
        assert_eq!(&*lobby.clean_name("\t \u{1b}"), ANONYMOUS);
        assert_eq!(&*lobby.clean_name(""), ANONYMOUS);
        assert_eq!(&*lobby.clean_name("가나다라마바사"), "가나다라마");
        assert_eq!(&*lobby.clean_name("ab   cdef"), "ab");
    }

    #[test]
    fn lines_skip_a_non_echoing_sender_and_use_the_stored_name() {
        let lobby = Lobby::new(Limits::default());
        let (a_box, b_box) = (Recorder::default(), Recorder::default());
        let a = lobby.join(Protocol::SocketIo, a_box.clone());
        let b = lobby.join(Protocol::SocketIo, b_box.clone());
        assert_eq!(a.say("too early"), Err(LobbyError::Unnamed));
        a.set_name("ann").unwrap();
        b.set_name("bob").unwrap();
        a.say("hi").unwrap();
        let hi = Event::Message {
            name: "ann".into(),
            text: "hi".into(),
            origin: Protocol::SocketIo,
            raw: None,
        };
        assert_eq!(a_box.take(), vec![joined("ann", 2), joined("bob", 2)]);
        assert_eq!(b_box.take(), vec![joined("ann", 2), joined("bob", 2), hi]);
        drop(a);
        assert_eq!(
            b_box.take(),
            vec![Event::Left {
                name: "ann".into(),
                members: 1
            }]
        );
        assert_eq!(lobby.member_count(), 1);
        drop(b);
        assert_eq!(lobby.member_count(), 0);
    }

    #[test]
    fn unnamed_members_leave_silently_and_long_lines_are_refused() {
        let lobby = Lobby::new(Limits {
            max_message_chars: 3,
            ..Limits::default()
        });
        let watcher = Recorder::default();
        let _w = lobby.join(Protocol::SocketIo, watcher.clone());
        let quiet = lobby.join(Protocol::SocketIo, Recorder::default());
        drop(quiet);
        let talker = lobby.join(Protocol::SocketIo, Recorder::default());
        talker.set_name("t").unwrap();
        assert_eq!(
            talker.say("four"),
            Err(LobbyError::MessageTooLong { max: 3 })
        );
        talker.say("가나다").unwrap();
        assert_eq!(
            watcher.take(),
            vec![
                joined("t", 2),
                Event::Message {
                    name: "t".into(),
                    text: "가나다".into(),
                    origin: Protocol::SocketIo,
                    raw: None,
                }
            ]
        );
    }

    #[test]
    fn a_full_outbox_is_cut_off_and_announced_once() {
        let lobby = Lobby::new(Limits::default());
        let (fast, slow) = (Recorder::default(), Recorder::default());
        let f = lobby.join(Protocol::SocketIo, fast.clone());
        let s = lobby.join(Protocol::SocketIo, slow.clone());
        s.set_name("slow").unwrap();
        f.set_name("fast").unwrap();
        fast.take();
        *slow.refuse.lock().unwrap() = Some(Refusal::Full);
        f.say("one").unwrap();
        assert_eq!(slow.cut.load(Ordering::Relaxed), 1);
        assert_eq!(
            fast.take(),
            vec![Event::Left {
                name: "slow".into(),
                members: 1
            }]
        );
        assert_eq!(s.say("late"), Err(LobbyError::Gone));
        drop(s); // its guard leaves again: nothing more is announced
        assert_eq!(fast.take(), vec![]);
        assert_eq!(lobby.member_count(), 1);
    }

    #[test]
    fn a_batch_reaches_each_member_in_order_and_a_slow_ones_leave_follows_it() {
        let line = |name: &str, text: &str| Event::Message {
            name: name.into(),
            text: text.into(),
            origin: Protocol::SocketIo,
            raw: None,
        };
        let (ann, bob, cat) = (
            Recorder::default(),
            Recorder::default(),
            Recorder::default(),
        );
        *bob.room.lock().unwrap() = Some(1);
        let mut members = HashMap::new();
        for (id, name, outbox) in [(1, "ann", &ann), (2, "bob", &bob), (3, "cat", &cat)] {
            let entry = Entry {
                protocol: Protocol::SocketIo,
                name: Some(name.into()),
                since: SystemTime::now(),
                outbox: Arc::new(outbox.clone()),
                first_live_line: None,
            };
            members.insert(id, entry);
        }
        let old = history::StoredLine {
            id: 1,
            time_ms: 0,
            name: "dan".into(),
            protocol: "tcp-json".into(),
            text: "old".into(),
        };
        let batch = vec![
            Outgoing::new(line("cat", "one"), Some(3)),
            Outgoing {
                replay: Some((3, vec![old])),
                ..Outgoing::new(joined("cat", 3), None)
            },
            Outgoing::new(line("ann", "two"), Some(1)),
        ];
        let cut = fan_out(&mut members, &LobbyMetrics::new(), batch);

        let bob_left = Event::Left {
            name: "bob".into(),
            members: 2,
        };
        // Senders do not get their own lines (Socket.IO does not echo).
        assert_eq!(
            ann.take(),
            vec![line("cat", "one"), joined("cat", 3), bob_left.clone()]
        );
        // Full at the second event: nothing after it, cut off once.
        assert_eq!(bob.take(), vec![line("cat", "one")]);
        assert_eq!(cut.len(), 1);
        assert_eq!(members.len(), 2);
        // The replay comes just before the event it belongs to.
        let replayed = Event::Message {
            name: "dan".into(),
            text: "old".into(),
            origin: Protocol::TcpJson,
            raw: None,
        };
        assert_eq!(
            cat.take(),
            vec![replayed, joined("cat", 3), line("ann", "two"), bob_left]
        );
    }

    #[test]
    fn a_closed_lobby_announces_no_leaves() {
        let lobby = Lobby::new(Limits::default());
        let stays = Recorder::default();
        let _stays = lobby.join(Protocol::SocketIo, stays.clone());
        let goes = lobby.join(Protocol::SocketIo, Recorder::default());
        goes.set_name("goes").unwrap();
        stays.take();
        lobby.close();
        drop(goes);
        assert_eq!(stays.take(), vec![]);
        assert_eq!(lobby.member_count(), 1);
    }
}
