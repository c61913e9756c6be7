//! The other three protocols (PROTOCOLS.md sections 2-4) and the one lobby that joins
//! them: every row of their tables, every cell of the bridging table (README), bad
//! input on every listener.
//!
//! Member numbers (`guest-<n>`) count every connection of a fresh server from 1, so the
//! tests connect one client at a time and wait for what each connection causes.

mod common;

use common::{
    Client, TcpClient, TestServer, WsClient, joined, left, line, ws_joined, ws_left, ws_line,
};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[tokio::test(flavor = "multi_thread")]
async fn tcp_json_every_row() {
    let server = TestServer::spawn().await;
    let (mut kim, mut lee) = tcp_json_pair(&server).await;

    kim.command("CHAT", "kim : hello").await;
    kim.expect("kim : hello").await;
    lee.expect("kim : hello").await;
    // The stored name wins: lee cannot speak as kim.
    lee.command("CHAT", "kim : it's me").await;
    lee.expect("lee : kim : it's me").await;
    kim.expect("lee : kim : it's me").await;

    drop(kim);
    lee.expect("Someone's out.").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_json_objects_split_at_any_byte_or_glued_together() {
    let server = TestServer::spawn().await;
    let mut reader = TcpClient::connect(server.tcp_json).await;
    reader.command("CONNECT", "reader").await;
    reader.expect("reader connected!").await;

    let mut writer = TcpClient::connect(server.tcp_json).await;
    let connect = json!({"type": "CONNECT", "content": "writer"}).to_string();
    for byte in connect.as_bytes() {
        writer.send([*byte]).await;
    }
    writer.expect("writer connected!").await;
    reader.expect("writer connected!").await;

    // 1,000 objects in one write, with and without white space between them.
    let mut glued = String::new();
    let mut expected = String::new();
    for n in 0..1_000 {
        let separator = if n % 3 == 0 { "\n" } else { "" };
        let chat = json!({"type": "CHAT", "content": format!("writer : {n} {{\"}}")});
        glued.push_str(&format!("{chat}{separator}"));
        expected.push_str(&format!("writer : {n} {{\"}}"));
    }
    writer.send(&glued).await;
    reader.expect(&expected).await;
    writer.expect(&expected).await;

    // The same stream cut in pieces of every size from 1 to 17 bytes.
    let bytes = glued.as_bytes();
    let (mut at, mut size) = (0, 1);
    while at < bytes.len() {
        let end = (at + size).min(bytes.len());
        writer.send(&bytes[at..end]).await;
        (at, size) = (end, size % 17 + 1);
    }
    reader.expect(&expected).await;
    writer.expect(&expected).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_json_bad_input_gets_one_error_line_and_the_door() {
    let server = TestServer::spawn().await;
    let (mut kim, mut lee) = tcp_json_pair(&server).await;

    let huge = format!(r#"{{"type":"CHAT","content":"{}"}}"#, "x".repeat(70_000));
    let cases: [(&[u8], &str); 6] = [
        (
            br#"{"type":"CHAT",,}"#,
            "error: malformed JSON: key must be a string at line 1 column 16\n",
        ),
        (
            br#"{"type":"JOIN","content":"x"}"#,
            "error: unknown type \"JOIN\": expected CONNECT or CHAT\n",
        ),
        (
            br#"{"type":"CHAT","content":5}"#,
            "error: expected {\"type\": \"CONNECT\" | \"CHAT\", \"content\": \"<text>\"}\n",
        ),
        (
            b"\xff\xfe\x00binary",
            "error: expected {\"type\": \"CONNECT\" | \"CHAT\", \"content\": \"<text>\"}\n",
        ),
        (huge.as_bytes(), "error: object larger than 65536 bytes\n"),
        (
            b"hello\n",
            "error: expected {\"type\": \"CONNECT\" | \"CHAT\", \"content\": \"<text>\"}\n",
        ),
    ];
    for (bad, reply) in cases {
        let mut mallory = TcpClient::connect(server.tcp_json).await;
        mallory.send(bad).await;
        mallory.expect_closed_after(reply).await;
        kim.command("CHAT", "kim : still here").await;
        kim.expect("kim : still here").await;
        lee.expect("kim : still here").await;
    }

    // Refused lines that do not break the stream keep the connection.
    let mut early = TcpClient::connect(server.tcp_json).await;
    early.command("CHAT", "anyone?").await;
    early
        .expect("error: choose a name before sending messages\n")
        .await;
    early.command("CONNECT", "early").await;
    early.expect("early connected!").await;
    early
        .command("CHAT", &format!("early : {}", "x".repeat(2_001)))
        .await;
    early
        .expect("error: message is longer than 2000 characters\n")
        .await;
    early.command("CHAT", "early : ok").await;
    early.expect("early : ok").await;

    // A connection dropped in the middle of an object disturbs nobody.
    let mut cut = TcpClient::connect(server.tcp_json).await;
    cut.send(r#"{"type":"CHAT","conte"#).await;
    drop(cut);
    lee.command("CHAT", "lee : fine").await;
    for client in [&mut kim, &mut lee] {
        client.expect("early connected!").await;
        client.expect("early : ok").await;
        client.expect("lee : fine").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_text_chunks_go_as_they_are_to_the_others() {
    let server = TestServer::spawn().await;
    let mut one = TcpClient::connect(server.tcp_text).await;
    one.expect("guest-1 connected!").await;
    let mut two = TcpClient::connect(server.tcp_text).await;
    two.expect("guest-2 connected!").await;
    one.expect("guest-2 connected!").await;

    one.send("hello\r\n").await;
    two.expect("hello\r\n").await;
    two.send("안녕").await;
    // one's next bytes are two's: its own chunk never came back.
    one.expect("안녕").await;
    // A character split between two writes arrives whole.
    let bytes = "가".as_bytes();
    one.send(&bytes[..1]).await;
    one.send(&bytes[1..]).await;
    two.expect("가").await;

    drop(two);
    one.expect("guest-2 left.").await;
}

/// PROTOCOLS.md §3: the frame carries the text; only a page (an upgrade with `Origin`)
/// gets it escaped, for the original page's `innerHTML`.
#[tokio::test(flavor = "multi_thread")]
async fn websocket_frames_carry_the_text_as_sent_and_pages_get_it_escaped() {
    let server = TestServer::spawn().await;
    let mut program = WsClient::connect(server.websocket).await;
    program.expect(ws_joined(1)).await;
    let mut page = WsClient::connect_from_page(server.websocket, "http://localhost:8000").await;
    page.expect(ws_joined(2)).await;
    program.expect(ws_joined(2)).await;
    let mut sio = Client::named(&server, "sio").await;
    page.expect(ws_joined(3)).await;
    program.expect(ws_joined(3)).await;

    let text = r#"메시지 "quoted" \ back"#;
    sio.say(text).await;
    program.expect(ws_line("sio", text)).await;
    page.expect(ws_line("sio", r#"메시지 &quot;quoted&quot; \ back"#))
        .await;

    // Names too, and from a page's own line.
    page.say("<b>x</b>", "<b>x</b> & 'y'").await;
    page.expect(ws_line(
        "&lt;b&gt;x&lt;/b&gt;",
        "&lt;b&gt;x&lt;/b&gt; &amp; &#39;y&#39;",
    ))
    .await;
    program.expect(ws_line("<b>x</b>", "<b>x</b> & 'y'")).await;
    sio.expect_update(line("<b>x</b>", "<b>x</b> & 'y'")).await;
}

/// PROTOCOLS.md: the rooms are separate from the lobby. A Socket.IO socket is counted
/// from its `newUser`, not from its connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_socket_only_in_a_room_is_not_counted_in_the_lobby() {
    let server = TestServer::spawn().await;
    let mut ann = Client::named(&server, "ann").await;
    let mut roomer = Client::connect(&server).await;
    roomer.emit("room", json!("r1")).await;
    server.wait_for_connections(2).await;

    let mut ws = WsClient::connect(server.websocket).await;
    ws.expect(ws_joined(2)).await;
    ann.expect_update(joined("guest-3")).await;
    // It still hears the lobby, as every socket did from the original server.
    roomer.expect_update(joined("guest-3")).await;
    let health = server.get_json("/healthz").await;
    assert_eq!(
        health,
        json!({"status": "ok", "members": 2, "connections": 3})
    );
    let members = server.get_json("/api/members").await;
    assert_eq!(members["count"], json!(2));
    // Its room works as ever.
    roomer.emit("chat message", json!("just us")).await;
    assert_eq!(roomer.expect_event("chat message").await, json!("just us"));

    // Once it names itself, it is a member.
    roomer.emit("newUser", json!("bob")).await;
    roomer.expect_update(joined("bob")).await;
    ann.expect_update(joined("bob")).await;
    ws.expect(ws_joined(3)).await;
    server.wait_for_members(3).await;
    roomer.disconnect().await;
    ws.expect(ws_left(2)).await;
    ann.expect_update(left("bob")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_every_row() {
    let server = TestServer::spawn().await;
    let mut first = WsClient::connect(server.websocket).await;
    first.expect(ws_joined(1)).await;
    let mut second = WsClient::connect(server.websocket).await;
    second.expect(ws_joined(2)).await;
    first.expect(ws_joined(2)).await;

    first.say("kim", "hi").await;
    first.expect(ws_line("kim", "hi")).await;
    second.expect(ws_line("kim", "hi")).await;
    // Programs (no `Origin`) get the text exactly as sent.
    second.say("lee", "<b>hey</b> & 'you'").await;
    first.expect(ws_line("lee", "<b>hey</b> & 'you'")).await;
    second.expect(ws_line("lee", "<b>hey</b> & 'you'")).await;

    second.close().await;
    first.expect(ws_left(1)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_bad_input() {
    let server = TestServer::spawn_with(|config| config.max_ws_message_bytes = 1_000).await;
    let mut kim = WsClient::connect(server.websocket).await;
    kim.expect(ws_joined(1)).await;
    let not_a_line = json!({"type": "error", "msg": r#"expected a text frame {"name": "<name>", "msg": "<text>"}"#});
    for bad in [
        "not json",
        r#"{"name": 1, "msg": "x"}"#,
        r#"{"msg": "x"}"#,
        "[]",
    ] {
        kim.send_text(bad).await;
        kim.expect(not_a_line.clone()).await;
    }
    kim.say("kim", &"가".repeat(201)).await; // 603 bytes: under the frame limit
    kim.expect(ws_line("kim", &"가".repeat(201))).await;
    kim.say("kim", &"x".repeat(2_001)).await; // over the frame limit
    let frame = kim.next().await;
    let Message::Close(Some(close)) = frame else {
        panic!("a close frame, got {frame:?}")
    };
    assert_eq!(
        (close.code, close.reason.as_str()),
        (CloseCode::Size, "message too big")
    );

    let server = TestServer::spawn().await;
    let mut kim = WsClient::connect(server.websocket).await;
    kim.expect(ws_joined(1)).await;
    kim.say("kim", &"x".repeat(2_001)).await;
    kim.expect(json!({"type": "error", "msg": "message is longer than 2000 characters"}))
        .await;
    let url = format!("ws://{}/elsewhere", server.websocket.expect("on"));
    let refused = tokio_tungstenite::connect_async(url).await;
    assert!(
        matches!(&refused, Err(tokio_tungstenite::tungstenite::Error::Http(response)) if response.status() == 404),
        "{refused:?}"
    );
    kim.say("kim", "still here").await;
    kim.expect(ws_line("kim", "still here")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn socketio_rooms_every_row() {
    let server = TestServer::spawn().await;
    let mut a = Client::connect(&server).await;
    let mut b = Client::connect(&server).await;
    let mut c = Client::connect(&server).await;

    c.emit("chat message", json!("nobody hears")).await;
    c.expect_error("join a room before sending chat messages")
        .await;
    // Each seat is confirmed (the line comes back) before the next socket asks: events
    // of different sockets have no order of their own.
    a.emit("room", json!("r1")).await;
    a.emit("chat message", json!("a is in")).await;
    assert_eq!(a.expect_event("chat message").await, json!("a is in"));
    b.emit("room", json!("r1")).await;
    b.emit("chat message", json!("b is in")).await;
    assert_eq!(b.expect_event("chat message").await, json!("b is in"));
    assert_eq!(a.expect_event("chat message").await, json!("b is in"));
    c.emit("room", json!("r1")).await;
    assert_eq!(c.expect_event("result").await, json!("failed"));

    a.emit("chat message", json!("hi b")).await;
    assert_eq!(a.expect_event("chat message").await, json!("hi b"));
    assert_eq!(b.expect_event("chat message").await, json!("hi b"));
    c.emit("chat message", json!("let me in")).await;
    c.expect_error("join a room before sending chat messages")
        .await;

    // A seat is freed on disconnect.
    b.disconnect().await;
    let mut joined = false;
    for _ in 0..200 {
        c.emit("room", json!("r1")).await;
        c.emit("chat message", json!("am I in?")).await;
        let (event, value) = c.next().await;
        if event == "chat message" {
            assert_eq!(value, json!("am I in?"));
            joined = true;
            break;
        }
        assert_eq!((event.as_str(), value), ("result", json!("failed")));
        c.expect_error("join a room before sending chat messages")
            .await;
    }
    assert!(joined, "the seat was never freed");
    assert_eq!(a.expect_event("chat message").await, json!("am I in?"));

    // Joining a second room leaves the first: each line of a and c, sent after the
    // other's was relayed, reaches only its sender.
    a.emit("room", json!("r2")).await;
    a.emit("chat message", json!("in r2")).await;
    assert_eq!(a.expect_event("chat message").await, json!("in r2"));
    c.emit("chat message", json!("alone")).await;
    assert_eq!(c.expect_event("chat message").await, json!("alone"));
    a.emit("chat message", json!("still in r2")).await;
    assert_eq!(a.expect_event("chat message").await, json!("still in r2"));

    for (bad, why) in [
        (json!(""), "a room name must not be empty"),
        (
            json!("x".repeat(65)),
            "a room name is longer than 64 characters",
        ),
        (json!(7), "room expects a room name as a string"),
    ] {
        a.emit("room", bad).await;
        a.expect_error(why).await;
    }
    a.emit("chat message", json!({"not": "a string"})).await;
    a.expect_error("chat message expects a string").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_sockets_racing_for_the_last_seat_one_wins() {
    let server = TestServer::spawn().await;
    let mut holder = Client::connect(&server).await;
    holder.emit("room", json!("race")).await;
    holder.emit("chat message", json!("seated")).await;
    assert_eq!(holder.expect_event("chat message").await, json!("seated"));
    let mut racers = [
        Client::connect(&server).await,
        Client::connect(&server).await,
    ];
    let [x, y] = &racers;
    tokio::join!(race(x, "x"), race(y, "y"));

    let mut winners = Vec::new();
    for (racer, probe) in racers.iter_mut().zip(["x", "y"]) {
        match racer.next().await {
            (event, value) if event == "chat message" => {
                assert_eq!(value, json!(probe));
                winners.push(probe);
            }
            (event, value) => {
                assert_eq!((event.as_str(), value), ("result", json!("failed")));
                racer
                    .expect_error("join a room before sending chat messages")
                    .await;
            }
        }
    }
    assert_eq!(winners.len(), 1, "exactly one racer is seated");
    assert_eq!(holder.expect_event("chat message").await, json!(winners[0]));
}

#[tokio::test(flavor = "multi_thread")]
async fn every_cell_of_the_bridging_table() {
    let server = TestServer::spawn().await;
    // member 1: Socket.IO
    let mut sio = Client::named(&server, "sio").await;
    // member 2: WebSocket, guest-2 until its first line
    let mut ws = WsClient::connect(server.websocket).await;
    ws.expect(ws_joined(2)).await;
    sio.expect_update(joined("guest-2")).await;
    // member 3: TCP JSON
    let mut tj = TcpClient::connect(server.tcp_json).await;
    tj.command("CONNECT", "tj").await;
    tj.expect("tj connected!").await;
    sio.expect_update(joined("tj")).await;
    ws.expect(ws_joined(3)).await;
    // members 4 and 5: TCP text
    let mut tt = TcpClient::connect(server.tcp_text).await;
    tt.expect("guest-4 connected!").await;
    sio.expect_update(joined("guest-4")).await;
    ws.expect(ws_joined(4)).await;
    tj.expect("guest-4 connected!").await;
    let mut tt2 = TcpClient::connect(server.tcp_text).await;
    tt2.expect("guest-5 connected!").await;
    tt.expect("guest-5 connected!").await;
    sio.expect_update(joined("guest-5")).await;
    ws.expect(ws_joined(5)).await;
    tj.expect("guest-5 connected!").await;

    // A Socket.IO line.
    sio.say("from <sio>").await;
    ws.expect(ws_line("sio", "from <sio>")).await;
    tj.expect("sio : from <sio>").await;
    tt.expect("sio : from <sio>").await;
    tt2.expect("sio : from <sio>").await;
    // A WebSocket line, under the name it carries.
    ws.say("ws", "from ws").await;
    sio.expect_update(line("ws", "from ws")).await; // and not its own line before
    ws.expect(ws_line("ws", "from ws")).await;
    tj.expect("ws : from ws").await;
    tt.expect("ws : from ws").await;
    tt2.expect("ws : from ws").await;
    // A TCP JSON line.
    tj.command("CHAT", "tj : from tj").await;
    sio.expect_update(line("tj", "from tj")).await;
    ws.expect(ws_line("tj", "from tj")).await;
    tj.expect("tj : from tj").await;
    tt.expect("tj : from tj").await;
    tt2.expect("tj : from tj").await;
    // A TCP text chunk.
    tt.send("from tt\n").await;
    sio.expect_update(line("guest-4", "from tt")).await;
    ws.expect(ws_line("guest-4", "from tt")).await;
    tj.expect("guest-4 : from tt").await;
    tt2.expect("from tt\n").await;
    tt2.send("from tt2").await;
    tt.expect("from tt2").await; // and not its own chunk before
    sio.expect_update(line("guest-5", "from tt2")).await;
    ws.expect(ws_line("guest-5", "from tt2")).await;
    tj.expect("guest-5 : from tt2").await;

    // Leaves, with whole-lobby counts; the WebSocket member left under its last name.
    ws.close().await;
    sio.expect_update(left("ws")).await;
    tj.expect("Someone's out.").await;
    tt.expect("ws left.").await;
    tt2.expect("ws left.").await;
    drop(tt2);
    sio.expect_update(left("guest-5")).await;
    tj.expect("Someone's out.").await;
    tt.expect("guest-5 left.").await;
    let mut ws = WsClient::connect(server.websocket).await;
    ws.expect(ws_joined(4)).await;
    sio.expect_update(joined("guest-6")).await;
    tj.expect("guest-6 connected!").await;
    tt.expect("guest-6 connected!").await;
    drop(tj);
    sio.expect_update(left("tj")).await;
    ws.expect(ws_left(3)).await;
    tt.expect("tj left.").await;
    sio.disconnect().await;
    ws.expect(ws_left(2)).await;
    tt.expect("sio left.").await;
    drop(tt);
    ws.expect(ws_left(1)).await;
}

async fn race(racer: &Client, probe: &'static str) {
    racer.emit("room", json!("race")).await;
    racer.emit("chat message", json!(probe)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_websocket_and_tcp_connections() {
    let server = TestServer::spawn().await;
    let mut ws = WsClient::connect(server.websocket).await;
    ws.expect(ws_joined(1)).await;
    let mut tj = TcpClient::connect(server.tcp_json).await;
    tj.command("CONNECT", "tj").await;
    tj.expect("tj connected!").await;
    ws.expect(ws_joined(2)).await;
    let mut tt = TcpClient::connect(server.tcp_text).await;
    tt.expect("guest-3 connected!").await;
    ws.expect(ws_joined(3)).await;
    tj.expect("guest-3 connected!").await;

    server.stop().await.expect("clean stop");
    let frame = ws.next().await;
    let Message::Close(Some(close)) = frame else {
        panic!("a close frame, got {frame:?}")
    };
    assert_eq!(
        (close.code, close.reason.as_str()),
        (CloseCode::Away, "server shutting down")
    );
    tj.expect_closed_after("").await;
    tt.expect_closed_after("").await;
}

/// Two TCP JSON members, kim and lee, each having seen the joins since its own.
async fn tcp_json_pair(server: &TestServer) -> (TcpClient, TcpClient) {
    let mut kim = TcpClient::connect(server.tcp_json).await;
    kim.command("CONNECT", "kim").await;
    kim.expect("kim connected!").await;
    let mut lee = TcpClient::connect(server.tcp_json).await;
    lee.command("CONNECT", "lee").await;
    lee.expect("lee connected!").await;
    kim.expect("lee connected!").await;
    (kim, lee)
}
