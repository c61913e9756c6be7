//! The slow-consumer rule: a member is cut off for being slow, not for a burst.
//!
//! The same for every protocol. At each fan-out batch the lobby looks at each member's
//! queue: found empty, the member has caught up and its backlog starts over. Every event
//! offered to it after that adds its [weight](super::Delivery::weight) to the backlog.
//! The member is cut off, after the batch, when since it last caught up
//!
//! | rule | setting | default |
//! |---|---|---|
//! | more was offered to it than | `--outbox-bytes` | 1 MiB |
//! | its queue has not been found empty for longer than | `--outbox-behind-ms` | 10 s |
//! | (a backstop) its queue is full | `--outbox-messages` | 16,384 |
//!
//! The bytes are an upper bound of what is pending (part of it may have been written
//! already): exact when the member reads nothing. A member that keeps up on average
//! empties its queue between bursts and is never cut; one that stopped reading is cut
//! after `--outbox-bytes` of chat or `--outbox-behind-ms`, whichever comes first.

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

/// What a member was offered since it last caught up.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backlog {
    bytes: usize,
    /// When the first event after it last caught up was offered.
    since: Option<Instant>,
}

impl Backlog {
    /// The member's queue was found empty: it starts over.
    pub(super) fn caught_up(&mut self) {
        *self = Self::default();
    }

    /// An event of `weight` bytes was offered at `now`.
    pub(super) fn add(&mut self, weight: usize, now: Instant) {
        self.bytes = self.bytes.saturating_add(weight);
        self.since.get_or_insert(now);
    }

    /// Whether the member is too slow for `rule` at `now`.
    pub(super) fn too_slow(&self, rule: &SlowRule, now: Instant) -> Option<Slow> {
        if self.bytes > rule.max_bytes {
            return Some(Slow::Bytes);
        }
        let behind = self.since.map(|since| now.saturating_duration_since(since));
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
    fn a_member_is_too_slow_past_the_bytes_or_the_time_and_starts_over_once_caught_up() {
        let start = Instant::now();
        let at = |secs| start + Duration::from_secs(secs);
        let mut backlog = Backlog::default();
        backlog.add(600, at(0));
        backlog.add(400, at(1));
        assert_eq!(backlog.too_slow(&RULE, at(10)), None, "1000 bytes, 10 s");
        assert_eq!(backlog.too_slow(&RULE, at(11)), Some(Slow::Behind));
        backlog.add(1, at(2));
        assert_eq!(backlog.too_slow(&RULE, at(2)), Some(Slow::Bytes));

        // Caught up: what came before no longer counts, time behind starts at the next event.
        backlog.caught_up();
        assert_eq!(backlog.too_slow(&RULE, at(100)), None);
        backlog.add(1000, at(100));
        assert_eq!(backlog.too_slow(&RULE, at(110)), None);
        assert_eq!(backlog.too_slow(&RULE, at(111)), Some(Slow::Behind));
    }
}
