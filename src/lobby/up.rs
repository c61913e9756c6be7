//! The way up: what the lobby's broker hands the lobby ([`BrokerHandler`], the lobby's
//! side of the seam in [`crate::log`]): batches to relay, room lines, answers to room
//! requests, the loss of a cluster node's place, and what an event says for a broker
//! that sends it to other nodes.

use std::sync::{Arc, Weak};

use super::fanout::Outgoing;
use super::rooms::{RoomError, Seat};
use super::{Inner, Lobby};
use crate::chat::Event;
use crate::log::{BrokerHandler, Committed, Said, SeatAnswer};

/// The lobby as its broker sees it: held weakly (the lobby holds the broker).
pub(super) struct Up(pub(super) Weak<Inner>);

impl Up {
    fn lobby(&self) -> Option<Lobby> {
        self.0.upgrade().map(|inner| Lobby { inner })
    }
}

impl BrokerHandler<Outgoing, Arc<dyn Seat>> for Up {
    fn deliver(&self, batch: Vec<Committed<Outgoing>>) {
        if let Some(lobby) = self.lobby() {
            lobby.deliver(batch);
        }
    }

    fn relay_in_room(&self, room: &str, line: &Arc<str>) {
        if let Some(lobby) = self.lobby() {
            lobby.relay_in_room(room, line);
        }
    }

    fn seat_answered(&self, member: u64, room: Arc<str>, seat: Arc<dyn Seat>, answer: SeatAnswer) {
        let Some(lobby) = self.lobby() else {
            return;
        };
        match answer {
            SeatAnswer::Seated => lobby.seat_if_present(member, room, seat),
            SeatAnswer::Full => lobby.refuse_seat(member, &*seat, RoomError::Full),
            SeatAnswer::NotSeated => lobby.refuse_seat(member, &*seat, RoomError::NotSeated),
        }
    }

    fn lost_place(&self) {
        if let Some(lobby) = self.lobby() {
            lobby.drop_everyone();
        }
    }

    fn said<'a>(&self, item: &'a Outgoing) -> Said<'a> {
        Said {
            event: item.delivery.event(),
            from: item.from,
            someone: item.someone.as_ref(),
        }
    }

    fn heard(&self, event: Event) -> Outgoing {
        Outgoing::new(event, None)
    }
}

impl Lobby {
    /// Fans out a batch the broker handed back, in order.
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
        let cut = self.fan_out(&mut self.lock(), batch);
        if presence || !cut.is_empty() {
            self.presence_changed();
        }
        super::fanout::cut_off(cut);
    }
}
