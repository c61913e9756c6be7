//! The cluster's logic in one process: N lobbies, each a cluster node whose broker
//! ([`RedisBroker`]) runs on the cluster's state in memory
//! ([`crate::log::redis::memory`]) instead of a `redis-server`, as socketioxide-redis
//! tests N servers on a stub driver. They cover what tests/cluster.rs checks of order,
//! presence, names, replay, seats, leases and gaps; the real-Redis tests stay for what
//! only Redis shows (the scripts, a real server's outages, signals to processes). Here:
//! order, presence, names, replay, Redis away, gaps; seats, leases and shutdown in
//! [`seats_and_leases`].

mod seats_and_leases;

use std::sync::Mutex;
use std::time::Duration;

use super::tests::{Recorder, joined};
use super::{Event, Limits, Lobby, LobbyError, Member};
use crate::log::redis::memory::MemoryRedis;
use crate::log::redis::{ClusterSettings, RedisBroker};
use crate::protocol::Protocol;

/// How long a test waits for what it expects.
pub(super) const WAIT: Duration = Duration::from_secs(10);

/// A lease short enough for a test, long enough for a busy machine.
pub(super) const TEST_LEASE_MS: u64 = 1_500;

/// Node `id` of the cluster `redis`, with a lease of `lease_ms` and `limits`.
pub(super) async fn node_with(
    redis: &MemoryRedis,
    id: &str,
    lease_ms: u64,
    limits: Limits,
    log_entries: u64,
) -> Lobby {
    let settings = ClusterSettings {
        url: "memory".into(),
        cluster: "test".into(),
        node_id: id.into(),
        lease: Duration::from_millis(lease_ms),
        response_timeout: Duration::from_secs(2),
        log_entries,
        history_lines: 0,
    };
    let connected = redis.connect(settings).await;
    let (capacity, batch_items) = (limits.history_queue_lines, limits.relay_batch_items());
    let started = Lobby::with_broker(limits, |up| {
        Ok(Box::new(RedisBroker::start(
            connected,
            capacity,
            batch_items,
            up,
        )))
    });
    started.expect("a node starts")
}

/// The default limits, without a message rate (tests say lines as fast as they can).
pub(super) fn unlimited() -> Limits {
    Limits {
        rate: super::rate::RateLimit {
            lines_per_sec: 0,
            ..Default::default()
        },
        ..Limits::default()
    }
}

/// Node `id` with the default limits (no rate) and a lease of `lease_ms`.
pub(super) async fn node(redis: &MemoryRedis, id: &str, lease_ms: u64) -> Lobby {
    node_with(redis, id, lease_ms, unlimited(), 100_000).await
}

/// `count` nodes named `node-<n>`, with a lease far longer than any test.
pub(super) async fn nodes(redis: &MemoryRedis, count: usize) -> Vec<Lobby> {
    let mut nodes = Vec::new();
    for n in 0..count {
        nodes.push(node(redis, &format!("node-{n}"), 60_000).await);
    }
    nodes
}

/// A member of `protocol` on `lobby`, named `name` (if given), and what it hears.
pub(super) fn member(lobby: &Lobby, protocol: Protocol, name: Option<&str>) -> (Member, Recorder) {
    let heard = Recorder::default();
    let member = lobby.join(protocol, heard.clone(), None).expect("joined");
    if let Some(name) = name {
        member.set_name(name).expect("named");
    }
    (member, heard)
}

/// Waits (the test's thread may block: the nodes run on the others) for `count` events.
pub(super) fn hear(heard: &Recorder, count: usize) -> Vec<Event> {
    tokio::task::block_in_place(|| heard.take_when(count))
}

/// What `heard` hears from its member's own first event on, `count` events: a member
/// hears the lobby from its connection on, so its node may still relay the events said
/// just before it connected (a tail of `earlier`), which are skipped.
pub(super) fn hear_after(heard: &Recorder, earlier: &[Event], count: usize) -> Vec<Event> {
    let mut events = Vec::new();
    loop {
        let skipped = (0..=earlier.len())
            .rev()
            .find(|&k| events.starts_with(&earlier[earlier.len() - k..]))
            .unwrap_or(0);
        if events.len() >= skipped + count {
            return events.split_off(skipped);
        }
        events.extend(hear(heard, 1));
    }
}

/// Waits until `done` holds.
pub(super) async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(super) fn line(name: &str, text: &str, origin: Protocol) -> Event {
    Event::Message {
        name: name.into(),
        text: text.into(),
        origin,
        raw: None,
    }
}

pub(super) fn left(name: &str, members: usize) -> Event {
    Event::Left {
        name: name.into(),
        members,
    }
}

/// The names in `heard`, all leaves of members of one node given up (in whatever order
/// the give-up took them, each count one less), sorted.
pub(super) fn leaves(heard: Vec<Event>) -> Vec<String> {
    let mut names: Vec<String> = heard
        .iter()
        .map(|event| match event {
            Event::Left { name, .. } => name.to_string(),
            other => panic!("not a leave: {other:?}"),
        })
        .collect();
    let mut counts: Vec<usize> = heard
        .iter()
        .map(|event| match event {
            Event::Left { members, .. } => *members,
            _ => 0,
        })
        .collect();
    counts.sort_unstable();
    let first = counts[0];
    assert_eq!(counts, (first..first + counts.len()).collect::<Vec<_>>());
    names.sort();
    names
}

/// The names present, as a node lists them.
pub(super) fn names(lobby: &Lobby) -> Vec<String> {
    lobby
        .present()
        .iter()
        .map(|someone| someone.name.as_deref().unwrap_or("(unnamed)").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lines_said_on_three_nodes_reach_every_member_in_one_order() {
    let redis = MemoryRedis::default();
    let cluster = nodes(&redis, 3).await;
    let mut members = Vec::new();
    for (n, lobby) in cluster.iter().enumerate() {
        for m in 0..2 {
            let name = format!("m{n}{m}");
            members.push((name.clone(), member(lobby, Protocol::TcpJson, Some(&name))));
            // Each join read everywhere before the next member speaks.
            let count = members.len();
            for lobby in &cluster {
                until("joins read", || lobby.member_count() == count).await;
            }
        }
    }
    const LINES: usize = 30;
    for i in 0..LINES {
        for (name, (member, _)) in &members {
            member.say(&format!("{name} {i}")).unwrap();
        }
    }
    let total = LINES * members.len();
    let mut orders = Vec::new();
    for (name, (_, heard)) in &members {
        let lines: Vec<Event> = {
            let mut lines = Vec::new();
            while lines.len() < total {
                let more = hear(heard, 1);
                lines.extend(
                    more.into_iter()
                        .filter(|e| matches!(e, Event::Message { .. })),
                );
            }
            lines
        };
        assert_eq!(lines.len(), total, "{name}");
        orders.push(lines);
    }
    // One order for everyone, each sender's lines in the order it said them.
    assert!(orders.iter().all(|order| *order == orders[0]));
    for (name, _) in &members {
        let own: Vec<_> = orders[0]
            .iter()
            .filter_map(|e| match e {
                Event::Message { name: n, text, .. } if &**n == name => Some(text.to_string()),
                _ => None,
            })
            .collect();
        let said: Vec<_> = (0..LINES).map(|i| format!("{name} {i}")).collect();
        assert_eq!(own, said);
    }
    // The history is the same lines, with the same ids, on every node.
    let pages: Vec<_> = cluster
        .iter()
        .map(|lobby| lobby.history_page(None, 1_000).unwrap().unwrap())
        .collect();
    assert_eq!(pages[0].len(), total);
    assert!(pages.iter().all(|page| *page == pages[0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presence_and_counts_are_the_whole_clusters() {
    let redis = MemoryRedis::default();
    let cluster = nodes(&redis, 3).await;
    let (ann, ann_heard) = member(&cluster[0], Protocol::SocketIo, Some("ann"));
    until("ann's join read", || cluster[1].member_count() == 1).await;
    let (_kim, kim_heard) = member(&cluster[1], Protocol::TcpJson, Some("kim"));
    assert_eq!(hear(&ann_heard, 2), [joined("ann", 1), joined("kim", 2)]);
    // A connection that never names itself is its node's, not a member.
    let (_quiet, _) = member(&cluster[2], Protocol::SocketIo, None);
    for lobby in &cluster {
        until("both present", || lobby.member_count() == 2).await;
        assert_eq!(names(lobby), ["ann", "kim"]);
    }
    assert_eq!(cluster[2].connection_count(), 1);
    assert_eq!(cluster[2].cluster_available(), Some(true));

    // A WebSocket member of the third node is the cluster's third: its id, and so its
    // guest name, the cluster's; every count the cluster's.
    let (_wes, wes_heard) = member(&cluster[2], Protocol::WebSocket, None);
    assert_eq!(
        hear_after(&wes_heard, &[joined("kim", 2)], 1),
        [joined("guest-20002", 3)]
    );
    assert_eq!(hear(&ann_heard, 1), [joined("guest-20002", 3)]);
    drop(ann);
    assert_eq!(hear(&wes_heard, 1), [left("ann", 2)]);
    assert_eq!(
        hear_after(&kim_heard, &[joined("ann", 1)], 3),
        [joined("kim", 2), joined("guest-20002", 3), left("ann", 2)]
    );
    for lobby in &cluster {
        until("ann gone", || lobby.member_count() == 2).await;
        assert_eq!(names(lobby), ["kim", "guest-20002"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_name_held_on_one_node_is_taken_on_every_node() {
    let redis = MemoryRedis::default();
    let cluster = nodes(&redis, 2).await;
    let (a, b) = (&cluster[0], &cluster[1]);
    let (ann, ann_heard) = member(a, Protocol::SocketIo, Some("ann"));
    until("ann's join read", || b.member_count() == 1).await;
    let (other, _) = member(b, Protocol::TcpJson, None);
    let told = Mutex::new(None);
    let given = other
        .set_name_telling("ＡＮＮ", |taken| {
            *told.lock().unwrap() = Some(taken.to_string())
        })
        .unwrap();
    assert_eq!(&*given, "ＡＮＮ-2");
    assert_eq!(
        told.lock().unwrap().as_deref(),
        Some("the name \"ＡＮＮ\" is taken: you are \"ＡＮＮ-2\"")
    );
    assert_eq!(
        hear(&ann_heard, 2),
        [joined("ann", 1), joined("ＡＮＮ-2", 2)]
    );
    // Guests of two nodes never share a name.
    let (_wes, _) = member(a, Protocol::WebSocket, None);
    assert_eq!(hear(&ann_heard, 1), [joined("guest-2", 3)]);
    let (_wan, _) = member(b, Protocol::WebSocket, None);
    assert_eq!(hear(&ann_heard, 1), [joined("guest-10002", 4)]);
    // A name set free on one node is free on the other once its leave is read there.
    until("both guests read on b", || b.member_count() == 4).await;
    drop(ann);
    until("ann's leave read", || b.member_count() == 3).await;
    let (again, _) = member(b, Protocol::TcpJson, None);
    assert_eq!(&*again.set_name("ann").unwrap(), "ann");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replay_on_one_node_gives_the_lines_said_on_another() {
    let redis = MemoryRedis::default();
    let limits = Limits {
        replay_lines: 2,
        ..Limits::default()
    };
    let a = node_with(&redis, "a", 60_000, limits.clone(), 100_000).await;
    let b = node_with(&redis, "b", 60_000, limits, 100_000).await;
    // An unnamed connection of b's, by which the test knows what b has read.
    let (_watcher, watched) = member(&b, Protocol::SocketIo, None);
    let (ann, _) = member(&a, Protocol::TcpJson, Some("ann"));
    for text in ["one", "two", "three"] {
        ann.say(text).unwrap();
    }
    let said = ["one", "two", "three"].map(|text| line("ann", text, Protocol::TcpJson));
    assert_eq!(hear(&watched, 4), [&[joined("ann", 1)][..], &said].concat());
    let (_bob, bob_heard) = member(&b, Protocol::SocketIo, Some("bob"));
    assert_eq!(
        hear(&bob_heard, 3),
        [
            line("ann", "two", Protocol::TcpJson),
            line("ann", "three", Protocol::TcpJson),
            joined("bob", 2)
        ]
    );
    let ids: Vec<i64> = b
        .history_page(None, 10)
        .unwrap()
        .unwrap()
        .iter()
        .map(|l| l.id)
        .collect();
    assert_eq!(ids, [1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn while_redis_is_away_a_line_is_refused_and_the_lobby_goes_on_after() {
    let redis = MemoryRedis::default();
    // A lease longer than the outage: the nodes keep their members.
    let a = node(&redis, "a", 10_000).await;
    let b = node(&redis, "b", 10_000).await;
    let (ann, ann_heard) = member(&a, Protocol::SocketIo, Some("ann"));
    until("ann's join read", || b.member_count() == 1).await;
    let (kim, kim_heard) = member(&b, Protocol::TcpJson, Some("kim"));
    kim.say("before").unwrap();
    assert_eq!(
        hear(&ann_heard, 3),
        [
            joined("ann", 1),
            joined("kim", 2),
            line("kim", "before", Protocol::TcpJson)
        ]
    );
    assert_eq!(
        hear_after(&kim_heard, &[joined("ann", 1)], 2),
        [joined("kim", 2), line("kim", "before", Protocol::TcpJson)]
    );

    redis.go_down();
    until("b knows", || b.cluster_available() == Some(false)).await;
    assert_eq!(kim.say("while away"), Err(LobbyError::Unavailable));
    until("a knows", || a.cluster_available() == Some(false)).await;
    assert_eq!(ann.say("me neither"), Err(LobbyError::Unavailable));

    redis.come_back();
    until("a and b know", || {
        a.cluster_available() == Some(true) && b.cluster_available() == Some(true)
    })
    .await;
    // Nothing was relayed meanwhile: the next thing each hears is the next line.
    kim.say("after").unwrap();
    assert_eq!(
        hear(&ann_heard, 1),
        [line("kim", "after", Protocol::TcpJson)]
    );
    assert_eq!(
        hear(&kim_heard, 1),
        [line("kim", "after", Protocol::TcpJson)]
    );
    let texts: Vec<String> = a
        .history_page(None, 10)
        .unwrap()
        .unwrap()
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(texts, ["before", "after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_that_missed_trimmed_entries_reads_presence_anew() {
    let redis = MemoryRedis::default();
    // The log keeps 20 entries; b's lease outlasts its absence: it only falls behind.
    let a = node_with(&redis, "a", 60_000, unlimited(), 20).await;
    let b = node(&redis, "b", 60_000).await;
    let (_kim, kim_heard) = member(&b, Protocol::TcpJson, Some("kim"));
    assert_eq!(hear(&kim_heard, 1), [joined("kim", 1)]);
    until("kim's join read", || a.member_count() == 1).await;
    // ann connects in a later millisecond than kim (presence lists by arrival).
    let kim_since = b.present()[0].since;
    let ms =
        |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    until("a later millisecond", || {
        ms(std::time::SystemTime::now()) > ms(kim_since)
    })
    .await;

    redis.cut_off("b");
    let (ann, _) = member(&a, Protocol::TcpJson, Some("ann"));
    // Far more lines than the log keeps: ann's join is trimmed away before b reads it.
    let said: Vec<Event> = (0..100)
        .map(|n| line("ann", &format!("line {n}"), Protocol::TcpJson))
        .collect();
    for n in 0..100 {
        ann.say(&format!("line {n}")).unwrap();
    }
    until("every line in the log", || {
        let newest = a.history_page(None, 1).unwrap().unwrap();
        newest.iter().map(|l| l.text.as_str()).eq(["line 99"])
    })
    .await;
    redis.reconnect("b");

    // kim hears the lines the log kept, in order, up to the last.
    let mut heard = Vec::new();
    while heard.last() != said.last() {
        heard.extend(hear(&kim_heard, 1));
    }
    let kept = (0..said.len())
        .find(|&from| said[from..] == heard[..])
        .unwrap_or_else(|| panic!("not a tail of the lines said, in order: {heard:?}"));
    assert!(kept > 0);
    // b knows ann is here though her join was trimmed.
    until("ann present on b", || b.member_count() == 2).await;
    assert_eq!(names(&b), ["kim", "ann"]);
}
