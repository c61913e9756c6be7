//! Joins and renames per client address: a budget that survives the member's leave, so
//! a client cannot spam every bystander with announcements by joining, renaming and
//! leaving in a loop (each rejoin is a new member with a fresh message rate).
//!
//! Every join (a Socket.IO `newUser`, a TCP JSON `CONNECT`, a WebSocket or TCP text
//! connection, which is announced on connect) and every rename (`newUser` or `CONNECT`
//! again, a WebSocket frame under a new name) takes a token from its client address's
//! bucket (`governor`, keyed by IP address: `--rate-joins-per-min`, `--rate-join-burst`).
//! Over it, the request is refused with [`LobbyError::Churning`] and nothing is
//! announced: the sender gets its protocol's usual error (a WebSocket or TCP text client,
//! whose join is its connection, gets it and is disconnected). A connection's renames
//! also cost a line of its member's message rate ([`super::rate`]), and all of its
//! joins count against its address, whichever namespace or connection they come on. A
//! bystander of a join loop so sees at most the burst, then one announcement pair per
//! `60 / per_min` seconds.
//!
//! The join and leave log lines fold under churn as refusals do: the first
//! [`LOG_LINES`] of an interval (`--log-fold-secs`) get their own lines, the rest are
//! counted and summed up in one line at the interval's end.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::error::LobbyError;

/// Default for `--rate-joins-per-min`: a person reconnecting now and then, a household
/// behind one address opening a few tabs; not a script.
pub(crate) const DEFAULT_RATE_JOINS_PER_MIN: u32 = 30;

/// Default for `--rate-join-burst`: a family or a classroom behind one address
/// arriving at once.
pub(crate) const DEFAULT_RATE_JOIN_BURST: u32 = 20;

/// Join and leave lines an interval gets before the rest are folded into its summary.
pub(crate) const LOG_LINES: u64 = 50;

/// The join budget in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct JoinLimit {
    /// Joins and renames a minute per client address, sustained; 0: no limit.
    pub(crate) per_min: u32,
    /// Joins and renames at once (the bucket's size); at least 1.
    pub(crate) burst: u32,
}

impl Default for JoinLimit {
    fn default() -> Self {
        Self {
            per_min: DEFAULT_RATE_JOINS_PER_MIN,
            burst: DEFAULT_RATE_JOIN_BURST,
        }
    }
}

/// Every client address's join budget, and the folding of join and leave log lines.
pub(crate) struct Churn {
    limit: JoinLimit,
    /// `None`: the limit is off.
    by_address: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Join and leave lines logged, and folded, in this interval.
    logged: AtomicU64,
    folded_joins: AtomicU64,
    folded_leaves: AtomicU64,
}

/// Whether a join or leave gets a log line of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogLine {
    Own,
    Folded,
}

impl Churn {
    pub(crate) fn new(limit: JoinLimit) -> Self {
        let by_address = NonZeroU32::new(limit.per_min).map(|per_min| {
            let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
            RateLimiter::keyed(Quota::per_minute(per_min).allow_burst(burst))
        });
        Self {
            limit,
            by_address,
            logged: AtomicU64::new(0),
            folded_joins: AtomicU64::new(0),
            folded_leaves: AtomicU64::new(0),
        }
    }

    /// Takes a token for a join or rename from `from` (no address: not limited).
    pub(crate) fn check(&self, from: Option<IpAddr>) -> Result<(), LobbyError> {
        let (Some(limiter), Some(from)) = (&self.by_address, from) else {
            return Ok(());
        };
        limiter
            .check_key(&from.to_canonical())
            .map_err(|_| LobbyError::Churning {
                per_min: self.limit.per_min,
            })
    }

    /// Whether the next join (or leave) gets its own log line; `folding` is false when
    /// log lines are not folded (`--log-fold-secs 0`).
    pub(crate) fn log_line(&self, join: bool, folding: bool) -> LogLine {
        if !folding || self.logged.fetch_add(1, Ordering::Relaxed) < LOG_LINES {
            return LogLine::Own;
        }
        let folded = match join {
            true => &self.folded_joins,
            false => &self.folded_leaves,
        };
        folded.fetch_add(1, Ordering::Relaxed);
        LogLine::Folded
    }

    /// Ends an interval: forgets the addresses whose buckets are full again (so the map
    /// holds only the addresses that joined lately) and logs how many joins and leaves
    /// were folded in it, if any.
    pub(crate) fn end_interval(&self, secs: u64) {
        if let Some(limiter) = &self.by_address {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        self.logged.store(0, Ordering::Relaxed);
        let joins = self.folded_joins.swap(0, Ordering::Relaxed);
        let leaves = self.folded_leaves.swap(0, Ordering::Relaxed);
        if joins + leaves > 0 {
            tracing::info!(
                joins,
                leaves,
                "{joins} more joins and {leaves} more leaves in the last {secs} s (folded)"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn an_address_joins_its_burst_then_is_refused_while_others_join() {
        let churn = Churn::new(JoinLimit {
            per_min: 1,
            burst: 3,
        });
        for _ in 0..3 {
            assert_eq!(churn.check(Some(A)), Ok(()));
        }
        let refused = LobbyError::Churning { per_min: 1 };
        assert_eq!(churn.check(Some(A)), Err(refused.clone()));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(churn.check(Some(mapped)), Err(refused.clone()));
        assert_eq!(churn.check(Some(B)), Ok(()));
        assert_eq!(churn.check(None), Ok(()));
        assert_eq!(
            refused.to_string(),
            "too many joins and renames from your address: at most 1 a minute"
        );
        assert_eq!(refused.reason(), "joins");
    }

    #[test]
    fn zero_is_off() {
        let churn = Churn::new(JoinLimit {
            per_min: 0,
            burst: 0,
        });
        for _ in 0..10_000 {
            assert_eq!(churn.check(Some(A)), Ok(()));
        }
    }

    #[test]
    fn log_lines_past_the_first_of_an_interval_are_folded() {
        let churn = Churn::new(JoinLimit::default());
        for _ in 0..LOG_LINES {
            assert_eq!(churn.log_line(true, true), LogLine::Own);
        }
        assert_eq!(churn.log_line(true, true), LogLine::Folded);
        assert_eq!(churn.log_line(false, true), LogLine::Folded);
        assert_eq!(churn.log_line(false, false), LogLine::Own);
        churn.end_interval(10);
        assert_eq!(churn.log_line(true, true), LogLine::Own);
    }
}
