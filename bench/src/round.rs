//! One round: the senders send at one rate for `--duration-secs`, the run waits for the
//! lines still in flight, then judges the round. Its report is one JSON object (an item
//! of the report's `rounds`) and, without `--json`, one row of the table.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;

use crate::Args;
use crate::cluster::{Cluster, RoundCheck};
use crate::members::Phase;
use crate::search::Outcome;
use crate::stats::{Round, Shared};
use crate::usage::{Usage, server_usage, usage};

/// A generator using more of its core than this is saturated: the round fails, as the
/// generator's limit and not the server's.
const SATURATED_CORES: f64 = 0.9;

/// What one round measured, and how it went.
pub struct Measured {
    rate: f64,
    sent: u64,
    /// Lines owed to the receivers: every line sent and not refused, once per receiver.
    expected: u64,
    refused: u64,
    lost: u64,
    round: Round,
    /// Lines out of order beyond the gaps that refused lines leave.
    out_of_order: u64,
    disconnected: u64,
    sending_secs: f64,
    server_cores: Option<f64>,
    server_after: Option<Usage>,
    bench_cores: f64,
    saturated: bool,
    /// Nothing lost, duplicated, out of order or echoed.
    clean: bool,
    /// One order and latency across nodes, the watched processes (several nodes).
    cluster: Option<RoundCheck>,
    /// Whether the round passed: clean, nothing refused, nobody cut off, the p99 within
    /// `--max-p99-ms`, the generator not saturated.
    pub pass: bool,
}

/// What the senders do in a round.
pub struct Plan {
    /// Lines per second of each sender.
    pub rate: f64,
    /// How long the senders send.
    pub duration: Duration,
    /// The most lines each sender sends (`None`: as many as the rate gives).
    pub lines: Option<u64>,
    /// Each line's content padded to this many bytes (0: not padded).
    pub line_bytes: usize,
}

impl Plan {
    /// Lines at `rate` for `--duration-secs`, unpadded: a round of the search.
    pub fn at_rate(args: &Args, rate: f64) -> Self {
        Self {
            rate,
            duration: Duration::from_secs(args.duration_secs),
            lines: None,
            line_bytes: 0,
        }
    }
}

/// Runs one round as `plan` says, each line owed to `receivers_per_line` members.
pub async fn run(
    args: &Args,
    shared: &Shared,
    phase: &watch::Sender<Phase>,
    plan: &Plan,
    receivers_per_line: u64,
) -> Measured {
    let rate = plan.rate;
    *shared.round() = Round::new();
    let sent_before = shared.lines_sent();
    let refused_before = shared.refused.load(Ordering::Relaxed);
    let (server_before, bench_before) = (server_usage(args.server_pid), usage("self"));
    let started = Instant::now();
    phase
        .send(Phase::Sending {
            rate,
            lines: plan.lines,
            line_bytes: plan.line_bytes,
        })
        .ok();
    tokio::time::sleep(plan.duration).await;
    phase.send(Phase::Quiet).ok();
    let sending_secs = started.elapsed().as_secs_f64();
    let sent = shared.lines_sent() - sent_before;
    // A refused line was never accepted (its sender was told): nobody is owed it.
    let refused = || shared.refused.load(Ordering::Relaxed) - refused_before;
    let expected = || sent.saturating_sub(refused()) * receivers_per_line;
    let drain_until = Instant::now() + Duration::from_secs(args.drain_secs);
    while shared.round().received < expected() && Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (refused, expected) = (refused(), expected());
    let wall = started.elapsed().as_secs_f64();
    let (server_after, bench_after) = (server_usage(args.server_pid), usage("self"));
    let cores = |before: Option<Usage>, after: Option<Usage>| {
        Some((after?.cpu.saturating_sub(before?.cpu)).as_secs_f64() / wall)
    };
    let server_cores = cores(server_before, server_after);
    let bench_cores = cores(bench_before, bench_after).unwrap_or(0.0);
    let round = std::mem::replace(&mut *shared.round(), Round::new());
    let cluster = shared.cluster.as_ref().map(Cluster::end_round);
    let lost = expected.saturating_sub(round.received);
    let saturated = bench_cores > SATURATED_CORES;
    // A refused line leaves a gap in its sender's sequence at every receiver, which
    // looks like a line out of order: only gaps beyond those count.
    let out_of_order = round.reordered.saturating_sub(refused * receivers_per_line);
    let clean = lost == 0 && round.duplicated == 0 && out_of_order == 0 && round.echoed == 0;
    let disconnected = shared.disconnected.load(Ordering::Relaxed);
    let p99_ms = ms(round.latency_us.value_at_quantile(0.99));
    let pass =
        clean && refused == 0 && disconnected == 0 && p99_ms <= args.max_p99_ms && !saturated;
    Measured {
        rate,
        sent,
        expected,
        refused,
        lost,
        round,
        out_of_order,
        disconnected,
        sending_secs,
        server_cores,
        server_after,
        bench_cores,
        saturated,
        clean,
        cluster,
        pass,
    }
}

/// Prints the table's header, over the rows of [`Measured::print_row`].
pub fn print_header() {
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

impl Measured {
    fn deliveries_per_s(&self) -> f64 {
        self.round.received as f64 / self.sending_secs
    }

    fn quantile_ms(&self, quantile: f64) -> f64 {
        ms(self.round.latency_us.value_at_quantile(quantile))
    }

    /// The round's item in the report; `attempt` counts the runs of its rate, from 1.
    pub fn summary(&self, attempt: usize) -> serde_json::Value {
        let round = &self.round;
        let mut summary = json!({
            "rate": self.rate,
            "deliveries_per_s": self.deliveries_per_s(),
            "p50_ms": self.quantile_ms(0.5),
            "p90_ms": self.quantile_ms(0.9),
            "p99_ms": self.quantile_ms(0.99),
            "max_ms": ms(round.latency_us.max()),
            "expected": self.expected,
            "received": round.received,
            "lost": self.lost,
            "refused": self.refused,
            "duplicated": round.duplicated,
            "reordered": self.out_of_order,
            "gaps_after_refused_lines": round.reordered - self.out_of_order,
            "echoed": round.echoed,
            "disconnected": self.disconnected,
            "server_cores": self.server_cores,
            "server_peak_rss_kib": self.server_after.map(|u| u.peak_rss_kib),
            "bench_cores": self.bench_cores,
            "generator_saturated": self.saturated,
            "pass": self.pass,
            "attempt": attempt,
        });
        if let Some(cluster) = &self.cluster {
            cluster.add_to(&mut summary);
        }
        summary
    }

    /// Prints the round's row of the table, and what it lost or had refused if anything.
    pub fn print_row(&self) {
        println!(
            "{:>9.1} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>7} {:>7.2} {:>6}",
            self.rate,
            self.deliveries_per_s(),
            self.quantile_ms(0.5),
            self.quantile_ms(0.9),
            self.quantile_ms(0.99),
            ms(self.round.latency_us.max()),
            self.lost,
            self.server_cores.map_or("?".into(), |c| format!("{c:.2}")),
            self.bench_cores,
            if self.pass {
                "yes"
            } else if self.saturated {
                "GEN"
            } else {
                "no"
            },
        );
        if self.refused > 0 {
            println!(
                "  refused {} of {} lines (the server said why)",
                self.refused, self.sent
            );
        }
        if !self.clean {
            println!(
                "  lost {}, duplicated {}, reordered {}, echoed {}",
                self.lost, self.round.duplicated, self.out_of_order, self.round.echoed
            );
        }
        if let Some(cluster) = &self.cluster {
            cluster.print();
        }
    }

    /// Whether the run fails for this round (without `--search`): a line lost,
    /// duplicated, out of order or echoed, a member cut off, or (several nodes) a
    /// receiver out of the one order.
    pub fn failed(&self) -> bool {
        !self.clean
            || self.disconnected > 0
            || self.cluster.as_ref().is_some_and(RoundCheck::out_of_order)
    }

    /// How the round went, for the search.
    pub fn outcome(&self) -> Outcome {
        if self.pass {
            Outcome::Passed
        } else if self.clean && self.refused == 0 && self.disconnected == 0 && !self.saturated {
            Outcome::OnlyP99Failed
        } else {
            Outcome::Failed
        }
    }
}

/// Microseconds as milliseconds.
fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}
