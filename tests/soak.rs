//! Soak: members of all four protocols join, chat and leave at random for about 40
//! seconds against the `chatterbox` binary (default limits but the ports and a
//! shorter header timeout), then: nothing lost or reordered per sender, the lobby
//! empty again, every connection's place given back, and the server's memory back
//! near where it was after a warm-up of the same load.
//!
//! Ignored by default (it takes ~45 s); `tests/run-all.sh` runs it with
//! `cargo test --test soak -- --ignored`.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::crowd::{self, Addresses, Kind, Receiver, take_tokens};
use common::{WAIT, wait_for_members};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::time::Instant;

/// Clients of each protocol joining, chatting and leaving at once.
const SLOTS_PER_PROTOCOL: usize = 6;

/// The warm-up's length: the allocator's pools grow to the load's size.
const WARM_UP: Duration = Duration::from_secs(5);

/// The soak's length after the warm-up.
const SOAK: Duration = Duration::from_secs(35);

/// How far the server's RSS may end above its RSS after the warm-up, in KiB.
const RSS_SLACK_KIB: u64 = 4 * 1024;

/// The server binary, with its listeners' addresses read from its log.
struct Server {
    child: Child,
    at: Addresses,
}

impl Server {
    async fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatterbox"))
            .args(["--host", "127.0.0.1", "--port", "0", "--ws-port", "0"])
            .args(["--tcp-json-port", "0", "--tcp-text-port", "0"])
            // Idle keep-alive connections of the Socket.IO clients' long-polling end
            // sooner, so that the open connections come back to none quickly.
            .args(["--header-timeout-ms", "2000"])
            // Every client comes from 127.0.0.1, joining and leaving all along.
            .args(["--rate-joins-per-min", "0"])
            .env("RUST_LOG", "warn,chatterbox=info")
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("chatterbox binary");
        let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let mut found: HashMap<String, SocketAddr> = HashMap::new();
        while found.len() < 4 {
            let line = tokio::time::timeout(WAIT, lines.next_line())
                .await
                .expect("listening in time")
                .expect("read the log")
                .expect("the server runs");
            for word in line.split_whitespace() {
                if let Some((listener, addr)) = word.split_once('=')
                    && let Ok(addr) = addr.parse()
                {
                    found.insert(listener.to_owned(), addr);
                }
            }
        }
        // The log keeps coming (joins, leaves): read it so the pipe never fills.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let at = Addresses {
            http: found["http"],
            websocket: found["websocket"],
            tcp_json: found["tcp-json"],
            tcp_text: found["tcp-text"],
        };
        Self { child, at }
    }

    /// The server process's resident set, in KiB.
    fn rss_kib(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

/// A small xorshift generator: the soak needs variety, not statistics.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

/// Lines each session sent, by session number.
type Sent = Arc<Mutex<HashMap<usize, usize>>>;

/// Checks that each sender's lines come in order, wherever they start: a session
/// joins while others are halfway through theirs.
async fn watch_order(me: usize, mut receiver: Receiver) {
    let (mut last, mut pending) = (HashMap::<usize, usize>::new(), Vec::new());
    loop {
        pending.extend_from_slice(&receiver.next(me).await);
        for (sender, number) in take_tokens(&mut pending) {
            if let Some(previous) = last.insert(sender, number) {
                assert_eq!(number, previous + 1, "session {me}: {sender}'s lines");
            }
        }
    }
}

/// Sessions of one protocol, one after another until `until`: join, chat a few lines
/// at a person's pace (under the default rate), leave.
async fn sessions(
    kind: Kind,
    at: Addresses,
    seed: u64,
    until: Instant,
    ids: Arc<AtomicUsize>,
    sent: Sent,
) {
    let mut rng = Rng(seed);
    while Instant::now() < until {
        // Numbered from 1000: no session's token is mistaken for an observer's.
        let me = 1_000 + ids.fetch_add(1, Ordering::Relaxed);
        let (mut sender, receiver) = crowd::connect(kind, &at, &format!("s{me}")).await;
        let watching = tokio::spawn(watch_order(me, receiver));
        let lines = 1 + rng.below(15) as usize;
        for number in 0..lines {
            sender.say(&format!("[{me}.{number}]")).await;
            tokio::time::sleep(rng.millis(100, 300)).await;
        }
        sent.lock().expect("sent").insert(me, lines);
        watching.abort();
        if let Err(e) = watching.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
        sender.leave().await;
        tokio::time::sleep(rng.millis(0, 200)).await;
    }
}

/// Runs `SLOTS_PER_PROTOCOL` session loops per protocol for `length`.
async fn load(at: Addresses, length: Duration, seed: u64, ids: &Arc<AtomicUsize>, sent: &Sent) {
    let until = Instant::now() + length;
    let slots = Kind::ALL
        .into_iter()
        .flat_map(|kind| (0..SLOTS_PER_PROTOCOL as u64).map(move |slot| (kind, slot)));
    let tasks: Vec<_> = slots
        .map(|(kind, slot)| {
            let seed = seed ^ (slot + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ kind as u64;
            tokio::spawn(sessions(
                kind,
                at,
                seed | 1,
                until,
                ids.clone(),
                sent.clone(),
            ))
        })
        .collect();
    for task in tasks {
        if let Err(e) = tokio::time::timeout(length + WAIT, task)
            .await
            .expect("sessions end")
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}

/// An observer present the whole time: it must get every line of every session,
/// complete and in order.
async fn observe(
    me: usize,
    mut receiver: Receiver,
    mut totals: watch::Receiver<Option<HashMap<usize, usize>>>,
) {
    let (mut next, mut pending) = (HashMap::<usize, usize>::new(), Vec::new());
    loop {
        let done = totals.borrow_and_update().as_ref().map(|totals| {
            totals
                .iter()
                .all(|(session, lines)| next.get(session) == Some(lines))
        });
        if done == Some(true) {
            return;
        }
        tokio::select! {
            text = receiver.next(me) => {
                pending.extend_from_slice(&text);
                for (sender, number) in take_tokens(&mut pending) {
                    let expected = next.entry(sender).or_insert(0);
                    assert_eq!(number, *expected, "observer {me}: session {sender}'s lines");
                    *expected += 1;
                }
            }
            changed = totals.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Polls `/metrics` until the server holds `connections` open connections.
async fn wait_for_connections(http: SocketAddr, connections: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let metrics = common::Metrics(common::http_get(http, "/metrics").await);
        let open = metrics.value("chatterbox_connections");
        if open == Some(connections as f64) {
            return;
        }
        assert!(Instant::now() < deadline, "{open:?} connections stay open");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "about 45 s: tests/run-all.sh runs it with --ignored"]
async fn members_of_every_protocol_join_chat_and_leave_at_random() {
    let server = Server::start().await;
    let at = server.at;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |since| since.as_nanos() as u64);
    println!("soak seed {seed}");
    let ids = Arc::new(AtomicUsize::new(0));

    // Warm-up, then the server's memory with the lobby empty.
    load(at, WARM_UP, seed, &ids, &Sent::default()).await;
    wait_for_members(at.http, 0).await;
    let warm_kib = server.rss_kib();

    // Observers of every protocol, there for the whole soak.
    let (totals_tx, totals) = watch::channel(None);
    let mut observers = Vec::new();
    let mut senders = Vec::new();
    for (me, kind) in Kind::ALL.into_iter().enumerate() {
        let (sender, receiver) = crowd::connect(kind, &at, &format!("observer{me}")).await;
        senders.push(sender);
        observers.push(tokio::spawn(observe(me, receiver, totals.clone())));
    }
    wait_for_members(at.http, observers.len()).await;

    let sent = Sent::default();
    load(at, SOAK, seed.rotate_left(17), &ids, &sent).await;
    let sent = sent.lock().expect("sent").clone();
    let lines: usize = sent.values().sum();
    println!("soak: {} sessions, {lines} lines", sent.len());
    assert!(sent.len() > 100, "only {} sessions", sent.len());
    totals_tx.send_replace(Some(sent));
    for (me, observer) in observers.into_iter().enumerate() {
        tokio::time::timeout(WAIT, observer)
            .await
            .unwrap_or_else(|_| panic!("observer {me}: lines missing"))
            .expect("observer");
    }
    for sender in senders {
        sender.leave().await;
    }
    wait_for_members(at.http, 0).await;

    wait_for_connections(at.http, 1).await; // the request asking
    let end_kib = server.rss_kib();
    println!("soak: RSS {warm_kib} KiB after the warm-up, {end_kib} KiB at the end");
    assert!(
        end_kib <= warm_kib + RSS_SLACK_KIB,
        "RSS grew from {warm_kib} KiB to {end_kib} KiB"
    );
}
