//! Every limit on what members send and on what is kept for them, with its default.

use std::time::Duration;

use crate::lobby::backlog::SlowRule;
use crate::lobby::churn::JoinLimit;
use crate::lobby::rate::RateLimit;
use crate::log;

/// Default for [`Limits::max_name_chars`]: long enough for any real nickname,
/// short enough that a join line stays one line on a terminal.
pub(crate) const DEFAULT_MAX_NAME_CHARS: usize = 32;

/// Default for [`Limits::max_message_chars`]: a long paragraph; more is a paste or
/// a flood, not a chat line.
pub(crate) const DEFAULT_MAX_MESSAGE_CHARS: usize = 2_000;

/// Default for [`Limits::max_room_name_chars`].
pub(crate) const DEFAULT_MAX_ROOM_NAME_CHARS: usize = 64;

/// Default for [`Limits::outbox_messages`]: a backstop only. The slow-consumer rule is
/// [`Limits::slow`]: its default 1 MiB is 16,384 events of 64 bytes, the least an
/// event weighs ([`crate::lobby::Delivery::weight`]), so the rule decides first.
pub(crate) const DEFAULT_OUTBOX_MESSAGES: usize = 16_384;

/// Every limit on what members send and on what is kept for them. Shared by all
/// protocols through [`Lobby::limits`].
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    /// Longest name, in characters (Unicode scalar values); longer names are cut to it.
    pub(crate) max_name_chars: usize,
    /// Longest chat line, in characters; a longer line is refused with an error.
    pub(crate) max_message_chars: usize,
    /// Longest room name, in characters; a longer one is refused with an error.
    pub(crate) max_room_name_chars: usize,
    /// Depth of each member's outgoing queue, in messages; a member whose queue is full
    /// is cut off as a slow consumer (a backstop: the rule is [`Self::slow`]).
    pub(crate) outbox_messages: usize,
    /// When a member is cut off as a slow consumer: by bytes pending and time behind.
    pub(crate) slow: SlowRule,
    /// The message rate each member is held to (see [`crate::rate`]).
    pub(crate) rate: RateLimit,
    /// The joins and renames each client address may make (see [`crate::lobby::churn`]).
    pub(crate) joins: JoinLimit,
    /// Chat lines (at most) waiting for their commit to the history; past it, lines are
    /// refused with [`LobbyError::Busy`].
    pub(crate) history_queue_lines: usize,
    /// Latest stored lines sent to a Socket.IO member when it first names itself, before
    /// its join is announced (needs a history).
    pub(crate) replay_lines: usize,
    /// The interval refusals are folded over in the log (see [`crate::refusals`]); zero:
    /// every refusal gets its line.
    pub(crate) log_fold: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_name_chars: DEFAULT_MAX_NAME_CHARS,
            max_message_chars: DEFAULT_MAX_MESSAGE_CHARS,
            max_room_name_chars: DEFAULT_MAX_ROOM_NAME_CHARS,
            outbox_messages: DEFAULT_OUTBOX_MESSAGES,
            slow: SlowRule::default(),
            rate: RateLimit::default(),
            joins: JoinLimit::default(),
            history_queue_lines: log::DEFAULT_HISTORY_QUEUE_LINES,
            replay_lines: 0,
            log_fold: Duration::from_secs(crate::refusals::DEFAULT_LOG_FOLD_SECS),
        }
    }
}

impl Limits {
    /// The most events a broker hands the lobby in one batch: half a member's queue, so
    /// that a batch fits even in a queue the previous one has not been written out of
    /// yet (the lobby hands a whole batch to each member's queue at once).
    pub(crate) fn relay_batch_items(&self) -> usize {
        (self.outbox_messages / 2).clamp(1, MAX_RELAY_BATCH_ITEMS)
    }
}

/// The most events a broker hands the lobby in one batch, whatever the queues hold.
const MAX_RELAY_BATCH_ITEMS: usize = 512;
