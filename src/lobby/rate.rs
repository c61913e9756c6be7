//! Message rate per member: a token bucket (`governor`) in each lobby member, checked
//! once at the start of everything a member asks the lobby to send to others (a chat
//! line, a TCP text chunk, a rename, a room line; a member's first name is free: it is
//! part of connecting).
//!
//! A request over the rate is refused with [`LobbyError::RateLimited`]: the sender gets
//! its protocol's usual error (Socket.IO `error` event, `error: …` line on TCP, an
//! `{"type":"error"}` frame on WebSocket) and nothing is relayed. After
//! [`RateLimit::strikes`] refusals in a row (no accepted request between them) the
//! refusal is [`LobbyError::Flooding`] instead and the protocol disconnects the member.
//! An accepted request starts the count again, so a client a little over the rate loses
//! lines but stays; a client flooding is gone within a second.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::error::LobbyError;

/// Default for `--rate-lines-per-sec`: faster than anyone types, slower than a script.
pub(crate) const DEFAULT_RATE_LINES_PER_SEC: u32 = 10;

/// Default for `--rate-burst`: a pasted paragraph of short lines, or a few lines sent
/// at once on reconnect, goes through whole.
pub(crate) const DEFAULT_RATE_BURST: u32 = 20;

/// Default for `--rate-strikes`: at the rate limit of 10 a second, 50 refusals in a row
/// are seconds of sending at several times the rate while every line is refused; no
/// person does that.
pub(crate) const DEFAULT_RATE_STRIKES: u32 = 50;

/// The message rate each member is held to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateLimit {
    /// Requests a second, sustained; 0 switches the limit off.
    pub(crate) lines_per_sec: u32,
    /// Requests at once (the bucket's size); at least 1.
    pub(crate) burst: u32,
    /// Refusals in a row that disconnect the member; 0: never disconnect.
    pub(crate) strikes: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            lines_per_sec: DEFAULT_RATE_LINES_PER_SEC,
            burst: DEFAULT_RATE_BURST,
            strikes: DEFAULT_RATE_STRIKES,
        }
    }
}

/// One member's token bucket and refusals in a row.
pub(crate) struct Bucket {
    limit: RateLimit,
    /// `None`: the limit is off.
    limiter: Option<DefaultDirectRateLimiter>,
    strikes: AtomicU32,
}

impl Bucket {
    /// A full bucket for `limit`.
    pub(crate) fn new(limit: RateLimit) -> Self {
        let limiter = NonZeroU32::new(limit.lines_per_sec).map(|per_sec| {
            let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::direct(Quota::per_second(per_sec).allow_burst(burst))
        });
        Self {
            limit,
            limiter,
            strikes: AtomicU32::new(0),
        }
    }

    /// Takes a token for one request, or says why not.
    pub(crate) fn check(&self) -> Result<(), LobbyError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.check().is_ok() {
            self.strikes.store(0, Ordering::Relaxed);
            return Ok(());
        }
        let strikes = self.strikes.fetch_add(1, Ordering::Relaxed) + 1;
        if self.limit.strikes > 0 && strikes >= self.limit.strikes {
            return Err(LobbyError::Flooding { strikes });
        }
        Err(LobbyError::RateLimited {
            lines_per_sec: self.limit.lines_per_sec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_through_then_lines_are_refused_then_the_member_is_flooding() {
        let bucket = Bucket::new(RateLimit {
            lines_per_sec: 1,
            burst: 3,
            strikes: 4,
        });
        for _ in 0..3 {
            assert_eq!(bucket.check(), Ok(()));
        }
        let refused = LobbyError::RateLimited { lines_per_sec: 1 };
        for _ in 0..3 {
            assert_eq!(bucket.check(), Err(refused.clone()));
        }
        assert_eq!(bucket.check(), Err(LobbyError::Flooding { strikes: 4 }));
        assert_eq!(refused.to_string(), "too many messages: at most 1 a second");
        assert_eq!(refused.reason(), "rate");
    }

    #[test]
    fn zero_is_off() {
        let bucket = Bucket::new(RateLimit {
            lines_per_sec: 0,
            burst: 0,
            strikes: 1,
        });
        for _ in 0..10_000 {
            assert_eq!(bucket.check(), Ok(()));
        }
    }
}
