//! Resilience: slow readers (TCP, WebSocket, Socket.IO) are cut off while everyone else
//! keeps every line in order; bad input and connection storms on every listener leave
//! the clients of all four protocols chatting.

mod common;

use common::crowd::Crowd;
use common::{Client, TcpClient, TestServer, WAIT, WsClient, line};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// Length of every line the writer sends, so a reader can split a stream with no
/// delimiters: `w : <6-digit number> <padding>`.
const RECORD_BYTES: usize = 1_000;

fn record(n: usize) -> String {
    let head = format!("w : {n:06} ");
    format!("{head}{}", "x".repeat(RECORD_BYTES - head.len()))
}

/// Reads records 0, 1, 2, … until `total` says how many there are and all have come,
/// counting them in `progress`; returns the presence notices that came between them.
async fn read_records(
    mut stream: tokio::net::TcpStream,
    mut total: watch::Receiver<usize>,
    progress: Arc<AtomicUsize>,
) -> Vec<&'static str> {
    const NOTICES: [&str; 3] = ["slow connected!", "w connected!", "Someone's out."];
    let (mut buf, mut next, mut notices) = (Vec::new(), 0, Vec::new());
    loop {
        loop {
            if let Some(notice) = NOTICES.iter().find(|n| buf.starts_with(n.as_bytes())) {
                buf.drain(..notice.len());
                notices.push(*notice);
            } else if buf.len() >= RECORD_BYTES {
                let expected = record(next);
                assert_eq!(
                    String::from_utf8_lossy(&buf[..RECORD_BYTES]),
                    expected,
                    "record {next}"
                );
                buf.drain(..RECORD_BYTES);
                next += 1;
                progress.store(next, Ordering::Relaxed);
            } else {
                break;
            }
        }
        if next == *total.borrow_and_update() {
            return notices;
        }
        let mut chunk = vec![0; 256 * 1024];
        tokio::select! {
            read = stream.read(&mut chunk) => {
                let n = read.expect("read");
                assert!(n > 0, "closed after {next} records");
                buf.extend_from_slice(&chunk[..n]);
            }
            changed = total.changed() => changed.expect("writer alive"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_reader_is_cut_off_while_50_others_get_every_line_in_order() {
    let server = TestServer::spawn().await;
    let address = server.tcp_json.expect("on");

    // The slow reader: a tiny receive window, and it never reads.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(1_024).expect("rcvbuf");
    let mut slow = socket.connect(address).await.expect("connect");
    let connect = json!({"type": "CONNECT", "content": "slow"}).to_string();
    slow.write_all(connect.as_bytes()).await.expect("write");

    let (total_tx, total) = watch::channel(usize::MAX);
    let mut readers = Vec::new();
    let progress: Vec<Arc<AtomicUsize>> = (0..50).map(|_| Arc::default()).collect();
    for reader in &progress {
        // Unnamed TCP JSON members: they receive everything and announce nothing.
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let reading = read_records(stream, total.clone(), reader.clone());
        readers.push(tokio::spawn(reading));
    }
    // A connection the kernel accepted is not yet in the lobby: wait until the slow
    // reader and all 50 (unnamed) readers are, so that every reader sees the writer's join.
    server.wait_for_connections(51).await;
    server.wait_for_members(1).await;
    let mut writer = TcpClient::connect(server.tcp_json).await;
    writer.command("CONNECT", "w").await;
    writer.expect("w connected!").await;
    let (echo, mut writer) = writer.stream.into_split();
    let echoes = tokio::spawn(async move {
        let mut echo = echo;
        let mut sink = vec![0; 256 * 1024];
        while matches!(echo.read(&mut sink).await, Ok(n) if n > 0) {}
    });

    // Lines until the slow reader has been cut off, then 200 more. The writer stays
    // within WINDOW lines of the slowest of the 50 readers (they share this process's
    // two cores with the server), far less than an outbox holds: only the reader that
    // never reads falls behind.
    const WINDOW: usize = 128;
    let slowest = || progress.iter().map(|p| p.load(Ordering::Relaxed)).min();
    let mut sent = 0;
    let mut cut_at = None;
    while cut_at.is_none_or(|at| sent < at + 200) {
        assert!(sent < 50_000, "the slow reader was never cut off");
        let deadline = tokio::time::Instant::now() + WAIT;
        while sent - slowest().unwrap_or(sent) > WINDOW {
            assert!(
                tokio::time::Instant::now() < deadline,
                "a reader stopped reading"
            );
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        let content = record(sent);
        let command = json!({"type": "CHAT", "content": content}).to_string();
        writer.write_all(command.as_bytes()).await.expect("write");
        sent += 1;
        if cut_at.is_none() && sent % 100 == 0 {
            let health = server.get_json("/healthz").await;
            if health["connections"] == 51 {
                cut_at = Some(sent);
            }
        }
    }
    total_tx.send(sent).expect("readers");
    for reader in readers {
        let mut notices = tokio::time::timeout(WAIT * 3, reader)
            .await
            .expect("reader done in time")
            .expect("reader");
        // The slow reader's join comes before the writer's, or before this reader was
        // there; its leave comes once, after the writer's join.
        notices.retain(|notice| *notice != "slow connected!");
        assert_eq!(notices, ["w connected!", "Someone's out."]);
    }
    echoes.abort();
    drop(slow);
}

/// One client of each protocol, named, and each able to say a line to all the others.
struct Everyone {
    sio: Client,
    ws: WsClient,
    tj: TcpClient,
    tt: TcpClient,
}

impl Everyone {
    async fn join(server: &TestServer) -> Self {
        let sio = Client::named(server, "sio").await;
        let mut ws = WsClient::connect(server.websocket).await;
        let _ = ws.next().await; // its own join notification
        let mut tj = TcpClient::connect(server.tcp_json).await;
        tj.command("CONNECT", "tj").await;
        tj.expect_eventually("tj connected!").await;
        let mut tt = TcpClient::connect(server.tcp_text).await;
        tt.expect_eventually(" connected!").await;
        let mut everyone = Self { sio, ws, tj, tt };
        everyone.chat("ready").await;
        everyone
    }

    /// Each client says `tag`; each of the others receives it, whatever presence
    /// notices (of other connections) come before it.
    async fn chat(&mut self, tag: &str) {
        let text = format!("{tag} from sio");
        self.sio.say(&text).await;
        self.ws.expect_line_eventually("sio", &text).await;
        self.tj.expect_eventually(format!("sio : {text}")).await;
        self.tt.expect_eventually(format!("sio : {text}")).await;

        let text = format!("{tag} from ws");
        self.ws.say("ws", &text).await;
        self.ws.expect_line_eventually("ws", &text).await;
        self.sio.expect_update_eventually(line("ws", &text)).await;
        self.tj.expect_eventually(format!("ws : {text}")).await;
        self.tt.expect_eventually(format!("ws : {text}")).await;

        let text = format!("{tag} from tj");
        self.tj.command("CHAT", &format!("tj : {text}")).await;
        self.tj.expect_eventually(format!("tj : {text}")).await;
        self.sio.expect_update_eventually(line("tj", &text)).await;
        self.ws.expect_line_eventually("tj", &text).await;
        self.tt.expect_eventually(format!("tj : {text}")).await;

        let text = format!("{tag} from tt");
        self.tt.send(&text).await;
        let update = self.sio.expect_message_eventually().await;
        assert_eq!(update["message"], json!(text));
        let guest = update["name"].as_str().expect("name").to_owned();
        self.ws.expect_line_eventually(&guest, &text).await;
        self.tj.expect_eventually(format!("{guest} : {text}")).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_on_every_listener_leaves_everyone_chatting() {
    let server = TestServer::spawn().await;
    let mut everyone = Everyone::join(&server).await;

    // Socket.IO: a payload over the limit (polling and WebSocket), bad events.
    for (transport, name) in [
        (rust_socketio::TransportType::Polling, "polling"),
        (rust_socketio::TransportType::Websocket, "websocket"),
    ] {
        let big = Client::connect_with(&server, transport).await;
        big.emit("newUser", json!("big")).await;
        let line = json!({"type": "message", "message": "x".repeat(1_100_000)});
        let sent = big.try_emit("message", line).await;
        if name == "polling" {
            // The server refuses the POST itself.
            assert_eq!(
                sent,
                Err("IncompleteResponseFromEngineIo(IncompleteHttp(413))".into())
            );
        }
        everyone.chat(&format!("after a big {name} payload")).await;
    }
    let mut odd = Client::connect(&server).await;
    odd.emit("message", json!(null)).await;
    odd.expect_event("error").await;
    everyone.chat("after bad Socket.IO events").await;

    // Plain WebSocket: binary, garbage, a frame over the limit.
    let mut ws = WsClient::connect(server.websocket).await;
    ws.send_binary(vec![0xff; 64]).await;
    ws.send_text("\u{0}{{{").await;
    ws.send_text("x".repeat(70_000)).await;
    everyone.chat("after bad WebSocket frames").await;

    // Raw garbage on the HTTP and WebSocket ports, before any handshake.
    for port in [Some(server.http), server.websocket] {
        let mut garbage = TcpClient::connect(port).await;
        garbage.send(b"\x16\x03\x01\x02\x00garbage\r\n\r\n").await;
    }
    everyone.chat("after garbage handshakes").await;

    // TCP JSON: garbage, half an object then gone.
    let mut garbage = TcpClient::connect(server.tcp_json).await;
    garbage.send(b"\x00\x01\x02}}}").await;
    let mut half = TcpClient::connect(server.tcp_json).await;
    half.send(br#"{"type":"CONNECT","content":"ha"#).await;
    drop(half);
    everyone.chat("after bad TCP JSON").await;

    // TCP text: binary bytes are a chunk like any other, and arrive as they are.
    let mut binary = TcpClient::connect(server.tcp_text).await;
    binary.expect_eventually(" connected!").await;
    binary.send(b"\xff\xfe\x00\x01").await;
    everyone.tt.expect_eventually(b"\xff\xfe\x00\x01").await;
    // The other protocols get it as text, the invalid bytes replaced.
    let lossy = "\u{fffd}\u{fffd}\u{0}\u{1}";
    let update = everyone.sio.expect_message_eventually().await;
    assert_eq!(update["message"], json!(lossy));
    let guest = update["name"].as_str().expect("name").to_owned();
    everyone.ws.expect_line_eventually(&guest, lossy).await;
    everyone
        .tj
        .expect_eventually(format!("{guest} : {lossy}"))
        .await;
    everyone.chat("after binary TCP text").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_connections_opened_and_dropped_at_once_on_every_listener() {
    let server = TestServer::spawn().await;
    let mut everyone = Everyone::join(&server).await;
    let health = server.get_json("/healthz").await;
    assert_eq!(
        (&health["members"], &health["connections"]),
        (&json!(4), &json!(4))
    );

    for port in [
        Some(server.http),
        server.websocket,
        server.tcp_json,
        server.tcp_text,
    ] {
        let address = port.expect("on");
        let opened = futures_util::future::join_all(
            (0..200).map(|_| tokio::net::TcpStream::connect(address)),
        )
        .await;
        assert!(opened.iter().all(Result::is_ok));
        drop(opened);
    }
    // 200 WebSocket clients that complete their handshakes (and join), then vanish.
    let clients =
        futures_util::future::join_all((0..200).map(|_| WsClient::connect(server.websocket))).await;
    drop(clients);

    server.wait_for_connections(4).await;
    server.wait_for_members(4).await;
    everyone.chat("after the storm").await;
}

/// A TCP JSON member `w` for the test to write lines as, whose own stream is read and
/// dropped all along (it is never the slow one); its join seen by `observer`.
async fn writer_w(
    server: &TestServer,
    observer: &mut Client,
) -> (tokio::net::tcp::OwnedWriteHalf, tokio::task::JoinHandle<()>) {
    let mut writer = TcpClient::connect(server.tcp_json).await;
    writer.command("CONNECT", "w").await;
    observer.expect_update(common::joined("w")).await;
    let (mut echo, writer) = writer.stream.into_split();
    let echoes = tokio::spawn(async move {
        let mut sink = vec![0; 256 * 1024];
        while matches!(echo.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    (writer, echoes)
}

/// A socket to `address` with a receive buffer of 1 KiB: a reader that never reads
/// fills it, and then the server's side, fast.
async fn tiny_window(address: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(1_024).expect("rcvbuf");
    socket.connect(address).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_websocket_socketio_and_tcp_text_readers_are_cut_off_and_announced_as_left() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    const LINE_CHARS: usize = 16_000;
    let server = TestServer::spawn_with(|c| {
        c.outbox_messages = 16;
        c.max_message_chars = LINE_CHARS;
    })
    .await;
    let mut observer = Client::named(&server, "observer").await;

    // A Socket.IO client of its own making (Engine.IO v4 over WebSocket) that names
    // itself and then never reads again.
    let mut slow_sio = common::raw_socketio(server.http, tiny_window(server.http).await).await;
    slow_sio
        .send(Message::text(r#"42["newUser","slowsio"]"#))
        .await
        .expect("newUser");
    observer.expect_update(common::joined("slowsio")).await;

    // A plain WebSocket client that never reads: announced as a guest when it connects.
    let url = format!("ws://{}/", server.websocket.expect("on"));
    let websocket = tiny_window(server.websocket.expect("on")).await;
    let (slow_ws, _) = tokio_tungstenite::client_async(url, websocket)
        .await
        .expect("websocket handshake");
    async fn guest_joins(observer: &mut Client) -> String {
        let join = observer.expect_event("update").await;
        join["message"]
            .as_str()
            .and_then(|m| m.strip_suffix("님이 접속하였습니다."))
            .expect("a guest's join")
            .to_owned()
    }
    let guest = guest_joins(&mut observer).await;
    // A TCP text client that never reads, a guest too.
    let slow_text = tiny_window(server.tcp_text.expect("on")).await;
    let text_guest = guest_joins(&mut observer).await;

    let (mut writer, echoes) = writer_w(&server, &mut observer).await;

    // Long lines, each sent once the observer has the one before: the observer reads
    // every line in order while the three that never read are cut off and announced.
    let mut leaves = Vec::new();
    let mut after_both = 0;
    for n in 0.. {
        assert!(n < 5_000, "not cut off; leaves so far: {leaves:?}");
        let text = format!("{n:06}{}", "y".repeat(LINE_CHARS - 6));
        let command = json!({"type": "CHAT", "content": text}).to_string();
        writer.write_all(command.as_bytes()).await.expect("write");
        loop {
            let update = observer.expect_event("update").await;
            if update["type"] == "disconnect" {
                leaves.push(update["message"].as_str().expect("text").to_owned());
                continue;
            }
            assert_eq!(update, line("w", &text));
            break;
        }
        if leaves.len() == 3 {
            after_both += 1;
            if after_both == 20 {
                break;
            }
        }
    }
    leaves.sort();
    let mut expected = vec![
        format!("{guest}님이 나가셨습니다."),
        format!("{text_guest}님이 나가셨습니다."),
        "slowsio님이 나가셨습니다.".to_owned(),
    ];
    expected.sort();
    assert_eq!(leaves, expected);
    // Gone from the lobby: the observer and the writer are left.
    server.wait_for_connections(2).await;
    server.wait_for_members(2).await;
    let metrics = common::http_get(server.http, "/metrics").await;
    for protocol in ["socketio", "websocket", "tcp-text"] {
        let counter =
            format!(r#"chatterbox_slow_consumer_cutoffs_total{{protocol="{protocol}"}} 1"#);
        assert!(
            metrics.lines().any(|l| l == counter),
            "{counter} in\n{metrics}"
        );
    }
    // When it reads its backlog at last, the Socket.IO client is told it is out (the
    // disconnect packet waited for room in its queue): it is not left connected to a
    // lobby that no longer sends it anything.
    let told = tokio::time::timeout(common::WAIT, async {
        loop {
            let frame = slow_sio.next().await.expect("open").expect("frame");
            match frame.to_text().expect("text") {
                "41" => return,
                "2" => slow_sio.send(Message::text("3")).await.expect("pong"),
                update => assert!(update.starts_with(r#"42["update","#), "{update}"),
            }
        }
    })
    .await;
    told.expect("the namespace's disconnect packet in time");
    echoes.abort();
    drop((slow_sio, slow_ws, slow_text));
}

/// Reads a raw Socket.IO client's frames until it has `count` chat lines from `w`
/// (answering pings); returns their texts in order.
async fn read_lines(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    count: usize,
) -> Vec<String> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let mut texts = Vec::new();
    while texts.len() < count {
        let frame = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        let frame = frame.to_text().expect("text").to_owned();
        if frame == "2" {
            socket.send(Message::text("3")).await.expect("pong");
            continue;
        }
        let packet = frame.strip_prefix("42").expect("an event");
        let (event, update): (String, serde_json::Value) =
            serde_json::from_str(packet).expect("an event packet");
        assert_eq!(event, "update");
        if update["type"] == "message" {
            assert_eq!(update["name"], "w");
            texts.push(update["message"].as_str().expect("text").to_owned());
        }
    }
    texts
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_survives_a_burst_it_reads_later_and_one_behind_for_too_long_is_cut_off() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    // Long lines first, more than the kernel's socket buffers hold (4 MiB at most on
    // Linux), then short ones: those wait in the members' queues, twice the 1,024
    // messages that used to be the rule. The bytes allowed are far more than all of it:
    // only time behind can cut a member off here.
    const LONG_LINES: usize = 300;
    const LINE_CHARS: usize = 16_000;
    const SHORT_LINES: usize = 2_048;
    const BEHIND: std::time::Duration = std::time::Duration::from_secs(8);
    let server = TestServer::spawn_with(|c| {
        c.outbox_behind_ms = BEHIND.as_millis() as u64;
        c.outbox_bytes = 64 << 20;
        c.max_message_chars = LINE_CHARS;
    })
    .await;
    let mut observer = Client::named(&server, "observer").await;

    // Two clients with a 1 KiB receive window: the burst waits for them. The reader, a
    // raw Socket.IO client, reads it once it is all sent; the staller, a TCP JSON client
    // (the rule is the same for every protocol), never reads.
    let mut reader = common::raw_socketio(server.http, tiny_window(server.http).await).await;
    let new_user = r#"42["newUser","reader"]"#;
    reader.send(Message::text(new_user)).await.expect("newUser");
    observer.expect_update(common::joined("reader")).await;
    let mut staller = tiny_window(server.tcp_json.expect("on")).await;
    let connect = json!({"type": "CONNECT", "content": "staller"}).to_string();
    staller.write_all(connect.as_bytes()).await.expect("write");
    observer.expect_update(common::joined("staller")).await;

    let (mut writer, echoes) = writer_w(&server, &mut observer).await;
    let burst_started = std::time::Instant::now();
    let long = (0..LONG_LINES).map(|n| format!("{n:06}{}", "y".repeat(LINE_CHARS - 6)));
    let short = (0..SHORT_LINES).map(|n| format!("burst {n:04}"));
    let sent: Vec<String> = long.chain(short).collect();
    for text in &sent {
        let command = json!({"type": "CHAT", "content": text}).to_string();
        writer.write_all(command.as_bytes()).await.expect("write");
    }
    for text in &sent {
        observer.expect_update(line("w", text)).await;
    }
    // The reader gets the whole burst, in order. It reads now with a window of the usual
    // size: megabytes through a 1 KiB one take minutes on a loaded machine.
    socket2::SockRef::from(reader.get_ref())
        .set_recv_buffer_size(4 << 20)
        .expect("a larger receive buffer");
    assert_eq!(read_lines(&mut reader, sent.len()).await, sent);

    // A line every 100 ms until the staller, behind since the burst, is cut off: after
    // BEHIND, not before; the reader, caught up, stays and gets every line.
    let mut after = Vec::new();
    let leave = loop {
        assert!(
            burst_started.elapsed() < BEHIND + WAIT,
            "the staller was never cut off"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let text = format!("after {:04}", after.len());
        let command = json!({"type": "CHAT", "content": text}).to_string();
        writer.write_all(command.as_bytes()).await.expect("write");
        after.push(text.clone());
        if after.len() > 1 {
            let update = observer.expect_event("update").await;
            if update["type"] == "disconnect" {
                break update;
            }
            assert_eq!(update, line("w", &after[after.len() - 2]));
        }
    };
    assert!(
        burst_started.elapsed() >= BEHIND,
        "cut off before {BEHIND:?}"
    );
    assert_eq!(leave, common::left("staller"));
    observer
        .expect_update(line("w", &after[after.len() - 2]))
        .await;
    observer
        .expect_update(line("w", &after[after.len() - 1]))
        .await;
    assert_eq!(read_lines(&mut reader, after.len()).await, after);
    // (The cut-off counters are the test process's, shared with the other tests here.)
    server.wait_for_members(3).await;
    echoes.abort();
    drop(staller);
}

/// Reads a raw Socket.IO WebSocket until the server closes it: what it sends first may
/// be the lobby's `update`s (every socket gets them), a ping, and the Engine.IO close
/// packet (`1`); anything else fails the test.
async fn expect_socket_closed(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    what: &str,
) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await {
            Err(_) => panic!("{what}: the socket is still open"),
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return,
            Ok(Some(Ok(Message::Text(text))))
                if ["1", "2"].contains(&text.as_str()) || text.starts_with(r#"42["update","#) => {}
            Ok(Some(Ok(other))) => panic!("{what}: unexpected {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_attachments_are_refused_before_they_outgrow_the_payload_limit() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let server = TestServer::spawn().await;
    // Bystanders of every protocol chat all along.
    let crowd = Crowd::join(&server, 0)
        .await
        .start(std::time::Duration::from_millis(50));
    let event = r#"["message",{"type":"message","message":{"_placeholder":true,"num":0}}]"#;

    // Announcing 10,000 attachments: closed before any is buffered.
    let stream = tokio::net::TcpStream::connect(server.http)
        .await
        .expect("connect");
    let mut many = common::raw_socketio(server.http, stream).await;
    let announce = format!("4510000-{event}");
    many.send(Message::text(announce)).await.expect("send");
    expect_socket_closed(&mut many, "10,000 attachments announced").await;

    // Two attachments of 990,000 bytes: the second would take the buffer past
    // --max-payload-bytes (1,000,000), so the socket is closed instead of buffering it.
    let stream = tokio::net::TcpStream::connect(server.http)
        .await
        .expect("connect");
    let mut heavy = common::raw_socketio(server.http, stream).await;
    let announce = format!("452-{event}");
    heavy.send(Message::text(announce)).await.expect("send");
    let attachment = vec![7u8; 990_000];
    heavy
        .send(Message::binary(attachment.clone()))
        .await
        .expect("first attachment");
    // The server may close the socket while the second is still being written.
    let _ = heavy.send(Message::binary(attachment)).await;
    expect_socket_closed(&mut heavy, "1,980,000 bytes of attachments").await;

    crowd.finish().await;
}
