//! Two-person rooms (PROTOCOLS.md section 2): a room is created by its first member,
//! holds at most [`ROOM_SEATS`] members, and relays a member's line to everyone in it,
//! the sender included. Rooms are separate from the lobby's chat.
//!
//! Seats are taken and freed under one lock, so two members racing for the last seat
//! cannot both get it. A member holds at most one seat: taking another frees the first,
//! and leaving the lobby (disconnecting) frees it too.
//!
//! A cluster node's rooms are the cluster's ([`crate::log::Log::shared_rooms`]): the
//! seats are taken in Redis and room lines go through the cluster's log; this table
//! then holds only this node's seats, as Redis granted them, to hand room lines to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::lobby::OutboxRefusal;

/// Members a room holds at most.
pub(crate) const ROOM_SEATS: usize = 2;

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

/// Why a room request was refused. The text is what the sender is told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    /// The room already holds [`ROOM_SEATS`] members.
    #[error("the room is full")]
    Full,
    /// A room line from a member that holds no seat.
    #[error("join a room before sending chat messages")]
    NotSeated,
    /// A room name that is empty once cleaned.
    #[error("a room name must not be empty")]
    EmptyName,
    /// A room name over the limit.
    #[error("a room name is longer than {max} characters")]
    NameTooLong {
        /// The limit in force.
        max: usize,
    },
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

    /// Seats `member` in `room`, freeing its previous seat. Taking the seat it already
    /// has changes nothing; a full room refuses and the member keeps its seat.
    pub(crate) fn take_seat(
        &self,
        member: u64,
        room: Arc<str>,
        seat: Arc<dyn Seat>,
    ) -> Result<(), RoomError> {
        let mut state = self.lock();
        if state.seated.get(&member) == Some(&room) {
            return Ok(());
        }
        if state
            .rooms
            .get(&room)
            .is_some_and(|seats| seats.len() >= ROOM_SEATS)
        {
            return Err(RoomError::Full);
        }
        state.sit(member, room, seat);
        Ok(())
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

    /// Seats `member` in `room` as a cluster decided it (no count here: the cluster
    /// holds the seats), freeing its previous seat on this node.
    pub(crate) fn seat(&self, member: u64, room: Arc<str>, seat: Arc<dyn Seat>) {
        self.lock().sit(member, room, seat);
    }

    /// Relays `text` to everyone in `member`'s room, `member` included. A seated member
    /// that does not keep up is unseated and cut off.
    pub(crate) fn say(&self, member: u64, text: &str) -> Result<(), RoomError> {
        let room = self
            .lock()
            .seated
            .get(&member)
            .cloned()
            .ok_or(RoomError::NotSeated)?;
        self.relay(&room, &Arc::from(text));
        Ok(())
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

impl crate::lobby::Lobby {
    /// A room line read from the cluster's log, to this node's seats in `room`.
    pub(super) fn relay_in_room(&self, room: &str, line: &Arc<str>) {
        for id in self.inner.rooms.relay(room, line) {
            self.free_cluster_seat(id);
        }
    }

    /// The cluster's log, if the rooms are the cluster's ([`Log::shared_rooms`]).
    ///
    /// [`Log::shared_rooms`]: crate::log::Log::shared_rooms
    pub(super) fn cluster_rooms(&self) -> Option<&dyn crate::log::Log<super::fanout::Outgoing>> {
        self.inner.log.as_deref().filter(|log| log.shared_rooms())
    }

    /// Frees member `id`'s seat in the cluster's rooms, if the rooms are the cluster's.
    pub(super) fn free_cluster_seat(&self, id: u64) {
        if let Some(log) = self.cluster_rooms() {
            log.free_seat(id);
        }
    }

    /// Seats member `id` in `room` here, as the cluster decided, if it is still in the
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
        let why = crate::lobby::LobbyError::Room(why);
        let who = crate::refusals::Who::Member(id, None);
        let (protocol, refusal) = (
            crate::protocol::Protocol::SocketIo,
            crate::refusals::Refusal::new(why.reason(), &why),
        );
        self.inner.refusals.report(protocol, who, refusal);
        if let crate::lobby::LobbyError::Room(room) = &why {
            seat.refused(room);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);

    impl Seat for Arc<Lines> {
        fn offer_line(&self, line: &Arc<str>) -> Result<(), OutboxRefusal> {
            self.0.lock().unwrap().push(line.to_string());
            Ok(())
        }
        fn cut_off(&self) {}
        fn refused(&self, _: &RoomError) {}
    }

    fn seat() -> Arc<Lines> {
        Arc::new(Lines::default())
    }

    #[test]
    fn two_seats_then_full_and_freed_on_leave() {
        let rooms = Rooms::default();
        let (a, b, c) = (seat(), seat(), seat());
        rooms.take_seat(1, "r".into(), Arc::new(a.clone())).unwrap();
        rooms.take_seat(2, "r".into(), Arc::new(b.clone())).unwrap();
        assert_eq!(
            rooms.take_seat(3, "r".into(), Arc::new(c.clone())),
            Err(RoomError::Full)
        );
        rooms.say(1, "hi").unwrap();
        assert_eq!(*a.0.lock().unwrap(), ["hi"]);
        assert_eq!(*b.0.lock().unwrap(), ["hi"]);
        assert_eq!(rooms.say(3, "x"), Err(RoomError::NotSeated));
        rooms.leave(2);
        rooms.take_seat(3, "r".into(), Arc::new(c.clone())).unwrap();
        assert_eq!(rooms.occupancy("r"), 2);
    }

    #[test]
    fn a_second_room_frees_the_first_and_a_full_one_keeps_it() {
        let rooms = Rooms::default();
        rooms.take_seat(1, "a".into(), Arc::new(seat())).unwrap();
        rooms.take_seat(1, "a".into(), Arc::new(seat())).unwrap();
        assert_eq!(rooms.occupancy("a"), 1);
        rooms.take_seat(1, "b".into(), Arc::new(seat())).unwrap();
        assert_eq!((rooms.occupancy("a"), rooms.occupancy("b")), (0, 1));
        rooms.take_seat(2, "c".into(), Arc::new(seat())).unwrap();
        rooms.take_seat(3, "c".into(), Arc::new(seat())).unwrap();
        assert_eq!(
            rooms.take_seat(1, "c".into(), Arc::new(seat())),
            Err(RoomError::Full)
        );
        assert_eq!(rooms.occupancy("b"), 1);
    }

    #[test]
    fn racing_for_the_last_seat_one_wins() {
        for _ in 0..200 {
            let rooms = Arc::new(Rooms::default());
            rooms.take_seat(0, "r".into(), Arc::new(seat())).unwrap();
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let racers: Vec<_> = [1, 2]
                .map(|id| {
                    let (rooms, barrier) = (rooms.clone(), barrier.clone());
                    std::thread::spawn(move || {
                        barrier.wait();
                        rooms.take_seat(id, "r".into(), Arc::new(seat())).is_ok()
                    })
                })
                .into_iter()
                .collect();
            let wins = racers
                .into_iter()
                .map(|racer| racer.join().expect("racer"))
                .filter(|&won| won)
                .count();
            assert_eq!(wins, 1);
            assert_eq!(rooms.occupancy("r"), 2);
        }
    }
}
