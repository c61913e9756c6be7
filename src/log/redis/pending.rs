//! This node's appends on their way to Redis and back: kept in order until their
//! entries come back through the log, where the reader matches each to its entry by
//! `seq` (what only this node knows: the sender to skip, the member to replay to).

use std::collections::VecDeque;

/// An append of this node's on its way to Redis and back.
pub(super) struct Pending<T> {
    pub(super) seq: u64,
    pub(super) item: T,
    pub(super) is_line: bool,
    pub(super) replay: usize,
}

/// This node's appends, in order, until their entries come back, and how many of them
/// are chat lines (kept as it changes: `append` checks it under the lobby's lock).
pub(super) struct PendingQueue<T> {
    pub(super) items: VecDeque<Pending<T>>,
    pub(super) lines: usize,
}

impl<T> PendingQueue<T> {
    pub(super) fn push_back(&mut self, pending: Pending<T>) {
        self.lines += usize::from(pending.is_line);
        self.items.push_back(pending);
    }

    pub(super) fn pop_back(&mut self) -> Option<Pending<T>> {
        let pending = self.items.pop_back()?;
        self.lines -= usize::from(pending.is_line);
        Some(pending)
    }

    pub(super) fn pop_front(&mut self) -> Option<Pending<T>> {
        let pending = self.items.pop_front()?;
        self.lines -= usize::from(pending.is_line);
        Some(pending)
    }

    /// Drops append `seq` (it never reached the log).
    pub(super) fn remove(&mut self, seq: u64) {
        if let Some(at) = self.items.iter().position(|p| p.seq == seq)
            && let Some(pending) = self.items.remove(at)
        {
            self.lines -= usize::from(pending.is_line);
        }
    }
}
