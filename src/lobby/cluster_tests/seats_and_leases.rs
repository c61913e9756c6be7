//! The cluster's seats, leases and shutdown in one process (see the parent module).

use std::sync::Arc;
use std::time::Duration;

use super::{
    TEST_LEASE_MS, WAIT, hear, joined, leaves, left, line, member, names, node, nodes, until,
};
use crate::lobby::rooms::RoomError;
use crate::lobby::tests::Lines;
use crate::lobby::{LobbyError, Member};
use crate::log::redis::memory::MemoryRedis;
use crate::protocol::Protocol;

/// Sits `member` in `room` and waits until its own line comes back: seated.
async fn sit(member: &Member, room: &str, seat: &Arc<Lines>, text: &str) {
    member.take_seat(room, seat.clone()).unwrap();
    member.say_in_room(text, seat.clone()).unwrap();
    until("its own room line", || {
        seat.lines().last().map(String::as_str) == Some(text)
    })
    .await;
}

/// Sits `member` in `room` as soon as a seat there is free (a seat freed on another
/// node is free here once Redis has freed it): asks again while it is told full.
async fn sit_once_free(member: &Member, room: &str, text: &str) -> Arc<Lines> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let seat = Arc::new(Lines::default());
        member.take_seat(room, seat.clone()).unwrap();
        member.say_in_room(text, seat.clone()).unwrap();
        until("seated or refused", || {
            !seat.lines().is_empty() || seat.refusals().len() == 2
        })
        .await;
        if seat.lines() == [text] {
            return seat;
        }
        assert_eq!(seat.refusals(), [RoomError::Full, RoomError::NotSeated]);
        assert!(tokio::time::Instant::now() < deadline, "{room} never free");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_members_on_two_nodes_share_a_room_and_the_last_seat_goes_to_one() {
    let redis = MemoryRedis::default();
    let cluster = nodes(&redis, 2).await;
    let (a, b) = (&cluster[0], &cluster[1]);
    let (ann, _) = member(a, Protocol::SocketIo, None);
    let (bob, _) = member(b, Protocol::SocketIo, None);
    let (ann_seat, bob_seat) = (Arc::new(Lines::default()), Arc::new(Lines::default()));
    sit(&ann, "r1", &ann_seat, "ann in").await;
    sit(&bob, "r1", &bob_seat, "bob in").await;
    until("bob's line at ann's", || ann_seat.lines().len() == 2).await;
    assert_eq!(ann_seat.lines(), ["ann in", "bob in"]);
    ann.say_in_room("hi from a", ann_seat.clone()).unwrap();
    until("a's line at bob's", || bob_seat.lines().len() == 2).await;
    assert_eq!(bob_seat.lines(), ["bob in", "hi from a"]);
    // Full on every node; a line from no seat is refused once Redis has answered.
    let (cat, _) = member(a, Protocol::SocketIo, None);
    let cat_seat = Arc::new(Lines::default());
    cat.take_seat("r1", cat_seat.clone()).unwrap();
    cat.say_in_room("let me in", cat_seat.clone()).unwrap();
    until("cat told", || cat_seat.refusals().len() == 2).await;
    assert_eq!(cat_seat.refusals(), [RoomError::Full, RoomError::NotSeated]);

    // Two members of two nodes racing for the last seat: one gets it.
    for round in 0..10 {
        let room = format!("race-{round}");
        let (holder, _) = member(a, Protocol::SocketIo, None);
        let holder_seat = Arc::new(Lines::default());
        sit(&holder, &room, &holder_seat, "seated").await;
        let racers = [
            member(a, Protocol::SocketIo, None).0,
            member(b, Protocol::SocketIo, None).0,
        ];
        let seats = [Arc::new(Lines::default()), Arc::new(Lines::default())];
        for (racer, seat) in racers.iter().zip(&seats) {
            racer.take_seat(&room, seat.clone()).unwrap();
        }
        for (racer, seat) in racers.iter().zip(&seats) {
            racer.say_in_room("who won?", seat.clone()).unwrap();
        }
        until("both answered", || {
            seats
                .iter()
                .all(|seat| seat.lines().len() == 1 || seat.refusals().len() == 2)
        })
        .await;
        let won: Vec<bool> = seats
            .iter()
            .map(|seat| seat.lines() == ["who won?"])
            .collect();
        assert_eq!(won.iter().filter(|&&w| w).count(), 1, "round {round}");
        for (seat, won) in seats.iter().zip(&won) {
            if !won {
                assert_eq!(seat.refusals(), [RoomError::Full, RoomError::NotSeated]);
            }
        }
        until("the winner's line at the holder's", || {
            holder_seat.lines().len() == 2
        })
        .await;
        assert_eq!(holder_seat.lines(), ["seated", "who won?"]);
    }

    // A seat is freed when its holder leaves: bob goes, cat (on the other node) sits.
    drop(bob);
    sit_once_free(&cat, "r1", "in at last").await;
    until("cat's line at ann's", || ann_seat.lines().len() == 4).await;
    assert_eq!(
        ann_seat.lines().last().map(String::as_str),
        Some("in at last")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_past_its_lease_is_announced_as_left_once_and_its_seats_freed() {
    let redis = MemoryRedis::default();
    let a = node(&redis, "a", TEST_LEASE_MS).await;
    let b = node(&redis, "b", TEST_LEASE_MS).await;
    let (_ann, ann_heard) = member(&a, Protocol::SocketIo, Some("ann"));
    until("ann's join read", || b.member_count() == 1).await;
    let (_kim, _) = member(&b, Protocol::TcpJson, Some("kim"));
    let (_wes, _) = member(&b, Protocol::WebSocket, None);
    assert_eq!(
        hear(&ann_heard, 3),
        [joined("ann", 1), joined("kim", 2), joined("guest-10002", 3)]
    );
    let (ann_room, bob_room) = (
        member(&a, Protocol::SocketIo, None).0,
        member(&b, Protocol::SocketIo, None).0,
    );
    let (ann_seat, bob_seat) = (Arc::new(Lines::default()), Arc::new(Lines::default()));
    sit(&ann_room, "r", &ann_seat, "ann here").await;
    sit(&bob_room, "r", &bob_seat, "bob here").await;

    // b is gone for good (killed, or its network cut): once its lease has run out,
    // a announces its members as left, once.
    redis.cut_off("b");
    assert_eq!(leaves(hear(&ann_heard, 2)), ["guest-10002", "kim"]);
    assert_eq!(names(&a), ["ann"]);
    // Its seat is free: another member of a sits.
    let (cat, _) = member(&a, Protocol::SocketIo, None);
    sit_once_free(&cat, "r", "cat here").await;
    until("cat's line at ann's", || ann_seat.lines().len() == 3).await;
    assert_eq!(ann_seat.lines(), ["ann here", "bob here", "cat here"]);
    // Once: the next thing ann hears is the next join.
    let (_bob, _) = member(&a, Protocol::SocketIo, Some("bob"));
    assert_eq!(hear(&ann_heard, 1), [joined("bob", 2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_past_its_lease_drops_its_members_and_joins_anew() {
    let redis = MemoryRedis::default();
    let a = node(&redis, "a", TEST_LEASE_MS).await;
    let b = node(&redis, "b", TEST_LEASE_MS).await;
    let (_ann, ann_heard) = member(&a, Protocol::SocketIo, Some("ann"));
    until("ann's join read", || b.member_count() == 1).await;
    let (kim, kim_heard) = member(&b, Protocol::TcpJson, Some("kim"));
    assert_eq!(hear(&ann_heard, 2), [joined("ann", 1), joined("kim", 2)]);

    // b is frozen past its lease: a announces kim as left.
    redis.cut_off("b");
    assert_eq!(hear(&ann_heard, 1), [left("kim", 1)]);
    until("kim gone from a", || a.member_count() == 1).await;
    // Back, b finds its lease lost: it drops kim, whose leave the cluster announced.
    redis.reconnect("b");
    tokio::task::block_in_place(|| kim_heard.wait_cut(1));
    assert_eq!(kim.say("late"), Err(LobbyError::Gone));
    drop(kim);
    until("b registered anew, ann present", || b.member_count() == 1).await;
    let (kim, _) = member(&b, Protocol::TcpJson, Some("kim"));
    // No second leave, no ghost: the next thing ann hears is kim's new join.
    assert_eq!(hear(&ann_heard, 1), [joined("kim", 2)]);
    kim.say("back").unwrap();
    assert_eq!(
        hear(&ann_heard, 1),
        [line("kim", "back", Protocol::TcpJson)]
    );
    assert_eq!(names(&a), ["ann", "kim"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_shut_down_announces_its_members_as_left() {
    let redis = MemoryRedis::default();
    let a = node(&redis, "a", 60_000).await;
    // A lease far longer than the test: the leave comes from the shutdown.
    let b = node(&redis, "b", 60_000).await;
    let (_ann, ann_heard) = member(&a, Protocol::SocketIo, Some("ann"));
    until("ann's join read", || b.member_count() == 1).await;
    let (kim, _) = member(&b, Protocol::TcpJson, Some("kim"));
    assert_eq!(hear(&ann_heard, 2), [joined("ann", 1), joined("kim", 2)]);

    b.close();
    tokio::task::block_in_place(|| b.finish_history());
    drop(kim);
    assert_eq!(hear(&ann_heard, 1), [left("kim", 1)]);
    let (_bob, _) = member(&a, Protocol::SocketIo, Some("bob"));
    assert_eq!(hear(&ann_heard, 1), [joined("bob", 2)]);
}
