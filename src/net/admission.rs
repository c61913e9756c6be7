//! Connection admission: how many connections the server holds at once, in total and
//! per client IP address, across every listener (HTTP and Socket.IO, plain WebSocket,
//! TCP JSON, TCP text).
//!
//! Each accepted TCP connection asks [`Admission::admit`] for a [`Permit`] before it is
//! served; the permit is held for the life of the connection and dropping it gives the
//! place back, so no error path can leak one. A connection over a limit is told why in
//! its own protocol and closed:
//!
//! | listener | what the refused client gets |
//! |---|---|
//! | TCP JSON, TCP text | one line `error: too many connections …`, then the connection is closed |
//! | plain WebSocket | HTTP 503 at the upgrade, the reason as the body |
//! | HTTP (Socket.IO) | HTTP 503 with `{"error": "too many connections …"}` to its one request (a Socket.IO client reports a `connect_error`); `/healthz` and `/metrics` are still answered |
//!
//! Behind a reverse proxy (`--trusted-proxies`, [`super::proxy`]) the TCP peer is the
//! proxy, not the client: a connection from a trusted proxy is admitted at accept under
//! the total limit only, and counted for its client's address once that is known
//! ([`Permit::count_for`]): after the PROXY header on the raw listeners, at each request
//! on HTTP (a connection from a proxy counts for the client of its latest request, and
//! an Engine.IO session's place for the client of its handshake; a request that would
//! break its client's limit gets the 503 above). Until then it counts for no address.
//!
//! The count is also the gauge [`telemetry::CONNECTIONS`]. The counts live under one
//! `std` mutex, taken for a few instructions and never across
//! an `.await`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::proxy::TrustedProxies;
use crate::telemetry;

/// Default for `--max-connections`: far more than one chat needs, far fewer than the
/// file descriptors (65,536 on a tuned host) the process may hold, so a flood of
/// connections is refused before the process runs out of them.
pub(crate) const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Default for `--max-connections-per-ip`: a household or office behind one NAT address
/// with a few tabs each fits; one host opening thousands does not.
pub(crate) const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;

/// How long a refused connection is given to take its refusal (to send its request, to
/// read the reply) before it is dropped: refusing must stay cheap under a flood.
pub(crate) const REFUSAL_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a connection was not admitted; the text is what the client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AdmissionRefusal {
    /// The server holds `--max-connections` connections already.
    #[error("too many connections: the server is full (limit {max})")]
    Total {
        /// The limit in force.
        max: usize,
    },
    /// The client's address holds `--max-connections-per-ip` connections already.
    #[error("too many connections from your address (limit {max})")]
    PerIp {
        /// The limit in force.
        max: usize,
    },
}

impl AdmissionRefusal {
    /// The refusal's reason as a metric label.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            AdmissionRefusal::Total { .. } => "connections",
            AdmissionRefusal::PerIp { .. } => "connections_per_ip",
        }
    }
}

/// The connection counts every listener shares. Cheap to clone; clones share them.
#[derive(Clone)]
pub(crate) struct Admission {
    inner: Arc<Inner>,
}

struct Inner {
    /// [`telemetry::CONNECTIONS`].
    gauge: metrics::Gauge,
    /// 0: no limit.
    max_total: usize,
    /// 0: no limit.
    max_per_ip: usize,
    /// Peers whose connections are counted for the client they forward.
    trusted: TrustedProxies,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl Admission {
    /// Counts applying `max_total` connections in all and `max_per_ip` per client
    /// address; 0 switches a limit off.
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self::with(max_total, max_per_ip, TrustedProxies::default())
    }

    /// The same limits, with connections from `trusted` peers counted for the client
    /// they forward rather than for the peer.
    pub(crate) fn trusting(self, trusted: TrustedProxies) -> Self {
        let inner = &self.inner;
        Self::with(inner.max_total, inner.max_per_ip, trusted)
    }

    fn with(max_total: usize, max_per_ip: usize, trusted: TrustedProxies) -> Self {
        Self {
            inner: Arc::new(Inner {
                gauge: metrics::gauge!(telemetry::CONNECTIONS),
                max_total,
                max_per_ip,
                trusted,
                counts: Mutex::default(),
            }),
        }
    }

    /// The trusted proxies.
    pub(crate) fn trusted(&self) -> &TrustedProxies {
        &self.inner.trusted
    }

    /// Admits a connection from `ip`, or says which limit it would break. The place is
    /// held until the permit is dropped. A trusted proxy's connection is counted for no
    /// address yet ([`Permit::is_forwarded`]).
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<Permit, AdmissionRefusal> {
        // An IPv4 client of a dual-stack listener is the same client as over IPv4.
        let ip = ip.to_canonical();
        let inner = &self.inner;
        let forwarded = inner.trusted.trusts(ip);
        let mut counts = inner.lock();
        if inner.max_total > 0 && counts.total >= inner.max_total {
            return Err(AdmissionRefusal::Total {
                max: inner.max_total,
            });
        }
        if !forwarded {
            inner.count_ip(&mut counts, ip)?;
        }
        counts.total += 1;
        inner.gauge.increment(1.0);
        Ok(Permit {
            inner: inner.clone(),
            ip: (!forwarded).then_some(ip),
            forwarded,
        })
    }

    /// Connections held now.
    #[cfg(test)]
    pub(crate) fn connections(&self) -> usize {
        self.inner.lock().total
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        crate::locks::lock(&self.counts)
    }

    /// Counts one more connection for `ip`, unless that breaks the per-address limit.
    fn count_ip(&self, counts: &mut Counts, ip: IpAddr) -> Result<(), AdmissionRefusal> {
        let from_ip = counts.per_ip.entry(ip).or_insert(0);
        if self.max_per_ip > 0 && *from_ip >= self.max_per_ip {
            if *from_ip == 0 {
                counts.per_ip.remove(&ip);
            }
            return Err(AdmissionRefusal::PerIp {
                max: self.max_per_ip,
            });
        }
        *from_ip += 1;
        Ok(())
    }
}

impl Counts {
    fn uncount_ip(&mut self, ip: IpAddr) {
        if let Some(from_ip) = self.per_ip.get_mut(&ip) {
            *from_ip -= 1;
            if *from_ip == 0 {
                // An address with no connection keeps no entry: the map stays as small
                // as the set of connected addresses.
                self.per_ip.remove(&ip);
            }
        }
    }
}

/// One admitted connection's place; dropping it gives the place back.
pub(crate) struct Permit {
    inner: Arc<Inner>,
    /// The address it is counted for; `None`: a trusted proxy's connection whose
    /// client is not known yet.
    ip: Option<IpAddr>,
    /// From a trusted proxy: counted for the client it forwards.
    forwarded: bool,
}

impl Permit {
    /// Whether the connection came from a trusted proxy (its client is forwarded).
    pub(crate) fn is_forwarded(&self) -> bool {
        self.forwarded
    }

    /// Counts a trusted proxy's connection for `client` (the address the proxy
    /// forwards) instead of the address it was counted for, unless `client` is at its
    /// limit already: then it stays counted as it was. A connection not from a
    /// trusted proxy keeps its peer's count.
    pub(crate) fn count_for(&mut self, client: IpAddr) -> Result<(), AdmissionRefusal> {
        let client = client.to_canonical();
        if !self.forwarded || self.ip == Some(client) {
            return Ok(());
        }
        let mut counts = self.inner.lock();
        self.inner.count_ip(&mut counts, client)?;
        if let Some(previous) = self.ip.replace(client) {
            counts.uncount_ip(previous);
        }
        Ok(())
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.inner.lock();
        counts.total = counts.total.saturating_sub(1);
        self.inner.gauge.decrement(1.0);
        if let Some(ip) = self.ip {
            counts.uncount_ip(ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn limits_per_address_and_in_total_and_permits_give_places_back() {
        let admission = Admission::new(3, 2);
        let a1 = admission.admit(A).unwrap();
        let _a2 = admission.admit(A).unwrap();
        assert_eq!(
            admission.admit(A).err(),
            Some(AdmissionRefusal::PerIp { max: 2 })
        );
        let _b1 = admission.admit(B).unwrap();
        assert_eq!(
            admission.admit(B).err(),
            Some(AdmissionRefusal::Total { max: 3 })
        );
        assert_eq!(admission.connections(), 3);
        drop(a1);
        assert_eq!(admission.connections(), 2);
        let _a3 = admission.admit(A).unwrap();
        assert_eq!(
            AdmissionRefusal::PerIp { max: 2 }.to_string(),
            "too many connections from your address (limit 2)"
        );
    }

    #[test]
    fn zero_is_no_limit_and_mapped_addresses_are_one_client() {
        let admission = Admission::new(0, 0);
        let permits: Vec<_> = (0..1_000).map(|_| admission.admit(A).unwrap()).collect();
        assert_eq!(admission.connections(), 1_000);
        drop(permits);
        assert_eq!(admission.connections(), 0);
        assert!(admission.inner.lock().per_ip.is_empty());

        let admission = Admission::new(0, 1);
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let _a = admission.admit(A).unwrap();
        assert_eq!(
            admission.admit(mapped).err(),
            Some(AdmissionRefusal::PerIp { max: 1 })
        );
    }

    #[test]
    fn a_trusted_proxys_connections_count_for_the_clients_they_forward() {
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let trusted = TrustedProxies::new(&["127.0.0.1".parse().unwrap()]);
        let admission = Admission::new(4, 1).trusting(trusted);
        // The proxy itself is not limited per address: its connections are its clients'.
        let mut first = admission.admit(proxy).unwrap();
        let mut second = admission.admit(proxy).unwrap();
        assert!(first.is_forwarded());
        first.count_for(A).unwrap();
        assert_eq!(
            second.count_for(A).err(),
            Some(AdmissionRefusal::PerIp { max: 1 })
        );
        // An untrusted peer is counted for itself, whatever it claims.
        let mut b = admission.admit(B).unwrap();
        assert!(!b.is_forwarded());
        b.count_for(A).unwrap();
        assert_eq!(
            admission.admit(B).err(),
            Some(AdmissionRefusal::PerIp { max: 1 })
        );
        second.count_for(B).err().unwrap();
        // A connection moved to another client gives the first one its place back.
        first.count_for("10.0.0.3".parse().unwrap()).unwrap();
        second.count_for(A).unwrap();
        drop((first, second, b));
        assert_eq!(admission.connections(), 0);
        assert!(admission.inner.lock().per_ip.is_empty());
    }
}
