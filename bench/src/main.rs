//! chatterbox-bench: the load generator for the Socket.IO lobby chat (PROTOCOLS.md
//! section 1), for chatterbox and for the Node original alike.
//!
//! It speaks Engine.IO v4 / Socket.IO v5 over WebSocket itself (no client library on the
//! hot path). `--members` N members connect (at most `--handshakes-in-flight` at once)
//! and send `newUser`; the first `--senders` K of them send `message` at `--rate` lines
//! per second each for `--duration-secs`. Every line carries its sender, a sequence
//! number and its send time (`<sender>|<seq>|<µs>;`); every receiver records the latency
//! in an HDR histogram and checks that nothing is lost, duplicated, reordered per sender
//! or echoed to its sender (a line the server refused, and said so, leaves a gap in its
//! sender's sequence that is not counted as reordered). Plain WebSocket and TCP JSON members (chatterbox only)
//! receive too, so cross-protocol fan-out is measured.
//!
//! Reported: deliveries/s, latency p50/p90/p99/max, losses, the server's CPU (cores)
//! and peak RSS (from /proc, with `--server-pid`), and the generator's own CPU, so that
//! a saturated generator is flagged rather than mistaken for the server's limit.
//! `--search` raises the rate round by round until a round fails (p99 over
//! `--max-p99-ms`, a loss, or a saturated generator); a round that failed on its p99
//! alone is run again at the same rate (`--retries`) before the search ends. `--idle` reports the server's RSS
//! per joined idle member and the time the members took to join; with `--burst-lines`,
//! also its RSS per member once every member has received a burst of long lines.
//!
//! Exit status (without `--search`): 1 when the round (or the burst) lost, duplicated,
//! reordered or echoed a line or a member was disconnected. A search always ends on a failing round,
//! so it exits 0 with every round in its report.
//!
//! Several nodes of one lobby (`--addr A,B,C`): members are spread over them, every
//! receiver's order is checked against the others', and latency across nodes is
//! reported (see [`cluster`]). A receiver out of the one order fails a run without
//! `--search` (exit status 1); in a search it is reported with each round and does not
//! fail the round (whose rule stays: p99, nothing lost), so that a cluster that keeps
//! no order across nodes still has a rate.
//!
//! This file holds the flags and the run's steps: start the members, wait for their
//! joins and for the join notices to settle, then measure the idle members or run the
//! rounds, and report.

mod cluster;
mod members;
mod round;
mod search;
mod stats;
mod usage;
mod ws;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinSet;

use members::Phase;
use search::{Next, next_round};
use stats::Shared;
use usage::{Usage, server_usage};

/// A lobby with no frame for this long has delivered everything.
const QUIET: Duration = Duration::from_millis(500);

/// With no member joining for this long, the run ends with an error, not a hang.
const JOIN_STALL: Duration = Duration::from_secs(30);

/// Load generator for the Socket.IO lobby chat.
#[derive(Debug, Parser)]
#[command(name = "chatterbox-bench", version)]
struct Args {
    /// The server's HTTP address: members connect to ws://ADDR/socket.io/. Several
    /// nodes' addresses, comma-separated: members are spread over them in turn.
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
    /// How long a round waits, once its senders stop, for the lines still in flight
    /// before it counts those not arrived as lost, in seconds.
    #[arg(long, default_value_t = 5)]
    drain_secs: u64,
    /// Raise the rate by `--rate-step` each round until a round fails.
    #[arg(long)]
    search: bool,
    /// Factor between the rates of two rounds of a search.
    #[arg(long, default_value_t = 1.5)]
    rate_step: f64,
    /// A round whose p99 latency is over this fails.
    #[arg(long, default_value_t = 100.0)]
    max_p99_ms: f64,
    /// In a search, a round that failed on its p99 alone (nothing lost, refused or cut
    /// off) is run again at the same rate up to this many times before the search ends:
    /// one stall of the machine (a slow fsync) is then not taken for the server's limit.
    #[arg(long, default_value_t = 1)]
    retries: usize,
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
    /// Join, report memory per idle member and the join time, and stop (after the
    /// burst, with `--burst-lines`).
    #[arg(long)]
    idle: bool,
    /// With `--idle`: then the senders send this many lines in all, spread over
    /// `--burst-secs`, each of `--burst-line-bytes`; once every member has them, the
    /// server's memory per member after the burst is reported too.
    #[arg(long, default_value_t = 0)]
    burst_lines: u64,
    /// How long the burst's lines are spread over, in seconds.
    #[arg(long, default_value_t = 1.0)]
    burst_secs: f64,
    /// The length of each of the burst's lines (the chat text), in bytes.
    #[arg(long, default_value_t = 1024)]
    burst_line_bytes: usize,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Check one order across every receiver even with one address (with several it
    /// is always checked).
    #[arg(long)]
    check_order: bool,
    /// Another process to report the CPU and memory of (another node, Redis), as
    /// NAME=PID; repeatable.
    #[arg(long, value_parser = cluster::parse_watch)]
    watch: Vec<(String, u32)>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.members == 0 {
        bail!("--members must be at least 1");
    }
    if args.senders > args.members {
        bail!("--senders must not be over --members");
    }
    let empty = server_usage(args.server_pid);
    let mut shared = Shared::new(args.senders);
    shared.cluster = cluster::Cluster::new(
        &args.addr,
        args.ws_addr.as_deref(),
        args.tcp_json_addr.as_deref(),
        args.check_order,
        &args.watch,
    );
    let shared = Arc::new(shared);
    let (phase_tx, phase) = watch::channel(Phase::Quiet);
    let join_started = Instant::now();
    let (mut members, joined) = connect_members(&args, &shared, phase)?;
    let everyone = args.members + args.ws_members + args.tcp_json_members;
    wait_for_joins(&shared, joined, everyone).await?;
    let join_secs = join_started.elapsed().as_secs_f64();
    wait_until_quiet(&shared).await;
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
    let failed = if args.idle {
        measure_idle(&args, empty, everyone, &mut report).await;
        if args.burst_lines > 0 {
            measure_burst(&args, &shared, &phase_tx, empty, everyone, &mut report).await
        } else {
            false
        }
    } else {
        run_rounds(&args, &shared, &phase_tx, &mut report).await
    };
    if let Some(cluster) = &shared.cluster {
        cluster.add_to_report(&mut report);
        if !args.json {
            cluster.print_run();
        }
    }
    let peak = server_usage(args.server_pid).map(|u| u.peak_rss_kib);
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

/// Starts every member's task: the Socket.IO members (at most `--handshakes-in-flight`
/// joining at once), then the plain WebSocket and TCP JSON ones. Each member says on
/// the returned channel when it has joined.
fn connect_members(
    args: &Args,
    shared: &Arc<Shared>,
    phase: watch::Receiver<Phase>,
) -> anyhow::Result<(JoinSet<()>, mpsc::UnboundedReceiver<()>)> {
    let (joined_tx, joined) = mpsc::unbounded_channel();
    let handshakes = Arc::new(Semaphore::new(args.handshakes_in_flight.max(1)));
    let mut members = JoinSet::new();
    for index in 0..args.members {
        let member = members::socketio_member(
            shared.clone(),
            index,
            cluster::pick(&args.addr, index),
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
        for index in 0..count {
            let addr = cluster::pick(&addr, index);
            let (shared, joined) = (shared.clone(), joined_tx.clone());
            members.spawn(async move {
                let result = if kind == "ws" {
                    members::websocket_member(shared.clone(), addr, joined).await
                } else {
                    members::tcp_json_member(shared.clone(), addr, joined).await
                };
                shared.member_ended(result);
            });
        }
    }
    Ok((members, joined))
}

/// Waits until all `everyone` members have joined: an error when a member is cut off
/// first, or when none joins for [`JOIN_STALL`].
async fn wait_for_joins(
    shared: &Shared,
    mut joined: mpsc::UnboundedReceiver<()>,
    everyone: usize,
) -> anyhow::Result<()> {
    let mut joined_count = 0;
    let mut last_join = Instant::now();
    while joined_count < everyone {
        tokio::select! {
            got = joined.recv() => {
                got.context("members failed to join")?;
                joined_count += 1;
                last_join = Instant::now();
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        if last_join.elapsed() > JOIN_STALL {
            bail!(
                "{joined_count} of {everyone} members joined, then none for {} s",
                JOIN_STALL.as_secs()
            );
        }
        let lost = shared.disconnected.load(Ordering::Relaxed);
        if lost > 0 {
            bail!("{lost} members were disconnected before all had joined");
        }
    }
    Ok(())
}

/// Every join is announced to everyone: waits until those announcements have all
/// arrived (no event for [`QUIET`]), so that rounds measure lines only.
async fn wait_until_quiet(shared: &Shared) {
    let mut events = shared.events.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(QUIET).await;
        let now = shared.events.load(Ordering::Relaxed);
        if now == events {
            break;
        }
        events = now;
    }
}

/// The server's resident memory now, `now`, over what it was `empty`, per member of
/// `everyone`, in bytes.
fn rss_per_member(empty: Option<Usage>, now: Option<Usage>, everyone: usize) -> Option<u64> {
    let grown = now?.rss_kib.saturating_sub(empty?.rss_kib);
    Some(grown * 1024 / everyone.max(1) as u64)
}

/// `--idle`: the server's memory with the `everyone` members joined and idle, against
/// `empty`, its memory before they came. Adds `idle_rss_kib` and
/// `idle_rss_per_member_bytes` to the report.
async fn measure_idle(
    args: &Args,
    empty: Option<Usage>,
    everyone: usize,
    report: &mut serde_json::Value,
) {
    // Let the server settle what the joins allocated before reading its memory.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = server_usage(args.server_pid);
    let per_member = rss_per_member(empty, idle, everyone);
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
}

/// `--burst-lines`: the senders send the burst (each sender its share, at the rate that
/// spreads it over `--burst-secs`), the run waits until every member has it, lets the
/// server settle, and reads its memory against `empty`. Adds `burst` to the report: the
/// round's summary with `rss_kib` and `rss_per_member_bytes`. True when the burst lost,
/// duplicated, reordered or echoed a line, or a member was disconnected.
async fn measure_burst(
    args: &Args,
    shared: &Shared,
    phase: &watch::Sender<Phase>,
    empty: Option<Usage>,
    everyone: usize,
    report: &mut serde_json::Value,
) -> bool {
    let senders = args.senders.max(1) as u64;
    let each = args.burst_lines.div_ceil(senders);
    let secs = args.burst_secs.max(0.001);
    let plan = round::Plan {
        rate: each as f64 / secs,
        // Each sender's last line is due before `secs`; the margin lets it out.
        duration: Duration::from_secs_f64(secs) + Duration::from_millis(50),
        lines: Some(each),
        line_bytes: args.burst_line_bytes,
    };
    let receivers_per_line = (everyone - 1) as u64;
    let measured = round::run(args, shared, phase, &plan, receivers_per_line).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server_usage(args.server_pid);
    let per_member = rss_per_member(empty, after, everyone);
    let mut burst = measured.summary(1);
    burst["lines_per_sender"] = json!(each);
    burst["line_bytes"] = json!(args.burst_line_bytes);
    burst["rss_kib"] = json!(after.map(|u| u.rss_kib));
    burst["rss_per_member_bytes"] = json!(per_member);
    report["burst"] = burst;
    if !args.json {
        round::print_header();
        measured.print_row();
        println!(
            "server RSS after a burst of {} lines of {} bytes: {} KiB, {} bytes per member",
            each * senders,
            args.burst_line_bytes,
            after.map_or("?".into(), |u| u.rss_kib.to_string()),
            per_member.map_or("?".into(), |b| b.to_string()),
        );
    }
    measured.failed()
}

/// The rounds: one at `--rate`, or with `--search` one rate after another as
/// [`next_round`] says. Adds `rounds` and `best` (the last round that passed) to the
/// report; true when the run failed (never for a search, which ends on a failing round
/// by design).
async fn run_rounds(
    args: &Args,
    shared: &Shared,
    phase: &watch::Sender<Phase>,
    report: &mut serde_json::Value,
) -> bool {
    let receivers_per_line = (args.members - 1 + args.ws_members + args.tcp_json_members) as u64;
    let mut rounds = Vec::new();
    let mut rate = args.rate;
    let mut best: Option<serde_json::Value> = None;
    let mut failed = false;
    if !args.json {
        round::print_header();
    }
    let (mut steps, mut tries) = (0, 0);
    loop {
        let plan = round::Plan::at_rate(args, rate);
        let measured = round::run(args, shared, phase, &plan, receivers_per_line).await;
        let summary = measured.summary(tries + 1);
        if !args.json {
            measured.print_row();
        }
        failed |= measured.failed();
        if measured.pass {
            best = Some(summary.clone());
        }
        rounds.push(summary);
        if !args.search {
            break;
        }
        match next_round(measured.outcome(), steps + 1, tries, args.retries) {
            Next::Raise => {
                (steps, tries) = (steps + 1, 0);
                rate *= args.rate_step;
            }
            Next::Again => {
                tries += 1;
                if !args.json {
                    println!("  failed on p99 alone: once more at the same rate");
                }
            }
            Next::End => break,
        }
    }
    report["rounds"] = json!(rounds);
    report["best"] = json!(best);
    // A search ends on a failing round whatever failed it (members cut off by an
    // overloaded server included): the report says what happened.
    failed && !args.search
}
