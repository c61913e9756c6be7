//! Several nodes on one Redis are one lobby (`--redis-url`, issue #16): every test starts
//! a redis-server of its own (a unix socket in a directory of its own) and two or three
//! nodes, each on port 0, each test under its own `--cluster` prefix: in this process,
//! or as processes of their own where a test sends them signals. Every count is the
//! whole cluster's.

mod common;

use common::redis::RedisServer;
use common::{
    Client, TcpClient, TestServer, WAIT, WsClient, joined, left, line, ws_joined, ws_left, ws_line,
};
use serde_json::{Value, json};

/// `nodes` chatterbox nodes of cluster `cluster` on `redis`, each answering (so each
/// reads the log from before any test client connects).
async fn nodes(redis: &RedisServer, cluster: &str, nodes: usize) -> Vec<TestServer> {
    let mut started = Vec::new();
    for n in 0..nodes {
        let server = TestServer::spawn_with(|c| {
            c.redis_url = Some(redis.url());
            c.cluster = cluster.to_owned();
            c.node_id = Some(format!("node-{n}"));
        })
        .await;
        server.wait_for_connections(0).await;
        started.push(server);
    }
    started
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
    let mut kim = TcpClient::connect(b.tcp_json).await;
    kim.command("CONNECT", "kim").await;
    kim.expect("kim connected!").await;
    ann.expect_update(joined("kim")).await;
    // The WebSocket client on c is c's first connection (guest-1), and the cluster's
    // third member.
    let mut wes = WsClient::connect(c.websocket).await;
    wes.expect(ws_joined(3)).await;
    kim.expect("guest-1 connected!").await;
    ann.expect_update(joined("guest-1")).await;

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

/// Lines each client sends, as fast as it can.
const LINES_EACH: usize = 50;

#[tokio::test(flavor = "multi_thread")]
async fn six_clients_on_three_nodes_see_one_order() {
    let redis = RedisServer::start().await;
    let cluster = nodes(&redis, "one-order", 3).await;

    // A WebSocket and a TCP JSON client on each node: both protocols echo a sender's
    // own lines, so every client receives every line.
    let mut websockets = Vec::new();
    let mut tcps = Vec::new();
    for (n, node) in cluster.iter().enumerate() {
        // Two members on each node before it: this one is the cluster's 2n+1st.
        let mut ws = WsClient::connect(node.websocket).await;
        ws.expect(ws_joined(2 * n + 1)).await;
        websockets.push((format!("w{n}"), ws));
        let mut tcp = TcpClient::connect(node.tcp_json).await;
        let name = format!("t{n}");
        tcp.command("CONNECT", &name).await;
        tcp.expect(format!("{name} connected!")).await;
        tcps.push((name, tcp));
    }
    // Every join has reached every client before the chat starts: each node relays
    // its own joins from the log too, after everything before them.
    for (n, (_, ws)) in websockets.iter_mut().enumerate() {
        // The joins after its own: the TCP client of its node, then both of each later
        // node.
        let mut named = 0;
        while named < 2 * (cluster.len() - n) - 1 {
            let frame = ws.next().await;
            let value: Value = serde_json::from_str(frame.to_text().expect("text")).expect("JSON");
            assert_eq!(value["type"], "notification", "{value}");
            named += 1;
        }
    }
    for (name, tcp) in &mut tcps {
        // Presence notices only, up to the last join (t2's own, for t2).
        let last_join = "t2 connected!";
        if name != "t2" {
            let skipped = tcp.expect_somewhere(last_join).await;
            assert!(!skipped.contains(" : "), "{skipped:?}");
        }
    }

    let senders: Vec<_> = websockets
        .into_iter()
        .map(|(name, mut ws)| {
            tokio::spawn(async move {
                for n in 0..LINES_EACH {
                    ws.say(&name, &format!("{name} {n}")).await;
                }
                let mut heard = Vec::new();
                while heard.len() < LINES_EACH * 6 {
                    let frame = ws.next().await;
                    let value: Value =
                        serde_json::from_str(frame.to_text().expect("text")).expect("JSON");
                    assert_eq!(value["type"], "message", "{value}");
                    heard.push(format!("{} : {}", value["name"].as_str().expect("name"), {
                        value["msg"].as_str().expect("msg")
                    }));
                }
                heard
            })
        })
        .collect();
    let tcp_senders: Vec<_> = tcps
        .into_iter()
        .map(|(name, mut tcp)| {
            tokio::spawn(async move {
                for n in 0..LINES_EACH {
                    tcp.command("CHAT", &format!("{name} : {name} {n}")).await;
                }
                tcp
            })
        })
        .collect();
    let mut sequences = Vec::new();
    for sender in senders {
        sequences.push(
            tokio::time::timeout(WAIT * 3, sender)
                .await
                .expect("in time")
                .expect("task"),
        );
    }
    // One order: every WebSocket client heard the same 300 lines in the same order...
    let order = sequences[0].clone();
    for heard in &sequences {
        assert_eq!(heard, &order);
    }
    // ...each sender's lines in the order it sent them...
    for sender in ["w0", "w1", "w2", "t0", "t1", "t2"] {
        let own: Vec<_> = order
            .iter()
            .filter(|l| l.starts_with(&format!("{sender} : ")))
            .cloned()
            .collect();
        let sent: Vec<_> = (0..LINES_EACH)
            .map(|n| format!("{sender} : {sender} {n}"))
            .collect();
        assert_eq!(own, sent);
    }
    // ...and every TCP JSON client exactly the same bytes, in that order.
    let expected: String = order.concat();
    for sender in tcp_senders {
        let mut tcp = sender.await.expect("task");
        tcp.expect(&expected).await;
    }

    // One history: the same 300 lines with the same ids, 1 to 300, on every node, in
    // the order every client heard them.
    for node in &cluster {
        let page = history(node, "?limit=1000").await;
        let lines = page["lines"].as_array().expect("lines");
        let ids: Vec<_> = lines
            .iter()
            .map(|l| l["id"].as_i64().expect("id"))
            .collect();
        assert_eq!(ids, (1..=300).collect::<Vec<i64>>());
        let texts: Vec<_> = lines
            .iter()
            .map(|l| {
                format!(
                    "{} : {}",
                    l["name"].as_str().expect("name"),
                    l["text"].as_str().expect("text")
                )
            })
            .collect();
        assert_eq!(texts, order);
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
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_on_one_node_gives_the_lines_said_on_another() {
    let redis = RedisServer::start().await;
    let mut cluster = Vec::new();
    for n in 0..2 {
        let server = TestServer::spawn_with(|c| {
            c.redis_url = Some(redis.url());
            c.cluster = "replay".to_owned();
            c.node_id = Some(format!("node-{n}"));
            c.replay = 2;
        })
        .await;
        server.wait_for_connections(0).await;
        cluster.push(server);
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
