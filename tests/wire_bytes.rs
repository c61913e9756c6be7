//! The lobby's `update`s byte for byte, as each kind of Socket.IO receiver gets them:
//! Engine.IO v3 (Socket.IO v2 clients) and v4, over long-polling and over a WebSocket.
//!
//! The server encodes an `update` packet once per delivery and hands the same bytes to
//! every receiver (`crate::protocols::socketio`); these are the frames each receiver got
//! when socketioxide's `emit` encoded it anew for each one. Long-polling payloads are
//! read through their framing (v4: packets joined by `\x1e`; v3: `<length>:<packet>`,
//! the length in UTF-16 units), so a wrong length or separator fails too.

mod common;

use std::net::SocketAddr;

use common::{Client, TestServer, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// A line with what JSON escapes (quotes, a backslash), what it does not (U+2028, `<`),
/// and characters of two, three and four UTF-8 bytes (the last two UTF-16 units: the
/// v3 polling length counts them).
const TEXT: &str = "héllo <b>\"q\"</b> \\ 😀 \u{2028}.";

/// The join of 민지, exactly.
const JOINED: &str =
    r#"42["update",{"type":"connect","name":"SERVER","message":"민지님이 접속하였습니다."}]"#;

/// 민지's line [`TEXT`] with history id `id`, exactly.
fn said(id: i64) -> String {
    format!(
        "42[\"update\",{{\"type\":\"message\",\"name\":\"민지\",\"message\":\"héllo <b>\\\"q\\\"</b> \\\\ 😀 \u{2028}.\",\"id\":{id}}}]"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_socketio_receiver_gets_an_update_in_the_same_bytes_as_ever() {
    let server = TestServer::spawn().await;
    let mut v3_polling = Polling::connect(server.http, 3).await;
    let mut v4_polling = Polling::connect(server.http, 4).await;
    let mut v3_ws = RawWebSocket::connect(server.http, 3).await;
    let mut v4_ws = RawWebSocket::connect(server.http, 4).await;

    let minji = Client::named(&server, "민지").await;
    let ack = minji.say_with_ack(TEXT).await;
    let id = ack["id"].as_i64().expect("the line's history id");
    let expected = vec![JOINED.to_owned(), said(id)];

    assert_eq!(v4_ws.updates(2).await, expected, "Engine.IO v4, WebSocket");
    assert_eq!(v3_ws.updates(2).await, expected, "Engine.IO v3, WebSocket");
    assert_eq!(
        v4_polling.updates(2).await,
        expected,
        "Engine.IO v4, polling"
    );
    assert_eq!(
        v3_polling.updates(2).await,
        expected,
        "Engine.IO v3, polling"
    );
}

/// A raw Engine.IO long-polling client, connected to the `/` namespace.
struct Polling {
    http: SocketAddr,
    eio: u8,
    sid: String,
}

impl Polling {
    async fn connect(http: SocketAddr, eio: u8) -> Self {
        let mut client = Self {
            http,
            eio,
            sid: String::new(),
        };
        let open = client.poll().await;
        let (first, rest) = open.split_first().expect("an open packet");
        let handshake: Value =
            serde_json::from_str(first.strip_prefix('0').expect("open")).expect("open JSON");
        client.sid = handshake["sid"].as_str().expect("sid").to_owned();
        // Engine.IO v3 (Socket.IO v2) is put in `/` by the server, with its open packet.
        let mut connected = rest.iter().any(|p| p == "40");
        if eio == 4 {
            let (head, body) = client.exchange("POST", "40").await;
            assert!(head.starts_with("http/1.1 200"), "{head}");
            assert_eq!(body, "ok");
        }
        while !connected {
            let packets = client.poll().await;
            connected = packets.iter().any(|p| p.starts_with("40"));
            assert!(
                packets.iter().all(|p| p == "2" || p.starts_with("40")),
                "before the namespace is joined: {packets:?}"
            );
        }
        client
    }

    /// The next `count` packets other than pings (a v4 ping is answered).
    async fn updates(&mut self, count: usize) -> Vec<String> {
        let mut got = Vec::new();
        while got.len() < count {
            for packet in self.poll().await {
                if packet == "2" {
                    self.exchange("POST", "3").await;
                } else {
                    got.push(packet);
                }
            }
        }
        got
    }

    /// One poll: the packets of its payload, read through the version's framing.
    async fn poll(&mut self) -> Vec<String> {
        let (head, body) = self.exchange("GET", "").await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        if self.eio == 4 {
            return body.split('\x1e').map(str::to_owned).collect();
        }
        let mut packets = Vec::new();
        let mut rest = body.as_str();
        while !rest.is_empty() {
            let (length, after) = rest.split_once(':').expect("a v3 packet length");
            let units: usize = length.parse().expect("a length");
            let mut taken = 0;
            let end = after
                .char_indices()
                .find_map(|(at, c)| {
                    let here = (taken == units).then_some(at);
                    taken += c.len_utf16();
                    here
                })
                .unwrap_or_else(|| {
                    assert_eq!(taken, units, "v3 length of {after:?}");
                    after.len()
                });
            packets.push(after[..end].to_owned());
            rest = &after[end..];
        }
        packets
    }

    /// A request on the session (`GET`: a poll; `POST`: `body` as the payload); the
    /// response's head (lowercase) and body.
    async fn exchange(&self, method: &str, body: &str) -> (String, String) {
        let mut path = format!("/socket.io/?EIO={}&transport=polling", self.eio);
        if !self.sid.is_empty() {
            path = format!("{path}&sid={}", self.sid);
        }
        let mut stream = tokio::net::TcpStream::connect(self.http)
            .await
            .expect("connect");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain;charset=UTF-8\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.http,
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut response = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
            .await
            .expect("a response in time")
            .expect("read");
        let response = String::from_utf8(response).expect("UTF-8");
        let (head, body) = response.split_once("\r\n\r\n").expect("an HTTP response");
        (head.to_ascii_lowercase(), body.to_owned())
    }
}

/// A raw Engine.IO WebSocket client (no polling first), connected to `/`.
struct RawWebSocket(tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>);

impl RawWebSocket {
    async fn connect(http: SocketAddr, eio: u8) -> Self {
        let url = format!("ws://{http}/socket.io/?EIO={eio}&transport=websocket");
        let stream = tokio::net::TcpStream::connect(http).await.expect("connect");
        let (socket, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .expect("WebSocket handshake");
        let mut client = Self(socket);
        loop {
            match client.next().await.as_str() {
                "2" => client.send("3").await,
                // Engine.IO v3 is put in `/` by the server, after its open packet.
                open if open.starts_with('0') && eio == 4 => client.send("40").await,
                open if open.starts_with('0') => {}
                connected if connected.starts_with("40") => return client,
                other => panic!("before the namespace is joined: {other}"),
            }
        }
    }

    async fn next(&mut self) -> String {
        loop {
            let frame = tokio::time::timeout(WAIT, self.0.next())
                .await
                .expect("a frame in time")
                .expect("open")
                .expect("a frame");
            match frame {
                Message::Text(text) => return text.as_str().to_owned(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("not a text frame: {other:?}"),
            }
        }
    }

    async fn send(&mut self, text: &str) {
        self.0.send(Message::text(text)).await.expect("send");
    }

    /// The next `count` text frames other than pings (a v4 ping is answered).
    async fn updates(&mut self, count: usize) -> Vec<String> {
        let mut got = Vec::new();
        while got.len() < count {
            let frame = self.next().await;
            if frame == "2" {
                self.send("3").await;
            } else {
                got.push(frame);
            }
        }
        got
    }
}
