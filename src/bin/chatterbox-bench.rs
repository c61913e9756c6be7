//! chatterbox-bench: the load generator for the Socket.IO lobby chat (PROTOCOLS.md
//! section 1), for chatterbox and for the Node original alike.
//!
//! It speaks Engine.IO v4 / Socket.IO v5 over WebSocket itself (no client library on the
//! hot path). `--members` N members connect (at most `--handshakes-in-flight` at once)
//! and send `newUser`; the first `--senders` K of them send `message` at `--rate` lines
//! per second each for `--duration-secs`. Every line carries its sender, a sequence
//! number and its send time (`<sender>|<seq>|<µs>;`); every receiver records the latency
//! in an HDR histogram and checks that nothing is lost, duplicated, reordered per sender
//! or echoed to its sender. Plain WebSocket and TCP JSON members (chatterbox only)
//! receive too, so cross-protocol fan-out is measured.
//!
//! Reported: deliveries/s, latency p50/p90/p99/max, losses, the server's CPU (cores)
//! and peak RSS (from /proc, with `--server-pid`), and the generator's own CPU, so that
//! a saturated generator is flagged rather than mistaken for the server's limit.
//! `--search` raises the rate round by round until a round fails (p99 over
//! `--max-p99-ms`, a loss, or a saturated generator). `--idle` reports the server's RSS
//! per joined idle member and the time the members took to join.
//!
//! Exit status: 1 when a round lost, duplicated, reordered or echoed a line (without
//! `--search`) or a member was disconnected.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

/// How long a round waits for lines still in flight once the senders stop.
const DRAIN: Duration = Duration::from_secs(5);

/// A lobby with no frame for this long has delivered everything.
const QUIET: Duration = Duration::from_millis(500);

/// Most rounds of a search.
const MAX_ROUNDS: usize = 14;

/// Load generator for the Socket.IO lobby chat.
#[derive(Debug, Parser)]
#[command(name = "chatterbox-bench", version)]
struct Args {
    /// The server's HTTP address: members connect to ws://ADDR/socket.io/.
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: String,
    /// The server's process id, for its CPU time and memory (read from /proc).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Socket.IO members.
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Members that send lines (the first K).
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Lines per second of each sender (the first round's, when searching).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Length of a round of sending, in seconds.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Raise the rate by `--rate-step` each round until a round fails.
    #[arg(long)]
    search: bool,
    /// Factor between the rates of two rounds of a search.
    #[arg(long, default_value_t = 1.5)]
    rate_step: f64,
    /// A round whose p99 latency is over this fails.
    #[arg(long, default_value_t = 100.0)]
    max_p99_ms: f64,
    /// Connection handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    handshakes_in_flight: usize,
    /// The plain WebSocket listener, for `--ws-members`.
    #[arg(long)]
    ws_addr: Option<String>,
    /// Plain WebSocket members (receivers).
    #[arg(long, default_value_t = 0)]
    ws_members: usize,
    /// The TCP JSON listener, for `--tcp-json-members`.
    #[arg(long)]
    tcp_json_addr: Option<String>,
    /// TCP JSON members (receivers).
    #[arg(long, default_value_t = 0)]
    tcp_json_members: usize,
    /// Join, report memory per idle member and the join time, and stop.
    #[arg(long)]
    idle: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// What the senders do now.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Quiet,
    Sending { rate: f64 },
    Done,
}

/// What the receivers saw in one round.
struct Round {
    latency_us: Histogram<u64>,
    received: u64,
    duplicated: u64,
    reordered: u64,
    echoed: u64,
}

impl Round {
    fn new() -> Self {
        Self {
            latency_us: Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds"),
            received: 0,
            duplicated: 0,
            reordered: 0,
            echoed: 0,
        }
    }
}

struct Shared {
    base: Instant,
    senders: usize,
    sent: Vec<AtomicU64>,
    round: Mutex<Round>,
    disconnected: AtomicU64,
    finishing: AtomicBool,
    /// Frames received by Socket.IO members, of any kind.
    frames: AtomicU64,
}

impl Shared {
    fn now_us(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Records a line `<sender>|<seq>|<µs>` received by a member that is sender `me`
    /// (if it sends) and has seen `last[s]` of each sender so far.
    fn record(&self, content: &str, me: Option<usize>, last: &mut [u64]) {
        let mut fields = content.trim_end_matches(';').split('|');
        let (Some(Ok(sender)), Some(Ok(seq)), Some(Ok(sent_us))) = (
            fields.next().map(str::parse::<usize>),
            fields.next().map(str::parse::<u64>),
            fields.next().map(str::parse::<u64>),
        ) else {
            return;
        };
        let Some(seen) = last.get_mut(sender) else {
            return;
        };
        let now = self.now_us();
        let mut round = self.round.lock().unwrap_or_else(|p| p.into_inner());
        if me == Some(sender) {
            round.echoed += 1;
            return;
        }
        match seq.cmp(&(*seen + 1)) {
            std::cmp::Ordering::Equal => *seen = seq,
            std::cmp::Ordering::Less => round.duplicated += 1,
            std::cmp::Ordering::Greater => {
                round.reordered += 1;
                *seen = seq;
            }
        }
        round.received += 1;
        round
            .latency_us
            .saturating_record(now.saturating_sub(sent_us).max(1));
    }

    /// Counts a member whose connection ended before the run did.
    fn member_ended(&self, result: anyhow::Result<()>) {
        if let Err(e) = result
            && !self.finishing.load(Ordering::Relaxed)
        {
            eprintln!("{e:#}");
            self.disconnected.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn lines_sent(&self) -> u64 {
        self.sent.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }
}

/// The content of `"key":"<content>"` in `text`.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    let start = text.find(key)? + key.len();
    let len = text[start..].find('"')?;
    Some(&text[start..start + len])
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Reads text frames until one satisfies `done`, answering Engine.IO pings.
async fn until_text(ws: &mut Ws, done: impl Fn(&str) -> bool) -> anyhow::Result<()> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                ws.send(Message::text("3")).await?;
            }
            Some(Ok(Message::Text(text))) if done(text.as_str()) => return Ok(()),
            Some(Ok(Message::Close(_))) | None => bail!("closed during the handshake"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

/// One Socket.IO member: joins, then receives, and sends while the phase says so.
async fn socketio_member(
    shared: Arc<Shared>,
    index: usize,
    addr: String,
    handshakes: Arc<Semaphore>,
    joined: mpsc::UnboundedSender<()>,
    mut phase: watch::Receiver<Phase>,
) -> anyhow::Result<()> {
    let permit = handshakes.acquire_owned().await?;
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
    until_text(&mut ws, |text| text.starts_with('0')).await?;
    ws.send(Message::text("40")).await?;
    until_text(&mut ws, |text| text.starts_with("40")).await?;
    let name = format!("m{index}");
    ws.send(Message::text(format!(r#"42["newUser","{name}"]"#)))
        .await?;
    let own_join = format!(r#""message":"{name}님이"#);
    until_text(&mut ws, |text| text.contains(&own_join)).await?;
    drop(permit);
    joined.send(()).ok();

    let me = (index < shared.senders).then_some(index);
    let mut last = vec![0; shared.senders];
    let mut seq = 0;
    let mut ticker: Option<tokio::time::Interval> = None;
    let (mut sink, mut frames) = ws.split();
    loop {
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    shared.frames.fetch_add(1, Ordering::Relaxed);
                    let text = text.as_str();
                    if text == "2" {
                        sink.send(Message::text("3")).await?;
                    } else if text.starts_with(r#"42["update",{"type":"message""#)
                        && let Some(content) = field(text, r#""message":""#)
                    {
                        shared.record(content, me, &mut last);
                    }
                }
                Some(Ok(Message::Close(_))) | None => bail!("member {index} closed"),
                Some(Ok(_)) => {}
                Some(Err(e)) => bail!("member {index}: {e}"),
            },
            changed = phase.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let now = *phase.borrow_and_update();
                ticker = match (now, me) {
                    (Phase::Done, _) => return Ok(()),
                    (Phase::Sending { rate }, Some(sender)) => {
                        // Senders spread over the period, as independent clients are.
                        let period = Duration::from_secs_f64(1.0 / rate);
                        let offset = period.mul_f64(sender as f64 / shared.senders as f64);
                        let start = tokio::time::Instant::now() + offset;
                        let mut ticker = tokio::time::interval_at(start, period);
                        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                        Some(ticker)
                    }
                    _ => None,
                };
            }
            _ = async { ticker.as_mut().expect("ticking").tick().await }, if ticker.is_some() => {
                seq += 1;
                let line = format!(
                    r#"42["message",{{"type":"message","message":"{index}|{seq}|{};"}}]"#,
                    shared.now_us()
                );
                sink.send(Message::text(line)).await?;
                shared.sent[index].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One plain WebSocket member: receives every line as `{"type":"message",…,"msg":"…"}`.
async fn websocket_member(
    shared: Arc<Shared>,
    addr: String,
    joined: mpsc::UnboundedSender<()>,
) -> anyhow::Result<()> {
    let url = format!("ws://{addr}/");
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
    joined.send(()).ok();
    let mut last = vec![0; shared.senders];
    while let Some(frame) = ws.next().await {
        if let Message::Text(text) = frame?
            && let Some(content) = field(text.as_str(), r#""msg":""#)
        {
            shared.record(content, None, &mut last);
        }
    }
    bail!("websocket member closed")
}

/// One TCP JSON member, never named: receives every line as `<X> : <line>` with no
/// delimiter; the lines' own `;` ends them.
async fn tcp_json_member(
    shared: Arc<Shared>,
    addr: String,
    joined: mpsc::UnboundedSender<()>,
) -> anyhow::Result<()> {
    let mut stream = tokio::net::TcpStream::connect(&addr).await?;
    joined.send(()).ok();
    let mut last = vec![0; shared.senders];
    let mut pending = String::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("tcp json member closed");
        }
        pending.push_str(&String::from_utf8_lossy(&buf[..n]));
        while let Some(end) = pending.find(';') {
            let piece = &pending[..end];
            if let Some((_, content)) = piece.rsplit_once(" : ") {
                shared.record(content, None, &mut last);
            }
            pending.drain(..=end);
        }
    }
}

/// A process's CPU time (user + system) and memory, from /proc.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    cpu: Duration,
    rss_kib: u64,
    peak_rss_kib: u64,
}

fn usage(pid: &str) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state: utime and
    // stime are the 12th and 13th of them.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a constant of the system.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|&hz| hz > 0)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some(Usage {
        cpu: Duration::from_millis(ticks * 1000 / per_second),
        rss_kib: kib("VmRSS:")?,
        peak_rss_kib: kib("VmHWM:")?,
    })
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.senders > args.members {
        bail!("--senders must not be over --members");
    }
    let server_pid = args.server_pid.map(|pid| pid.to_string());
    let server_usage = || server_pid.as_deref().and_then(usage);
    let empty = server_usage();

    let shared = Arc::new(Shared {
        base: Instant::now(),
        senders: args.senders,
        sent: (0..args.senders).map(|_| AtomicU64::new(0)).collect(),
        round: Mutex::new(Round::new()),
        disconnected: AtomicU64::new(0),
        finishing: AtomicBool::new(false),
        frames: AtomicU64::new(0),
    });
    let (phase_tx, phase) = watch::channel(Phase::Quiet);
    let (joined_tx, mut joined) = mpsc::unbounded_channel();
    let handshakes = Arc::new(Semaphore::new(args.handshakes_in_flight.max(1)));
    let mut members = tokio::task::JoinSet::new();
    let join_started = Instant::now();
    for index in 0..args.members {
        let member = socketio_member(
            shared.clone(),
            index,
            args.addr.clone(),
            handshakes.clone(),
            joined_tx.clone(),
            phase.clone(),
        );
        let shared = shared.clone();
        members.spawn(async move {
            shared.member_ended(member.await);
        });
    }
    for (count, addr, kind) in [
        (args.ws_members, &args.ws_addr, "ws"),
        (args.tcp_json_members, &args.tcp_json_addr, "tcp-json"),
    ] {
        if count == 0 {
            continue;
        }
        let addr = addr
            .clone()
            .with_context(|| format!("--{kind}-addr is needed"))?;
        for _ in 0..count {
            let (shared, addr, joined) = (shared.clone(), addr.clone(), joined_tx.clone());
            members.spawn(async move {
                let result = if kind == "ws" {
                    websocket_member(shared.clone(), addr, joined).await
                } else {
                    tcp_json_member(shared.clone(), addr, joined).await
                };
                shared.member_ended(result);
            });
        }
    }
    drop(joined_tx);
    let everyone = args.members + args.ws_members + args.tcp_json_members;
    let mut joined_count = 0;
    while joined_count < everyone {
        tokio::select! {
            got = joined.recv() => {
                got.context("members failed to join")?;
                joined_count += 1;
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let lost = shared.disconnected.load(Ordering::Relaxed);
        if lost > 0 {
            bail!("{lost} members were disconnected before all had joined");
        }
    }
    let join_secs = join_started.elapsed().as_secs_f64();
    // Every join is announced to everyone: wait until those announcements have all
    // arrived (no frame for QUIET), so that rounds measure lines only.
    let mut frames = shared.frames.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(QUIET).await;
        let now = shared.frames.load(Ordering::Relaxed);
        if now == frames {
            break;
        }
        frames = now;
    }
    if !args.json {
        println!(
            "{everyone} members joined in {join_secs:.2} s, quiet after {:.2} s",
            join_started.elapsed().as_secs_f64()
        );
    }

    let mut report = json!({
        "members": args.members,
        "senders": args.senders,
        "ws_members": args.ws_members,
        "tcp_json_members": args.tcp_json_members,
        "join_secs": join_secs,
        "empty_rss_kib": empty.map(|u| u.rss_kib),
    });
    let mut failed = false;
    if args.idle {
        // Let the server settle what the joins allocated before reading its memory.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = server_usage();
        let per_member = match (empty, idle) {
            (Some(empty), Some(idle)) => {
                Some(idle.rss_kib.saturating_sub(empty.rss_kib) * 1024 / everyone.max(1) as u64)
            }
            _ => None,
        };
        report["idle_rss_kib"] = json!(idle.map(|u| u.rss_kib));
        report["idle_rss_per_member_bytes"] = json!(per_member);
        if !args.json {
            println!(
                "server RSS: empty {} KiB, with {everyone} idle members {} KiB: {} bytes per member",
                empty.map_or("?".into(), |u| u.rss_kib.to_string()),
                idle.map_or("?".into(), |u| u.rss_kib.to_string()),
                per_member.map_or("?".into(), |b| b.to_string()),
            );
        }
    } else {
        let receivers_per_line =
            (args.members - 1 + args.ws_members + args.tcp_json_members) as u64;
        let mut rounds = Vec::new();
        let mut rate = args.rate;
        let mut best: Option<serde_json::Value> = None;
        if !args.json {
            println!(
                "{:>9} {:>12} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>6}",
                "rate/s",
                "deliveries/s",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "max ms",
                "lost",
                "server",
                "bench",
                "pass"
            );
        }
        for _ in 0..MAX_ROUNDS {
            *shared.round.lock().unwrap_or_else(|p| p.into_inner()) = Round::new();
            let sent_before = shared.lines_sent();
            let (server_before, bench_before) = (server_usage(), usage("self"));
            let started = Instant::now();
            phase_tx.send(Phase::Sending { rate }).ok();
            tokio::time::sleep(Duration::from_secs(args.duration_secs)).await;
            phase_tx.send(Phase::Quiet).ok();
            let sending = started.elapsed().as_secs_f64();
            let expected = (shared.lines_sent() - sent_before) * receivers_per_line;
            let drain_until = Instant::now() + DRAIN;
            while shared
                .round
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .received
                < expected
                && Instant::now() < drain_until
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let wall = started.elapsed().as_secs_f64();
            let (server_after, bench_after) = (server_usage(), usage("self"));
            let cores = |before: Option<Usage>, after: Option<Usage>| {
                Some((after?.cpu.saturating_sub(before?.cpu)).as_secs_f64() / wall)
            };
            let server_cores = cores(server_before, server_after);
            let bench_cores = cores(bench_before, bench_after).unwrap_or(0.0);
            let round = std::mem::replace(
                &mut *shared.round.lock().unwrap_or_else(|p| p.into_inner()),
                Round::new(),
            );
            let lost = expected.saturating_sub(round.received);
            let h = &round.latency_us;
            let p99_ms = ms(h.value_at_quantile(0.99));
            let saturated = bench_cores > 0.9;
            let clean =
                lost == 0 && round.duplicated == 0 && round.reordered == 0 && round.echoed == 0;
            let disconnected = shared.disconnected.load(Ordering::Relaxed);
            let pass = clean && disconnected == 0 && p99_ms <= args.max_p99_ms && !saturated;
            let deliveries_per_s = round.received as f64 / sending;
            let summary = json!({
                "rate": rate,
                "deliveries_per_s": deliveries_per_s,
                "p50_ms": ms(h.value_at_quantile(0.5)),
                "p90_ms": ms(h.value_at_quantile(0.9)),
                "p99_ms": p99_ms,
                "max_ms": ms(h.max()),
                "expected": expected,
                "received": round.received,
                "lost": lost,
                "duplicated": round.duplicated,
                "reordered": round.reordered,
                "echoed": round.echoed,
                "disconnected": disconnected,
                "server_cores": server_cores,
                "server_peak_rss_kib": server_after.map(|u| u.peak_rss_kib),
                "bench_cores": bench_cores,
                "generator_saturated": saturated,
                "pass": pass,
            });
            if !args.json {
                println!(
                    "{:>9.1} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>7} {:>7.2} {:>6}",
                    rate,
                    deliveries_per_s,
                    ms(h.value_at_quantile(0.5)),
                    ms(h.value_at_quantile(0.9)),
                    p99_ms,
                    ms(h.max()),
                    lost,
                    server_cores.map_or("?".into(), |c| format!("{c:.2}")),
                    bench_cores,
                    if pass {
                        "yes"
                    } else if saturated {
                        "GEN"
                    } else {
                        "no"
                    },
                );
                if !clean {
                    println!(
                        "  lost {lost}, duplicated {}, reordered {}, echoed {}",
                        round.duplicated, round.reordered, round.echoed
                    );
                }
            }
            failed |= !clean || disconnected > 0;
            if pass {
                best = Some(summary.clone());
            }
            rounds.push(summary);
            if !args.search || !pass {
                break;
            }
            rate *= args.rate_step;
        }
        if args.search {
            // A search ends on a failing round by design; only a broken round is an error.
            failed = shared.disconnected.load(Ordering::Relaxed) > 0;
        }
        report["rounds"] = json!(rounds);
        report["best"] = json!(best);
    }
    let peak = server_usage().map(|u| u.peak_rss_kib);
    report["server_peak_rss_kib"] = json!(peak);
    if args.json {
        println!("{report}");
    } else if let Some(peak) = peak {
        println!("server peak RSS {peak} KiB");
    }
    shared.finishing.store(true, Ordering::Relaxed);
    phase_tx.send(Phase::Done).ok();
    members.abort_all();
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(senders: usize) -> Shared {
        Shared {
            base: Instant::now(),
            senders,
            sent: (0..senders).map(|_| AtomicU64::new(0)).collect(),
            round: Mutex::new(Round::new()),
            disconnected: AtomicU64::new(0),
            finishing: AtomicBool::new(false),
            frames: AtomicU64::new(0),
        }
    }

    #[test]
    fn lines_are_found_in_either_servers_field_order() {
        let ours = r#"42["update",{"type":"message","name":"m1","message":"1|7|99;"}]"#;
        let node = r#"42["update",{"type":"message","message":"1|7|99;","name":"m1"}]"#;
        for frame in [ours, node] {
            assert_eq!(field(frame, r#""message":""#), Some("1|7|99;"));
        }
        let ws = r#"{"type":"message","name":"m1","msg":"0|1|5;"}"#;
        assert_eq!(field(ws, r#""msg":""#), Some("0|1|5;"));
    }

    #[test]
    fn losses_duplicates_reorders_and_echoes_are_told_apart() {
        let shared = shared(2);
        let mut last = vec![0; 2];
        for line in ["0|1|0;", "0|2|0;", "1|1|0;", "0|2|0;", "0|4|0;", "1|2|0;"] {
            shared.record(line, Some(1), &mut last);
        }
        shared.record("not a line", None, &mut last);
        shared.record("7|1|0;", None, &mut last); // no such sender
        let round = shared.round.lock().unwrap();
        // Received: 0|1, 0|2, 0|2 again (a duplicate), 0|4 (reordered: 0|3 is
        // missing); 1|1 and 1|2 are the receiver's own lines, echoed.
        assert_eq!(
            (
                round.received,
                round.duplicated,
                round.reordered,
                round.echoed
            ),
            (4, 1, 1, 2)
        );
        assert_eq!(last, [4, 0]);
    }
}
