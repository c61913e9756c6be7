//! Two-person rooms (PROTOCOLS.md section 2): a room is created by its first member,
//! holds at most [`ROOM_SEATS`](crate::log::seats::ROOM_SEATS) members, and relays a member's line to everyone in it,
//! the sender included. Rooms are separate from the lobby's chat.
//!
//! Seats are counted by the lobby's broker ([`crate::log::Broker::take_seat`]), under
//! one lock (a single node's) or in one script (a cluster's, in Redis), so two members
//! racing for the last seat cannot both get it. A member holds at most one seat: taking
//! another frees the first, and leaving the lobby (disconnecting) frees it too. This
//! table holds this node's seats as the broker granted them, to hand room lines to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

pub(crate) use super::error::RoomError;
use super::event::OutboxRefusal;

/// A seated member's outgoing side, implemented by the protocol (Socket.IO).
pub(crate) trait Seat: Send + Sync + 'static {
    /// Queues a room line for the member without waiting.
    fn offer_line(&self, line: &Arc<str>) -> Result<(), OutboxRefusal>;

    /// Ends the member's connection because it did not keep up.
    fn cut_off(&self);

    /// Tells the member its room request was refused (a cluster answers after the
    /// request, not during it).
    fn refused(&self, why: &RoomError);
}

/// Every room and who sits in it.
#[derive(Default)]
pub(crate) struct Rooms {
    state: Mutex<State>,
}

/// Who sits in a room: member id and seat.
type Occupants = Vec<(u64, Arc<dyn Seat>)>;

#[derive(Default)]
struct State {
    rooms: HashMap<Arc<str>, Occupants>,
    seated: HashMap<u64, Arc<str>>,
}

impl State {
    /// Seats `member` in `room`, freeing its previous seat.
    fn sit(&mut self, member: u64, room: Arc<str>, seat: Arc<dyn Seat>) {
        self.free(member);
        self.rooms
            .entry(room.clone())
            .or_default()
            .push((member, seat));
        self.seated.insert(member, room);
    }

    fn free(&mut self, member: u64) {
        let Some(room) = self.seated.remove(&member) else {
            return;
        };
        if let Some(seats) = self.rooms.get_mut(&room) {
            seats.retain(|(id, _)| *id != member);
            if seats.is_empty() {
                self.rooms.remove(&room);
            }
        }
    }
}

impl Rooms {
    fn lock(&self) -> MutexGuard<'_, State> {
        crate::locks::lock(&self.state)
    }

    /// Every seated member of this node and its room.
    pub(crate) fn seated(&self) -> Vec<(u64, Arc<str>)> {
        let state = self.lock();
        state
            .seated
            .iter()
            .map(|(&member, room)| (member, room.clone()))
            .collect()
    }

    /// Frees `member`'s seat, if it has one.
    pub(crate) fn leave(&self, member: u64) {
        self.lock().free(member);
    }

    /// Seats `member` in `room` as the broker decided it (no count here: the broker
    /// counts the seats), freeing its previous seat on this node. Taking the seat it
    /// already has changes nothing.
    pub(crate) fn seat(&self, member: u64, room: Arc<str>, seat: Arc<dyn Seat>) {
        let mut state = self.lock();
        if state.seated.get(&member) != Some(&room) {
            state.sit(member, room, seat);
        }
    }

    /// Relays `line` to everyone seated in `room` here. A seated member that does not
    /// keep up is unseated and cut off; returns who.
    pub(crate) fn relay(&self, room: &str, line: &Arc<str>) -> Vec<u64> {
        let mut slow = Vec::new();
        {
            let mut state = self.lock();
            for (id, seat) in state.rooms.get(room).into_iter().flatten() {
                if seat.offer_line(line) == Err(OutboxRefusal::Full) {
                    slow.push((*id, seat.clone()));
                }
            }
            for (id, _) in &slow {
                tracing::warn!(member = id, "room outbox full: cut off as a slow consumer");
                state.free(*id);
            }
        }
        let ids = slow.iter().map(|(id, _)| *id).collect();
        for (_, seat) in slow {
            seat.cut_off();
        }
        ids
    }

    /// How many members sit in `room`.
    #[cfg(test)]
    pub(crate) fn occupancy(&self, room: &str) -> usize {
        self.lock().rooms.get(room).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lobby::tests::Lines;
    use crate::lobby::{Limits, Lobby, LobbyError, Member};
    use crate::protocol::Protocol;

    fn seat() -> Arc<Lines> {
        Arc::new(Lines::default())
    }

    /// A Socket.IO connection in `lobby` (unnamed: seats need no name).
    fn socketio_member(lobby: &Lobby) -> Member {
        lobby
            .join(
                Protocol::SocketIo,
                crate::lobby::tests::Recorder::default(),
                None,
            )
            .unwrap()
    }

    #[test]
    fn two_seats_then_full_and_freed_on_leave() {
        let lobby = Lobby::new(Limits::default());
        let join = || socketio_member(&lobby);
        let (m1, m2, m3) = (join(), join(), join());
        let (a, b, c) = (seat(), seat(), seat());
        m1.take_seat("r", a.clone()).unwrap();
        m2.take_seat("r", b.clone()).unwrap();
        m3.take_seat("r", c.clone()).unwrap();
        assert_eq!(c.refusals(), [RoomError::Full]);
        m1.say_in_room("hi", a.clone()).unwrap();
        assert_eq!(a.lines(), ["hi"]);
        assert_eq!(b.lines(), ["hi"]);
        assert_eq!(
            m3.say_in_room("x", c.clone()),
            Err(LobbyError::Room(RoomError::NotSeated))
        );
        drop(m2);
        m3.take_seat("r", c.clone()).unwrap();
        assert_eq!(c.refusals(), [RoomError::Full]);
        assert_eq!(lobby.inner.rooms.occupancy("r"), 2);
    }

    #[test]
    fn racing_for_the_last_seat_one_wins() {
        for _ in 0..200 {
            let lobby = Lobby::new(Limits::default());
            let join = || socketio_member(&lobby);
            let first = join();
            first.take_seat("r", seat()).unwrap();
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let racers: Vec<_> = [join(), join()]
                .map(|member| {
                    let barrier = barrier.clone();
                    std::thread::spawn(move || {
                        let mine = seat();
                        barrier.wait();
                        member.take_seat("r", mine.clone()).unwrap();
                        let won = mine.refusals().is_empty();
                        (won, member)
                    })
                })
                .into_iter()
                .collect();
            let outcomes: Vec<_> = racers
                .into_iter()
                .map(|racer| racer.join().expect("racer"))
                .collect();
            let wins = outcomes.iter().filter(|(won, _)| *won).count();
            assert_eq!(wins, 1);
            assert_eq!(lobby.inner.rooms.occupancy("r"), 2);
        }
    }
}
