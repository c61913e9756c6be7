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
//! Every event goes on its way through the lobby's [`Broker`](crate::log::Broker) (the seam, [`crate::log`]),
//! which the lobby never asks about: it hands each event over under its lock, relays
//! at once what the broker hands straight back, and relays what comes back later
//! through the way up ([`BrokerHandler`](crate::log::BrokerHandler), implemented in [`up`]). The single node's
//! broker hands an event straight back, or, with a history ([`Lobby::with_history`]),
//! commits chat lines to disk first and hands every event (joins and leaves too, so
//! that their order with the lines stays) back from its writer thread, in the order the
//! lobby accepted it. A member receives what is fanned out while it is present: a
//! member that joins may receive a line said a few milliseconds before its join, still
//! on its way to disk. A cluster node's broker ([`crate::log::redis`]) appends every
//! event to the cluster's log and hands back what every node reads there, in the log's
//! one order; presence, counts, member ids and seats are then the cluster's, a slow
//! member's leave goes through the log too, and a node that lost its lease drops every
//! connection ([`Lobby::drop_everyone`]).
//!
//! The parts: [`handle`] (the [`Lobby`] and every operation on it, in one place),
//! [`member`] (what a connection may ask of the lobby), [`event`] (what members
//! receive), [`fanout`] (delivery in order, replay, slow consumers), [`table`] (the
//! members and their entries), [`presence`] (who is here, as the APIs write it), [`up`]
//! (the way up from the broker), [`tap`] (the admin UI's development mode's view of the
//! traffic), [`names`], [`rooms`], [`rate`], [`churn`], [`limits`], [`error`] (a leaf:
//! why a request was refused). No module of the lobby imports one
//! that imports it back.

pub(crate) mod backlog;
pub(crate) mod churn;
#[cfg(test)]
mod cluster_tests;
pub(crate) mod error;
pub(crate) mod event;
pub(crate) mod fanout;
mod handle;
pub(crate) mod limits;
pub(crate) mod member;
pub(crate) mod names;
pub(crate) mod presence;
pub(crate) mod rate;
pub(crate) mod rooms;
pub(crate) mod roster;
mod table;
pub(crate) mod tap;
mod up;

pub use error::{LobbyError, RoomError};
pub use event::Event;
pub(crate) use event::{Delivery, Outbox, OutboxRefusal};
pub(crate) use handle::{Lobby, Member};
// Named by the protocols' doc links (`crate::lobby::Limits`).
#[allow(unused_imports)]
pub(crate) use limits::Limits;

pub use crate::log::QueueFull;

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Condvar, Mutex, MutexGuard};
    use std::time::{Duration, Instant};

    use super::*;
    use crate::log::Store;
    use crate::protocol::Protocol;

    /// How long a test waits for what it expects.
    const WAIT: Duration = Duration::from_secs(10);

    /// A seat that records the room lines and refusals it is told.
    #[derive(Default)]
    pub(crate) struct Lines {
        lines: Mutex<Vec<String>>,
        refused: Mutex<Vec<RoomError>>,
    }

    impl rooms::Seat for Arc<Lines> {
        fn offer_line(&self, line: &Arc<str>) -> Result<(), OutboxRefusal> {
            self.lines.lock().unwrap().push(line.to_string());
            Ok(())
        }
        fn cut_off(&self) {}
        fn refused(&self, why: &RoomError) {
            self.refused.lock().unwrap().push(why.clone());
        }
    }

    impl Lines {
        /// The room lines it was told, in order.
        pub(crate) fn lines(&self) -> Vec<String> {
            self.lines.lock().unwrap().clone()
        }
        /// The refusals it was told, in order.
        pub(crate) fn refusals(&self) -> Vec<RoomError> {
            self.refused.lock().unwrap().clone()
        }
    }

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
