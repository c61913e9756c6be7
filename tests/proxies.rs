//! `--trusted-proxies`: behind a trusted reverse proxy (here 127.0.0.1), the
//! per-address limit (1 here) counts the client the proxy names, a PROXY protocol
//! header (v1 line, v2 binary) on the raw listeners and `X-Forwarded-For` on HTTP; from
//! any other peer (127.0.0.2) the same headers change nothing.
//!
//! Each test counts refusals under a protocol no other test here refuses on, so the
//! counts in `/metrics` (shared by the tests of this binary) are exact.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::{TcpClient, TestServer, WAIT, connect_from};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PROXY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const UNTRUSTED: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
const FULL: &str = "too many connections from your address (limit 1)";

async fn server() -> TestServer {
    TestServer::spawn_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1".parse().expect("an address")];
        config.max_connections_per_ip = 1;
    })
    .await
}

fn refusals(protocol: &str, reason: &str) -> String {
    format!(r#"chatterbox_refusals_total{{protocol="{protocol}",reason="{reason}"}}"#)
}

/// A PROXY protocol v1 line naming `client` (port 4711) as the source.
fn v1(client: &str) -> Vec<u8> {
    format!("PROXY TCP4 {client} 127.0.0.1 4711 5000\r\n").into_bytes()
}

/// A PROXY protocol v2 header (PROXY command, TCP over IPv4) naming `client`.
fn v2(client: [u8; 4]) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[0x21, 0x11, 0, 12]);
    header.extend_from_slice(&client);
    header.extend_from_slice(&[127, 0, 0, 1]);
    header.extend_from_slice(&4711u16.to_be_bytes());
    header.extend_from_slice(&5000u16.to_be_bytes());
    header
}

/// A TCP client from `from` that first writes `header`.
async fn tcp_from(from: IpAddr, addr: Option<SocketAddr>, header: &[u8]) -> TcpClient {
    let mut client = TcpClient::connect_from(from, addr).await;
    client.send(header).await;
    client
}

#[tokio::test(flavor = "multi_thread")]
async fn the_raw_listeners_count_the_client_a_trusted_proxy_names() {
    let server = server().await;
    let full = format!("error: {FULL}\n");

    // v1 from the proxy: kim is 203.0.113.7.
    let mut kim = tcp_from(PROXY, server.tcp_json, &v1("203.0.113.7")).await;
    kim.command("CONNECT", "kim").await;
    kim.expect("kim connected!").await;
    // v2 from the proxy for the same client: over its limit.
    let mut again = tcp_from(PROXY, server.tcp_json, &v2([203, 0, 113, 7])).await;
    again.expect_closed_after(&full).await;
    // v2 for another client: in, on TCP text too.
    let mut lee = tcp_from(PROXY, server.tcp_text, &v2([203, 0, 113, 8])).await;
    lee.expect("guest-2 connected!").await;
    kim.expect("guest-2 connected!").await;
    lee.send("hello from behind the proxy").await;
    kim.expect("guest-2 : hello from behind the proxy").await;

    // The plain WebSocket listener: the same client is over its limit, another is in.
    let ws = server.websocket.expect("on");
    let mut stream = connect_from(PROXY, ws).await;
    stream.write_all(&v1("203.0.113.7")).await.expect("write");
    match tokio_tungstenite::client_async(format!("ws://{ws}/"), stream).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 503);
            let body = response.body().as_deref().map(String::from_utf8_lossy);
            assert_eq!(body.as_deref(), Some(format!("{FULL}\n").as_str()));
        }
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    let mut stream = connect_from(PROXY, ws).await;
    stream.write_all(&v1("203.0.113.9")).await.expect("write");
    let (_socket, _) = tokio::time::timeout(
        WAIT,
        tokio_tungstenite::client_async(format!("ws://{ws}/"), stream),
    )
    .await
    .expect("upgraded in time")
    .expect("upgraded");
    kim.expect("guest-3 connected!").await;

    // An untrusted peer is its own address, whatever PROXY line it writes: its first
    // connection fills its place, and its second is refused before any header is read.
    let mut first = TcpClient::connect_from(UNTRUSTED, server.tcp_text).await;
    first.expect("guest-4 connected!").await;
    let mut forged = tcp_from(UNTRUSTED, server.tcp_json, &v1("198.51.100.1")).await;
    forged.expect_closed_after(&full).await;

    // A trusted peer without a valid header is closed, without a word.
    for bad in [
        &b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\n"[..],
        b"{\"type\":\"CONNECT\",\"content\":\"x\"}",
    ] {
        let mut stream = connect_from(PROXY, server.tcp_json.expect("on")).await;
        stream.write_all(bad).await.expect("write");
        let mut rest = Vec::new();
        let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
        // Closed with bytes unread: the close may come as a reset.
        match read.expect("closed in time") {
            Ok(_) => assert_eq!(String::from_utf8_lossy(&rest), ""),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        }
    }

    let metrics = server.metrics().await;
    let expected = [
        (refusals("tcp-json", "proxy_header"), 2.0),
        (refusals("tcp-json", "connections_per_ip"), 2.0),
        (refusals("websocket", "connections_per_ip"), 1.0),
    ];
    for (metric, count) in expected {
        assert_eq!(metrics.value(&metric), Some(count), "{metric}");
    }
    kim.command("CHAT", "still here").await;
    lee.expect_eventually("kim : still here").await;
}

/// Sends one HTTP/1.1 request on `stream` (kept open) and reads its response: status
/// line and body.
async fn request(stream: &mut TcpStream, path: &str, forwarded_for: &str) -> (String, String) {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: chat.example\r\nX-Forwarded-For: {forwarded_for}\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut received = Vec::new();
    let read = async {
        loop {
            let mut buf = [0; 4096];
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&received));
            received.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&received).into_owned();
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                continue;
            };
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .expect("a content-length");
            if body.len() >= length {
                let status = head.lines().next().unwrap_or("").to_owned();
                return (status, body.to_owned());
            }
        }
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("response in time")
}

#[tokio::test(flavor = "multi_thread")]
async fn http_counts_the_client_a_trusted_proxy_forwards_and_nobody_elses_header() {
    let server = server().await;
    let full: Value = json!({ "error": FULL });
    let handshake = "/socket.io/?EIO=4&transport=polling";

    // A proxy connection kept open for 203.0.113.30 holds that client's one place.
    let mut held = connect_from(PROXY, server.http).await;
    let (status, _) = request(&mut held, "/api/members", "203.0.113.30").await;
    assert_eq!(status, "HTTP/1.1 200 OK");

    // Another proxy connection for that client: refused, even with a forged address
    // left of it (what the proxy saw is the rightmost hop).
    for forwarded in ["203.0.113.30", "198.51.100.1, 203.0.113.30"] {
        let mut stream = connect_from(PROXY, server.http).await;
        let (status, body) = request(&mut stream, handshake, forwarded).await;
        assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
        assert_eq!(serde_json::from_str::<Value>(&body).expect("JSON"), full);
        // The operator's paths are still answered.
        let (status, _) = request(&mut stream, "/healthz", forwarded).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
    }
    // Another client through the same proxy: in.
    let mut stream = connect_from(PROXY, server.http).await;
    let (status, body) = request(&mut stream, handshake, "203.0.113.31").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(body.starts_with("0{\"sid\":"), "{body}");

    // An untrusted peer is its own address: its header is ignored.
    let mut own = connect_from(UNTRUSTED, server.http).await;
    let (status, _) = request(&mut own, "/api/members", "203.0.113.40").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let mut forged = connect_from(UNTRUSTED, server.http).await;
    let (status, body) = request(&mut forged, handshake, "203.0.113.41").await;
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
    assert_eq!(serde_json::from_str::<Value>(&body).expect("JSON"), full);

    let metrics = server.metrics().await;
    let refused = metrics.value(&refusals("socketio", "connections_per_ip"));
    assert_eq!(refused, Some(3.0));

    // The held connection gives its place back when it closes.
    drop(held);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut stream = connect_from(PROXY, server.http).await;
        let (status, _) = request(&mut stream, handshake, "203.0.113.30").await;
        if status == "HTTP/1.1 200 OK" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never given back");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
