//! Several nodes on one Redis are one lobby (`--redis-url`, issue #16): every test starts
//! a redis-server of its own (a unix socket in a directory of its own) and two or three
//! nodes, each on port 0, each test under its own `--cluster` prefix: in this process,
//! or as processes of their own where a test sends them signals. Every count is the
//! whole cluster's.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::redis::RedisServer;
use common::{
    BinaryServer, Client, TcpClient, TestServer, WAIT, WsClient, joined, left, line, ws_joined,
    ws_left, ws_line,
};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// `nodes` chatterbox nodes of cluster `cluster` on `redis`, each answering (so each
/// reads the log from before any test client connects).
async fn nodes(redis: &RedisServer, cluster: &str, nodes: usize) -> Vec<TestServer> {
    let mut started = Vec::new();
    for n in 0..nodes {
        started.push(node(redis, cluster, &format!("node-{n}"), DEFAULT_LEASE_MS).await);
    }
    started
}

/// The default `--node-lease-ms`.
const DEFAULT_LEASE_MS: u64 = 5_000;

/// A node of `cluster` on `redis` in this process, answering, with a lease of
/// `lease_ms`.
async fn node(redis: &RedisServer, cluster: &str, id: &str, lease_ms: u64) -> TestServer {
    node_with(redis, cluster, id, |c| c.node_lease_ms = lease_ms).await
}

/// A node of `cluster` on `redis` in this process, answering, with settings of its own
/// (`configure`).
async fn node_with(
    redis: &RedisServer,
    cluster: &str,
    id: &str,
    configure: impl FnOnce(&mut chatterbox::Config),
) -> TestServer {
    let server = TestServer::spawn_with(|c| {
        c.redis_url = Some(redis.url());
        c.cluster = cluster.to_owned();
        c.node_id = Some(id.to_owned());
        configure(c);
    })
    .await;
    server.wait_for_connections(0).await;
    server
}

/// A node of `cluster` on `redis` as a process of its own (for the tests that send it
/// signals), with a lease of `lease_ms`, and the addresses of its TCP JSON and
/// WebSocket listeners.
async fn node_process(
    redis: &RedisServer,
    cluster: &str,
    id: &str,
    lease_ms: u64,
) -> (BinaryServer, SocketAddr, SocketAddr) {
    let lease = lease_ms.to_string();
    let url = redis.url();
    let args = ["--redis-url", &url, "--cluster", cluster, "--node-id", id];
    let mut server = BinaryServer::spawn(&[&args[..], &["--node-lease-ms", &lease]].concat());
    let tcp_json = server.listener("tcp-json").await;
    let websocket = server.listener("websocket").await;
    (server, tcp_json, websocket)
}

/// Sends `signal` (`STOP`, `CONT`, `TERM`) to `server`'s process.
fn signal(server: &BinaryServer, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(server.child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal}");
}

/// The names and protocols of `/api/members` on `server`, in order.
async fn members(server: &TestServer) -> Vec<(String, String)> {
    let members = server.get_json("/api/members").await;
    members["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().expect("name").to_owned(),
                m["protocol"].as_str().expect("protocol").to_owned(),
            )
        })
        .collect()
}

/// `name`, `protocol` pairs as [`members`] gives them.
fn listed(members: &[(&str, &str)]) -> Vec<(String, String)> {
    members
        .iter()
        .map(|&(name, protocol)| (name.to_owned(), protocol.to_owned()))
        .collect()
}

/// The texts of the latest lines of `/api/history` on `server`, oldest first.
async fn history_texts(server: &TestServer) -> Vec<String> {
    history(server, "").await["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["text"].as_str().expect("text").to_owned())
        .collect()
}

/// The lines of `/api/history?QUERY` on `server`, as JSON.
async fn history(server: &TestServer, query: &str) -> Value {
    server.get_json(&format!("/api/history{query}")).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_line_on_one_node_reaches_every_protocol_on_the_others() {
    let redis = RedisServer::start().await;
    let cluster = nodes(&redis, "every-protocol", 3).await;
    let (a, b, c) = (&cluster[0], &cluster[1], &cluster[2]);

    let mut ann = Client::named_at(a.url(), "ann").await;
    b.wait_for_members(1).await;
    let mut kim = TcpClient::connect(b.tcp_json).await;
    kim.command("CONNECT", "kim").await;
    kim.expect("kim connected!").await;
    ann.expect_update(joined("kim")).await;
    // The WebSocket client on c is c's first connection (guest-20001: each node
    // takes its member ids from the cluster in blocks of 10,000, c the third), and the cluster's
    // third member.
    // c has read both joins: the first thing wes hears is its own.
    c.wait_for_members(2).await;
    let mut wes = WsClient::connect(c.websocket).await;
    wes.expect(ws_joined(3)).await;
    kim.expect("guest-20001 connected!").await;
    ann.expect_update(joined("guest-20001")).await;

    // Acknowledged once the line is in the log, with the id every node gives it.
    assert_eq!(ann.say_with_ack("hello from a").await, json!({"id": 1}));
    kim.expect("ann : hello from a").await;
    wes.expect(ws_line("ann", "hello from a")).await;

    kim.command("CHAT", "kim : hi from b").await;
    kim.expect("kim : hi from b").await;
    ann.expect_update(line("kim", "hi from b")).await;
    wes.expect(ws_line("kim", "hi from b")).await;

    wes.say("wes", "yo from c").await;
    wes.expect(ws_line("wes", "yo from c")).await;
    kim.expect("wes : yo from c").await;
    ann.expect_update(line("wes", "yo from c")).await;
    assert_eq!(ann.line_ids(), [2, 3]);

    // A leave too, with the cluster's count.
    drop(kim);
    ann.expect_update(left("kim")).await;
    wes.expect(ws_left(2)).await;

    // One history, the same on every node.
    let expected = [
        (1, "ann", "socketio", "hello from a"),
        (2, "kim", "tcp-json", "hi from b"),
        (3, "wes", "websocket", "yo from c"),
    ];
    for node in &cluster {
        let page = history(node, "").await;
        let lines: Vec<_> = page["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .map(|l| {
                (
                    l["id"].as_i64().expect("id"),
                    l["name"].as_str().expect("name").to_owned(),
                    l["protocol"].as_str().expect("protocol").to_owned(),
                    l["text"].as_str().expect("text").to_owned(),
                )
            })
            .collect();
        let expected: Vec<_> = expected
            .iter()
            .map(|&(id, n, p, t)| (id, n.to_owned(), p.to_owned(), t.to_owned()))
            .collect();
        assert_eq!(lines, expected);
        assert_eq!(page["older"], Value::Null);
        let after = history(node, "?after=1&limit=1").await;
        assert_eq!(after["lines"][0]["id"], 2);
        assert_eq!(after["newer"], 2);
        let before = history(node, "?before=3&limit=1").await;
        assert_eq!(before["lines"][0]["text"], "hi from b");
        assert_eq!(before["older"], 2);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn entries_a_node_cannot_read_are_skipped_and_counted() {
    let redis = RedisServer::start().await;
    let cluster = nodes(&redis, "bad-data", 2).await;
    let mut ann = Client::named_at(cluster[0].url(), "ann").await;
    let mut bob = Client::named_at(cluster[1].url(), "bob").await;
    ann.expect_update(joined("bob")).await;

    let key: &[u8] = b"bad-data:log";
    for bad in [
        &b"not json"[..],
        br#"{"v":1,"node":"elsewhere","seq":1,"kind":"line","name":"x""#,
        br#"{"v":99,"node":"elsewhere","seq":1,"kind":"joined","name":"x","members":1}"#,
        br#"{"v":1,"node":"elsewhere","seq":1,"kind":"line","name":"x","protocol":"pigeon","text":"t","time_ms":0}"#,
    ] {
        let reply = redis.command(&[b"XADD", key, b"*", b"e", bad]).await;
        assert!(reply.starts_with('$'), "{reply}");
    }
    let reply = redis
        .command(&[b"XADD", key, b"*", b"other", b"field"])
        .await;
    assert!(reply.starts_with('$'), "{reply}");

    // The next thing either hears is the next real line: nothing garbled came first.
    bob.say("still one lobby").await;
    ann.expect_update(line("bob", "still one lobby")).await;
    ann.say("yes").await;
    bob.expect_update(line("ann", "yes")).await;
    // Five bad entries, skipped by each of the two nodes (the metric is process-wide).
    let metrics = cluster[0].metrics().await;
    assert_eq!(
        metrics.value("chatterbox_cluster_entries_skipped_total"),
        Some(10.0)
    );
    let page = history(&cluster[1], "").await;
    assert_eq!(page["lines"].as_array().expect("lines").len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_says_what_redis_persistence_means_and_fails_without_redis() {
    let redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]).await;
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("unused.db");
    let url = redis.url();
    let mut node = common::BinaryServer::spawn(&[
        "--redis-url",
        &url,
        "--cluster",
        "persistence",
        "--db",
        db.to_str().expect("path"),
    ]);
    let said = node
        .wait_for_log("the durability line", |log| {
            log.iter()
                .find(|l| l.contains("cluster log in Redis:"))
                .cloned()
        })
        .await;
    assert!(
        said.contains(
            "every relayed line is on Redis's disk first (survives kill -9 of Redis and a power cut)"
        ),
        "{said}"
    );
    // The generated node id is logged at start.
    node.wait_for_log("the node id", |log| {
        log.iter()
            .find(|l| l.contains("cluster node") && l.contains("node="))
            .cloned()
    })
    .await;
    assert!(!db.exists(), "a cluster node writes no SQLite history");

    // No Redis there: one clear line, exit 1.
    let missing = dir.path().join("no-redis.sock");
    let output = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_chatterbox"))
            .args(["--host", "127.0.0.1", "--port", "0", "--ws-port", "0"])
            .args(["--tcp-json-port", "0", "--tcp-text-port", "0"])
            .arg("--redis-url")
            .arg(format!("redis+unix://{}", missing.display()))
            .output(),
    )
    .await
    .expect("exits in time")
    .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().expect("a line");
    assert!(
        last.starts_with(&format!(
            "chatterbox: cannot reach Redis at redis+unix://{}: ",
            missing.display()
        )),
        "{stderr}"
    );

    // A single node's history flag: refused at start, before Redis is tried.
    let output = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_chatterbox"))
            .args(["--host", "127.0.0.1", "--port", "0", "--ws-port", "0"])
            .args([
                "--tcp-json-port",
                "0",
                "--tcp-text-port",
                "0",
                "--no-history",
            ])
            .arg("--redis-url")
            .arg(format!("redis+unix://{}", missing.display()))
            .output(),
    )
    .await
    .expect("exits in time")
    .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr.lines().last(),
        Some(
            "chatterbox: --no-history does not apply to a cluster node (--redis-url): its history is the cluster's, in Redis (see --history-keep-lines)"
        ),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_on_one_node_gives_the_lines_said_on_another() {
    let redis = RedisServer::start().await;
    let mut cluster = Vec::new();
    for n in 0..2 {
        cluster.push(node_with(&redis, "replay", &format!("node-{n}"), |c| c.replay = 2).await);
    }
    let ann = Client::named_at(cluster[0].url(), "ann").await;
    for text in ["one", "two", "three"] {
        ann.say_with_ack(text).await;
    }
    let mut bob = Client::connect_to(cluster[1].url(), rust_socketio::TransportType::Any).await;
    bob.emit("newUser", json!("bob")).await;
    bob.expect_update(line("ann", "two")).await;
    bob.expect_update(line("ann", "three")).await;
    bob.expect_update(joined("bob")).await;
    assert_eq!(bob.line_ids(), [2, 3]);
}

#[tokio::test(flavor = "multi_thread")]
async fn presence_and_counts_are_the_whole_clusters() {
    let redis = RedisServer::start().await;
    let cluster = nodes(&redis, "presence", 3).await;
    let mut ann = Client::named_at(cluster[0].url(), "ann").await;
    cluster[1].wait_for_members(1).await;
    let mut kim = TcpClient::connect(cluster[1].tcp_json).await;
    kim.command("CONNECT", "kim").await;
    kim.expect("kim connected!").await;
    ann.expect_update(joined("kim")).await;
    // A socket that never names itself is a connection of its node, not a member.
    let _quiet =
        Client::connect_to(cluster[2].url(), rust_socketio::TransportType::Websocket).await;
    cluster[2].wait_for_connections(1).await;

    let both = listed(&[("ann", "socketio"), ("kim", "tcp-json")]);
    for node in &cluster {
        node.wait_for_members(2).await;
        assert_eq!(members(node).await, both);
    }
    let health = cluster[2].get_json("/healthz").await;
    assert_eq!(
        health,
        json!({"status": "ok", "members": 2, "connections": 1, "redis": "ok"})
    );

    // A WebSocket client on the third node is the cluster's third member; its counts
    // are the cluster's as members come and go on other nodes.
    let mut wes = WsClient::connect(cluster[2].websocket).await;
    wes.expect(ws_joined(3)).await;
    ann.expect_update(joined("guest-20002")).await;
    ann.disconnect().await;
    wes.expect(ws_left(2)).await;
    kim.expect("guest-20002 connected!").await;
    kim.expect("Someone's out.").await;
    for node in &cluster {
        node.wait_for_members(2).await;
        assert_eq!(
            members(node).await,
            listed(&[("kim", "tcp-json"), ("guest-20002", "websocket")])
        );
    }
}

/// A lease short enough for a test, long enough for a busy machine.
const TEST_LEASE_MS: u64 = 1_500;

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_node_is_announced_as_left_once_within_two_leases() {
    let redis = RedisServer::start().await;
    let a = node(&redis, "killed", "a", TEST_LEASE_MS).await;
    let (mut b, b_json, b_ws) = node_process(&redis, "killed", "b", TEST_LEASE_MS).await;
    let mut ann = Client::named_at(a.url(), "ann").await;
    // b has read ann's join: kim's client, which hears the lobby from its connection
    // on, starts with its own join.
    common::wait_for_members(b.http, 1).await;
    let mut kim = TcpClient::connect(Some(b_json)).await;
    kim.command("CONNECT", "kim").await;
    kim.expect("kim connected!").await;
    ann.expect_update(joined("kim")).await;
    let mut wes = WsClient::connect(Some(b_ws)).await;
    wes.expect(ws_joined(3)).await;
    ann.expect_update(joined("guest-10002")).await;

    b.child.kill().expect("kill -9");
    let killed = Instant::now();
    let mut heard = vec![ann.next().await, ann.next().await];
    let within = killed.elapsed();
    heard.sort_by_key(|(_, update)| update.to_string());
    assert_eq!(
        heard,
        [
            ("update".to_owned(), left("guest-10002")),
            ("update".to_owned(), left("kim"))
        ]
    );
    assert!(
        within < Duration::from_millis(2 * TEST_LEASE_MS),
        "announced {within:?} after the kill"
    );
    a.wait_for_members(1).await;
    assert_eq!(members(&a).await, listed(&[("ann", "socketio")]));
    // Once: the next thing ann hears is the next join, no leave again before it.
    let _bob = Client::named_at(a.url(), "bob").await;
    ann.expect_update(joined("bob")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_frozen_past_its_lease_drops_its_clients_and_joins_anew() {
    let redis = RedisServer::start().await;
    let a = node(&redis, "frozen", "a", TEST_LEASE_MS).await;
    let (b, b_json, _) = node_process(&redis, "frozen", "b", TEST_LEASE_MS).await;
    let mut ann = Client::named_at(a.url(), "ann").await;
    // b has read ann's join: kim's client, which hears the lobby from its connection
    // on, starts with its own join.
    common::wait_for_members(b.http, 1).await;
    let mut kim = TcpClient::connect(Some(b_json)).await;
    kim.command("CONNECT", "kim").await;
    kim.expect("kim connected!").await;
    ann.expect_update(joined("kim")).await;

    signal(&b, "STOP");
    ann.expect_update(left("kim")).await;
    a.wait_for_members(1).await;
    signal(&b, "CONT");
    // Back, b finds its lease lost: it drops kim, whose leave the cluster announced.
    kim.expect_closed_with("").await;
    common::wait_for_members(b.http, 1).await;
    let mut kim = TcpClient::connect(Some(b_json)).await;
    kim.command("CONNECT", "kim").await;
    kim.expect("kim connected!").await;
    // No second leave, no ghost: the next thing ann hears is kim's new join.
    ann.expect_update(joined("kim")).await;
    kim.command("CHAT", "kim : back").await;
    kim.expect("kim : back").await;
    ann.expect_update(line("kim", "back")).await;
    assert_eq!(
        members(&a).await,
        listed(&[("ann", "socketio"), ("kim", "tcp-json")])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_shut_down_announces_its_members_as_left() {
    let redis = RedisServer::start().await;
    let a = node(&redis, "shut-down", "a", DEFAULT_LEASE_MS).await;
    // A lease far longer than the wait: the leave comes from the shutdown, not the lease.
    let (mut b, b_json, _) = node_process(&redis, "shut-down", "b", 60_000).await;
    let mut ann = Client::named_at(a.url(), "ann").await;
    // b has read ann's join: kim's client, which hears the lobby from its connection
    // on, starts with its own join.
    common::wait_for_members(b.http, 1).await;
    let mut kim = TcpClient::connect(Some(b_json)).await;
    kim.command("CONNECT", "kim").await;
    kim.expect("kim connected!").await;
    ann.expect_update(joined("kim")).await;

    signal(&b, "TERM");
    ann.expect_update(left("kim")).await;
    kim.expect_closed_with("").await;
    let status = tokio::task::spawn_blocking(move || b.child.wait())
        .await
        .expect("wait")
        .expect("exit status");
    assert_eq!(status.code(), Some(0));
    a.wait_for_members(1).await;
    let _bob = Client::named_at(a.url(), "bob").await;
    ann.expect_update(joined("bob")).await;
}

/// Polls `/healthz` on `node` until its `redis` field is `state`.
async fn wait_for_redis(node: &TestServer, state: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while node.get_json("/healthz").await["redis"] != state {
        assert!(
            tokio::time::Instant::now() < deadline,
            "redis never {state}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn while_redis_is_down_a_line_is_refused_clearly_and_the_lobby_goes_on_after() {
    let mut redis =
        RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]).await;
    // A lease longer than the outage: the nodes keep their members.
    let a = node(&redis, "outage", "a", 20_000).await;
    let b = node(&redis, "outage", "b", 20_000).await;
    let mut ann = Client::named_at(a.url(), "ann").await;
    b.wait_for_members(1).await;
    let mut kim = TcpClient::connect(b.tcp_json).await;
    kim.command("CONNECT", "kim").await;
    kim.expect("kim connected!").await;
    ann.expect_update(joined("kim")).await;
    kim.command("CHAT", "kim : before").await;
    kim.expect("kim : before").await;
    ann.expect_update(line("kim", "before")).await;

    redis.kill();
    wait_for_redis(&b, "unavailable").await;
    kim.command("CHAT", "kim : while redis is down").await;
    kim.expect("error: the lobby is unavailable: line not sent, try again\n")
        .await;
    // A line a node accepted before it found Redis gone is kept and sent once Redis is
    // back (nothing accepted is lost): ann speaks once her node knows.
    wait_for_redis(&a, "unavailable").await;
    ann.say("me neither").await;
    ann.expect_error("the lobby is unavailable: line not sent, try again")
        .await;

    redis.restart().await;
    wait_for_redis(&a, "ok").await;
    wait_for_redis(&b, "ok").await;
    // The same connections go on, and nothing was relayed meanwhile: the next thing
    // each hears is the next line.
    kim.command("CHAT", "kim : after").await;
    kim.expect("kim : after").await;
    ann.expect_update(line("kim", "after")).await;
    assert_eq!(history_texts(&a).await, ["before", "after"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_held_on_one_node_is_taken_on_every_node() {
    let redis = RedisServer::start().await;
    let cluster = nodes(&redis, "names", 2).await;
    let (a, b) = (&cluster[0], &cluster[1]);
    let mut ann = Client::named_at(a.url(), "ann").await;
    // Whatever its case or width, on another node and another protocol.
    b.wait_for_members(1).await;
    let mut other = TcpClient::connect(b.tcp_json).await;
    other.command("CONNECT", "ＡＮＮ").await;
    other
        .expect("error: the name \"ＡＮＮ\" is taken: you are \"ＡＮＮ-2\"\nＡＮＮ-2 connected!")
        .await;
    ann.expect_update(joined("ＡＮＮ-2")).await;
    // Guests of two nodes never share a name: a's second member, b's second.
    let mut wes = WsClient::connect(a.websocket).await;
    wes.expect(ws_joined(3)).await;
    ann.expect_update(joined("guest-2")).await;
    b.wait_for_members(3).await;
    let mut wan = WsClient::connect(b.websocket).await;
    wan.expect(ws_joined(4)).await;
    ann.expect_update(joined("guest-10002")).await;
    // A name set free on one node is free on the other once its leave is read there.
    wes.expect(ws_joined(4)).await;
    ann.disconnect().await;
    wes.expect(ws_left(3)).await;
    b.wait_for_members(3).await;
    let mut again = TcpClient::connect(b.tcp_json).await;
    again.command("CONNECT", "ann").await;
    again.expect("ann connected!").await;
    // A WebSocket client names itself with its lines, silently: the other node knows
    // the name too, and gives it to nobody else.
    wan.say("wendy", "hi").await;
    wan.expect(ws_left(3)).await;
    wan.expect(ws_joined(4)).await;
    wan.expect(ws_line("wendy", "hi")).await;
    wes.expect(ws_joined(4)).await;
    wes.expect(ws_line("wendy", "hi")).await;
    wes.say("Wendy", "me too").await;
    wes.expect(json!({"type": "error", "msg": "the name \"Wendy\" is taken: you are \"Wendy-2\""}))
        .await;
    wes.expect(ws_line("Wendy-2", "me too")).await;
    assert_eq!(
        members(a).await,
        listed(&[
            ("ＡＮＮ-2", "tcp-json"),
            ("Wendy-2", "websocket"),
            ("wendy", "websocket"),
            ("ann", "tcp-json")
        ])
    );
}

/// Lines each of the twelve clients sends, without pauses.
const LINES_OF_TWELVE: usize = 200;

/// A chat line as every test client here writes it down: `<name> : <text>`.
fn heard(name: &str, text: &str) -> String {
    format!("{name} : {text}")
}

#[tokio::test(flavor = "multi_thread")]
async fn twelve_clients_of_three_protocols_on_three_nodes_hear_one_order() {
    let redis = RedisServer::start().await;
    // The rate limit is off in tests and the twelve send without pauses: the cluster
    // relays faster than a debug build's TCP writers (one write per line, as PROTOCOLS.md
    // 4a wants) send, and a member that falls a queue's length behind is cut off as a
    // slow consumer. This test is of the one order, not of that rule: each member's
    // queue holds every line of the test.
    let mut cluster = Vec::new();
    for n in 0..3 {
        let id = format!("node-{n}");
        let queues = |c: &mut chatterbox::Config| c.outbox_messages = 4 * 12 * LINES_OF_TWELVE;
        cluster.push(node_with(&redis, "twelve", &id, queues).await);
    }
    // On each node: two WebSocket clients, a TCP JSON client and a Socket.IO client,
    // joining one after another (each join heard back before the next).
    let mut websockets = Vec::new();
    let mut tcps = Vec::new();
    let mut sockets = Vec::new();
    let mut joined_count = 0;
    for (n, node) in cluster.iter().enumerate() {
        for letter in ["a", "b"] {
            let mut ws = WsClient::connect(node.websocket).await;
            joined_count += 1;
            loop {
                let frame = ws.next().await;
                let value: Value =
                    serde_json::from_str(frame.to_text().expect("text")).expect("JSON");
                if value == ws_joined(joined_count) {
                    break;
                }
                assert_eq!(value, ws_joined(joined_count - 1), "only the join before");
            }
            websockets.push((format!("w{n}{letter}"), ws));
        }
        node.wait_for_members(joined_count).await;
        let mut tcp = TcpClient::connect(node.tcp_json).await;
        let name = format!("t{n}");
        tcp.command("CONNECT", &name).await;
        tcp.expect(format!("{name} connected!")).await;
        tcps.push((name, tcp));
        joined_count += 1;
        node.wait_for_members(joined_count).await;
        let name = format!("s{n}");
        sockets.push((name.clone(), Client::named_at(node.url(), &name).await));
        joined_count += 1;
    }
    assert_eq!(joined_count, 12);
    for node in &cluster {
        node.wait_for_members(12).await;
    }
    // Every client has heard every join before the chat starts.
    for (_, ws) in &mut websockets {
        loop {
            let frame = ws.next().await;
            let value: Value = serde_json::from_str(frame.to_text().expect("text")).expect("JSON");
            assert_eq!(value["type"], "notification", "{value}");
            if value == ws_joined(12) {
                break;
            }
        }
    }
    for (_, tcp) in &mut tcps {
        let skipped = tcp.expect_somewhere("s2 connected!").await;
        assert!(!skipped.contains(" : "), "{skipped:?}");
    }
    for (name, socket) in &mut sockets {
        if name != "s2" {
            loop {
                let (event, update) = socket.next().await;
                assert_eq!(event, "update");
                assert_eq!(update["type"], "connect", "{update}");
                if update == joined("s2") {
                    break;
                }
            }
        }
    }

    let names: Vec<String> = websockets
        .iter()
        .map(|(name, _)| name.clone())
        .chain(tcps.iter().map(|(name, _)| name.clone()))
        .chain(sockets.iter().map(|(name, _)| name.clone()))
        .collect();
    let total = names.len() * LINES_OF_TWELVE;
    let text = |name: &str, n: usize| format!("{name} {n}");
    // Every client reads while it sends, as a chat client does (one that did not would
    // be cut off as a slow consumer once its queue and its socket's buffers are full).
    let ws_tasks: Vec<_> = websockets
        .into_iter()
        .map(|(name, ws)| {
            tokio::spawn(async move {
                use futures_util::{SinkExt, StreamExt};
                let (mut sink, mut frames) = ws.socket.split();
                let send = async {
                    for n in 0..LINES_OF_TWELVE {
                        let line = json!({"name": name, "msg": text(&name, n)}).to_string();
                        sink.send(Message::text(line)).await.expect("send");
                    }
                };
                let read = async {
                    let mut lines = Vec::new();
                    while lines.len() < total {
                        let frame = tokio::time::timeout(WAIT, frames.next())
                            .await
                            .expect("a frame in time")
                            .expect("open")
                            .expect("a frame");
                        let value: Value =
                            serde_json::from_str(frame.to_text().expect("text")).expect("JSON");
                        assert_eq!(value["type"], "message", "{value}");
                        lines.push(heard(
                            value["name"].as_str().expect("name"),
                            value["msg"].as_str().expect("msg"),
                        ));
                    }
                    lines
                };
                tokio::join!(send, read).1
            })
        })
        .collect();
    // TCP JSON has no framing: its client reads every line's bytes (the same number in
    // any order), checked against the one order below.
    let tcp_bytes: usize = names
        .iter()
        .flat_map(|name| (0..LINES_OF_TWELVE).map(|n| heard(name, &text(name, n)).len()))
        .sum();
    let tcp_tasks: Vec<_> = tcps
        .into_iter()
        .map(|(name, mut tcp)| {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut received = std::mem::take(&mut tcp.received);
                let (mut reader, mut writer) = tcp.stream.split();
                let send = async {
                    for n in 0..LINES_OF_TWELVE {
                        let content = heard(&name, &text(&name, n));
                        let command = json!({"type": "CHAT", "content": content}).to_string();
                        writer.write_all(command.as_bytes()).await.expect("write");
                    }
                };
                let read = async {
                    let mut buf = [0; 8192];
                    while received.len() < tcp_bytes {
                        let n = tokio::time::timeout(WAIT, reader.read(&mut buf))
                            .await
                            .expect("bytes in time")
                            .expect("read");
                        assert_ne!(
                            n,
                            0,
                            "closed after {} bytes: {:?}",
                            received.len(),
                            String::from_utf8_lossy(
                                &received[received.len().saturating_sub(200)..]
                            )
                        );
                        received.extend_from_slice(&buf[..n]);
                    }
                };
                tokio::join!(send, read);
                String::from_utf8(received).expect("UTF-8")
            })
        })
        .collect();
    let socket_tasks: Vec<_> = sockets
        .into_iter()
        .map(|(name, mut socket)| {
            tokio::spawn(async move {
                for n in 0..LINES_OF_TWELVE {
                    socket.say(&text(&name, n)).await;
                }
                // Socket.IO does not echo a sender's own lines.
                let mut lines = Vec::new();
                while lines.len() < total - LINES_OF_TWELVE {
                    let (event, update) = socket.next().await;
                    assert_eq!(event, "update");
                    assert_eq!(update["type"], "message", "{update}");
                    lines.push(heard(
                        update["name"].as_str().expect("name"),
                        update["message"].as_str().expect("message"),
                    ));
                }
                (name, lines)
            })
        })
        .collect();

    let mut orders = Vec::new();
    for task in ws_tasks {
        orders.push(
            tokio::time::timeout(WAIT * 3, task)
                .await
                .expect("in time")
                .expect("task"),
        );
    }
    // One order: every WebSocket client heard the same 2,400 lines in the same order...
    let order = orders[0].clone();
    for heard_here in &orders {
        assert_eq!(heard_here, &order);
    }
    // ...each sender's lines in the order it sent them...
    for name in &names {
        let own: Vec<_> = order
            .iter()
            .filter(|l| l.starts_with(&format!("{name} : ")))
            .cloned()
            .collect();
        let sent: Vec<_> = (0..LINES_OF_TWELVE)
            .map(|n| heard(name, &text(name, n)))
            .collect();
        assert_eq!(own, sent);
    }
    // ...every Socket.IO client the same order without its own lines...
    for task in socket_tasks {
        let (name, lines) = tokio::time::timeout(WAIT * 3, task)
            .await
            .expect("in time")
            .expect("task");
        let others: Vec<_> = order
            .iter()
            .filter(|l| !l.starts_with(&format!("{name} : ")))
            .cloned()
            .collect();
        assert_eq!(lines, others, "{name}");
    }
    // ...and every TCP JSON client exactly those bytes, in that order.
    let expected: String = order.concat();
    for task in tcp_tasks {
        let received = tokio::time::timeout(WAIT * 3, task)
            .await
            .expect("in time")
            .expect("task");
        // After the lines, only the leaves of clients that are done already.
        let (lines, after) = received.split_at(expected.len().min(received.len()));
        assert_eq!(after.replace("Someone's out.", ""), "", "after the lines");
        let same = lines
            .bytes()
            .zip(expected.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        assert!(
            lines == expected,
            "TCP JSON bytes differ from byte {same}: got {:?}, expected {:?}",
            &received[same.saturating_sub(40)..(same + 80).min(received.len())],
            &expected[same.saturating_sub(40)..(same + 80).min(expected.len())],
        );
    }
    // One history: the 2,400 lines with ids 1 to 2,400 on every node, in that order.
    for node in &cluster {
        let mut texts = Vec::new();
        let mut ids = Vec::new();
        let mut after = 0;
        loop {
            let page = history(node, &format!("?after={after}&limit=1000")).await;
            for l in page["lines"].as_array().expect("lines") {
                ids.push(l["id"].as_i64().expect("id"));
                texts.push(heard(
                    l["name"].as_str().expect("name"),
                    l["text"].as_str().expect("text"),
                ));
            }
            match page["newer"].as_i64() {
                Some(newer) => after = newer,
                None => break,
            }
        }
        assert_eq!(ids, (1..=2400).collect::<Vec<i64>>());
        assert_eq!(texts, order);
    }
}

/// Asks for a seat in `room` and says `text` there until the line comes back: the
/// room is full until a seat is freed on another node (a condition polled, refused
/// each time as the protocol says).
async fn sit_once_free(socket: &mut Client, room: &str, text: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        socket.emit("room", json!(room)).await;
        socket.emit("chat message", json!(text)).await;
        let (event, value) = socket.next().await;
        if event == "chat message" {
            assert_eq!(value, json!(text));
            return;
        }
        assert_eq!((event.as_str(), value), ("result", json!("failed")));
        socket
            .expect_error("join a room before sending chat messages")
            .await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "no seat freed in {room}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A Socket.IO socket at `url` that never names itself (rooms only), connected.
async fn room_socket(url: String) -> Client {
    Client::connect_to(url, rust_socketio::TransportType::Websocket).await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_sockets_on_two_nodes_share_a_room_and_the_last_seat_goes_to_one() {
    let redis = RedisServer::start().await;
    let cluster = nodes(&redis, "rooms", 2).await;
    let (a, b) = (&cluster[0], &cluster[1]);
    let mut ann = room_socket(a.url()).await;
    let mut bob = room_socket(b.url()).await;
    // Seated once its own line comes back (Redis gives the seats).
    ann.emit("room", json!("r1")).await;
    ann.emit("chat message", json!("ann in")).await;
    assert_eq!(ann.expect_event("chat message").await, json!("ann in"));
    bob.emit("room", json!("r1")).await;
    bob.emit("chat message", json!("bob in")).await;
    assert_eq!(bob.expect_event("chat message").await, json!("bob in"));
    assert_eq!(ann.expect_event("chat message").await, json!("bob in"));
    // Lines reach both seats, the sender's included, on both nodes.
    ann.emit("chat message", json!("hi from a")).await;
    assert_eq!(ann.expect_event("chat message").await, json!("hi from a"));
    assert_eq!(bob.expect_event("chat message").await, json!("hi from a"));
    bob.emit("chat message", json!("hi from b")).await;
    assert_eq!(bob.expect_event("chat message").await, json!("hi from b"));
    assert_eq!(ann.expect_event("chat message").await, json!("hi from b"));
    // Full on every node.
    let mut cat = room_socket(a.url()).await;
    cat.emit("room", json!("r1")).await;
    assert_eq!(cat.expect_event("result").await, json!("failed"));
    cat.emit("chat message", json!("let me in")).await;
    cat.expect_error("join a room before sending chat messages")
        .await;

    // Two sockets on two nodes racing for the last seat of a room: one gets it.
    for round in 0..10 {
        let room = format!("race-{round}");
        let mut holder = room_socket(a.url()).await;
        holder.emit("room", json!(room)).await;
        holder.emit("chat message", json!("seated")).await;
        assert_eq!(holder.expect_event("chat message").await, json!("seated"));
        let mut racers = vec![room_socket(a.url()).await, room_socket(b.url()).await];
        for racer in &racers {
            racer.emit("room", json!(room)).await;
        }
        let mut seated = 0;
        for racer in &mut racers {
            racer.emit("chat message", json!("who won?")).await;
            let (event, value) = racer.next().await;
            match event.as_str() {
                "chat message" => {
                    assert_eq!(value, json!("who won?"));
                    seated += 1;
                }
                "result" => {
                    assert_eq!(value, json!("failed"));
                    racer
                        .expect_error("join a room before sending chat messages")
                        .await;
                }
                other => panic!("unexpected {other} {value}"),
            }
        }
        assert_eq!(seated, 1, "round {round}");
        assert_eq!(holder.expect_event("chat message").await, json!("who won?"));
        for racer in racers {
            racer.disconnect().await;
        }
        holder.disconnect().await;
    }

    // A seat is freed when its holder leaves: bob goes, cat (on the other node) sits.
    bob.disconnect().await;
    sit_once_free(&mut cat, "r1", "in at last").await;
    assert_eq!(ann.expect_event("chat message").await, json!("in at last"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_seats_of_a_killed_node_are_freed() {
    let redis = RedisServer::start().await;
    let a = node(&redis, "dead-seats", "a", TEST_LEASE_MS).await;
    let (mut b, _, _) = node_process(&redis, "dead-seats", "b", TEST_LEASE_MS).await;
    let mut ann = room_socket(a.url()).await;
    let bob = room_socket(b.url()).await;
    ann.emit("room", json!("r")).await;
    ann.emit("chat message", json!("ann here")).await;
    assert_eq!(ann.expect_event("chat message").await, json!("ann here"));
    bob.emit("room", json!("r")).await;
    bob.emit("chat message", json!("bob here")).await;
    assert_eq!(ann.expect_event("chat message").await, json!("bob here"));
    let mut cat = room_socket(a.url()).await;
    cat.emit("room", json!("r")).await;
    assert_eq!(cat.expect_event("result").await, json!("failed"));

    b.child.kill().expect("kill -9");
    // Once b's lease has run out, its seat is free: cat gets in.
    sit_once_free(&mut cat, "r", "cat here").await;
    assert_eq!(ann.expect_event("chat message").await, json!("cat here"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_line_on_its_way_when_redis_freezes_is_relayed_once_when_it_thaws() {
    let redis = RedisServer::start().await;
    let a = node(&redis, "frozen-redis", "a", 20_000).await;
    let b = node(&redis, "frozen-redis", "b", 20_000).await;
    let mut ann = Client::named_at(a.url(), "ann").await;
    b.wait_for_members(1).await;
    let mut kim = TcpClient::connect(b.tcp_json).await;
    kim.command("CONNECT", "kim").await;
    kim.expect("kim connected!").await;
    ann.expect_update(joined("kim")).await;

    // Redis freezes: a line sent at once is accepted (nothing has failed yet) and its
    // append waits; tried again and again, it may reach Redis more than once.
    redis.signal("STOP");
    kim.command("CHAT", "kim : on its way").await;
    wait_for_redis(&b, "unavailable").await;
    kim.command("CHAT", "kim : while frozen").await;
    kim.expect("error: the lobby is unavailable: line not sent, try again\n")
        .await;
    redis.signal("CONT");
    // Relayed once, in its place, then the chat goes on.
    kim.expect("kim : on its way").await;
    ann.expect_update(line("kim", "on its way")).await;
    wait_for_redis(&b, "ok").await;
    kim.command("CHAT", "kim : after").await;
    kim.expect("kim : after").await;
    ann.expect_update(line("kim", "after")).await;
    assert_eq!(history_texts(&a).await, ["on its way", "after"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_that_missed_trimmed_entries_reads_presence_anew() {
    let redis = RedisServer::start().await;
    let a = node_with(&redis, "trimmed", "a", |c| c.cluster_log_entries = 1_000).await;
    // b's lease outlasts its pause: it is not given up, it only falls behind.
    let (b, b_json, _) = node_process(&redis, "trimmed", "b", 60_000).await;
    let mut kim = TcpClient::connect(Some(b_json)).await;
    kim.command("CONNECT", "kim").await;
    kim.expect("kim connected!").await;

    signal(&b, "STOP");
    let ann = Client::named_at(a.url(), "ann").await;
    // Far more lines than the log keeps: ann's join is trimmed away before b reads it.
    let said: Vec<String> = (0..3_000).map(|n| format!("ann : line {n}")).collect();
    for n in 0..3_000 {
        ann.say(&format!("line {n}")).await;
    }
    ann.say_with_ack("after the gap").await;
    signal(&b, "CONT");

    // kim hears ann's join, if it was still there, then the lines the log kept, in
    // order up to the last, then the next one.
    let heard = kim.expect_somewhere("ann : after the gap").await;
    let heard = heard.strip_prefix("ann connected!").unwrap_or(&heard);
    let kept = (0..said.len())
        .find(|&from| said[from..].concat() == heard)
        .unwrap_or_else(|| panic!("not a tail of the lines said, in order: {heard:?}"));
    assert!(kept > 0, "the log kept every line: nothing was trimmed");
    // b knows ann is here though her join was trimmed, and says it missed entries.
    common::wait_for_members(b.http, 2).await;
    let members: Value =
        serde_json::from_str(&common::http_get(b.http, "/api/members").await).expect("JSON");
    let names: Vec<_> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["kim", "ann"]);
    let metrics = common::http_get(b.http, "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "chatterbox_cluster_log_gaps_total 1"),
        "{metrics}"
    );
}
