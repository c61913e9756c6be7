//! The network side every protocol shares: the accept loop ([`accept`]) with its
//! admission ([`admission`]: connection limits), the client address behind a trusted
//! reverse proxy ([`proxy`]), the outgoing queue and writer of the raw connection
//! protocols ([`outbox`]), and the time limits ([`Timeouts`]).

pub(crate) mod accept;
pub(crate) mod admission;
pub(crate) mod outbox;
pub(crate) mod proxy;

use std::time::Duration;

use tokio::time::Instant;

/// Default for `--connect-timeout-ms`: the original client sends CONNECT as soon as its
/// user has typed a name at its prompt; half a minute is plenty for that, and a
/// connection that never names itself holds a place for nothing.
pub(crate) const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 30_000;

/// Default for `--stall-timeout-ms`: the original clients send each object in one write,
/// so an object still incomplete after ten seconds is a client trickling bytes to hold
/// the connection and its buffer (slowloris), not a slow network.
pub(crate) const DEFAULT_STALL_TIMEOUT_MS: u64 = 10_000;

/// The time limits of the raw connection protocols; `None`: no limit.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Timeouts {
    /// How long a TCP JSON client may stay without sending CONNECT.
    pub(crate) connect: Option<Duration>,
    /// How long a TCP JSON object (a UTF-8 character on TCP text) may stay incomplete
    /// from its first byte.
    pub(crate) stall: Option<Duration>,
    /// How long an HTTP request's headers (a WebSocket upgrade's included) may take.
    pub(crate) header: Option<Duration>,
}

/// Waits until `deadline`; forever when there is none.
pub(crate) async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
