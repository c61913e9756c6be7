//! The slow-consumer rule: a member is cut off for being slow, not for a burst.
//!
//! The same for every protocol, judged at each fan-out batch from the length of the
//! member's queue (what its connection's writer has not taken yet):
//!
//! | rule | setting | default |
//! |---|---|---|
//! | it has more pending than | `--outbox-bytes` | 1 MiB |
//! | it has been behind for longer than | `--outbox-behind-ms` | 10 s |
//! | (a backstop) its queue is full | `--outbox-messages` | 16,384 |
//!
//! - *Pending*: the events in its queue, each counted at the mean
//!   [weight](super::Delivery::weight) of the events offered to it.
//! - *Behind*: when a batch finds its queue not empty, the lobby notes what it had been
//!   offered so far (a mark); once the member has taken all of it out of its queue, the
//!   next batch that finds it not empty again sets a new mark. Behind is the age of the
//!   mark it has not cleared; an empty queue clears everything. A long-polling client,
//!   whose queue is empty only while a poll waits, clears each mark with its next poll.
//!
//! A member that keeps up on average empties its queue, or clears its marks, between
//! bursts and is never cut; one that stopped reading is cut after `--outbox-bytes` of
//! chat or `--outbox-behind-ms`, whichever comes first.

use std::time::{Duration, Instant};

/// Default for [`SlowRule::max_bytes`]: what NATS and Centrifugo allow a client by
/// default (their order of magnitude), several seconds of a busy lobby.
pub(crate) const DEFAULT_OUTBOX_BYTES: usize = 1024 * 1024;

/// Default for [`SlowRule::max_behind`]: NATS's write deadline; far longer than any
/// burst a reader that keeps up takes to read.
pub(crate) const DEFAULT_OUTBOX_BEHIND: Duration = Duration::from_secs(10);

/// When a member is too slow (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SlowRule {
    /// Bytes offered since the member last caught up (`--outbox-bytes`).
    pub(crate) max_bytes: usize,
    /// Time since the member last caught up with something offered (`--outbox-behind-ms`).
    pub(crate) max_behind: Duration,
}

impl Default for SlowRule {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_OUTBOX_BYTES,
            max_behind: DEFAULT_OUTBOX_BEHIND,
        }
    }
}

/// Why a member was cut off as a slow consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slow {
    /// Its queue was full (`--outbox-messages`).
    QueueFull,
    /// More than `--outbox-bytes` offered since it last caught up.
    Bytes,
    /// Behind for longer than `--outbox-behind-ms`.
    Behind,
}

impl Slow {
    /// The reason, for the log.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Slow::QueueFull => "its queue is full (--outbox-messages)",
            Slow::Bytes => "too much pending (--outbox-bytes)",
            Slow::Behind => "behind for too long (--outbox-behind-ms)",
        }
    }
}

/// What a member was offered, and the mark it has to clear (see the module doc).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backlog {
    /// Events offered to it, ever.
    offered: u64,
    /// Their weight, ever.
    offered_bytes: u64,
    /// Events it had been offered when its queue was last found not empty, and when.
    mark: Option<(u64, Instant)>,
}

impl Backlog {
    /// A batch at `now` finds `queued` events in the member's queue.
    pub(super) fn look(&mut self, queued: usize, now: Instant) {
        let queued = queued as u64;
        if queued == 0 {
            self.mark = None;
            return;
        }
        let taken = self.offered.saturating_sub(queued);
        if self.mark.is_none_or(|(offered, _)| taken >= offered) {
            self.mark = Some((self.offered, now));
        }
    }

    /// An event of `weight` bytes was offered.
    pub(super) fn add(&mut self, weight: usize) {
        self.offered += 1;
        self.offered_bytes = self.offered_bytes.saturating_add(weight as u64);
    }

    /// Whether the member, with `queued` events in its queue, is too slow for `rule`
    /// at `now`.
    pub(super) fn too_slow(&self, queued: usize, rule: &SlowRule, now: Instant) -> Option<Slow> {
        let mean = self.offered_bytes.checked_div(self.offered).unwrap_or(0);
        if (queued as u64).saturating_mul(mean) > rule.max_bytes as u64 {
            return Some(Slow::Bytes);
        }
        let behind = self
            .mark
            .map(|(_, since)| now.saturating_duration_since(since));
        behind
            .filter(|b| *b > rule.max_behind)
            .map(|_| Slow::Behind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: SlowRule = SlowRule {
        max_bytes: 1000,
        max_behind: Duration::from_secs(10),
    };

    #[test]
    fn a_member_is_too_slow_past_the_bytes_or_the_time_and_clears_its_marks_by_reading() {
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let mut backlog = Backlog::default();
        for _ in 0..10 {
            backlog.add(100);
        }
        // 10 events of 100 bytes pending: 1000 bytes, a mark at 0 s.
        backlog.look(10, at(0));
        assert_eq!(
            backlog.too_slow(10, &RULE, at(10)),
            None,
            "1000 bytes, 10 s"
        );
        assert_eq!(backlog.too_slow(10, &RULE, at(11)), Some(Slow::Behind));
        backlog.add(100);
        assert_eq!(backlog.too_slow(11, &RULE, at(1)), Some(Slow::Bytes));

        // It took 5 of the 10: the mark stands.
        backlog.look(6, at(5));
        assert_eq!(backlog.too_slow(6, &RULE, at(11)), Some(Slow::Behind));
        // It took all 10 (one left, offered after the mark): a new mark at 9 s.
        backlog.look(1, at(9));
        assert_eq!(backlog.too_slow(1, &RULE, at(19)), None);
        assert_eq!(backlog.too_slow(1, &RULE, at(20)), Some(Slow::Behind));
        // An empty queue clears everything.
        backlog.look(0, at(30));
        assert_eq!(backlog.too_slow(0, &RULE, at(100)), None);
    }
}
