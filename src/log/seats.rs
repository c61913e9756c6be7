//! Seats in the two-person rooms as one place counts them (PROTOCOLS.md section 2): a
//! room holds at most [`ROOM_SEATS`] members, a member sits in at most one room. The
//! single node's broker counts them here ([`super::local`]); a cluster counts them in
//! Redis (its rooms script, the same rules).

use std::collections::HashMap;
use std::sync::Arc;

/// Members a room holds at most.
pub(crate) const ROOM_SEATS: usize = 2;

/// Who sits in which room.
#[derive(Debug, Default)]
pub(crate) struct Seats {
    rooms: HashMap<Arc<str>, Vec<u64>>,
    seated: HashMap<u64, Arc<str>>,
}

impl Seats {
    /// Seats `member` in `room`, freeing its previous seat: true. Taking the seat it
    /// already has changes nothing (true); a full room refuses (false) and the member
    /// keeps its seat.
    pub(crate) fn take(&mut self, member: u64, room: &Arc<str>) -> bool {
        if self.seated.get(&member) == Some(room) {
            return true;
        }
        if self
            .rooms
            .get(room)
            .is_some_and(|seats| seats.len() >= ROOM_SEATS)
        {
            return false;
        }
        self.free(member);
        self.rooms.entry(room.clone()).or_default().push(member);
        self.seated.insert(member, room.clone());
        true
    }

    /// The room `member` sits in.
    pub(crate) fn room_of(&self, member: u64) -> Option<Arc<str>> {
        self.seated.get(&member).cloned()
    }

    /// Frees `member`'s seat, if it has one.
    pub(crate) fn free(&mut self, member: u64) {
        let Some(room) = self.seated.remove(&member) else {
            return;
        };
        if let Some(seats) = self.rooms.get_mut(&room) {
            seats.retain(|id| *id != member);
            if seats.is_empty() {
                self.rooms.remove(&room);
            }
        }
    }

    /// How many members sit in `room`.
    #[cfg(test)]
    pub(crate) fn occupancy(&self, room: &str) -> usize {
        self.rooms.get(room).map_or(0, Vec::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_seats_then_full_and_freed_on_leave() {
        let mut seats = Seats::default();
        let r: Arc<str> = "r".into();
        assert!(seats.take(1, &r));
        assert!(seats.take(2, &r));
        assert!(!seats.take(3, &r));
        assert_eq!(seats.room_of(3), None);
        seats.free(2);
        assert!(seats.take(3, &r));
        assert_eq!(seats.occupancy("r"), 2);
    }

    #[test]
    fn a_second_room_frees_the_first_and_a_full_one_keeps_it() {
        let mut seats = Seats::default();
        let [a, b, c]: [Arc<str>; 3] = ["a".into(), "b".into(), "c".into()];
        assert!(seats.take(1, &a));
        assert!(seats.take(1, &a));
        assert_eq!(seats.occupancy("a"), 1);
        assert!(seats.take(1, &b));
        assert_eq!((seats.occupancy("a"), seats.occupancy("b")), (0, 1));
        assert!(seats.take(2, &c));
        assert!(seats.take(3, &c));
        assert!(!seats.take(1, &c));
        assert_eq!(seats.occupancy("b"), 1);
        assert_eq!(seats.room_of(1), Some(b));
    }
}
