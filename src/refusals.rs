//! Refused requests and connections: each one counted in `chatterbox_refusals_total`
//! ([`crate::telemetry`]) and logged, in one place ([`Refusals::report`] of a [`Refusal`]),
//! folded so that a flood of refusals cannot flood the log.
//!
//! The rule, at the default level (`info`), with an interval of `--log-fold-secs`
//! (default [`DEFAULT_LOG_FOLD_SECS`]):
//!
//! - The first refusal of a client for a reason gets a line of its own, with the client
//!   (`member=<id>` and, but on Socket.IO, `peer=<address:port>`; only `peer` before a
//!   member exists), the protocol, the reason (the metric's label) and the text the
//!   client was told: `refused member=17 peer=10.0.0.1:50312 protocol="tcp-json"
//!   reason="rate" why=too many messages: …`.
//! - Further refusals of that client for that reason are counted, and at the end of each
//!   interval in which there were any, one line says how many:
//!   `refused 4211 requests from member 17 (rate) in the last 10 s`. Counts are exact
//!   and printed without thousands separators.
//! - When more than [`MANY_CLIENTS`] clients are refused for one reason in one interval,
//!   only the first [`MANY_CLIENTS`] get a line of their own, and the interval ends
//!   with one server-wide line for the reason instead of one per client:
//!   `refused 86726 requests from 100 clients (busy) in the last 10 s`.
//! - A refusal that disconnects a member (too many refused in a row, a frame too large,
//!   a stall) is a cut-off: it always gets its own line (`refused, disconnecting`), as
//!   joins and leaves do. A connection refused before it is a member (over the
//!   connection limits, headers too slow, an origin not allowed) is folded like any
//!   refusal, per IP address: an attacker's new connections share one count.
//! - So every refusal is in the log exactly once: in a line of its own or in the count of
//!   one summary. The metric counts every refusal as it happens.
//! - At `debug`, every refusal also folded into a summary gets a line of its own.
//! - `--log-fold-secs 0`: nothing is folded, every refusal gets its line at `info`.
//!
//! The state is bounded: clients are tracked per member id (per IP address before a
//! member exists); a client is forgotten at the end of the first interval in which it
//! was not refused, or at the end of the interval in which its member left (at once if
//! nothing of it is waiting to be summarised). At most [`MAX_TRACKED`] clients are
//! tracked; refusals of others fold into the server-wide line of their reason
//! (`from at least N clients`). Summaries come from a task woken every interval
//! (`Lobby::fold_every`), and once more when the server stops, so a count is
//! printed even when the flood has stopped.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::protocol::Protocol;
use crate::telemetry;

/// Default for `--log-fold-secs`.
pub(crate) const DEFAULT_LOG_FOLD_SECS: u64 = 10;

/// Clients refused for one reason in one interval past which the interval ends with one
/// server-wide line for the reason, and further clients get no line of their own.
pub(crate) const MANY_CLIENTS: usize = 10;

/// Clients whose refusals are tracked at once; refusals of any other fold into the
/// server-wide line of their reason.
pub(crate) const MAX_TRACKED: usize = 1024;

/// Who was refused.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Who {
    /// A member of the lobby, by id, and its address where the protocol knows it (the
    /// log line names both; it is folded per member).
    Member(u64, Option<SocketAddr>),
    /// A connection that is no member (yet), by its address; folded per IP address.
    Peer(SocketAddr),
    /// An HTTP request whose connection's address is not known.
    Unknown,
}

/// One refused request or connection: the reason (the metric's label), what the
/// client is told, and whether it is disconnected for it (a cut-off).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refusal<W> {
    /// The metric's label: `rate`, `too_large`, `origin`, …
    pub(crate) reason: &'static str,
    /// What the client is told, and the log line says.
    pub(crate) why: W,
    /// The client is disconnected for it.
    pub(crate) disconnects: bool,
}

impl<W: fmt::Display> Refusal<W> {
    /// A refusal after which the connection stays.
    pub(crate) fn new(reason: &'static str, why: W) -> Self {
        Self {
            reason,
            why,
            disconnects: false,
        }
    }

    /// A refusal that disconnects the client.
    pub(crate) fn disconnecting(reason: &'static str, why: W) -> Self {
        Self {
            reason,
            why,
            disconnects: true,
        }
    }

    /// The same refusal, its text borrowed.
    pub(crate) fn by_ref(&self) -> Refusal<&W> {
        Refusal {
            reason: self.reason,
            why: &self.why,
            disconnects: self.disconnects,
        }
    }
}

/// The log and the count of every refusal, and the interval its lines are folded over.
/// Cheap to clone; clones share the counts.
#[derive(Clone)]
pub(crate) struct Refusals {
    inner: Arc<Shared>,
}

struct Shared {
    /// `None`: no folding.
    interval: Option<Duration>,
    fold: Mutex<Fold>,
}

impl Refusals {
    /// Refusals folded over `interval`; zero: not folded.
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            inner: Arc::new(Shared {
                interval: (!interval.is_zero()).then_some(interval),
                fold: Mutex::new(Fold::new(Instant::now())),
            }),
        }
    }

    /// Counts `refusal` of `who` on `protocol` and logs it as the module doc says.
    pub(crate) fn report<W: fmt::Display>(
        &self,
        protocol: Protocol,
        who: Who,
        refusal: Refusal<W>,
    ) {
        let Refusal {
            reason,
            why,
            disconnects,
        } = refusal;
        telemetry::refused(protocol, reason);
        let cut_off = disconnects && matches!(who, Who::Member(..));
        let verdict = match self.inner.interval {
            Some(_) if !cut_off => self.fold().refuse(Key::of(who), reason),
            _ => Verdict::OwnLine,
        };
        let protocol = protocol.as_str();
        macro_rules! log_line {
            ($level:ident, $message:literal) => {
                match who {
                    Who::Member(member, peer) => {
                        let peer = peer.map(tracing::field::display);
                        tracing::$level!(member, peer, protocol, reason, %why, $message)
                    }
                    Who::Peer(peer) => tracing::$level!(%peer, protocol, reason, %why, $message),
                    Who::Unknown => tracing::$level!(protocol, reason, %why, $message),
                }
            };
        }
        match (verdict, disconnects) {
            (Verdict::OwnLine, false) => log_line!(info, "refused"),
            (Verdict::OwnLine, true) => log_line!(info, "refused, disconnecting"),
            (Verdict::Folded, false) => log_line!(debug, "refused (folded)"),
            (Verdict::Folded, true) => log_line!(debug, "refused, disconnecting (folded)"),
        }
    }

    /// Forgets `member`, which left, once what is waiting of it has been summarised.
    pub(crate) fn left(&self, member: u64) {
        if self.inner.interval.is_some() {
            self.fold().left(member);
        }
    }

    /// Ends the interval: logs its summaries.
    pub(crate) fn summarise(&self) {
        let summaries = self.fold().end_interval(Instant::now());
        for summary in summaries {
            tracing::info!("{summary}");
        }
    }

    fn fold(&self) -> MutexGuard<'_, Fold> {
        // Every update leaves the counts whole, so a poisoned lock is still safe to use.
        crate::locks::lock(&self.inner.fold)
    }
}

/// What a client is tracked by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Member(u64),
    Address(IpAddr),
    Unknown,
}

impl Key {
    fn of(who: Who) -> Self {
        match who {
            Who::Member(id, _) => Key::Member(id),
            Who::Peer(peer) => Key::Address(peer.ip()),
            Who::Unknown => Key::Unknown,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Member(id) => write!(f, "member {id}"),
            Key::Address(ip) => write!(f, "{ip}"),
            Key::Unknown => f.write_str("clients of unknown address"),
        }
    }
}

/// Whether a refusal gets a line of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    OwnLine,
    Folded,
}

/// The folding itself, without a clock or a log of its own: [`Fold::refuse`] says
/// whether a refusal gets its line, [`Fold::end_interval`] returns the summaries.
struct Fold {
    /// Numbers the intervals, to forget clients idle for one.
    interval: u64,
    /// When the current interval started.
    started: Instant,
    tracked: HashMap<Key, Tracked>,
    /// Clients given a line of their own in this interval, by reason.
    own_lines: HashMap<&'static str, usize>,
    /// Refusals of clients past [`MAX_TRACKED`] in this interval, by reason.
    untracked: HashMap<&'static str, u64>,
}

struct Tracked {
    /// The last interval it was refused in.
    active: u64,
    /// Its member left: forget it at the end of the interval.
    gone: bool,
    /// By reason: refusals not logged on their own line in this interval.
    reasons: Vec<Folded>,
}

struct Folded {
    reason: &'static str,
    count: u64,
}

/// One summary line at the end of an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Summary {
    /// Of one client.
    One {
        key: Key,
        reason: &'static str,
        refusals: u64,
        over: Duration,
    },
    /// Of more than [`MANY_CLIENTS`] clients, or of some past [`MAX_TRACKED`].
    Many {
        reason: &'static str,
        refusals: u64,
        clients: usize,
        /// Some were not tracked: `clients` is a lower bound.
        at_least: bool,
        over: Duration,
    },
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Summary::One {
                key,
                reason,
                refusals,
                over,
            } => write!(
                f,
                "refused {refusals} requests from {key} ({reason}) in the last {}",
                Seconds(*over)
            ),
            Summary::Many {
                reason,
                refusals,
                clients,
                at_least,
                over,
            } => write!(
                f,
                "refused {refusals} requests from {}{clients} clients ({reason}) in the last {}",
                if *at_least { "at least " } else { "" },
                Seconds(*over)
            ),
        }
    }
}

/// A duration in seconds, to a tenth: `10 s`, `0.4 s`.
struct Seconds(Duration);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tenths = (self.0.as_millis() + 50) / 100;
        match tenths % 10 {
            0 => write!(f, "{} s", tenths / 10),
            tenth => write!(f, "{}.{tenth} s", tenths / 10),
        }
    }
}

impl Fold {
    fn new(now: Instant) -> Self {
        Self {
            interval: 0,
            started: now,
            tracked: HashMap::new(),
            own_lines: HashMap::new(),
            untracked: HashMap::new(),
        }
    }

    /// Takes a refusal into account; says whether it gets a line of its own.
    fn refuse(&mut self, key: Key, reason: &'static str) -> Verdict {
        let interval = self.interval;
        if let Some(tracked) = self.tracked.get_mut(&key) {
            tracked.active = interval;
            if let Some(folded) = tracked.reasons.iter_mut().find(|f| f.reason == reason) {
                folded.count += 1;
                return Verdict::Folded;
            }
        } else if self.tracked.len() >= MAX_TRACKED {
            *self.untracked.entry(reason).or_default() += 1;
            return Verdict::Folded;
        }
        let own_lines = self.own_lines.entry(reason).or_default();
        let verdict = if *own_lines < MANY_CLIENTS {
            *own_lines += 1;
            Verdict::OwnLine
        } else {
            Verdict::Folded
        };
        let tracked = self.tracked.entry(key).or_insert_with(|| Tracked {
            active: interval,
            gone: false,
            reasons: Vec::new(),
        });
        tracked.reasons.push(Folded {
            reason,
            count: u64::from(verdict == Verdict::Folded),
        });
        verdict
    }

    /// Forgets `member` now if nothing of it waits for a summary, else at the end of
    /// the interval.
    fn left(&mut self, member: u64) {
        let key = Key::Member(member);
        if let Some(tracked) = self.tracked.get_mut(&key) {
            if tracked.reasons.iter().all(|f| f.count == 0) {
                self.tracked.remove(&key);
            } else {
                tracked.gone = true;
            }
        }
    }

    /// Ends the current interval at `now`: returns its summaries (by reason, then
    /// client) and forgets the clients it is done with.
    fn end_interval(&mut self, now: Instant) -> Vec<Summary> {
        let over = now.saturating_duration_since(self.started);
        let mut by_reason: BTreeMap<&'static str, Vec<(Key, u64)>> = BTreeMap::new();
        for (key, tracked) in &self.tracked {
            for folded in tracked.reasons.iter().filter(|f| f.count > 0) {
                by_reason
                    .entry(folded.reason)
                    .or_default()
                    .push((*key, folded.count));
            }
        }
        for reason in self.untracked.keys() {
            by_reason.entry(reason).or_default();
        }
        let mut summaries = Vec::new();
        for (reason, mut clients) in by_reason {
            let untracked = self.untracked.get(reason).copied().unwrap_or(0);
            if clients.len() > MANY_CLIENTS || untracked > 0 {
                summaries.push(Summary::Many {
                    reason,
                    refusals: clients.iter().map(|(_, count)| count).sum::<u64>() + untracked,
                    // Untracked ones count as one: a lower bound.
                    clients: clients.len() + usize::from(untracked > 0),
                    at_least: untracked > 0,
                    over,
                });
            } else {
                clients.sort_unstable();
                summaries.extend(clients.into_iter().map(|(key, refusals)| Summary::One {
                    key,
                    reason,
                    refusals,
                    over,
                }));
            }
        }
        let ended = self.interval;
        self.tracked.retain(|_, tracked| {
            for folded in &mut tracked.reasons {
                folded.count = 0;
            }
            tracked.active == ended && !tracked.gone
        });
        self.own_lines.clear();
        self.untracked.clear();
        self.interval += 1;
        self.started = now;
        summaries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN: Duration = Duration::from_secs(10);

    fn one(id: u64, reason: &'static str, refusals: u64) -> Summary {
        Summary::One {
            key: Key::Member(id),
            reason,
            refusals,
            over: TEN,
        }
    }

    /// `n` refusals of member `id` for `reason`: how many got a line of their own.
    fn refuse(fold: &mut Fold, id: u64, reason: &'static str, n: u64) -> u64 {
        (0..n)
            .filter(|_| fold.refuse(Key::Member(id), reason) == Verdict::OwnLine)
            .count() as u64
    }

    #[test]
    fn the_first_refusal_has_its_line_the_rest_are_counted_per_interval() {
        let start = Instant::now();
        let mut fold = Fold::new(start);
        assert_eq!(refuse(&mut fold, 17, "busy", 4212), 1);
        assert_eq!(refuse(&mut fold, 17, "rate", 3), 1);
        assert_eq!(
            fold.end_interval(start + TEN),
            [one(17, "busy", 4211), one(17, "rate", 2)]
        );
        assert_eq!(
            one(17, "busy", 4211).to_string(),
            "refused 4211 requests from member 17 (busy) in the last 10 s"
        );
        // Still flooding: no new first line, a summary per interval.
        assert_eq!(refuse(&mut fold, 17, "busy", 5), 0);
        assert_eq!(fold.end_interval(start + 2 * TEN), [one(17, "busy", 5)]);
        // Nothing for a whole interval: forgotten, the next refusal has its line again.
        assert_eq!(fold.end_interval(start + 3 * TEN), []);
        assert!(fold.tracked.is_empty());
        assert_eq!(refuse(&mut fold, 17, "busy", 1), 1);
        assert_eq!(fold.end_interval(start + 4 * TEN), []);
    }

    #[test]
    fn a_client_refused_once_is_remembered_for_one_quiet_interval() {
        let start = Instant::now();
        let mut fold = Fold::new(start);
        assert_eq!(refuse(&mut fold, 3, "rate", 1), 1);
        assert_eq!(fold.end_interval(start + TEN), []);
        assert_eq!(refuse(&mut fold, 3, "rate", 1), 0);
        assert_eq!(fold.end_interval(start + 2 * TEN), [one(3, "rate", 1)]);
    }

    #[test]
    fn many_clients_share_one_server_wide_line() {
        let start = Instant::now();
        let mut fold = Fold::new(start);
        let clients = MANY_CLIENTS as u64 + 5;
        let own_lines: u64 = (1..=clients)
            .map(|id| refuse(&mut fold, id, "busy", 100))
            .sum();
        assert_eq!(own_lines, MANY_CLIENTS as u64);
        // Another reason still has its own lines.
        assert_eq!(refuse(&mut fold, 1, "rate", 2), 1);
        let summaries = fold.end_interval(start + TEN);
        let many = Summary::Many {
            reason: "busy",
            refusals: clients * 100 - MANY_CLIENTS as u64,
            clients: clients as usize,
            at_least: false,
            over: TEN,
        };
        assert_eq!(summaries, [many.clone(), one(1, "rate", 1)]);
        assert_eq!(
            many.to_string(),
            "refused 1490 requests from 15 clients (busy) in the last 10 s"
        );
        // The next interval: the clients are known, nobody gets a first line.
        assert_eq!(
            (1..=3)
                .map(|id| refuse(&mut fold, id, "busy", 2))
                .sum::<u64>(),
            0
        );
        assert_eq!(
            fold.end_interval(start + 2 * TEN),
            [one(1, "busy", 2), one(2, "busy", 2), one(3, "busy", 2)]
        );
    }

    #[test]
    fn past_the_cap_refusals_fold_into_the_server_wide_count() {
        let start = Instant::now();
        let mut fold = Fold::new(start);
        let own_lines: u64 = (0..MAX_TRACKED as u64)
            .map(|id| refuse(&mut fold, id, "rate", 1))
            .sum();
        assert_eq!(own_lines, MANY_CLIENTS as u64);
        assert_eq!(refuse(&mut fold, 5000, "rate", 7), 0);
        assert_eq!(fold.tracked.len(), MAX_TRACKED);
        let summaries = fold.end_interval(start + TEN);
        let many = Summary::Many {
            reason: "rate",
            refusals: (MAX_TRACKED - MANY_CLIENTS) as u64 + 7,
            clients: MAX_TRACKED - MANY_CLIENTS + 1,
            at_least: true,
            over: TEN,
        };
        assert_eq!(summaries, std::slice::from_ref(&many));
        assert_eq!(
            many.to_string(),
            "refused 1021 requests from at least 1015 clients (rate) in the last 10 s"
        );
    }

    #[test]
    fn a_member_that_left_is_forgotten_once_summarised() {
        let start = Instant::now();
        let mut fold = Fold::new(start);
        refuse(&mut fold, 1, "rate", 1);
        fold.left(1);
        assert!(
            fold.tracked.is_empty(),
            "nothing to summarise: forgotten at once"
        );
        refuse(&mut fold, 2, "rate", 3);
        fold.left(2);
        assert_eq!(fold.tracked.len(), 1);
        assert_eq!(fold.end_interval(start + TEN), [one(2, "rate", 2)]);
        assert!(fold.tracked.is_empty());
    }

    #[test]
    fn addresses_are_folded_per_ip_and_a_summary_says_how_long_it_covers() {
        let start = Instant::now();
        let mut fold = Fold::new(start);
        for port in 1..=4 {
            let peer = SocketAddr::from(([10, 0, 0, 1], port));
            fold.refuse(Key::of(Who::Peer(peer)), "connections");
        }
        let summaries = fold.end_interval(start + Duration::from_millis(2_360));
        assert_eq!(summaries.len(), 1);
        assert_eq!(
            summaries[0].to_string(),
            "refused 3 requests from 10.0.0.1 (connections) in the last 2.4 s"
        );
    }
}
