//! What the receivers saw, and the checks they make on every line.
//!
//! A line's content is `<sender>|<seq>|<µs>;`: its sender's index, the sender's
//! sequence number (from 1) and its send time in µs since the run started. Each
//! receiver keeps its own tally ([`Seen`]) and adds it to the round's ([`Round`], in
//! [`Shared`]) once per read.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::cluster::{Cluster, Recorder};

/// What the receivers saw in one round.
pub struct Round {
    /// The latency of every line received, in µs.
    pub latency_us: Histogram<u64>,
    /// Lines received, duplicates and lines out of order included.
    pub received: u64,
    /// Lines received again.
    pub duplicated: u64,
    /// Lines that came after a later one of their sender (or after a gap).
    pub reordered: u64,
    /// Lines sent back to their own sender.
    pub echoed: u64,
}

impl Round {
    /// A round with nothing seen yet.
    pub fn new() -> Self {
        Self {
            latency_us: Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds"),
            received: 0,
            duplicated: 0,
            reordered: 0,
            echoed: 0,
        }
    }
}

/// What every member task and the run share.
pub struct Shared {
    /// The time line send times count from.
    base: Instant,
    /// How many members send (the first ones).
    pub senders: usize,
    /// Lines sent, by sender.
    pub sent: Vec<AtomicU64>,
    round: Mutex<Round>,
    /// Members whose connection ended before the run did.
    pub disconnected: AtomicU64,
    /// Set when the run ends, after which a member's end is not a disconnection.
    pub finishing: AtomicBool,
    /// Lines the server refused with an `error` event (say, its history did not keep up).
    pub refused: AtomicU64,
    /// Events received by Socket.IO members (Engine.IO pings, which never stop, are
    /// not counted).
    pub events: AtomicU64,
    /// Several nodes, order checked, processes watched: `None` for one server.
    pub cluster: Option<Cluster>,
}

impl Shared {
    /// Nothing sent or seen yet, with `senders` senders.
    pub fn new(senders: usize) -> Self {
        Self {
            base: Instant::now(),
            senders,
            sent: (0..senders).map(|_| AtomicU64::new(0)).collect(),
            round: Mutex::new(Round::new()),
            disconnected: AtomicU64::new(0),
            finishing: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            events: AtomicU64::new(0),
            cluster: None,
        }
    }

    /// What a new receiver connected to `addr` (sender `me` if it is one) sees; with a
    /// cluster whose order is checked, it also records each line.
    pub fn seen(&self, addr: &str, me: Option<usize>) -> Seen {
        let mut seen = Seen::new(self.senders, me);
        seen.recorder = self.cluster.as_ref().and_then(|c| c.recorder(addr, me));
        seen
    }

    /// Microseconds since the run started: a line's send time, or its arrival.
    pub fn now_us(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// The round being counted (a member that panicked holding it left it as it was).
    pub fn round(&self) -> MutexGuard<'_, Round> {
        self.round.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds what a member saw since it last reported to the round, and clears it.
    pub fn report(&self, seen: &mut Seen) {
        if seen.latencies_us.is_empty() && seen.echoed == 0 {
            return;
        }
        let mut round = self.round();
        round.received += seen.latencies_us.len() as u64;
        round.duplicated += std::mem::take(&mut seen.duplicated);
        round.reordered += std::mem::take(&mut seen.reordered);
        round.echoed += std::mem::take(&mut seen.echoed);
        for latency in seen.latencies_us.drain(..) {
            round.latency_us.saturating_record(latency.max(1));
        }
        drop(round);
        if let (Some(cluster), Some(recorder)) = (&self.cluster, &mut seen.recorder) {
            cluster.report(recorder);
        }
    }

    /// Counts a member whose connection ended before the run did.
    pub fn member_ended(&self, result: anyhow::Result<()>) {
        if let Err(e) = result
            && !self.finishing.load(Ordering::Relaxed)
        {
            eprintln!("{e:#}");
            self.disconnected.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines sent so far by all the senders.
    pub fn lines_sent(&self) -> u64 {
        self.sent.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }
}

/// What one receiver saw since it last reported to the round: it checks each sender's
/// sequence numbers itself and takes the round's lock once per read, not once per line.
pub struct Seen {
    /// The sender this member is, if it sends.
    me: Option<usize>,
    /// The last sequence number seen of each sender.
    last: Vec<u64>,
    latencies_us: Vec<u64>,
    duplicated: u64,
    reordered: u64,
    echoed: u64,
    /// Each line taken, for the checks across nodes (see [`crate::cluster`]).
    recorder: Option<Recorder>,
}

impl Seen {
    /// Nothing seen yet, of `senders` senders, by sender `me` if it is one.
    pub fn new(senders: usize, me: Option<usize>) -> Self {
        Self {
            me,
            last: vec![0; senders],
            latencies_us: Vec::new(),
            duplicated: 0,
            reordered: 0,
            echoed: 0,
            recorder: None,
        }
    }

    /// Takes a line `<sender>|<seq>|<µs>;` received at `now_us`.
    pub fn line(&mut self, content: &[u8], now_us: u64) {
        let mut fields = content
            .strip_suffix(b";")
            .unwrap_or(content)
            .split(|&b| b == b'|')
            .map(|field| std::str::from_utf8(field).ok()?.parse::<u64>().ok());
        let (Some(Some(sender)), Some(Some(seq)), Some(Some(sent_us))) =
            (fields.next(), fields.next(), fields.next())
        else {
            return;
        };
        let Ok(sender) = usize::try_from(sender) else {
            return;
        };
        let Some(seen) = self.last.get_mut(sender) else {
            return;
        };
        if self.me == Some(sender) {
            self.echoed += 1;
            return;
        }
        match seq.cmp(&(*seen + 1)) {
            std::cmp::Ordering::Equal => *seen = seq,
            std::cmp::Ordering::Less => self.duplicated += 1,
            std::cmp::Ordering::Greater => {
                self.reordered += 1;
                *seen = seq;
            }
        }
        self.latencies_us.push(now_us.saturating_sub(sent_us));
        if let Some(recorder) = &mut self.recorder {
            recorder.push(sender, seq, now_us.saturating_sub(sent_us));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losses_duplicates_reorders_and_echoes_are_told_apart() {
        let mut seen = Seen::new(2, Some(1));
        for line in ["0|1|10;", "0|2|0;", "1|1|0;", "0|2|0;", "0|4|0;", "1|2|0;"] {
            seen.line(line.as_bytes(), 100);
        }
        seen.line(b"not a line", 100);
        seen.line(b"7|1|0;", 100); // no such sender
        let shared = Shared::new(2);
        shared.report(&mut seen);
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
        assert_eq!(seen.last, [4, 0]);
        assert_eq!(round.latency_us.min(), 90);
        assert_eq!(round.latency_us.max(), 100);
        assert!(seen.latencies_us.is_empty());
    }
}
