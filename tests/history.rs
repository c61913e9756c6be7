//! Chat history and presence: what is stored, what survives a restart and a crash, the
//! order on disk, the history and members APIs, replay, and a database that cannot be
//! opened.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{
    BinaryServer, Client, TcpClient, TestServer, WAIT, WsClient, http_request, joined, line,
};
use rust_socketio::TransportType;
use serde_json::{Value, json};
use tokio::sync::watch;

/// Every stored line as (name, protocol, text), oldest first.
fn stored(db: &std::path::Path) -> Vec<(String, String, String)> {
    let connection = rusqlite::Connection::open(db).expect("open the history");
    let mut select = connection
        .prepare("SELECT name, protocol, text FROM lines ORDER BY id")
        .expect("select");
    select
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// `GET path`: status code and JSON body.
async fn get(server: &TestServer, path: &str) -> (u16, Value) {
    let (head, body) = http_request(server.http, path, &[]).await;
    let status = head[9..12].parse().expect("a status code");
    let body = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, body)
}

#[tokio::test]
async fn a_restart_keeps_the_history_and_replay_sends_it_before_the_join() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("kept.db");
    let server = TestServer::spawn_with(|c| c.db = db.clone()).await;
    let mut watcher = Client::named(&server, "watcher").await;
    let ann = Client::named(&server, "ann").await;
    watcher.expect_update(joined("ann")).await;
    ann.say("before the restart").await;
    // Relayed means committed: it is on disk once the watcher has it.
    watcher
        .expect_update(line("ann", "before the restart"))
        .await;
    let mut tcp = TcpClient::connect(server.tcp_json).await;
    tcp.command("CONNECT", "tj").await;
    watcher.expect_update(joined("tj")).await;
    tcp.command("CHAT", "tj : from tcp").await;
    watcher.expect_update(line("tj", "from tcp")).await;
    drop((watcher, ann, tcp));
    server.stop().await.expect("clean stop");

    let server = TestServer::spawn_with(|c| {
        c.db = db.clone();
        c.replay = 2;
    })
    .await;
    let (status, page) = get(&server, "/api/history").await;
    assert_eq!(status, 200);
    let lines: Vec<_> = page["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| (l["name"].clone(), l["protocol"].clone(), l["text"].clone()))
        .collect();
    assert_eq!(
        lines,
        [
            (json!("ann"), json!("socketio"), json!("before the restart")),
            (json!("tj"), json!("tcp-json"), json!("from tcp")),
        ]
    );
    assert_eq!(page["older"], Value::Null);

    let stored_ids: Vec<i64> = page["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| l["id"].as_i64().expect("id"))
        .collect();

    let mut late = Client::connect(&server).await;
    late.emit("newUser", json!("late")).await;
    late.expect_update(line("ann", "before the restart")).await;
    late.expect_update(line("tj", "from tcp")).await;
    late.expect_update(joined("late")).await;
    // Replayed lines are stored lines: they carry their ids.
    assert_eq!(late.line_ids(), stored_ids);
    // Replay is for a member's first name only.
    late.emit("newUser", json!("later")).await;
    late.expect_update(joined("later")).await;
}

#[tokio::test]
async fn the_history_keeps_the_latest_lines_it_is_told_to_and_pages_end_there() {
    let server = TestServer::spawn_with(|c| {
        c.history_keep_lines = 3;
        c.replay = 5;
    })
    .await;
    let mut watcher = Client::named(&server, "watcher").await;
    let ann = Client::named(&server, "ann").await;
    watcher.expect_update(joined("ann")).await;
    for n in 1..=5 {
        ann.say(&format!("line {n}")).await;
        watcher
            .expect_update(line("ann", &format!("line {n}")))
            .await;
    }
    // The writer deletes after each commit, before it takes what came next: once this
    // join is relayed, what the last line's commit put past the count is gone.
    let mut late = Client::connect(&server).await;
    late.emit("newUser", json!("late")).await;
    // The replay asked for 5: the 3 kept.
    for n in 3..=5 {
        late.expect_update(line("ann", &format!("line {n}"))).await;
    }
    late.expect_update(joined("late")).await;
    watcher.expect_update(joined("late")).await;

    let texts = |page: &Value| -> Vec<String> {
        page["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .map(|l| l["text"].as_str().expect("text").to_owned())
            .collect()
    };
    let (status, page) = get(&server, "/api/history").await;
    assert_eq!(status, 200);
    assert_eq!(texts(&page), ["line 3", "line 4", "line 5"]);
    assert_eq!(page["older"], Value::Null);
    let (_, newest) = get(&server, "/api/history?limit=2").await;
    assert_eq!(texts(&newest), ["line 4", "line 5"]);
    let line_4 = newest["lines"][0]["id"].as_i64().expect("an id");
    assert_eq!(newest["older"], json!(line_4));
    // The page before starts in deleted lines: what is kept of it, and no older page.
    let (_, oldest) = get(&server, &format!("/api/history?limit=2&before={line_4}")).await;
    assert_eq!(texts(&oldest), ["line 3"]);
    assert_eq!(oldest["older"], Value::Null);
    // Before a deleted line: nothing.
    let line_3 = oldest["lines"][0]["id"].as_i64().expect("an id");
    let (status, gone) = get(&server, &format!("/api/history?before={line_3}")).await;
    assert_eq!(status, 200);
    assert_eq!(gone, json!({"lines": [], "older": null}));
}

#[tokio::test]
async fn no_history_writes_nothing_and_the_api_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("never.db");
    let server = TestServer::spawn_with(|c| {
        c.db = db.clone();
        c.no_history = true;
        c.replay = 5;
    })
    .await;
    let mut bob = Client::named(&server, "bob").await;
    let ann = Client::named(&server, "ann").await;
    bob.expect_update(joined("ann")).await;
    ann.say("not kept").await;
    bob.expect_update(line("ann", "not kept")).await;
    // Not stored: no id, on the line or in the acknowledgement our page asks for.
    assert_eq!(ann.say_with_ack("not kept either").await, json!({}));
    bob.expect_update(line("ann", "not kept either")).await;
    assert_eq!(bob.line_ids(), [0i64; 0]);
    let (status, body) = get(&server, "/api/history").await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"error": "the history is off on this server"}));
    let (status, body) = get(&server, "/api/history?after=0").await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"error": "the history is off on this server"}));
    // Nothing to replay without a history: the join comes at once.
    let mut late = Client::connect(&server).await;
    late.emit("newUser", json!("late")).await;
    late.expect_update(joined("late")).await;
    server.stop().await.expect("clean stop");
    let files: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert_eq!(files.len(), 0, "{files:?}");
}

#[tokio::test]
async fn lines_are_on_disk_in_the_order_they_were_relayed() {
    const LINES: usize = 15;
    let server = TestServer::spawn().await;
    let mut observer = Client::named(&server, "observer").await;
    let mut tasks = Vec::new();
    let mut last_lines = HashSet::new();
    let mut clients = Vec::new();
    for n in 0..2 {
        let name = format!("s{n}");
        clients.push((Client::named(&server, &name).await, name));
    }
    for (client, name) in clients {
        last_lines.insert(format!("{name}-{}", LINES - 1));
        tasks.push(tokio::spawn(async move {
            for i in 0..LINES {
                client.say(&format!("{name}-{i}")).await;
            }
            client
        }));
    }
    let mut ws_writers = Vec::new();
    let mut tcp_writers = Vec::new();
    for n in 0..2 {
        let mut ws = WsClient::connect(server.websocket).await;
        let name = format!("w{n}");
        last_lines.insert(format!("{name}-{}", LINES - 1));
        ws_writers.push(tokio::spawn(async move {
            for i in 0..LINES {
                ws.say(&name, &format!("{name}-{i}")).await;
            }
            ws
        }));
        let mut tcp = TcpClient::connect(server.tcp_json).await;
        let name = format!("t{n}");
        last_lines.insert(format!("{name}-{}", LINES - 1));
        tcp_writers.push(tokio::spawn(async move {
            tcp.command("CONNECT", &name).await;
            for i in 0..LINES {
                tcp.command("CHAT", &format!("{name}-{i}")).await;
            }
            tcp
        }));
        let mut text = TcpClient::connect(server.tcp_text).await;
        let last = format!("x{n}-{}", LINES - 1);
        last_lines.insert(last);
        tcp_writers.push(tokio::spawn(async move {
            for i in 0..LINES {
                text.send(format!("x{n}-{i}")).await;
            }
            text
        }));
    }
    // The observer sees every line once; TCP text chunks may arrive glued together, and
    // are then one line, on the wire and on disk alike.
    let mut relayed = Vec::new();
    while !last_lines.is_empty() {
        let update = observer.expect_message_eventually().await;
        let text = update["message"].as_str().expect("text").to_owned();
        last_lines.retain(|last| !text.ends_with(last.as_str()));
        relayed.push((update["name"].as_str().expect("name").to_owned(), text));
    }
    let (status, page) = get(&server, "/api/history?limit=1000").await;
    assert_eq!(status, 200);
    let on_disk: Vec<(String, String)> = page["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            (
                l["name"].as_str().unwrap().into(),
                l["text"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(on_disk, relayed);
    for name in ["s0", "s1", "w0", "w1", "t0", "t1"] {
        let own: Vec<_> = relayed.iter().filter(|(n, _)| n == name).collect();
        assert_eq!(own.len(), LINES, "{name}");
    }
    for task in tasks {
        task.await.expect("socket.io writer");
    }
    for task in ws_writers {
        task.await.expect("ws writer");
    }
    for task in tcp_writers {
        task.await.expect("tcp writer");
    }
}

#[tokio::test]
async fn the_history_api_pages_caps_and_refuses_bad_parameters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("seeded.db");
    drop(chatterbox::log::sqlite::Store::open(&db).expect("create the schema"));
    {
        let mut connection = rusqlite::Connection::open(&db).expect("open");
        let seed = connection.transaction().expect("transaction");
        for n in 1..=2_500 {
            seed.execute(
                "INSERT INTO lines (time_ms, name, protocol, text) VALUES (?1, 'ann', 'socketio', ?2)",
                rusqlite::params![1_700_000_000_000i64 + n, format!("line {n}")],
            )
            .expect("insert");
        }
        seed.commit().expect("commit");
    }
    let server = TestServer::spawn_with(|c| c.db = db.clone()).await;
    let ids = |page: &Value| -> Vec<i64> {
        page["lines"]
            .as_array()
            .expect("lines")
            .iter()
            .map(|l| l["id"].as_i64().expect("id"))
            .collect()
    };

    let (status, page) = get(&server, "/api/history").await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page), (2_401..=2_500).collect::<Vec<_>>());
    assert_eq!(page["older"], 2_401);
    assert_eq!(
        page["lines"][99],
        json!({"id": 2500, "time": "2023-11-14T22:13:22.500Z", "name": "ann",
               "protocol": "socketio", "text": "line 2500"})
    );

    let (_, page) = get(&server, "/api/history?limit=5000").await;
    assert_eq!(ids(&page), (1_501..=2_500).collect::<Vec<_>>());

    // Paging back from the newest reaches the first line, in order, exactly once.
    let mut all = Vec::new();
    let mut path = "/api/history?limit=1000".to_owned();
    loop {
        let (status, page) = get(&server, &path).await;
        assert_eq!(status, 200);
        let mut older_lines = ids(&page);
        older_lines.extend(all);
        all = older_lines;
        match page["older"].as_i64() {
            Some(before) => path = format!("/api/history?limit=1000&before={before}"),
            None => break,
        }
    }
    assert_eq!(all, (1..=2_500).collect::<Vec<_>>());

    let (_, page) = get(&server, "/api/history?before=3&limit=10").await;
    assert_eq!(ids(&page), [1, 2]);
    assert_eq!(page["older"], Value::Null);

    let limit_error =
        json!({"error": "limit must be a whole number from 1 (at most 1000 are returned)"});
    for bad in ["limit=0", "limit=abc", "limit=-5", "limit="] {
        assert_eq!(
            get(&server, &format!("/api/history?{bad}")).await,
            (400, limit_error.clone()),
            "{bad}"
        );
    }
    let before_error = json!({"error": "before must be a line id (a whole number)"});
    assert_eq!(
        get(&server, "/api/history?before=x1").await,
        (400, before_error)
    );

    // Forward from a line: what came after it, oldest first.
    let (status, page) = get(&server, "/api/history?after=2490").await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page), (2_491..=2_500).collect::<Vec<_>>());
    assert_eq!(page["newer"], Value::Null);
    assert_eq!(page.get("older"), None);
    let (_, page) = get(&server, "/api/history?after=7&limit=3").await;
    assert_eq!(ids(&page), [8, 9, 10]);
    assert_eq!(page["newer"], 10);
    let (_, page) = get(&server, "/api/history?after=2500").await;
    assert_eq!(ids(&page), Vec::<i64>::new());
    assert_eq!(page["newer"], Value::Null);
    // Paging forward from the start reaches the newest line, in order, exactly once.
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let (status, page) = get(&server, &format!("/api/history?after={after}&limit=5000")).await;
        assert_eq!(status, 200);
        let lines = ids(&page);
        assert!(lines.len() <= 1_000);
        all.extend(lines);
        match page["newer"].as_i64() {
            Some(newer) => after = newer,
            None => break,
        }
    }
    assert_eq!(all, (1..=2_500).collect::<Vec<_>>());
    assert_eq!(
        get(&server, "/api/history?after=x").await,
        (
            400,
            json!({"error": "after must be a line id (a whole number)"})
        )
    );
    assert_eq!(
        get(&server, "/api/history?after=3&before=9").await,
        (
            400,
            json!({"error": "before and after cannot be asked together: one page goes one way"})
        )
    );
}

/// Every stored line has one id on the wire: the `id` of its Socket.IO `update` (and
/// of the acknowledgement its sender asked for) is its `/api/history` id.
#[tokio::test]
async fn socketio_lines_carry_their_history_id() {
    let server = TestServer::spawn().await;
    let mut watcher = Client::named(&server, "watcher").await;
    let mut ann = Client::named(&server, "ann").await;
    watcher.expect_update(joined("ann")).await;
    ann.say("one").await;
    watcher.expect_update(line("ann", "one")).await;
    let ack = watcher.say_with_ack("two").await;
    ann.expect_update(line("watcher", "two")).await;
    let mut tcp = TcpClient::connect(server.tcp_json).await;
    tcp.command("CONNECT", "tj").await;
    watcher.expect_update(joined("tj")).await;
    ann.expect_update(joined("tj")).await;
    tcp.command("CHAT", "tj : three").await;
    watcher.expect_update(line("tj", "three")).await;
    ann.expect_update(line("tj", "three")).await;

    let (_, page) = get(&server, "/api/history").await;
    let stored: Vec<(i64, String)> = page["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            (
                l["id"].as_i64().expect("id"),
                l["text"].as_str().expect("text").into(),
            )
        })
        .collect();
    let texts: Vec<&str> = stored.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(texts, ["one", "two", "three"]);
    let id = |n: usize| stored[n].0;
    // The watcher got one and three (not its own two: Socket.IO does not echo), and
    // was told two's id in the acknowledgement.
    assert_eq!(watcher.line_ids(), [id(0), id(2)]);
    assert_eq!(ack, json!({"id": id(1)}));
    assert_eq!(ann.line_ids(), [id(1), id(2)]);
    // What came after the first line, as a client that has it would ask.
    let (_, after) = get(&server, &format!("/api/history?after={}", id(0))).await;
    assert_eq!(
        after["lines"],
        json!(page["lines"].as_array().expect("lines")[1..])
    );
}

#[tokio::test]
async fn members_of_every_protocol_show_in_the_api_and_the_live_list() {
    let server = TestServer::spawn().await;
    let names = |list: &Value| -> Vec<(String, String)> {
        list["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| {
                assert!(m["since"].as_str().expect("since").ends_with('Z'), "{m}");
                (
                    m["name"].as_str().unwrap().into(),
                    m["protocol"].as_str().unwrap().into(),
                )
            })
            .collect()
    };
    assert_eq!(
        get(&server, "/api/members").await,
        (200, json!({"count": 0, "members": []}))
    );

    let mut page = Client::named(&server, "ann").await;
    page.emit("members", Value::Null).await;
    let first = page.expect_event("members").await;
    assert_eq!(first["count"], 1);
    assert_eq!(names(&first), [("ann".into(), "socketio".into())]);

    // One at a time, so that the connection order is known: a `members` event comes
    // after every change (a burst of changes may come as fewer lists).
    async fn list_of(page: &mut Client, count: usize) -> Value {
        loop {
            let (event, value) = page.next().await;
            if event == "members" && value["count"] == count {
                return value;
            }
            assert!(event == "members" || event == "update", "{event} {value}");
        }
    }
    let ws = WsClient::connect(server.websocket).await;
    list_of(&mut page, 2).await;
    let mut tcp = TcpClient::connect(server.tcp_json).await;
    tcp.command("CONNECT", "tj").await;
    list_of(&mut page, 3).await;
    let text = TcpClient::connect(server.tcp_text).await;
    let list = list_of(&mut page, 4).await;
    let expected_protocols = ["socketio", "websocket", "tcp-json", "tcp-text"];
    let got = names(&list);
    let protocols: Vec<&str> = got.iter().map(|(_, p)| p.as_str()).collect();
    assert_eq!(protocols, expected_protocols);
    assert_eq!(got[2].0, "tj");
    assert!(
        got[1].0.starts_with("guest-") && got[3].0.starts_with("guest-"),
        "{got:?}"
    );
    let (status, api) = get(&server, "/api/members").await;
    assert_eq!(status, 200);
    assert_eq!(names(&api), got);

    ws.close().await;
    drop(tcp);
    let list = list_of(&mut page, 2).await;
    assert_eq!(names(&list), [got[0].clone(), got[3].clone()]);
    assert_eq!(names(&get(&server, "/api/members").await.1), names(&list));
    drop(text);
    server.wait_for_members(1).await;
    assert_eq!(
        names(&get(&server, "/api/members").await.1),
        [got[0].clone()]
    );
}

#[test]
fn a_database_that_cannot_be_opened_stops_the_start_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let not_sqlite = dir.path().join("notes.db");
    std::fs::write(&not_sqlite, "not a database, just words\n".repeat(200)).expect("write");
    let missing_dir = dir.path().join("no/such/dir/chat.db");
    for (db, why) in [
        (not_sqlite, "file is not a database"),
        (missing_dir, "unable to open database file"),
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_chatterbox"))
            .args(["--host", "127.0.0.1", "--port", "0", "--ws-port", "off"])
            .args(["--tcp-json-port", "off", "--tcp-text-port", "off", "--db"])
            .arg(&db)
            .env("RUST_LOG", "off")
            .output()
            .expect("run chatterbox");
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        let expected = format!(
            "chatterbox: cannot open the history database {}: ",
            db.display()
        );
        assert!(lines[0].starts_with(&expected), "{stderr}");
        assert!(lines[0].contains(why), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_anyone_received_survives_a_kill_9() {
    const CLIENTS: usize = 10;
    /// Lines received (all clients together) before the kill.
    const RECEIVED_BEFORE_KILL: usize = 1_500;
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("crash.db");
    let mut server = BinaryServer::spawn(&["--db", db.to_str().expect("utf-8 path")]);
    let received_count = Arc::new(AtomicUsize::new(0));
    let (progress_tx, mut progress) = watch::channel(0usize);
    let progress_tx = Arc::new(progress_tx);
    let (stop_tx, stop) = watch::channel(false);
    let mut receivers = Vec::new();
    let mut senders = Vec::new();
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        let name = format!("c{n}");
        clients.push((Client::named_at(server.url(), &name).await, name));
    }
    for (mut client, name) in clients {
        let socket = client.sender();
        let mut stop = stop.clone();
        senders.push(tokio::spawn(async move {
            // 8 lines a second each: a chat's pace, under any rate limit.
            let mut pace = tokio::time::interval(std::time::Duration::from_millis(125));
            for i in 0.. {
                tokio::select! {
                    _ = pace.tick() => {}
                    _ = stop.changed() => return,
                }
                let line = json!({"type": "message", "message": format!("{name}-{i}")});
                if socket.emit("message", line).await.is_err() {
                    return;
                }
            }
        }));
        let (count, progress_tx) = (received_count.clone(), progress_tx.clone());
        receivers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let (event, value) = client.next().await;
                match event.as_str() {
                    "update" if value["type"] == "message" => {
                        got.push((
                            value["name"].as_str().unwrap().to_owned(),
                            value["message"].as_str().unwrap().to_owned(),
                        ));
                        progress_tx.send_replace(count.fetch_add(1, Ordering::Relaxed) + 1);
                    }
                    "update" => {}
                    "close" | "error" => return got,
                    other => panic!("unexpected {other} {value}"),
                }
            }
        }));
    }
    tokio::time::timeout(WAIT * 3, progress.wait_for(|n| *n >= RECEIVED_BEFORE_KILL))
        .await
        .expect("enough lines relayed in time")
        .expect("receivers running");
    server.child.kill().expect("kill -9");
    server.child.wait().expect("reaped");
    stop_tx.send_replace(true);
    let mut received: HashMap<(String, String), usize> = HashMap::new();
    for receiver in receivers {
        for line in receiver.await.expect("receiver") {
            *received.entry(line).or_default() += 1;
        }
    }
    for sender in senders {
        sender.await.expect("sender");
    }

    let on_disk = stored(&db);
    let on_disk_lines: HashSet<(String, String)> = on_disk
        .iter()
        .map(|(name, protocol, text)| {
            assert_eq!(protocol, "socketio");
            (name.clone(), text.clone())
        })
        .collect();
    assert_eq!(on_disk_lines.len(), on_disk.len(), "no line stored twice");
    let missing: Vec<_> = received
        .keys()
        .filter(|line| !on_disk_lines.contains(*line))
        .collect();
    assert!(missing.is_empty(), "received but not stored: {missing:?}");
    // Every line reached the 9 other clients at most, and the disk holds at least
    // every distinct line any of them got.
    assert!(received.values().all(|&times| times < CLIENTS));
    assert!(on_disk.len() >= received.len());
    assert!(received.len() * (CLIENTS - 1) >= RECEIVED_BEFORE_KILL);
    // Each sender's stored lines are its first lines, in order, none skipped.
    for n in 0..CLIENTS {
        let name = format!("c{n}");
        let texts: Vec<&str> = on_disk
            .iter()
            .filter(|(who, _, _)| *who == name)
            .map(|(_, _, text)| text.as_str())
            .collect();
        let expected: Vec<String> = (0..texts.len()).map(|i| format!("{name}-{i}")).collect();
        assert_eq!(texts, expected);
    }
}

#[tokio::test]
async fn replay_leaves_out_what_the_member_got_before_naming_itself() {
    let server = TestServer::spawn_with(|c| c.replay = 5).await;
    let mut watcher = Client::named(&server, "watcher").await;
    let mut ann = Client::named(&server, "ann").await;
    watcher.expect_update(joined("ann")).await;
    ann.say("before").await;
    // Relayed (so stored) before `late` connects.
    watcher.expect_update(line("ann", "before")).await;
    let mut late = Client::connect(&server).await;
    ann.say("while unnamed").await;
    // Members get the chat before they name themselves, as with the original server.
    late.expect_update(line("ann", "while unnamed")).await;
    late.emit("newUser", json!("late")).await;
    late.expect_update(line("ann", "before")).await;
    late.expect_update(joined("late")).await;
    ann.expect_update(joined("late")).await;
    ann.say("after").await;
    late.expect_update(line("ann", "after")).await;
}

#[tokio::test]
async fn polling_clients_get_replay_too() {
    let server = TestServer::spawn_with(|c| c.replay = 1).await;
    let ann = Client::named(&server, "ann").await;
    let mut bob = Client::named(&server, "bob").await;
    ann.say("hello").await;
    bob.expect_update(line("ann", "hello")).await;
    let mut carol = Client::connect_with(&server, TransportType::Polling).await;
    carol.emit("newUser", json!("carol")).await;
    carol.expect_update(line("ann", "hello")).await;
    carol.expect_update(joined("carol")).await;
}
