//! The single node's [`Broker`]: events go out at once, or, with a history, through the
//! SQLite [`Sequencer`] (each chat line committed before it is relayed, everything in
//! commit order); presence is the lobby's own table (what it hands in as `here`); member
//! ids are counted here; seats in the two-person rooms are counted here ([`Seats`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::seats::Seats;
use super::{
    AppendRefusal, Broker, BrokerHandler, Committed, HistoryError, Queued, RoomRefusal, SeatAnswer,
    Sequencer, Store, StoredLine,
};
use crate::chat::Someone;
use crate::locks::lock;

/// The single node's broker (see the module doc).
pub(crate) struct LocalBroker<T, S> {
    /// The history every event goes through, if one is kept.
    history: Option<Sequencer<T>>,
    next_id: AtomicU64,
    seats: Mutex<Seats>,
    handler: Arc<dyn BrokerHandler<T, S>>,
}

impl<T: Send + 'static, S: Send + 'static> LocalBroker<T, S> {
    /// A broker without history: every event goes out at once.
    pub(crate) fn new(handler: Arc<dyn BrokerHandler<T, S>>) -> Self {
        Self {
            history: None,
            next_id: AtomicU64::new(1),
            seats: Mutex::default(),
            handler,
        }
    }

    /// A broker that commits every chat line to `store` before it is relayed: at most
    /// `capacity` lines wait for their commit, batches of at most `batch_items` come
    /// back ([`Sequencer::start`]). Fails only if the writer thread cannot start.
    pub(crate) fn with_history(
        store: Store,
        capacity: usize,
        batch_items: usize,
        handler: Arc<dyn BrokerHandler<T, S>>,
    ) -> std::io::Result<Self> {
        let up = handler.clone();
        let deliver = move |batch: Vec<Committed<T>>| up.deliver(batch);
        Ok(Self {
            history: Some(Sequencer::start(store, capacity, batch_items, deliver)?),
            ..Self::new(handler)
        })
    }
}

impl<T: Send + 'static, S: Send + 'static> Broker<T, S> for LocalBroker<T, S> {
    fn publish(&self, queued: Queued<T>) -> Result<Option<T>, AppendRefusal> {
        match &self.history {
            None => Ok(Some(queued.item)),
            Some(history) => {
                history.push(queued)?;
                Ok(None)
            }
        }
    }

    fn slow_leave(&self, leave: T) -> Option<T> {
        Some(leave)
    }

    fn close(&self) {}

    fn finish(&self) {
        if let Some(history) = &self.history {
            history.finish();
        }
    }

    fn keeps_history(&self) -> bool {
        self.history.is_some()
    }

    fn page(
        &self,
        before: Option<i64>,
        limit: usize,
    ) -> Option<Result<Vec<StoredLine>, HistoryError>> {
        Some(self.history.as_ref()?.page(before, limit))
    }

    fn page_after(
        &self,
        after: i64,
        limit: usize,
    ) -> Option<Result<Vec<StoredLine>, HistoryError>> {
        Some(self.history.as_ref()?.page_after(after, limit))
    }

    fn member_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn member_count(&self, here: usize) -> usize {
        here
    }

    fn present(&self, here: &dyn Fn() -> Vec<Someone>) -> Vec<Someone> {
        here()
    }

    fn held_elsewhere(&self, _key: &str) -> bool {
        false
    }

    fn held_elsewhere_at_most(&self) -> usize {
        0
    }

    fn reachable(&self) -> Option<bool> {
        None
    }

    fn take_seat(&self, member: u64, room: Arc<str>, seat: S) -> Result<(), AppendRefusal> {
        let seated = lock(&self.seats).take(member, &room);
        let answer = match seated {
            true => SeatAnswer::Seated,
            false => SeatAnswer::Full,
        };
        self.handler.seat_answered(member, room, seat, answer);
        Ok(())
    }

    fn say_in_room(&self, member: u64, text: &str, _seat: S) -> Result<(), RoomRefusal> {
        let room = lock(&self.seats)
            .room_of(member)
            .ok_or(RoomRefusal::NotSeated)?;
        self.handler.relay_in_room(&room, &Arc::from(text));
        Ok(())
    }

    fn free_seat(&self, member: u64) {
        lock(&self.seats).free(member);
    }
}
