//! The log under a flood of refusals (the binary's own log, as an operator reads it): a
//! member's first refusal gets its line, the rest are counted in one summary per
//! interval, and `/metrics` counts every one.

mod common;

use common::{BinaryServer, WAIT, http_get};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the flooding member is told for each line over the rate.
const RATE: &str = "error: too many messages: at most 1 a second\n";

/// Chat lines the flooding member sends at once.
const LINES: usize = 400;

/// A server with a rate of one line a second (a burst of one, never disconnecting),
/// refusals folded over `fold_secs`.
fn server(fold_secs: &str) -> BinaryServer {
    BinaryServer::spawn(&[
        "--no-history",
        "--rate-lines-per-sec",
        "1",
        "--rate-burst",
        "1",
        "--rate-strikes",
        "0",
        "--log-fold-secs",
        fold_secs,
    ])
}

/// A TCP JSON member named `flood` sends [`LINES`] chat lines in one write; returns how
/// many it was refused (error lines), once every line has been answered (refused, or
/// echoed back as relayed).
async fn flood(server: &mut BinaryServer) -> usize {
    let address = server.listener("tcp-json").await;
    let mut tcp = TcpStream::connect(address).await.expect("connect");
    let mut commands = String::from(r#"{"type":"CONNECT","content":"flood"}"#);
    for n in 0..LINES {
        commands.push_str(&format!(
            r#"{{"type":"CHAT","content":"flood : line {n}"}}"#
        ));
    }
    tcp.write_all(commands.as_bytes()).await.expect("write");
    let mut received = String::new();
    let mut buf = vec![0; 64 * 1024];
    let answered = |received: &str| {
        let refused = received.matches(RATE).count();
        let relayed = received.matches("flood : line ").count();
        (refused, refused + relayed)
    };
    loop {
        let (refused, answered) = answered(&received);
        if answered == LINES {
            return refused;
        }
        let n = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{answered} of {LINES} lines answered: {received:?}"))
            .expect("read");
        assert!(n > 0, "closed: {received:?}");
        received.push_str(std::str::from_utf8(&buf[..n]).expect("utf-8"));
    }
}

/// The log's lines of a refusal of its own for the rate (not the summaries).
fn own_lines(log: &[String]) -> Vec<&String> {
    log.iter()
        .filter(|line| line.contains(" refused member=") && line.contains(r#"reason="rate""#))
        .collect()
}

/// `(member, count)` of each summary of rate refusals in the log so far.
fn summaries(log: &[String]) -> Vec<(u64, usize)> {
    log.iter()
        .filter_map(|line| {
            let (_, summary) = line.split_once(" refused ")?;
            let (count, rest) = summary.split_once(" requests from member ")?;
            let (member, rest) = rest.split_once(" (rate) in the last ")?;
            assert!(rest.ends_with(" s"), "{line}");
            Some((member.parse().ok()?, count.parse().ok()?))
        })
        .collect()
}

async fn rate_refusals(server: &BinaryServer) -> String {
    let metrics = http_get(server.http, "/metrics").await;
    metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix(r#"chatterbox_refusals_total{protocol="tcp-json",reason="rate"} "#)
        })
        .unwrap_or("none")
        .to_owned()
}

#[tokio::test]
async fn a_flooding_member_gets_one_line_then_summaries_with_exact_counts() {
    let mut server = server("1");
    let refused = flood(&mut server).await;
    assert!(refused > LINES / 2, "only {refused} of {LINES} refused");

    // The summaries come at the end of each interval, the flood over: wait for them to
    // account for every refusal after the first.
    let summaries = server
        .wait_for_log("summaries of every refusal", |log| {
            let summaries = summaries(log);
            let counted: usize = summaries.iter().map(|(_, count)| count).sum();
            assert!(counted < refused, "{counted} counted: {log:#?}");
            (counted == refused - 1).then_some(summaries)
        })
        .await;
    let log = server.log.borrow().clone();
    let own = own_lines(&log);
    assert_eq!(own.len(), 1, "{log:#?}");
    let member = summaries[0].0;
    let (_, fields) = own[0].split_once(" refused ").expect("a refusal");
    let fields: Vec<&str> = fields.splitn(5, ' ').collect();
    assert_eq!(fields[0], format!("member={member}"), "{}", own[0]);
    assert!(fields[1].starts_with("peer=127.0.0.1:"), "{}", own[0]);
    assert_eq!(
        fields[2..],
        [
            r#"protocol="tcp-json""#,
            r#"reason="rate""#,
            "why=too many messages: at most 1 a second"
        ],
    );
    assert!(
        summaries.iter().all(|(of, _)| *of == member),
        "{summaries:?}"
    );
    assert_eq!(rate_refusals(&server).await, refused.to_string());
}

#[tokio::test]
async fn with_folding_off_every_refusal_has_its_line() {
    let mut server = server("0");
    let refused = flood(&mut server).await;
    assert!(refused > LINES / 2, "only {refused} of {LINES} refused");
    server
        .wait_for_log("a line per refusal", |log| {
            (own_lines(log).len() == refused).then_some(())
        })
        .await;
    assert_eq!(summaries(&server.log.borrow()), []);
    assert_eq!(rate_refusals(&server).await, refused.to_string());
}

/// The binary with its log (stderr) into a pipe that this test reads up to the
/// listeners' addresses and then either closes (`close: true`: a log shipper gone) or
/// leaves unread (a stalled one). Returns the process, its HTTP and TCP text addresses,
/// and the pipe's reading end (`None` once closed).
fn with_log_pipe(
    close: bool,
    env: &[(&str, &str)],
) -> (
    std::process::Child,
    std::net::SocketAddr,
    std::net::SocketAddr,
    Option<std::io::BufReader<std::process::ChildStderr>>,
) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_chatterbox"))
        .args(["--host", "127.0.0.1", "--port", "0", "--ws-port", "0"])
        .args([
            "--tcp-json-port",
            "0",
            "--tcp-text-port",
            "0",
            "--no-history",
        ])
        .args(["--rate-joins-per-min", "0"])
        .envs(env.iter().copied())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start chatterbox");
    let mut log = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let (mut http, mut tcp_text) = (None, None);
    while http.is_none() || tcp_text.is_none() {
        let mut line = String::new();
        assert!(
            log.read_line(&mut line).expect("read the log") > 0,
            "log ended"
        );
        for (name, found) in [("http", &mut http), ("tcp-text", &mut tcp_text)] {
            let prefix = format!("listening {name}=");
            if let Some(at) = line.find(&prefix) {
                *found = line[at + prefix.len()..].trim().parse().ok();
            }
        }
    }
    let (http, tcp_text) = (http.expect("http"), tcp_text.expect("tcp-text"));
    (child, http, tcp_text, (!close).then_some(log))
}

/// Sends SIGTERM and waits (at most [`WAIT`]) for the process to exit; its status.
async fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still running after SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// `count` TCP text clients that connect, each seeing its own join, and leave.
async fn come_and_go(tcp_text: std::net::SocketAddr, count: usize) {
    for _ in 0..count {
        let mut client = common::TcpClient::connect(Some(tcp_text)).await;
        client.expect_somewhere(" connected!").await;
    }
}

#[tokio::test]
async fn a_closed_log_pipe_neither_stops_the_server_nor_its_shutdown() {
    let (mut child, http, tcp_text, _) = with_log_pipe(true, &[]);
    // Every join and leave is a log line, written to the closed pipe.
    come_and_go(tcp_text, 20).await;
    let health = http_get(http, "/healthz").await;
    assert!(health.contains(r#""status":"ok""#), "{health}");
    // The last leaves are logged (and their lines dropped) by the log's own thread a
    // moment after the clients went: the count is read until it has all 40.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let metrics = http_get(http, "/metrics").await;
        let dropped = metrics
            .lines()
            .find_map(|line| {
                line.strip_prefix(r#"chatterbox_log_lines_dropped_total{why="broken"} "#)
            })
            .expect("dropped lines counted")
            .parse::<u64>()
            .expect("a count");
        if dropped >= 40 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{dropped} log lines counted as dropped, 40 expected"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(terminate(&mut child).await.success());
}

#[tokio::test]
async fn a_log_pipe_nobody_reads_does_not_block_the_server() {
    // At debug, every connection logs a few lines: 2,000 of them fill the pipe (64 KiB)
    // many times over.
    let (mut child, http, tcp_text, log) = with_log_pipe(false, &[("RUST_LOG", "debug")]);
    come_and_go(tcp_text, 2_000).await;
    let health = http_get(http, "/healthz").await;
    assert!(health.contains(r#""status":"ok""#), "{health}");
    let metrics = http_get(http, "/metrics").await;
    assert!(
        metrics.contains(r#"chatterbox_log_lines_dropped_total{why="full"}"#),
        "no full queue counted"
    );
    assert!(terminate(&mut child).await.success());
    drop(log);
}
