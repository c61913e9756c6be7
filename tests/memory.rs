//! The allocator's free memory given back after a storm of connections
//! (`--trim-after-connections`, `src/memory.rs`): once that many connections have come
//! or gone and the count has calmed, one trim, counted in
//! `chatterbox_memory_trims_total`. One test in its own binary: the `metrics` recorder
//! is process-wide, so the count is exact only with one server per process.

mod common;

use common::{TcpClient, TestServer, WAIT};

const TRIMS: &str = "chatterbox_memory_trims_total";

/// Reads `/metrics` until the trims counted reach `count` (at most [`WAIT`]).
async fn wait_for_trims(server: &TestServer, count: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let trims = server.metrics().await.value(TRIMS);
        if trims == Some(count) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{trims:?} trims counted, {count} expected"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[tokio::test(flavor = "multi_thread")]
async fn a_storm_of_joins_then_one_of_leaves_each_give_memory_back_once() {
    let server = TestServer::spawn_with(|config| config.trim_after_connections = 16).await;
    assert_eq!(
        server.metrics().await.value(TRIMS),
        None,
        "no trim before a storm"
    );

    // 20 joins: at least 16, fewer than 32, so one trim once they have calmed.
    let mut clients = Vec::new();
    for _ in 0..20 {
        let mut client = TcpClient::connect(server.tcp_text).await;
        client.expect_somewhere(" connected!").await;
        clients.push(client);
    }
    server.wait_for_connections(20).await;
    wait_for_trims(&server, 1.0).await;

    // Their 20 leaves (with what was left of the joins, under 32): one more.
    drop(clients);
    server.wait_for_connections(0).await;
    wait_for_trims(&server, 2.0).await;
}
