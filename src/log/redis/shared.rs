//! What a cluster node's tasks (the appender, the reader, the lease) and its broker
//! share ([`Shared`]): its appends on their way back, who is present, whether Redis
//! answers, its epoch, its member ids.

use std::sync::Condvar;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::ids;
use super::pending::{Pending, PendingQueue};
use super::roster::Roster;
use crate::locks::lock;

/// 1 while Redis does not answer this node (chat lines refused), 0 otherwise.
const UNAVAILABLE: &str = "chatterbox_cluster_redis_unavailable";

/// What the node's tasks and the lobby share.
pub(super) struct Shared<T> {
    /// This node's appends, in order, until their entries come back.
    pub(super) pending: Mutex<PendingQueue<T>>,
    /// Notified whenever `pending` shrinks.
    pub(super) drained: Condvar,
    /// Who is present in the whole cluster, as the log has announced it.
    pub(super) roster: Mutex<Roster>,
    /// Set while Redis does not answer (an append or a renewal failed), cleared when it
    /// does again: chat lines are refused meanwhile.
    pub(super) unavailable: AtomicBool,
    /// The epoch the node's entries are appended under.
    pub(super) epoch: AtomicU64,
    /// Woken when an append is refused for a lost lease.
    pub(super) lease_lost: tokio::sync::Notify,
    /// The member ids this node gives out.
    pub(super) ids: ids::MemberIds,
    /// Woken when the member ids run low.
    pub(super) refill: tokio::sync::Notify,
    /// Seats and room lines waiting for the appender (at most the log's capacity).
    pub(super) rooms_waiting: AtomicUsize,
}

impl<T> Shared<T> {
    /// Records whether Redis answers (the gauge too); returns what it was.
    pub(super) fn set_unavailable(&self, unavailable: bool) -> bool {
        let was = self.unavailable.swap(unavailable, Ordering::SeqCst);
        if was != unavailable {
            metrics::gauge!(UNAVAILABLE).set(f64::from(u8::from(unavailable)));
            if !unavailable {
                tracing::info!("Redis answers again: chat lines are accepted");
            }
        }
        was
    }

    /// This node's pending append `seq`, dropping any before it (their appends failed).
    pub(super) fn take_pending(&self, seq: u64) -> Option<Pending<T>> {
        let mut pending = lock(&self.pending);
        while pending.items.front().is_some_and(|p| p.seq < seq) {
            if let Some(lost) = pending.pop_front() {
                tracing::warn!(
                    seq = lost.seq,
                    "a cluster entry of this node never came back"
                );
            }
        }
        let mine = pending.items.front().is_some_and(|p| p.seq == seq);
        let mine = if mine { pending.pop_front() } else { None };
        drop(pending);
        self.drained.notify_all();
        mine
    }
}
