//! The limits on connections, message rate, time and size: each one hit on every protocol
//! where it applies, with the exact error the offender gets and the refusal counted in
//! `/metrics`, while a crowd of twenty well-behaved clients (tests/common/crowd.rs)
//! gets every line in order.
//!
//! The tests of this binary share the process-wide metrics recorder and run in
//! parallel: each counts refusals of reasons no other test here produces, so the counts
//! are exact. Offenders that need an address of their own connect from 127.0.0.2.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::crowd::Crowd;
use common::{Client, TcpClient, TestServer, WAIT, WsClient, http_get, http_request_from};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

const OTHER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));
const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn refusals(protocol: &str, reason: &str) -> String {
    format!(r#"chatterbox_refusals_total{{protocol="{protocol}",reason="{reason}"}}"#)
}

/// Opens TCP text connections from `from` until one is refused; returns the admitted
/// ones and the refused one's whole stream (the server closes it).
async fn fill(server: &TestServer, from: IpAddr) -> (Vec<TcpClient>, String) {
    let mut admitted = Vec::new();
    loop {
        assert!(admitted.len() < 1_000, "never refused");
        let mut client = TcpClient::connect_from(from, server.tcp_text).await;
        let mut first = [0; 6];
        client.stream.read_exact(&mut first).await.expect("read");
        // An admitted client gets its join (or, with the history, a line said just
        // before it) first; a refused one its error line.
        if &first != b"error:" {
            admitted.push(client);
            continue;
        }
        let mut rest = String::new();
        tokio::time::timeout(WAIT, client.stream.read_to_string(&mut rest))
            .await
            .expect("closed in time")
            .expect("read");
        return (
            admitted,
            format!("{}{rest}", String::from_utf8_lossy(&first)),
        );
    }
}

/// A WebSocket upgrade from `from` must be refused with this status and body.
async fn expect_ws_refused(server: &TestServer, from: IpAddr, status: u16, body: &str) {
    let addr = server.websocket.expect("on");
    let stream = common::connect_from(from, addr).await;
    let refused = tokio_tungstenite::client_async(format!("ws://{addr}/"), stream).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), status);
            let got = response.body().as_deref().map(String::from_utf8_lossy);
            assert_eq!(got.as_deref(), Some(body));
        }
        other => panic!("expected HTTP {status}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_total_limit_are_refused_on_every_listener() {
    let server = TestServer::spawn_with(|config| config.max_connections = 60).await;
    let crowd = Crowd::join(&server, 0)
        .await
        .start(Duration::from_millis(50));
    let full = "too many connections: the server is full (limit 60)";
    let line = format!("error: {full}\n");

    // Another address fills the server; the connection that finds it full is told.
    let (fillers, refused) = fill(&server, OTHER).await;
    assert_eq!(refused, line);
    // Full for everyone, on every listener.
    let mut tj = TcpClient::connect(server.tcp_json).await;
    tj.expect_closed_after(&line).await;
    let mut tt = TcpClient::connect(server.tcp_text).await;
    tt.expect_closed_after(&line).await;
    expect_ws_refused(&server, LOCAL, 503, &format!("{full}\n")).await;
    let (head, body) =
        http_request_from(LOCAL, server.http, "/socket.io/?EIO=4&transport=polling").await;
    assert!(head.starts_with("http/1.1 503"), "{head}");
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body, json!({ "error": full }));
    // Operators still see the server (one more refused connection each).
    let health = server.get_json("/healthz").await;
    assert_eq!(health["members"], json!(20 + fillers.len()));
    assert_eq!(health["connections"], json!(20 + fillers.len()));
    let expected = [
        (refusals("tcp-text", "connections"), 2.0),
        (refusals("tcp-json", "connections"), 1.0),
        (refusals("websocket", "connections"), 1.0),
        // The Socket.IO handshake, /healthz, and this /metrics request.
        (refusals("socketio", "connections"), 3.0),
    ];
    let metrics = server.metrics().await;
    for (metric, count) in expected {
        assert_eq!(metrics.value(&metric), Some(count), "{metric}");
    }
    // A Socket.IO client cannot connect. Topped up first: a place may have come back
    // meanwhile (a crowd client's long-polling connection closing after its upgrade).
    let (more, refused) = fill(&server, OTHER).await;
    assert_eq!(refused, line);
    let sio = rust_socketio::asynchronous::ClientBuilder::new(server.url())
        .reconnect(false)
        .connect()
        .await;
    assert!(
        sio.is_err(),
        "a Socket.IO client connected to a full server"
    );

    // Places are given back when connections end.
    drop((fillers, more));
    server.wait_for_members(20).await;
    let mut tt = TcpClient::connect(server.tcp_text).await;
    tt.expect_somewhere(" connected!").await;
    let sio = Client::named_amid_chat(&server, "later").await;
    sio.say("hello").await;
    tt.expect_somewhere("later : hello").await;
    crowd.finish().await;

    // A Socket.IO WebSocket's one connection is handed from the HTTP server to the
    // WebSocket: its place goes with it, so a server of one place is full with it.
    // (After the counts above: the refusals here are of the same reason.)
    let server = TestServer::spawn_with(|config| config.max_connections = 1).await;
    let sio = Client::connect_with(&server, rust_socketio::TransportType::Websocket).await;
    server.wait_for_connections(1).await;
    let mut tj = TcpClient::connect(server.tcp_json).await;
    tj.expect_closed_after("error: too many connections: the server is full (limit 1)\n")
        .await;
    sio.disconnect().await;
    server.wait_for_connections(0).await;
    // Its TCP connection closes just after its member has left: a client may find the
    // place still taken for a moment, and is told so at once.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut tj = TcpClient::connect(server.tcp_json).await;
        let connect = json!({"type": "CONNECT", "content": "next"}).to_string();
        // A refused client's connection may be closed already: the reply says which.
        let _ = tj.stream.write_all(connect.as_bytes()).await;
        let mut first = [0; 6];
        tokio::time::timeout(WAIT, tj.stream.read_exact(&mut first))
            .await
            .expect("a reply in time")
            .expect("read");
        if &first == b"next c" {
            break;
        }
        assert_eq!(&first, b"error:");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_over_the_per_address_limit_are_refused_on_every_listener() {
    let server = TestServer::spawn_with(|config| config.max_connections_per_ip = 40).await;
    let crowd = Crowd::join(&server, 0)
        .await
        .start(Duration::from_millis(50));
    let why = "too many connections from your address (limit 40)";
    let line = format!("error: {why}\n");

    let (fillers, refused) = fill(&server, OTHER).await;
    assert_eq!(fillers.len(), 40);
    assert_eq!(refused, line);
    let mut tj = TcpClient::connect_from(OTHER, server.tcp_json).await;
    tj.expect_closed_after(&line).await;
    expect_ws_refused(&server, OTHER, 503, &format!("{why}\n")).await;
    let (head, body) =
        http_request_from(OTHER, server.http, "/socket.io/?EIO=4&transport=polling").await;
    assert!(head.starts_with("http/1.1 503"), "{head}");
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(body, json!({ "error": why }));
    let (head, _) = http_request_from(OTHER, server.http, "/healthz").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");

    // Other addresses are not affected.
    let sio = Client::named_amid_chat(&server, "local").await;
    sio.say("still here").await;
    let mut tt = TcpClient::connect(server.tcp_text).await;
    tt.expect_somewhere(" connected!").await;
    sio.say("and here").await;
    tt.expect_somewhere("local : and here").await;

    let expected = [
        (refusals("tcp-text", "connections_per_ip"), 1.0),
        (refusals("tcp-json", "connections_per_ip"), 1.0),
        (refusals("websocket", "connections_per_ip"), 1.0),
        (refusals("socketio", "connections_per_ip"), 2.0),
    ];
    let metrics = server.metrics().await;
    for (metric, count) in expected {
        assert_eq!(metrics.value(&metric), Some(count), "{metric}");
    }
    drop(fillers);
    crowd.finish().await;
}

/// Refusals for the rate, then the refusal that disconnects.
const RATE: &str = "too many messages: at most 1 a second";
const FLOOD: &str = "too many messages refused in a row (6): disconnecting";

/// Socket.IO: skips updates; the next other event must be this `error`.
async fn sio_expect_error(client: &mut Client, message: &str) {
    loop {
        let (event, value) = client.next().await;
        if event == "update" {
            continue;
        }
        assert_eq!(
            (event.as_str(), value),
            ("error", json!({ "message": message }))
        );
        return;
    }
}

/// WebSocket: skips lines and notifications; the next other frame must be `expected`
/// (text frames compared as JSON).
async fn ws_expect(client: &mut WsClient, expected: Message) {
    let json =
        |frame: &Message| -> Option<Value> { serde_json::from_str(frame.to_text().ok()?).ok() };
    loop {
        let frame = client.next().await;
        if let Some(value) = json(&frame) {
            if value["type"] == "message" || value["type"] == "notification" {
                continue;
            }
            assert_eq!(Some(value), json(&expected));
        } else {
            assert_eq!(frame, expected);
        }
        return;
    }
}

fn ws_error(message: &str) -> Message {
    Message::text(json!({"type": "error", "msg": message}).to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_over_the_message_rate_is_refused_then_disconnected_on_every_protocol() {
    // A burst of 4, then 1 a second: each offender's 11 requests below take
    // milliseconds, so no token comes back in between. The crowd sends under the rate.
    let server = TestServer::spawn_with(|config| {
        config.rate_lines_per_sec = 1;
        config.rate_burst = 4;
        config.rate_strikes = 6;
    })
    .await;
    let crowd = Crowd::join(&server, 0)
        .await
        .start(Duration::from_millis(1_200));

    // Socket.IO: its first name is free; three lines and a rename are the burst.
    let mut sio = Client::named_amid_chat(&server, "fast-sio").await;
    for n in 0..3 {
        sio.say(&format!("sio {n}")).await;
    }
    sio.emit("newUser", json!("faster-sio")).await;
    for _ in 0..5 {
        sio.say("too fast").await;
        sio_expect_error(&mut sio, RATE).await;
    }
    sio.say("too fast").await;
    sio_expect_error(&mut sio, FLOOD).await;
    loop {
        let (event, _) = sio.next().await;
        if event == "close" {
            break;
        }
        assert_eq!(event, "update");
    }

    // WebSocket: four lines, then refusals, then closed with 1008.
    let mut ws = WsClient::connect(server.websocket).await;
    for n in 0..4 {
        ws.say("fast-ws", &format!("ws {n}")).await;
    }
    for _ in 0..5 {
        ws.say("fast-ws", "too fast").await;
        ws_expect(&mut ws, ws_error(RATE)).await;
    }
    ws.say("fast-ws", "too fast").await;
    ws_expect(&mut ws, ws_error(FLOOD)).await;
    let close = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: CloseCode::Policy,
        reason: "too many messages".into(),
    };
    ws_expect(&mut ws, Message::Close(Some(close))).await;

    // TCP JSON: CONNECT (free) and four lines, then refusals on the same connection.
    let mut tj = TcpClient::connect(server.tcp_json).await;
    tj.command("CONNECT", "fast-tj").await;
    for n in 0..4 {
        tj.command("CHAT", &format!("fast-tj : tj {n}")).await;
    }
    for _ in 0..5 {
        tj.command("CHAT", "fast-tj : too fast").await;
        tj.expect_somewhere(format!("error: {RATE}\n")).await;
    }
    tj.command("CHAT", "fast-tj : too fast").await;
    tj.expect_closed_with(format!("error: {FLOOD}\n")).await;

    // TCP text: each write must be a chunk of its own, so each waits until an
    // observer has it (accepted) or its error has come (refused).
    let mut observer = TcpClient::connect(server.tcp_json).await;
    observer.command("CONNECT", "observer").await;
    observer.expect_somewhere("observer connected!").await;
    let mut tt = TcpClient::connect(server.tcp_text).await;
    for n in 0..4 {
        tt.send(format!("tt {n}")).await;
        observer.expect_somewhere(format!(" : tt {n}")).await;
    }
    for _ in 0..5 {
        tt.send("too fast").await;
        tt.expect_somewhere(format!("error: {RATE}\n")).await;
    }
    tt.send("too fast").await;
    tt.expect_closed_with(format!("error: {FLOOD}\n")).await;

    let metrics = server.metrics().await;
    for protocol in ["socketio", "websocket", "tcp-json", "tcp-text"] {
        let rate = metrics.value(&refusals(protocol, "rate"));
        assert_eq!(rate, Some(5.0), "{protocol}");
        let flood = metrics.value(&refusals(protocol, "flood"));
        assert_eq!(flood, Some(1.0), "{protocol}");
    }
    crowd.finish().await;
}

/// Reads a raw connection until the server closes it; returns what it sent.
async fn read_until_closed(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut received))
        .await
        .expect("closed in time")
        .expect("read");
    received
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_stalled_and_trickling_clients_are_cut_off() {
    let server = TestServer::spawn_with(|config| {
        config.connect_timeout_ms = 500;
        config.stall_timeout_ms = 500;
        config.header_timeout_ms = 500;
    })
    .await;
    let crowd = Crowd::join(&server, 0)
        .await
        .start(Duration::from_millis(50));

    // TCP JSON: no CONNECT; half an object; an object trickled slower than allowed.
    let mut silent = TcpClient::connect(server.tcp_json).await;
    let mut half = TcpClient::connect(server.tcp_json).await;
    half.command("CONNECT", "half").await;
    half.send(br#"{"type":"CHAT","content":"half : never"#)
        .await;
    let trickle = tokio::spawn({
        let addr = server.tcp_json.expect("on");
        async move {
            let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let (mut read, mut write) = stream.into_split();
            let connect = json!({"type": "CONNECT", "content": "trickle"}).to_string();
            write.write_all(connect.as_bytes()).await.expect("write");
            let object = json!({"type": "CHAT", "content": "trickle : slow"}).to_string();
            let writing = async {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                for byte in object.as_bytes() {
                    tick.tick().await;
                    if write.write_all(&[*byte]).await.is_err() {
                        break; // cut off
                    }
                }
            };
            let mut received = Vec::new();
            let reading = tokio::time::timeout(WAIT, read.read_to_end(&mut received));
            let (_, read) = tokio::join!(writing, reading);
            // A byte written after the server closed may draw a reset: what was read
            // before it is kept, and must end with the error.
            match read.expect("closed in time") {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
                Err(e) => panic!("read: {e}"),
            }
            received
        }
    });
    silent
        .expect_closed_with("error: no CONNECT within 500 ms\n")
        .await;
    half.expect_closed_with("error: incomplete object for 500 ms\n")
        .await;
    let trickled = String::from_utf8_lossy(&trickle.await.expect("trickle")).into_owned();
    assert!(
        trickled.ends_with("error: incomplete object for 500 ms\n"),
        "{trickled}"
    );

    // TCP text: half a UTF-8 character, never completed.
    let mut split = TcpClient::connect(server.tcp_text).await;
    split.send(&"가".as_bytes()[..1]).await;
    split
        .expect_closed_with("error: incomplete UTF-8 character for 500 ms\n")
        .await;

    // HTTP and WebSocket: request headers that stop halfway; the connection is closed
    // without a response.
    for addr in [Some(server.http), server.websocket] {
        let mut stream = tokio::net::TcpStream::connect(addr.expect("on"))
            .await
            .expect("connect");
        let start = b"GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n";
        stream.write_all(start).await.expect("write");
        assert_eq!(read_until_closed(&mut stream).await, b"");
    }

    // Socket.IO long-polling: a POST whose body stops halfway.
    let (head, body) =
        common::http_request(server.http, "/socket.io/?EIO=4&transport=polling", &[]).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let open: Value = serde_json::from_str(body.trim_start_matches('0')).expect("open packet");
    let sid = open["sid"].as_str().expect("sid");
    let mut stream = tokio::net::TcpStream::connect(server.http)
        .await
        .expect("connect");
    let post = format!(
        "POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\nHost: localhost\r\n\
         Content-Type: text/plain\r\nContent-Length: 40\r\n\r\n42[\"message\""
    );
    stream.write_all(post.as_bytes()).await.expect("write");
    let response = String::from_utf8(read_until_closed(&mut stream).await).expect("text");
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
    assert_eq!(body, "");

    let expected = [
        (refusals("tcp-json", "connect_timeout"), 1.0),
        (refusals("tcp-json", "stall"), 2.0),
        (refusals("tcp-text", "stall"), 1.0),
        (refusals("socketio", "header_timeout"), 1.0),
        (refusals("socketio", "stall"), 1.0),
        (refusals("websocket", "header_timeout"), 1.0),
    ];
    let metrics = server.metrics().await;
    for (metric, count) in expected {
        assert_eq!(metrics.value(&metric), Some(count), "{metric}");
    }
    // Pages are still served.
    http_get(server.http, "/healthz").await;
    crowd.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sizes_over_their_limits_are_refused_on_every_protocol() {
    let server = TestServer::spawn_with(|config| {
        // The crowd's names (`WebSocket4` …) fit.
        config.max_name_chars = 12;
        config.max_message_chars = 50;
        config.max_ws_message_bytes = 1_000;
        config.max_json_object_bytes = 1_000;
    })
    .await;
    let crowd = Crowd::join(&server, 0)
        .await
        .start(Duration::from_millis(100));
    let long_line = "가".repeat(51);
    let too_long = "message is longer than 50 characters";

    // A name over the limit is cut, not refused.
    let mut sio = Client::connect(&server).await;
    sio.emit("newUser", json!("averyverylongname")).await;
    loop {
        let update = sio.expect_event("update").await;
        if update == common::joined("averyverylon") {
            break;
        }
        assert_ne!(update["type"], "connect", "{update}");
    }
    sio.say(&long_line).await;
    sio_expect_error(&mut sio, too_long).await;

    let mut ws = WsClient::connect(server.websocket).await;
    ws.say("ws", &long_line).await;
    ws_expect(&mut ws, ws_error(too_long)).await;
    ws.send_text(json!({"name": "ws", "msg": "x".repeat(1_000)}).to_string())
        .await;
    let close = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: CloseCode::Size,
        reason: "message too big".into(),
    };
    ws_expect(&mut ws, Message::Close(Some(close))).await;

    let mut tj = TcpClient::connect(server.tcp_json).await;
    tj.command("CONNECT", "tj").await;
    tj.command("CHAT", &long_line).await;
    tj.expect_somewhere(format!("error: {too_long}\n")).await;
    tj.command("CHAT", &"x".repeat(1_000)).await;
    tj.expect_closed_with("error: object larger than 1000 bytes\n")
        .await;

    let metrics = server.metrics().await;
    for protocol in ["socketio", "websocket", "tcp-json"] {
        let count = metrics.value(&refusals(protocol, "message_too_long"));
        assert_eq!(count, Some(1.0), "{protocol}");
    }
    for protocol in ["websocket", "tcp-json"] {
        let count = metrics.value(&refusals(protocol, "too_large"));
        assert_eq!(count, Some(1.0), "{protocol}");
    }
    crowd.finish().await;
}

const JOINS: &str = "too many joins and renames from your address: at most 1 a minute";

#[tokio::test(flavor = "multi_thread")]
async fn joins_and_renames_over_an_address_budget_are_refused_on_every_protocol() {
    use futures_util::{SinkExt, StreamExt};
    // A burst of 40 joins an address, then one a minute: the crowd (20 joins from
    // 127.0.0.1) and the watcher fit; the spammer at 127.0.0.2 has 40.
    const BURST: usize = 40;
    const CYCLES: usize = 150;
    let server = TestServer::spawn_with(|config| {
        config.rate_joins_per_min = 1;
        config.rate_join_burst = BURST as u32;
        // Queues that hold the whole test's lines: it tests the join budget, not the
        // slow-consumer rule (on a loaded machine the spammer reads late).
        config.outbox_messages = 16_384;
    })
    .await;
    let crowd = Crowd::join(&server, 0)
        .await
        .start(Duration::from_millis(200));
    let mut watcher = Client::named_amid_chat(&server, "watcher").await;

    // Connect, name, leave the namespace, in a loop, on one Engine.IO connection, each
    // connect once the last one is answered; it reads all along (its socket gets the
    // lobby's lines, as every socket does).
    let stream = common::connect_from(OTHER, server.http).await;
    let (mut spammer, mut replies) = common::raw_socketio(server.http, stream).await.split();
    let error = format!("42{}", json!(["error", { "message": JOINS }]));
    // What the reader hands the sender: a connect's answer, or a ping to answer.
    let (heard, mut hearing) = tokio::sync::mpsc::unbounded_channel();
    let reading = tokio::spawn(async move {
        let mut refused = 0;
        // Every refusal is one of the loop's or the last name's.
        while refused < CYCLES + 1 - BURST {
            let frame = tokio::time::timeout(WAIT, replies.next())
                .await
                .expect("a frame in time")
                .expect("open")
                .expect("frame");
            match frame.to_text().expect("text") {
                text if text == error => refused += 1,
                text if text.starts_with("40") || text == "2" => {
                    heard.send(text.to_owned()).expect("sending")
                }
                _ => {}
            }
        }
    });
    for n in 0..CYCLES {
        let name = format!(r#"42["newUser","rj-{n} buy cheap stuff at evil.example"]"#);
        for frame in [name.as_str(), "41", "40"] {
            spammer.send(Message::text(frame)).await.expect("send");
        }
        loop {
            let heard = tokio::time::timeout(WAIT, hearing.recv())
                .await
                .expect("connected in time")
                .expect("reading");
            if heard != "2" {
                break;
            }
            spammer.send(Message::text("3")).await.expect("pong");
        }
    }
    let last = r#"42["newUser","rj-last"]"#;
    spammer.send(Message::text(last)).await.expect("send");
    reading.await.expect("every refusal read");

    // Every protocol's join from that address is refused now.
    let mut tt = TcpClient::connect_from(OTHER, server.tcp_text).await;
    tt.expect_closed_after(format!("error: {JOINS}\n")).await;
    let mut tj = TcpClient::connect_from(OTHER, server.tcp_json).await;
    tj.command("CONNECT", "rj-tcp").await;
    tj.expect_somewhere(format!("error: {JOINS}\n")).await;
    let ws_addr = server.websocket.expect("on");
    let ws_stream = common::connect_from(OTHER, ws_addr).await;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{ws_addr}/"), ws_stream)
        .await
        .expect("websocket handshake");
    let reply = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("in time");
    let reply: Value = serde_json::from_str(
        reply
            .expect("open")
            .expect("frame")
            .to_text()
            .expect("text"),
    )
    .expect("JSON");
    assert_eq!(reply, json!({"type": "error", "msg": JOINS}));

    // The watcher saw the burst's joins and leaves, and nothing after it.
    let sio = Client::named_amid_chat(&server, "marker").await;
    sio.say("the end").await;
    let (mut joins, mut leaves) = (0, 0);
    loop {
        let (event, update) = watcher.next().await;
        assert_eq!(event, "update");
        let message = update["message"].as_str().expect("a message");
        if update["name"] == "marker" && message == "the end" {
            break;
        }
        if message.starts_with("rj-") && message.ends_with("님이 접속하였습니다.") {
            joins += 1;
        } else if message.starts_with("rj-") && message.ends_with("님이 나가셨습니다.") {
            leaves += 1;
        }
    }
    assert_eq!((joins, leaves), (BURST, BURST));

    let metrics = server.metrics().await;
    let expected = [
        (refusals("socketio", "joins"), (CYCLES + 1 - BURST) as f64),
        (refusals("tcp-text", "joins"), 1.0),
        (refusals("tcp-json", "joins"), 1.0),
        (refusals("websocket", "joins"), 1.0),
    ];
    for (metric, count) in expected {
        assert_eq!(metrics.value(&metric), Some(count), "{metric}");
    }
    crowd.finish().await;
}
