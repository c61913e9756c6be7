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
