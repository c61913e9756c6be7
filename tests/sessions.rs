//! Engine.IO sessions hold places under the connection limits: long-polling
//! handshakes over a few keep-alive connections are refused past
//! `--max-connections-per-ip` (HTTP 503 with the reason, counted), other addresses
//! chat on, and a session's place comes back when the session ends.
//!
//! A binary of its own: it counts refusals of reasons `tests/limits.rs` also counts.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::{Client, TestServer, WAIT};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// One keep-alive HTTP/1.1 connection, request after request.
struct KeepAlive {
    stream: BufReader<TcpStream>,
}

impl KeepAlive {
    async fn open(from: IpAddr, server: &TestServer) -> Self {
        let stream = common::connect_from(from, server.http).await;
        Self {
            stream: BufReader::new(stream),
        }
    }

    /// GETs `path`; returns the status code and the body.
    async fn get(&mut self, path: &str) -> (u16, String) {
        let request = format!("GET {path} HTTP/1.1\r\nHost: chatterbox\r\n\r\n");
        let exchange = async {
            self.stream.get_mut().write_all(request.as_bytes()).await?;
            let mut status = String::new();
            self.stream.read_line(&mut status).await?;
            let mut length = 0;
            loop {
                let mut header = String::new();
                self.stream.read_line(&mut header).await?;
                let header = header.trim_end().to_ascii_lowercase();
                if header.is_empty() {
                    break;
                }
                if let Some(value) = header.strip_prefix("content-length:") {
                    length = value.trim().parse().expect("a length");
                }
            }
            let mut body = vec![0; length];
            self.stream.read_exact(&mut body).await?;
            let code = status
                .split(' ')
                .nth(1)
                .expect("a status")
                .parse()
                .expect("a code");
            Ok::<_, std::io::Error>((code, String::from_utf8(body).expect("UTF-8")))
        };
        tokio::time::timeout(WAIT, exchange)
            .await
            .expect("a response in time")
            .expect("a response")
    }
}

const HANDSHAKE: &str = "/socket.io/?EIO=4&transport=polling";

#[tokio::test(flavor = "multi_thread")]
async fn polling_sessions_count_against_the_per_address_limit_and_give_their_place_back() {
    let server = TestServer::spawn_with(|config| {
        config.max_connections_per_ip = 8;
        // Sessions that never connect to a namespace end after half a second.
        config.header_timeout_ms = 500;
    })
    .await;
    let watcher = Client::named(&server, "watcher").await;

    // Two keep-alive connections: each one's place moves to its first session, and
    // every further session takes a place of its own, up to eight in all.
    let mut connections = [
        KeepAlive::open(OTHER, &server).await,
        KeepAlive::open(OTHER, &server).await,
    ];
    for n in 0..8 {
        let (status, body) = connections[n % 2].get(HANDSHAKE).await;
        assert_eq!(status, 200, "handshake {n}: {body}");
        assert!(body.starts_with("0{\"sid\":"), "handshake {n}: {body}");
    }
    let why = "too many connections from your address (limit 8)";
    for connection in &mut connections {
        let (status, body) = connection.get(HANDSHAKE).await;
        assert_eq!(status, 503);
        let body: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(body, json!({ "error": why }));
    }
    // A connection of any protocol is refused from that address too.
    let mut text = common::TcpClient::connect_from(OTHER, server.tcp_text).await;
    text.expect_closed_after(format!("error: {why}\n")).await;

    // Other addresses chat on.
    let mut ann = Client::named(&server, "ann").await;
    watcher.say("still here").await;
    ann.expect_update(common::line("watcher", "still here"))
        .await;

    let metrics = server.metrics().await;
    let refused = r#"chatterbox_refusals_total{protocol="socketio",reason="connections_per_ip"}"#;
    assert_eq!(metrics.value(refused), Some(2.0));

    // Sessions that never connect to a namespace end (`--header-timeout-ms`), and
    // their places come back: a handshake is accepted again.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        // A connection of its own each time: an idle one is closed after the timeout.
        let (status, _) = KeepAlive::open(OTHER, &server).await.get(HANDSHAKE).await;
        if status == 200 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no place came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
