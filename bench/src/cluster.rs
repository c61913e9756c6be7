//! Several nodes of one lobby: members spread over the nodes' addresses, one order checked
//! across every receiver, latency split by whether a line crossed nodes, and the CPU and
//! memory of the processes beside the server (the other nodes, Redis).
//!
//! - `--addr A,B,C` (likewise `--ws-addr`, `--tcp-json-addr`): the nodes' addresses,
//!   comma-separated, every list in the same node order. Member `i` of a protocol connects
//!   to the `i mod n`-th address of its list, so members (and the senders, the first K
//!   Socket.IO members) are spread evenly; sender `s` is on node `s mod n`.
//! - With more than one address, or `--check-order`, every receiver records each line it
//!   takes as (sender, seq, latency). At the end of each round the records are checked
//!   against one reference receiver (one that sends nothing, with the most lines): every
//!   receiver's lines, restricted to the lines the reference has, must come in the
//!   reference's order. A line that comes after a line the reference has after it is out
//!   of order (`lines_out_of_order`; `receivers_out_of_order` counts the receivers with
//!   any). Lost lines are not out of order here: the round counts them as lost. The
//!   latencies are split into lines from a sender on the receiver's own node and from one
//!   on another node (`cross_node_p99_ms`).
//! - `--watch NAME=PID` (repeatable): each round reports that process's CPU (cores) and
//!   resident memory; the run reports its memory before the members came, at the end,
//!   and its CPU time over the whole run.
//!
//! Without any of these, nothing here runs and the report is as for one server.

use std::sync::Mutex;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::usage::{Usage, usage};

/// One line as a receiver took it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Entry {
    /// The sender's index.
    pub sender: u32,
    /// The sender's sequence number.
    pub seq: u32,
    /// The line's latency, in µs.
    pub latency_us: u32,
}

/// A receiver's lines since it last reported, kept in its [`crate::stats::Seen`].
pub struct Recorder {
    slot: usize,
    entries: Vec<Entry>,
}

impl Recorder {
    /// Records a line.
    pub fn push(&mut self, sender: usize, seq: u64, latency_us: u64) {
        self.entries.push(Entry {
            sender: u32::try_from(sender).unwrap_or(u32::MAX),
            seq: u32::try_from(seq).unwrap_or(u32::MAX),
            latency_us: u32::try_from(latency_us).unwrap_or(u32::MAX),
        });
    }
}

/// Every receiver's lines of the round: its node, the sender it is (if it is one), its
/// lines in the order it took them.
struct Receiver {
    node: usize,
    sender: Option<usize>,
    entries: Vec<Entry>,
}

/// A process watched beside the server.
struct Watched {
    name: String,
    pid: u32,
    /// Before the members came.
    empty: Option<Usage>,
}

/// The nodes, the receivers' records and the watched processes of a run.
pub struct Cluster {
    /// Socket.IO, plain WebSocket and TCP JSON addresses, each list in node order.
    lists: [Vec<String>; 3],
    record: bool,
    receivers: Mutex<Vec<Receiver>>,
    watched: Vec<Watched>,
    /// When the round being measured started, and the watched processes' usage then.
    round_start: Mutex<(Instant, Vec<Option<Usage>>)>,
}

/// The addresses of a comma-separated list.
fn addresses(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect()
}

/// The address member `index` of a protocol connects to, of the comma-separated `list`.
pub fn pick(list: &str, index: usize) -> String {
    let all = addresses(list);
    if all.is_empty() {
        return list.to_string();
    }
    all[index % all.len()].clone()
}

/// Parses `--watch NAME=PID`.
pub fn parse_watch(text: &str) -> Result<(String, u32), String> {
    let (name, pid) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=PID, got {text:?}"))?;
    let pid = pid
        .parse()
        .map_err(|e| format!("the pid in {text:?}: {e}"))?;
    if name.is_empty() {
        return Err(format!("no name in {text:?}"));
    }
    Ok((name.to_string(), pid))
}

impl Cluster {
    /// The cluster of these address lists and watched processes; `None` when there is
    /// one address of each protocol, no `check_order` and nothing watched (one server).
    pub fn new(
        addr: &str,
        ws_addr: Option<&str>,
        tcp_json_addr: Option<&str>,
        check_order: bool,
        watch: &[(String, u32)],
    ) -> Option<Self> {
        let lists = [
            addresses(addr),
            ws_addr.map(addresses).unwrap_or_default(),
            tcp_json_addr.map(addresses).unwrap_or_default(),
        ];
        let several = lists.iter().any(|list| list.len() > 1);
        if !several && !check_order && watch.is_empty() {
            return None;
        }
        let watched: Vec<Watched> = watch
            .iter()
            .map(|(name, pid)| Watched {
                name: name.clone(),
                pid: *pid,
                empty: usage(&pid.to_string()),
            })
            .collect();
        let now = watched.iter().map(|w| w.empty).collect();
        Some(Self {
            lists,
            record: several || check_order,
            receivers: Mutex::new(Vec::new()),
            watched,
            round_start: Mutex::new((Instant::now(), now)),
        })
    }

    /// A recorder for a receiver connected to `addr`, sender `me` if it is one; `None`
    /// when order is not checked.
    pub fn recorder(&self, addr: &str, me: Option<usize>) -> Option<Recorder> {
        if !self.record {
            return None;
        }
        let node = self
            .lists
            .iter()
            .find_map(|list| list.iter().position(|a| a == addr))
            .unwrap_or(0);
        let mut receivers = self.receivers();
        receivers.push(Receiver {
            node,
            sender: me,
            entries: Vec::new(),
        });
        Some(Recorder {
            slot: receivers.len() - 1,
            entries: Vec::new(),
        })
    }

    fn receivers(&self) -> std::sync::MutexGuard<'_, Vec<Receiver>> {
        self.receivers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a receiver's lines since it last reported to the round's, and clears them.
    pub fn report(&self, recorder: &mut Recorder) {
        if recorder.entries.is_empty() {
            return;
        }
        if let Some(receiver) = self.receivers().get_mut(recorder.slot) {
            receiver.entries.append(&mut recorder.entries);
        }
    }

    /// Ends a round: the watched processes' CPU and memory since the round started, then
    /// the checks of one order and the latency across nodes; the next round starts from
    /// here.
    pub fn end_round(&self) -> RoundCheck {
        let watched = {
            let start = self.round_start.lock().unwrap_or_else(|p| p.into_inner());
            let wall = start.0.elapsed().as_secs_f64();
            self.watched
                .iter()
                .zip(&start.1)
                .map(|(w, before)| {
                    let after = usage(&w.pid.to_string());
                    let cores = match (before, after) {
                        (Some(b), Some(a)) => {
                            Some(a.cpu.saturating_sub(b.cpu).as_secs_f64() / wall.max(1e-9))
                        }
                        _ => None,
                    };
                    (w.name.clone(), cores, after)
                })
                .collect()
        };
        let taken: Vec<Receiver> = self
            .receivers()
            .iter_mut()
            .map(|r| Receiver {
                node: r.node,
                sender: r.sender,
                entries: std::mem::take(&mut r.entries),
            })
            .collect();
        let check = self.record.then(|| {
            let nodes = self.lists[0].len().max(1);
            let order = one_order(&taken);
            let (same, cross) = latencies(&taken, nodes);
            (order, same, cross)
        });
        *self.round_start.lock().unwrap_or_else(|p| p.into_inner()) = (
            Instant::now(),
            self.watched
                .iter()
                .map(|w| usage(&w.pid.to_string()))
                .collect(),
        );
        RoundCheck { check, watched }
    }

    /// The run's figures: the nodes and, for each watched process, its memory before the
    /// members came and now (the end of the run), and its CPU time over the run.
    pub fn add_to_report(&self, report: &mut Value) {
        report["nodes"] = json!(self.lists[0].len());
        let mut watched = serde_json::Map::new();
        for w in &self.watched {
            let now = usage(&w.pid.to_string());
            watched.insert(
                w.name.clone(),
                json!({
                    "empty_rss_kib": w.empty.map(|u| u.rss_kib),
                    "rss_kib": now.map(|u| u.rss_kib),
                    "peak_rss_kib": now.map(|u| u.peak_rss_kib),
                    "cpu_secs": match (w.empty, now) {
                        (Some(e), Some(n)) => Some(n.cpu.saturating_sub(e.cpu).as_secs_f64()),
                        _ => None,
                    },
                }),
            );
        }
        report["watched"] = Value::Object(watched);
    }

    /// Prints the watched processes' memory and CPU over the run (the table's form).
    pub fn print_run(&self) {
        for w in &self.watched {
            let now = usage(&w.pid.to_string());
            println!(
                "{}: RSS {} KiB before the members came, {} KiB now; {} s of CPU",
                w.name,
                w.empty.map_or("?".into(), |u| u.rss_kib.to_string()),
                now.map_or("?".into(), |u| u.rss_kib.to_string()),
                match (w.empty, now) {
                    (Some(e), Some(n)) =>
                        format!("{:.2}", n.cpu.saturating_sub(e.cpu).as_secs_f64()),
                    _ => "?".into(),
                },
            );
        }
    }
}

/// How one order held across the receivers.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Order {
    /// Receivers compared with the reference (the reference itself not counted).
    pub receivers_checked: usize,
    /// Receivers with at least one line out of the reference's order.
    pub receivers_out_of_order: usize,
    /// Lines, over all receivers, that came after a line the reference has after them.
    pub lines_out_of_order: u64,
}

/// Checks every receiver's lines against the reference's order (see the module's doc).
fn one_order(receivers: &[Receiver]) -> Order {
    let reference = receivers
        .iter()
        .enumerate()
        .max_by_key(|(_, r)| (r.sender.is_none(), r.entries.len()))
        .map(|(i, _)| i);
    let Some(reference) = reference else {
        return Order::default();
    };
    // Each sender's lines' positions in the reference, by sequence number from the
    // lowest the reference has.
    let mut first: Vec<u32> = Vec::new();
    let mut last: Vec<u32> = Vec::new();
    for e in &receivers[reference].entries {
        let s = e.sender as usize;
        if s >= first.len() {
            first.resize(s + 1, u32::MAX);
            last.resize(s + 1, 0);
        }
        first[s] = first[s].min(e.seq);
        last[s] = last[s].max(e.seq);
    }
    let mut position: Vec<Vec<u32>> = first
        .iter()
        .zip(&last)
        .map(|(&f, &l)| {
            if f == u32::MAX {
                Vec::new()
            } else {
                vec![u32::MAX; (l - f + 1) as usize]
            }
        })
        .collect();
    for (p, e) in receivers[reference].entries.iter().enumerate() {
        let s = e.sender as usize;
        position[s][(e.seq - first[s]) as usize] = u32::try_from(p).unwrap_or(u32::MAX - 1);
    }
    let at = |e: &Entry| -> Option<u32> {
        let s = e.sender as usize;
        let offset = e.seq.checked_sub(*first.get(s)?)?;
        position[s]
            .get(offset as usize)
            .copied()
            .filter(|&p| p != u32::MAX)
    };
    let mut order = Order::default();
    for (i, receiver) in receivers.iter().enumerate() {
        if i == reference {
            continue;
        }
        order.receivers_checked += 1;
        let mut furthest = None;
        let mut out = 0;
        for p in receiver.entries.iter().filter_map(at) {
            if furthest.is_some_and(|f| p < f) {
                out += 1;
            } else {
                furthest = Some(p);
            }
        }
        order.lines_out_of_order += out;
        order.receivers_out_of_order += usize::from(out > 0);
    }
    order
}

/// The latencies of lines from a sender on the receiver's node and from one on
/// another, of `nodes` nodes (sender `s` is on node `s mod nodes`).
fn latencies(receivers: &[Receiver], nodes: usize) -> (Histogram<u64>, Histogram<u64>) {
    let new = || Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds");
    let (mut same, mut cross) = (new(), new());
    for receiver in receivers {
        for e in &receiver.entries {
            let histogram = if e.sender as usize % nodes == receiver.node {
                &mut same
            } else {
                &mut cross
            };
            histogram.saturating_record(u64::from(e.latency_us).max(1));
        }
    }
    (same, cross)
}

/// What [`Cluster::end_round`] found.
pub struct RoundCheck {
    /// One order, and the latencies on one node and across nodes (when recorded).
    check: Option<(Order, Histogram<u64>, Histogram<u64>)>,
    /// Each watched process: its name, cores over the round, usage at its end.
    watched: Vec<(String, Option<f64>, Option<Usage>)>,
}

/// Microseconds as milliseconds; `None` for an empty histogram.
fn quantile_ms(histogram: &Histogram<u64>, quantile: f64) -> Option<f64> {
    (!histogram.is_empty()).then(|| histogram.value_at_quantile(quantile) as f64 / 1000.0)
}

impl RoundCheck {
    /// Whether a receiver took a line out of the one order.
    pub fn out_of_order(&self) -> bool {
        self.check
            .as_ref()
            .is_some_and(|(order, _, _)| order.lines_out_of_order > 0)
    }

    /// Adds the round's cross-node figures to its item in the report.
    pub fn add_to(&self, summary: &mut Value) {
        if let Some((order, same, cross)) = &self.check {
            summary["receivers_checked"] = json!(order.receivers_checked);
            summary["receivers_out_of_order"] = json!(order.receivers_out_of_order);
            summary["lines_out_of_order"] = json!(order.lines_out_of_order);
            summary["one_order"] = json!(order.lines_out_of_order == 0);
            summary["same_node_deliveries"] = json!(same.len());
            summary["same_node_p99_ms"] = json!(quantile_ms(same, 0.99));
            summary["cross_node_deliveries"] = json!(cross.len());
            summary["cross_node_p50_ms"] = json!(quantile_ms(cross, 0.5));
            summary["cross_node_p99_ms"] = json!(quantile_ms(cross, 0.99));
        }
        if !self.watched.is_empty() {
            let mut watched = serde_json::Map::new();
            for (name, cores, after) in &self.watched {
                watched.insert(
                    name.clone(),
                    json!({ "cores": cores, "rss_kib": after.map(|u| u.rss_kib) }),
                );
            }
            summary["watched"] = Value::Object(watched);
        }
    }

    /// Prints the round's cross-node figures under its row.
    pub fn print(&self) {
        if let Some((order, same, cross)) = &self.check {
            let ms = |h, q| quantile_ms(h, q).map_or("n/a".into(), |v| format!("{v:.2}"));
            println!(
                "  one order: {} of {} receivers out of it ({} lines); p99 ms on one node {}, across nodes {}",
                order.receivers_out_of_order,
                order.receivers_checked,
                order.lines_out_of_order,
                ms(same, 0.99),
                ms(cross, 0.99),
            );
        }
        for (name, cores, after) in &self.watched {
            println!(
                "  {name}: {} cores, RSS {} KiB",
                cores.map_or("?".into(), |c| format!("{c:.2}")),
                after.map_or("?".into(), |u| u.rss_kib.to_string()),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver(node: usize, sender: Option<usize>, lines: &[(u32, u32)]) -> Receiver {
        Receiver {
            node,
            sender,
            entries: lines
                .iter()
                .map(|&(sender, seq)| Entry {
                    sender,
                    seq,
                    latency_us: 1000 * (1 + sender),
                })
                .collect(),
        }
    }

    #[test]
    fn members_are_spread_over_the_addresses_in_turn() {
        let picked: Vec<String> = (0..5).map(|i| pick("a:1,b:2, c:3", i)).collect();
        assert_eq!(picked, ["a:1", "b:2", "c:3", "a:1", "b:2"]);
        assert_eq!(pick("127.0.0.1:8000", 7), "127.0.0.1:8000");
    }

    #[test]
    fn one_server_without_a_flag_is_no_cluster() {
        assert!(Cluster::new("a:1", Some("w:1"), None, false, &[]).is_none());
        let cluster = Cluster::new("a:1,b:2", Some("w:1,w:2"), None, false, &[]).unwrap();
        // A receiver is on the node of its address in its protocol's list.
        let _ = cluster.recorder("w:2", None).unwrap();
        assert_eq!(cluster.receivers()[0].node, 1);
    }

    #[test]
    fn watch_is_name_equals_pid() {
        assert_eq!(parse_watch("redis=42"), Ok(("redis".into(), 42)));
        assert!(parse_watch("redis").is_err());
        assert!(parse_watch("=42").is_err());
        assert!(parse_watch("redis=x").is_err());
    }

    #[test]
    fn receivers_in_one_order_pass_and_each_line_out_of_it_is_counted() {
        let lines = [(0, 1), (1, 1), (0, 2), (2, 1), (1, 2)];
        let same = [
            receiver(0, None, &lines),
            // Sender 1 does not get its own lines; the rest in the same order.
            receiver(1, Some(1), &[(0, 1), (0, 2), (2, 1)]),
            // Lost (0, 2): not out of order (the round counts it as lost).
            receiver(2, None, &[(0, 1), (1, 1), (2, 1), (1, 2)]),
        ];
        assert_eq!(
            one_order(&same),
            Order {
                receivers_checked: 2,
                receivers_out_of_order: 0,
                lines_out_of_order: 0
            }
        );
        let swapped = [
            receiver(0, None, &lines),
            receiver(1, None, &[(1, 1), (0, 1), (0, 2), (2, 1), (1, 2)]),
            receiver(2, None, &[(0, 1), (1, 1), (2, 1), (1, 2), (0, 2)]),
            receiver(0, None, &lines),
        ];
        // The reference is one of the two receivers with every line (the same order).
        assert_eq!(
            one_order(&swapped),
            Order {
                receivers_checked: 3,
                receivers_out_of_order: 2,
                lines_out_of_order: 2
            }
        );
        assert_eq!(one_order(&[]), Order::default());
    }

    #[test]
    fn latencies_are_split_by_whether_the_sender_is_on_the_receivers_node() {
        // Two nodes: senders 0 and 2 on node 0, sender 1 on node 1.
        let receivers = [
            receiver(0, None, &[(0, 1), (1, 1), (2, 1)]),
            receiver(1, None, &[(0, 1), (1, 1)]),
        ];
        let (same, cross) = latencies(&receivers, 2);
        assert_eq!((same.len(), cross.len()), (3, 2));
        // Sender s's lines took (1 + s) ms.
        assert_eq!(quantile_ms(&cross, 1.0).map(f64::round), Some(2.0));
        assert_eq!(quantile_ms(&same, 1.0).map(f64::round), Some(3.0));
        assert_eq!(quantile_ms(&cross, 0.0).map(f64::round), Some(1.0));
    }
}
