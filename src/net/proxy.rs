//! The real client address behind a reverse proxy (`--trusted-proxies`).
//!
//! Off by default: every connection's client is its TCP peer. With trusted proxies
//! (addresses or CIDRs), and only for connections whose TCP peer is one of them:
//!
//! | listener | where the client address comes from |
//! |---|---|
//! | HTTP (pages, Socket.IO, APIs) | `X-Forwarded-For`, every such header in order: the rightmost address that is not a trusted proxy (each proxy appends the address it got the request from; what a client wrote itself is further left and never taken over a hop a trusted proxy saw). No header: the peer |
//! | plain WebSocket, TCP JSON, TCP text | a PROXY protocol header (v1 text line or v2 binary, as HAProxy specifies them; nginx's `proxy_protocol on` sends v1) before the first byte of the protocol: its source address. `UNKNOWN` (v1) or `LOCAL` (v2, a proxy's health check): the peer |
//!
//! A trusted peer's connection that does not start with a well-formed PROXY header
//! (or sends none within `--header-timeout-ms`) is closed, logged and counted as the
//! refusal `proxy_header`. An untrusted peer's headers are never read as addresses: an
//! `X-Forwarded-For` from it is ignored and its PROXY line reaches the protocol as any
//! other bytes, so a client cannot fake its address.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use axum::http::HeaderMap;
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 header's first 12 bytes.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// The longest v1 line, `\r\n` included (the specification's bound).
const V1_MAX_BYTES: usize = 107;

/// The longest v2 address block and TLVs we take (a proxy's TLVs are a few dozen bytes;
/// the 16-bit length would allow 64 KiB).
const V2_MAX_PAYLOAD_BYTES: usize = 4096;

/// One entry of `--trusted-proxies`: an address (`10.0.0.5`) or a network
/// (`10.0.0.0/8`, `fd00::/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedNet(IpNet);

impl FromStr for TrustedNet {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let value = value.trim();
        if let Ok(net) = value.parse::<IpNet>() {
            return Ok(TrustedNet(net.trunc()));
        }
        value
            .parse::<IpAddr>()
            .map(|ip| TrustedNet(IpNet::from(ip)))
            .map_err(|_| format!("expected an IP address or a CIDR (10.0.0.0/8), got `{value}`"))
    }
}

impl fmt::Display for TrustedNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The peers whose forwarded client addresses are believed. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies {
    nets: Arc<[TrustedNet]>,
}

impl TrustedProxies {
    /// Trusts the peers in `nets`; none: nobody (the default).
    pub(crate) fn new(nets: &[TrustedNet]) -> Self {
        Self { nets: nets.into() }
    }

    /// Whether `ip` is a trusted proxy.
    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|TrustedNet(net)| net.contains(&ip))
    }

    /// The client of an HTTP request that `peer` sent: `peer` itself unless it is a
    /// trusted proxy; then the rightmost `X-Forwarded-For` address that is not a
    /// trusted proxy (or, when every hop is one, the leftmost hop). An entry that is not
    /// an address ends the walk: the client is then the nearest hop before it.
    pub(crate) fn client_of(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .flat_map(|value| value.to_str().unwrap_or("").split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = hop_address(hop) else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client.to_canonical()
    }
}

/// One `X-Forwarded-For` entry as an address: `203.0.113.7`, `2001:db8::1`, and the
/// forms with a port some proxies write (`203.0.113.7:4711`, `[2001:db8::1]:4711`).
fn hop_address(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// Why a trusted peer's PROXY header was refused; the text is logged.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyHeaderError {
    /// The connection ended or failed before a whole header came.
    #[error("connection ended before a whole PROXY header: {0}")]
    Read(#[from] std::io::Error),
    /// Neither a v1 line nor a v2 header.
    #[error("no PROXY protocol header from a trusted proxy (first bytes {0:?})")]
    Missing(String),
    /// A v1 line longer than the specification allows.
    #[error("PROXY v1 line longer than {V1_MAX_BYTES} bytes")]
    TooLong,
    /// A v2 header announcing more than we take.
    #[error("PROXY v2 header of {0} bytes (at most {V2_MAX_PAYLOAD_BYTES} taken)")]
    TooLarge(usize),
    /// No whole header within `--header-timeout-ms`.
    #[error("no whole PROXY header within {} ms", .0.as_millis())]
    Timeout(std::time::Duration),
    /// A header that does not parse.
    #[error("malformed PROXY header: {0}")]
    Malformed(String),
}

/// Reads a PROXY protocol header (v1 or v2) from the start of `stream`, exactly its
/// bytes and no more (the protocol's first bytes stay in the stream), and returns the
/// client address it names: `None` when it names none (v1 `UNKNOWN`, v2 `LOCAL`, a
/// Unix or unspecified address family).
pub(crate) async fn read_proxy_header<S>(
    stream: &mut S,
) -> Result<Option<SocketAddr>, ProxyHeaderError>
where
    S: AsyncRead + Unpin,
{
    let mut header = vec![0; V2_SIGNATURE.len()];
    stream.read_exact(&mut header).await?;
    if header == V2_SIGNATURE {
        // Version and command, family and protocol, then the length of the rest.
        let mut fixed = [0; 4];
        stream.read_exact(&mut fixed).await?;
        let length = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
        if length > V2_MAX_PAYLOAD_BYTES {
            return Err(ProxyHeaderError::TooLarge(length));
        }
        header.extend_from_slice(&fixed);
        let start = header.len();
        header.resize(start + length, 0);
        stream.read_exact(&mut header[start..]).await?;
        return v2_client(&header);
    }
    if !header.starts_with(b"PROXY ") {
        let first = String::from_utf8_lossy(&header).into_owned();
        return Err(ProxyHeaderError::Missing(first));
    }
    // The line's length is not known before its end: one byte at a time, so that not
    // a byte of the protocol behind it is taken (at most ~100 reads per connection).
    while !header.ends_with(b"\r\n") {
        if header.len() >= V1_MAX_BYTES {
            return Err(ProxyHeaderError::TooLong);
        }
        header.push(stream.read_u8().await?);
    }
    v1_client(&header)
}

fn v1_client(line: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    use ppp::v1::{Addresses, Header};
    let header = Header::try_from(line).map_err(|e| ProxyHeaderError::Malformed(e.to_string()))?;
    Ok(match header.addresses {
        Addresses::Tcp4(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        Addresses::Tcp6(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        Addresses::Unknown => None,
    })
}

fn v2_client(bytes: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    use ppp::v2::{Addresses, Command, Header};
    let header = Header::try_from(bytes).map_err(|e| ProxyHeaderError::Malformed(e.to_string()))?;
    if header.command == Command::Local {
        return Ok(None);
    }
    Ok(match header.addresses {
        Addresses::IPv4(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        Addresses::IPv6(a) => Some(SocketAddr::new(a.source_address.into(), a.source_port)),
        Addresses::Unix(_) | Addresses::Unspecified => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn trusted(nets: &[&str]) -> TrustedProxies {
        let nets: Vec<TrustedNet> = nets.iter().map(|n| n.parse().unwrap()).collect();
        TrustedProxies::new(&nets)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn trusted_proxies_are_addresses_or_networks() {
        let proxies = trusted(&["10.0.0.0/8", "192.0.2.7", "fd00::/8"]);
        assert!(proxies.trusts(ip("10.1.2.3")));
        assert!(proxies.trusts(ip("192.0.2.7")));
        assert!(!proxies.trusts(ip("192.0.2.8")));
        assert!(proxies.trusts(ip("fd00::1")));
        // An IPv4 peer of a dual-stack listener is the IPv4 address.
        assert!(proxies.trusts(ip("::ffff:10.0.0.1")));
        assert!("10.0.0.0/33".parse::<TrustedNet>().is_err());
        assert!("proxy.example".parse::<TrustedNet>().is_err());
        assert!(!TrustedProxies::default().trusts(ip("127.0.0.1")));
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_hop_and_only_behind_a_trusted_peer() {
        let proxies = trusted(&["127.0.0.1", "10.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        // What a client forged is left of what the proxy saw.
        let headers = forwarded(&["6.6.6.6, 203.0.113.7"]);
        assert_eq!(proxies.client_of(peer, &headers), ip("203.0.113.7"));
        // Proxies in a chain are skipped; several headers are one list.
        let headers = forwarded(&["203.0.113.7, 10.0.0.2", "10.0.0.3"]);
        assert_eq!(proxies.client_of(peer, &headers), ip("203.0.113.7"));
        // An untrusted peer's header is ignored.
        assert_eq!(
            proxies.client_of(ip("127.0.0.2"), &headers),
            ip("127.0.0.2")
        );
        // No header: the peer.
        assert_eq!(proxies.client_of(peer, &HeaderMap::new()), peer);
        // Every hop trusted: the leftmost one.
        let headers = forwarded(&["10.0.0.9, 10.0.0.2"]);
        assert_eq!(proxies.client_of(peer, &headers), ip("10.0.0.9"));
        // Garbage ends the walk at the nearest hop before it.
        let headers = forwarded(&["203.0.113.7, unknown, 10.0.0.2"]);
        assert_eq!(proxies.client_of(peer, &headers), ip("10.0.0.2"));
        // Ports and brackets.
        let headers = forwarded(&["[2001:db8::1]:4711"]);
        assert_eq!(proxies.client_of(peer, &headers), ip("2001:db8::1"));
        let headers = forwarded(&["203.0.113.7:4711"]);
        assert_eq!(proxies.client_of(peer, &headers), ip("203.0.113.7"));
    }

    async fn read(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyHeaderError>, Vec<u8>) {
        let mut stream = bytes;
        let client = read_proxy_header(&mut stream).await;
        (client, stream.to_vec())
    }

    #[tokio::test]
    async fn a_v1_line_names_the_client_and_leaves_the_protocol_unread() {
        let (client, rest) = read(b"PROXY TCP4 203.0.113.7 192.0.2.1 4711 5000\r\n{\"type\"").await;
        assert_eq!(client.unwrap(), Some("203.0.113.7:4711".parse().unwrap()));
        assert_eq!(rest, b"{\"type\"");
        let (client, _) = read(b"PROXY TCP6 2001:db8::1 2001:db8::2 4711 5000\r\n").await;
        assert_eq!(client.unwrap(), Some("[2001:db8::1]:4711".parse().unwrap()));
        let (client, rest) = read(b"PROXY UNKNOWN\r\nhello").await;
        assert_eq!(client.unwrap(), None);
        assert_eq!(rest, b"hello");
    }

    #[tokio::test]
    async fn a_v2_header_names_the_client_and_leaves_the_protocol_unread() {
        let addresses: ppp::v2::Addresses = (
            "203.0.113.7:4711".parse::<SocketAddr>().unwrap(),
            "192.0.2.1:5000".parse::<SocketAddr>().unwrap(),
        )
            .into();
        let header = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            addresses,
        )
        .write_tlv(ppp::v2::Type::NoOp, b"pad")
        .unwrap()
        .build()
        .unwrap();
        let mut bytes = header.clone();
        bytes.extend_from_slice(b"hello");
        let (client, rest) = read(&bytes).await;
        assert_eq!(client.unwrap(), Some("203.0.113.7:4711".parse().unwrap()));
        assert_eq!(rest, b"hello");

        let local = ppp::v2::Builder::new(
            ppp::v2::Version::Two | ppp::v2::Command::Local,
            ppp::v2::AddressFamily::Unspecified | ppp::v2::Protocol::Unspecified,
        )
        .build()
        .unwrap();
        assert_eq!(read(&local).await.0.unwrap(), None);
    }

    #[tokio::test]
    async fn anything_else_is_refused() {
        let (client, _) = read(b"{\"type\":\"CONNECT\",\"content\":\"kim\"}").await;
        assert!(
            matches!(client, Err(ProxyHeaderError::Missing(_))),
            "{client:?}"
        );
        let (client, _) = read(b"PROXY TCP4 not-an-address 192.0.2.1 1 2\r\n").await;
        assert!(
            matches!(client, Err(ProxyHeaderError::Malformed(_))),
            "{client:?}"
        );
        let long = format!("PROXY TCP4 {}\r\n", "1".repeat(200));
        let (client, _) = read(long.as_bytes()).await;
        assert!(
            matches!(client, Err(ProxyHeaderError::TooLong)),
            "{client:?}"
        );
        let (client, _) = read(b"PROXY TCP4 203.0.113.7").await;
        assert!(
            matches!(client, Err(ProxyHeaderError::Read(_))),
            "{client:?}"
        );
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        let (client, _) = read(&huge).await;
        assert!(
            matches!(client, Err(ProxyHeaderError::TooLarge(65535))),
            "{client:?}"
        );
    }
}
