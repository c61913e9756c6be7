//! The way up: what the lobby's broker hands the lobby ([`BrokerHandler`], the lobby's
//! side of the seam in [`crate::log`]): batches to relay, room lines, answers to room
//! requests, the loss of a cluster node's place, and what an event says for a broker
//! that sends it to other nodes.

use std::sync::Arc;

use super::error::RoomError;
use super::fanout::Outgoing;
use super::handle::Up;
use super::rooms::Seat;
use crate::chat::Event;
use crate::log::{BrokerHandler, Committed, Said, SeatAnswer};

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
