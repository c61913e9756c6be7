//! Fan-out: a batch of events to every member in order, the replay to a new member,
//! and the cut-off of slow consumers (the rule: [`super::backlog`]).

use std::sync::Arc;
use std::time::Instant;

use super::backlog::{Slow, SlowRule};
use super::event::{Delivery, Event, Outbox, OutboxRefusal};
use super::table::Entry;
use super::table::Table;
use super::tap::Tap;
use crate::chat::Someone;
use crate::log::StoredLine;
use crate::protocol::Protocol;
use crate::telemetry::{LobbyMetrics, TRAFFIC};

/// One event of a batch on its way to every member.
pub(crate) struct Outgoing {
    pub(super) delivery: Arc<Delivery>,
    /// The sender, skipped if its protocol does not echo.
    pub(super) from: Option<u64>,
    /// A member and the lines replayed to it just before the event.
    pub(super) replay: Option<(u64, Vec<StoredLine>)>,
    /// Told the line's history id (`None`: not stored) at the place in the sender's
    /// stream where its own line would be, for a sender whose protocol does not echo.
    pub(super) stored: Option<Stored>,
    /// For a join or leave: who joined or left.
    pub(super) someone: Option<Someone>,
}

/// What a sender is told once its line is on its way: the line's history id, if stored.
pub(crate) type Stored = Box<dyn FnOnce(Option<i64>) + Send + 'static>;

impl Outgoing {
    pub(super) fn new(event: Event, from: Option<u64>) -> Self {
        Self {
            delivery: Delivery::new(event),
            from,
            replay: None,
            stored: None,
            someone: None,
        }
    }

    /// Gives a join's or leave's announcement the count `members` (a cluster's, from its
    /// log) in place of this node's; before anyone has encoded it.
    pub(super) fn count_as(&mut self, members: usize) {
        let event = match self.delivery.event() {
            Event::Joined { name, .. } => Event::Joined {
                name: name.clone(),
                members,
            },
            Event::Left { name, .. } => Event::Left {
                name: name.clone(),
                members,
            },
            Event::Message { .. } => return,
        };
        self.delivery = Delivery::new(event);
    }
}

/// Delivers a batch of events, in order, to every member (except, where its protocol
/// does not echo, each event's sender), then the leaves of any member it found too slow,
/// each as `slow_leave` routes it: returned to go out here right after the batch (which
/// may find more), or taken elsewhere (a cluster sends it through its log). Called once
/// per slow member, never per receiver. Returns the outboxes to cut off once the lock is
/// released.
///
/// Member by member, each taking the whole batch: a member's outbox (for Socket.IO its
/// socket and that socket's queue) is then fetched into the cache once per batch, not
/// once per event. With thousands of members that is most of a delivery's cost (a burst
/// of joins: each is announced to everyone). Each member still sees the batch in order.
pub(super) fn fan_out(
    members: &mut Table,
    metrics: &LobbyMetrics,
    tap: &Tap,
    rule: &SlowRule,
    mut batch: Vec<Outgoing>,
    slow_leave: &mut dyn FnMut(Outgoing) -> Option<Outgoing>,
) -> Vec<Arc<dyn Outbox>> {
    let mut cut = Vec::new();
    while !batch.is_empty() {
        tap.sent(batch.iter().map(|out| (&out.delivery, out.from)));
        let mut slow = Vec::new();
        let mut sent = [0; Protocol::ALL.len()];
        // Socket.IO's packets are encoded here, once per delivery (the others' by each
        // connection's writer, which counts their bytes).
        let mut socketio_bytes = 0;
        let now = Instant::now();
        for (&id, entry) in members.iter_mut() {
            let queued = entry.outbox.queued();
            entry.backlog.look(queued, now);
            let mut offered = 0;
            let mut full = false;
            for out in batch.iter_mut() {
                if let Some((_, lines)) = out.replay.take_if(|(to, _)| *to == id) {
                    replay(entry, lines);
                }
                if entry.first_live_line.is_none() {
                    entry.first_live_line = out.delivery.line_id();
                }
                if out.from == Some(id) && !entry.someone.protocol.echoes_own_lines() {
                    if let Some(stored) = out.stored.take() {
                        stored(out.delivery.line_id());
                    }
                    continue;
                }
                match entry.outbox.offer(&out.delivery) {
                    Ok(()) => {
                        sent[entry.someone.protocol.index()] += 1;
                        if entry.someone.protocol == Protocol::SocketIo {
                            socketio_bytes += out.delivery.socketio_len();
                        }
                        offered += 1;
                        entry.backlog.add(out.delivery.weight());
                    }
                    Err(OutboxRefusal::Full) => {
                        full = true;
                        break;
                    }
                    // Closing: its guard leaves on its own, nothing more can reach it.
                    Err(OutboxRefusal::Closed) => break,
                }
            }
            let too_slow = match full {
                true => Some(Slow::QueueFull),
                false => entry.backlog.too_slow(queued + offered, rule, now),
            };
            if let Some(why) = too_slow {
                slow.push((id, why));
            }
        }
        for (protocol, count) in sent.into_iter().enumerate() {
            metrics.lines_out[protocol].increment(count);
        }
        TRAFFIC.queued(sent.iter().sum());
        TRAFFIC.sent_bytes(socketio_bytes as u64);
        // The leaves of the slow members go out as the next batch (which may find more).
        batch = Vec::new();
        for (id, why) in slow {
            let Some((entry, left)) = remove_member(members, metrics, id) else {
                continue;
            };
            tracing::warn!(
                member = id,
                protocol = entry.someone.protocol.as_str(),
                "cut off as a slow consumer: {}",
                why.as_str()
            );
            metrics.cut_offs[entry.someone.protocol.index()].increment(1);
            if let Some(left) = left {
                let leave = Outgoing {
                    someone: Some(entry.someone.clone()),
                    ..Outgoing::new(left, None)
                };
                batch.extend(slow_leave(leave));
            }
            cut.push(entry.outbox);
        }
    }
    cut
}

/// Takes member `id` out of the lobby's table and counts it out: its entry, and its
/// leave to announce if it had a name (counting those who stay). `None` if it is
/// not there (cut off already).
pub(super) fn remove_member(
    members: &mut Table,
    metrics: &LobbyMetrics,
    id: u64,
) -> Option<(Entry, Option<Event>)> {
    let entry = members.remove(&id)?;
    let protocol = entry.someone.protocol.index();
    let left = entry.someone.name.clone().map(|name| {
        metrics.members[protocol].decrement(1.0);
        metrics.leaves[protocol].increment(1);
        Event::Left {
            name,
            members: members.named(),
        }
    });
    Some((entry, left))
}

/// Sends a member the lines replayed for it (oldest first), as chat lines, up to the
/// first it got live. A member whose queue cannot take them all gets the first that
/// fit: replay is a courtesy, the live chat after it must not be lost.
fn replay(entry: &Entry, mut lines: Vec<StoredLine>) {
    if let Some(first_live) = entry.first_live_line {
        lines.retain(|line| line.id < first_live);
    }
    let total = lines.len();
    for (sent, line) in lines.into_iter().enumerate() {
        let event = Event::Message {
            name: Arc::from(line.name),
            text: Arc::from(line.text),
            origin: line.protocol,
            raw: None,
        };
        if let Err(refusal) = entry.outbox.offer(&Delivery::stored(event, line.id)) {
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

pub(super) fn cut_off(outboxes: Vec<Arc<dyn Outbox>>) {
    for outbox in outboxes {
        outbox.cut_off();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lobby::tests::{Recorder, joined};

    /// Member `id`'s entry in the table, connected now, with `outbox`.
    fn entry(id: u64, protocol: Protocol, name: Option<&str>, outbox: &Recorder) -> Entry {
        let outbox = Arc::new(outbox.clone());
        Entry::new(id, protocol, name.map(Into::into), None, outbox)
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
        let mut members = Table::default();
        for (id, name, outbox) in [(1, "ann", &ann), (2, "bob", &bob), (3, "cat", &cat)] {
            members.insert(id, entry(id, Protocol::SocketIo, Some(name), outbox));
        }
        let old = StoredLine {
            id: 1,
            time_ms: 0,
            name: "dan".into(),
            protocol: Protocol::TcpJson,
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
        let cut = fan_out(
            &mut members,
            &LobbyMetrics::new(),
            &Tap::default(),
            &SlowRule::default(),
            batch,
            &mut Some,
        );

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
    fn a_member_that_never_catches_up_is_cut_off_past_its_bytes_and_one_that_does_is_not() {
        let line = |text: &str| Event::Message {
            name: "ann".into(),
            text: text.into(),
            origin: Protocol::TcpJson,
            raw: None,
        };
        let (keeps_up, behind) = (Recorder::default(), Recorder::default());
        behind
            .behind
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut members = Table::default();
        for (id, outbox) in [(1, &keeps_up), (2, &behind)] {
            members.insert(id, entry(id, Protocol::TcpJson, None, outbox));
        }
        // Each line weighs 3 + 3 + 64 = 70 bytes: two batches of two are 280.
        let rule = SlowRule {
            max_bytes: 200,
            max_behind: std::time::Duration::from_secs(3600),
        };
        let batch = || {
            vec![
                Outgoing::new(line("one"), None),
                Outgoing::new(line("two"), None),
            ]
        };
        let metrics = LobbyMetrics::new();
        assert!(
            fan_out(
                &mut members,
                &metrics,
                &Tap::default(),
                &rule,
                batch(),
                &mut Some
            )
            .is_empty()
        );
        let cut = fan_out(
            &mut members,
            &metrics,
            &Tap::default(),
            &rule,
            batch(),
            &mut Some,
        );

        assert_eq!(cut.len(), 1);
        assert_eq!(members.len(), 1);
        assert_eq!(keeps_up.take().len(), 4);
        // It got the second batch (its queue had room), then was cut off.
        assert_eq!(behind.take().len(), 4);
        assert_eq!(members.named(), 0);
    }
}
