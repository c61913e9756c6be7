//! The admin UI's development mode (`--admin-mode development`): what this node's
//! members send and are sent, handed to the admin namespace (`crate::admin`) while an
//! admin watches, for its `event_received` and `event_sent`.
//!
//! Off, it costs one relaxed load per request a member sends and per fan-out batch. On,
//! one message per request and per event fanned out (never one per receiver: the admin
//! namespace finds the receivers itself), into a bounded queue: what does not fit is
//! dropped and counted, the chat never waits for the admin UI.

use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde_json::Value;
use tokio::sync::mpsc;

use super::event::Delivery;

/// What the tap hands the admin namespace.
pub(crate) enum Tapped {
    /// A request member `member` sent: `[event, ...args]`, as `event_received` carries
    /// them.
    Received { member: u64, args: Value },
    /// A lobby event on its way to every member of this node but its sender (when the
    /// sender's protocol does not echo).
    Sent {
        delivery: Arc<Delivery>,
        from: Option<u64>,
    },
}

/// The lobby's tap: off until the admin namespace opens it ([`Tap::open`], through
/// `Lobby::tap`) and turns it on ([`Tap::turn`], through `Lobby::tap_on`).
#[derive(Default)]
pub(super) struct Tap {
    on: AtomicBool,
    to: OnceLock<mpsc::Sender<Tapped>>,
    /// What did not fit in the queue.
    dropped: AtomicU64,
}

impl Tap {
    fn on(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    fn hand(&self, tapped: Tapped) {
        let Some(to) = self.to.get() else { return };
        if to.try_send(tapped).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Opens the tap into a queue of `capacity` (once: later calls get `None`); it
    /// stays off until [`Tap::turn`].
    pub(super) fn open(&self, capacity: usize) -> Option<mpsc::Receiver<Tapped>> {
        let (to, from) = mpsc::channel(capacity.max(1));
        self.to.set(to).ok()?;
        Some(from)
    }

    /// Turns the tap on (an admin watches) or off.
    pub(super) fn turn(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    /// What the tap dropped so far, its queue full.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Hands over a request member `member` sent, `args()` (`[event, ...args]`) made
    /// only if on.
    pub(super) fn received(&self, member: u64, args: impl FnOnce() -> Value) {
        if self.on() {
            self.hand(Tapped::Received {
                member,
                args: args(),
            });
        }
    }

    /// Hands over every event of a batch (each delivery and its sender), if on; the
    /// batch is walked only then.
    pub(super) fn sent<'a>(
        &self,
        batch: impl IntoIterator<Item = (&'a Arc<Delivery>, Option<u64>)>,
    ) {
        if !self.on() {
            return;
        }
        for (delivery, from) in batch {
            self.hand(Tapped::Sent {
                delivery: delivery.clone(),
                from,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lobby::tests::{Recorder, joined};
    use crate::lobby::{Event, Limits, Lobby};
    use crate::protocol::Protocol;

    fn sent(tapped: Option<Tapped>) -> (Event, Option<u64>) {
        match tapped {
            Some(Tapped::Sent { delivery, from }) => (delivery.event().clone(), from),
            _ => panic!("not an event sent"),
        }
    }

    #[test]
    fn off_it_hands_nothing_on_one_message_per_request_and_event_and_full_it_drops() {
        let lobby = Lobby::new(Limits::default());
        let mut tapped = lobby.tap(2).unwrap();
        assert!(lobby.tap(2).is_none(), "opened once");
        let ann = lobby
            .join(Protocol::SocketIo, Recorder::default(), None)
            .unwrap();
        ann.set_name("ann").unwrap();
        ann.tap_received(|| unreachable!("made while off"));
        assert!(tapped.try_recv().is_err());

        lobby.tap_on(true);
        ann.tap_received(|| serde_json::json!(["message", "hi"]));
        ann.say("hi").unwrap();
        match tapped.try_recv() {
            Ok(Tapped::Received { member, args }) => {
                assert_eq!(
                    (member, args),
                    (ann.id(), serde_json::json!(["message", "hi"]))
                );
            }
            _ => panic!("not a request received"),
        }
        let line = Event::Message {
            name: "ann".into(),
            text: "hi".into(),
            origin: Protocol::SocketIo,
            raw: None,
        };
        assert_eq!(sent(tapped.try_recv().ok()), (line, Some(ann.id())));
        assert!(tapped.try_recv().is_err());

        // Two fit; the third is dropped and counted, the chat goes on.
        let bob = lobby
            .join(Protocol::TcpText, Recorder::default(), None)
            .unwrap();
        ann.say("one").unwrap();
        ann.say("two").unwrap();
        assert_eq!(lobby.tap_dropped(), 1);
        let guest = format!("guest-{}", bob.id());
        assert_eq!(sent(tapped.try_recv().ok()), (joined(&guest, 2), None));

        lobby.tap_on(false);
        ann.say("three").unwrap();
        assert!(tapped.try_recv().is_ok(), "what was queued stays");
        assert!(tapped.try_recv().is_err(), "nothing more while off");
    }
}
