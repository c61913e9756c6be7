//! `GET /metrics`: the Prometheus text that operators scrape, after joins, lines,
//! refusals and leaves on every protocol. One test in its own binary: the `metrics`
//! recorder is process-wide, so counts are exact only with one server per process.

mod common;

use common::{Client, TcpClient, TestServer, WsClient, joined, line, ws_joined, ws_line};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_members_joins_lines_refusals_and_leaves() {
    let server = TestServer::spawn().await;
    let mut sio = Client::named(&server, "sio").await;
    let mut ws = WsClient::connect(server.websocket).await;
    ws.expect(ws_joined(2)).await;
    sio.expect_update(joined("guest-2")).await;
    let mut tj = TcpClient::connect(server.tcp_json).await;
    tj.command("CHAT", "too early").await;
    tj.expect("error: choose a name before sending messages\n")
        .await;
    tj.command("CONNECT", "tj").await;
    tj.expect("tj connected!").await;
    sio.expect_update(joined("tj")).await;
    ws.expect(ws_joined(3)).await;

    sio.say("one").await;
    ws.expect(ws_line("sio", "one")).await;
    tj.expect("sio : one").await;
    ws.send_text("not json").await;
    ws.expect(json!({"type": "error", "msg": r#"expected a text frame {"name": "<name>", "msg": "<text>"}"#}))
        .await;
    sio.emit("message", json!(42)).await;
    sio.expect_event("error").await;
    tj.command("CHAT", "tj : two").await;
    tj.expect("tj : two").await;
    sio.expect_update(line("tj", "two")).await;
    ws.expect(ws_line("tj", "two")).await;
    ws.close().await;
    sio.expect_update(
        json!({"type": "disconnect", "name": "SERVER", "message": "guest-2님이 나가셨습니다."}),
    )
    .await;
    tj.expect("Someone's out.").await;
    // A socket that has not named itself is a connection, not a member: not in the gauge.
    let _unnamed = Client::connect(&server).await;
    server.wait_for_connections(3).await;

    // A write's bytes are counted once the write returns, which may be just after the
    // client has read them: wait for the last write's count before reading the rest.
    let written = "tj connected!sio : onetj : twoSomeone's out.".len() as f64;
    let tcp_json_bytes = r#"chatterbox_bytes_out_total{protocol="tcp-json"}"#;
    let text = tokio::time::timeout(common::WAIT, async {
        loop {
            let text = common::http_get(server.http, "/metrics").await;
            if metric(&text, tcp_json_bytes) == Some(written) {
                return text;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{tcp_json_bytes} never reached {written}"));
    let value = |name: &str| metric(&text, name);
    let expected = [
        (r#"chatterbox_members{protocol="socketio"}"#, 1.0),
        (r#"chatterbox_members{protocol="websocket"}"#, 0.0),
        (r#"chatterbox_members{protocol="tcp-json"}"#, 1.0),
        (r#"chatterbox_joins_total{protocol="socketio"}"#, 1.0),
        (r#"chatterbox_joins_total{protocol="websocket"}"#, 1.0),
        (r#"chatterbox_joins_total{protocol="tcp-json"}"#, 1.0),
        (r#"chatterbox_leaves_total{protocol="websocket"}"#, 1.0),
        (r#"chatterbox_lines_in_total{protocol="socketio"}"#, 1.0),
        (r#"chatterbox_lines_in_total{protocol="tcp-json"}"#, 1.0),
        // Every lobby event queued: ws got its own join, tj's join, sio's and tj's
        // lines; tj its own join, both lines (its own echoed), guest-2's leave; sio
        // its own join, guest-2's and tj's joins, tj's line, guest-2's leave.
        (r#"chatterbox_lines_out_total{protocol="websocket"}"#, 4.0),
        (r#"chatterbox_lines_out_total{protocol="tcp-json"}"#, 4.0),
        (r#"chatterbox_lines_out_total{protocol="socketio"}"#, 5.0),
        (
            r#"chatterbox_refusals_total{protocol="tcp-json",reason="unnamed"}"#,
            1.0,
        ),
        (
            r#"chatterbox_refusals_total{protocol="websocket",reason="malformed"}"#,
            1.0,
        ),
        (
            r#"chatterbox_refusals_total{protocol="socketio",reason="malformed"}"#,
            1.0,
        ),
        (
            r#"chatterbox_slow_consumer_cutoffs_total{protocol="tcp-json"}"#,
            0.0,
        ),
    ];
    for (metric, count) in expected {
        assert_eq!(value(metric), Some(count), "{metric} in:\n{text}");
    }
    assert!(text.contains("# HELP chatterbox_refusals_total"));
    // Two lines, committed in one or two group commits.
    assert_eq!(value("chatterbox_history_lines_total"), Some(2.0));
    let commits = value("chatterbox_history_commit_seconds_count").expect("commit latency");
    assert!(commits == 1.0 || commits == 2.0, "{commits} commits");
}

/// The value of `name` (with its labels) in the Prometheus text `text`.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}
