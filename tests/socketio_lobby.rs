//! The Socket.IO lobby protocol (PROTOCOLS.md section 1) with `rust_socketio` clients:
//! every row of the protocol table, the decisions on undefined behaviour, and bad input.
//!
//! Where a test shows that a client did *not* receive something, it does so causally:
//! the lobby delivers every event to every member in one order, so once a later line
//! arrives, anything before it that was meant for this client has arrived too.

mod common;

use common::{Client, TestServer, joined, left, line};
use rust_socketio::TransportType;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_join_is_announced_to_everyone_the_newcomer_included() {
    let server = TestServer::spawn().await;
    let mut bob = Client::named(&server, "bob").await;
    let mut watcher = Client::connect(&server).await; // connected, never named

    let mut alice = Client::connect(&server).await;
    alice.emit("newUser", json!("alice")).await;

    alice.expect_update(joined("alice")).await;
    bob.expect_update(joined("alice")).await;
    watcher.expect_update(joined("alice")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_line_reaches_everyone_but_its_sender_under_the_stored_name() {
    let server = TestServer::spawn().await;
    let mut alice = Client::named(&server, "alice").await;
    let mut bob = Client::named(&server, "bob").await;
    alice.expect_update(joined("bob")).await;

    alice
        .emit(
            "message",
            json!({"type": "message", "message": "hi bob", "name": "mallory"}),
        )
        .await;
    bob.expect_update(line("alice", "hi bob")).await;

    bob.say("hi alice").await;
    // alice's next event is bob's line: her own line never came back to her.
    alice.expect_update(line("bob", "hi alice")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leave_is_announced_to_the_others() {
    let server = TestServer::spawn().await;
    let mut bob = Client::named(&server, "bob").await;
    let alice = Client::named(&server, "alice").await;
    bob.expect_update(joined("alice")).await;

    alice.disconnect().await;
    bob.expect_update(left("alice")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_socket_that_never_named_itself_leaves_silently() {
    let server = TestServer::spawn().await;
    let mut bob = Client::named(&server, "bob").await;
    let alice = Client::named(&server, "alice").await;
    bob.expect_update(joined("alice")).await;

    let quiet = Client::connect(&server).await;
    quiet.disconnect().await;
    // Wait until the lobby has seen the leave, then show nothing was announced.
    server.wait_for_connections(2).await;
    alice.say("still here").await;
    bob.expect_update(line("alice", "still here")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn names_are_trimmed_cleaned_cut_and_default_to_anonymous() {
    let server = TestServer::spawn().await;
    let mut watcher = Client::connect(&server).await;
    let cases = [
        ("", "익명"),
        ("   ", "익명"),
        ("  bob\u{7} \n", "bob"),
        ("a\u{0}l\u{1b}ice", "alice"),
        (
            "0123456789abcdefghijklmnopqrstuvwxyz",
            "0123456789abcdefghijklmnopqrstuv",
        ),
        (
            "가나다라마바사아자차카타파하가나다라마바사아자차카타파하가나다라마",
            "가나다라마바사아자차카타파하가나다라마바사아자차카타파하가나다라",
        ),
    ];
    for (raw, stored) in cases {
        let mut member = Client::connect(&server).await;
        member.emit("newUser", json!(raw)).await;
        member.expect_update(joined(stored)).await;
        watcher.expect_update(joined(stored)).await;
        member.say("x").await;
        watcher.expect_update(line(stored, "x")).await;
        // Gone before the next asks: a name present is not given twice.
        member.disconnect().await;
        watcher.expect_update(left(stored)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_new_user_renames_and_is_announced_as_a_join() {
    let server = TestServer::spawn().await;
    let mut bob = Client::named(&server, "bob").await;
    let mut alice = Client::named(&server, "alice").await;
    bob.expect_update(joined("alice")).await;

    alice.emit("newUser", json!("alicia")).await;
    alice.expect_update(joined("alicia")).await;
    bob.expect_update(joined("alicia")).await;
    alice.say("new name").await;
    bob.expect_update(line("alicia", "new name")).await;
    alice.disconnect().await;
    bob.expect_update(left("alicia")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_an_error_and_disturbs_nobody() {
    let server = TestServer::spawn().await;
    let mut bob = Client::named(&server, "bob").await;
    let mut mallory = Client::connect(&server).await;

    mallory.say("before my name").await;
    mallory
        .expect_error("choose a name before sending messages")
        .await;
    mallory.emit("newUser", json!(42)).await;
    mallory
        .expect_error("newUser expects your name as a string")
        .await;
    mallory.emit("newUser", json!({"name": "x"})).await;
    mallory
        .expect_error("newUser expects your name as a string")
        .await;

    mallory.emit("newUser", json!("mallory")).await;
    mallory.expect_update(joined("mallory")).await;
    bob.expect_update(joined("mallory")).await;

    let bad_lines = [
        json!("just a string"),
        json!(7),
        json!({"type": "message"}),
        json!({"type": "message", "message": 5}),
        json!({"type": "message", "message": ["a"]}),
    ];
    for bad in bad_lines {
        mallory.emit("message", bad).await;
        mallory
            .expect_error(r#"message expects an object {type: "message", message: "<text>"}"#)
            .await;
    }
    mallory.say(&"x".repeat(2_001)).await;
    mallory
        .expect_error("message is longer than 2000 characters")
        .await;
    mallory.emit("no such event", json!("ignored")).await;

    // Still connected, still chatting; bob saw none of the refused lines.
    let longest = "가".repeat(2_000);
    mallory.say(&longest).await;
    bob.expect_update(line("mallory", &longest)).await;
    bob.say("hello").await;
    mallory.expect_update(line("bob", "hello")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn limits_are_configurable() {
    let server = TestServer::spawn_with(|config| {
        config.max_name_chars = 3;
        config.max_message_chars = 4;
    })
    .await;
    let mut bob = Client::named(&server, "bob").await;
    let mut alice = Client::connect(&server).await;
    alice.emit("newUser", json!("alice")).await;
    alice.expect_update(joined("ali")).await;
    bob.expect_update(joined("ali")).await;
    alice.say("12345").await;
    alice
        .expect_error("message is longer than 4 characters")
        .await;
    alice.say("1234").await;
    bob.expect_update(line("ali", "1234")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn each_senders_lines_arrive_complete_and_in_order() {
    let server = TestServer::spawn().await;
    let mut reader = Client::named(&server, "reader").await;
    let mut writers = Vec::new();
    for name in ["w1", "w2", "w3"] {
        writers.push(Client::named(&server, name).await);
        reader.expect_update(joined(name)).await;
    }
    const LINES: usize = 200;
    let sends = writers.iter().map(|writer| async move {
        for n in 0..LINES {
            writer.say(&n.to_string()).await;
        }
    });
    futures_util::future::join_all(sends).await;

    let mut next = std::collections::HashMap::from([("w1", 0), ("w2", 0), ("w3", 0)]);
    for _ in 0..LINES * 3 {
        let update = reader.expect_event("update").await;
        let name = update["name"].as_str().expect("name");
        let expected = next.get_mut(name).expect("a writer's line");
        assert_eq!(update, line(name, &expected.to_string()));
        *expected += 1;
    }
    assert!(next.values().all(|&n| n == LINES));
}

#[tokio::test(flavor = "multi_thread")]
async fn both_transports_work_and_see_each_other() {
    let server = TestServer::spawn().await;
    let mut polling = Client::connect_with(&server, TransportType::Polling).await;
    polling.emit("newUser", json!("poller")).await;
    polling.expect_update(joined("poller")).await;
    let mut ws = Client::connect_with(&server, TransportType::Websocket).await;
    ws.emit("newUser", json!("socket")).await;
    ws.expect_update(joined("socket")).await;
    polling.expect_update(joined("socket")).await;

    ws.say("over websocket").await;
    polling
        .expect_update(line("socket", "over websocket"))
        .await;
    polling.say("over polling").await;
    ws.expect_update(line("poller", "over polling")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn healthz_counts_named_members_and_connections() {
    let server = TestServer::spawn().await;
    assert_eq!(
        server.get_json("/healthz").await,
        json!({"status": "ok", "members": 0, "connections": 0})
    );
    let _named = Client::named(&server, "a").await;
    let unnamed = Client::connect(&server).await;
    server.wait_for_connections(2).await;
    // A socket is a member from its `newUser` on, not from its connection.
    assert_eq!(
        server.get_json("/healthz").await,
        json!({"status": "ok", "members": 1, "connections": 2})
    );
    unnamed.disconnect().await;
    server.wait_for_connections(1).await;
    assert_eq!(
        server.get_json("/healthz").await,
        json!({"status": "ok", "members": 1, "connections": 1})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_returns_cleanly_and_stops_listening() {
    // What clients see (their transport closes, the process exits 0) is tested with the
    // official client against the binary, in js-client/test/shutdown.test.mjs.
    let server = TestServer::spawn().await;
    let alice = Client::named(&server, "alice").await;
    let http = server.http;

    server.stop().await.expect("clean stop");
    assert!(tokio::net::TcpStream::connect(http).await.is_err());
    drop(alice);
}

/// A client may emit the moment the namespace's connect packet (`40`) arrives, as the
/// official client does with what it buffered while connecting: that first event must
/// not be lost. Many clients at once, over raw WebSocket frames, so that each sends its
/// `newUser` in the very instant after `40`.
#[tokio::test(flavor = "multi_thread")]
async fn an_event_sent_the_moment_the_namespace_is_joined_is_not_lost() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    const CLIENTS: usize = 100;
    let server = TestServer::spawn().await;
    let http = server.http;
    let mut clients = tokio::task::JoinSet::new();
    for index in 0..CLIENTS {
        clients.spawn(async move {
            let stream = tokio::net::TcpStream::connect(http).await.expect("connect");
            let mut ws = common::raw_socketio(http, stream).await;
            ws.send(Message::text(format!(r#"42["newUser","fast{index}"]"#)))
                .await
                .expect("newUser");
            let own_join = format!(
                r#"42["update",{{"type":"connect","name":"SERVER","message":"fast{index}님이 접속하였습니다."}}]"#
            );
            loop {
                let frame = ws.next().await.expect("open").expect("frame");
                let text = frame.to_text().expect("text").to_owned();
                if text == "2" {
                    ws.send(Message::text("3")).await.expect("pong");
                } else if text == own_join {
                    return ws;
                }
            }
        });
    }
    let mut joined = Vec::new();
    while let Some(client) = tokio::time::timeout(common::WAIT, clients.join_next())
        .await
        .expect("every client sees its own join announced")
    {
        joined.push(client.expect("client task"));
    }
    assert_eq!(joined.len(), CLIENTS);
    assert_eq!(
        server.get_json("/api/members").await["count"],
        json!(CLIENTS)
    );
}
