//! What operators see: Prometheus metrics, served at `GET /metrics` by the HTTP
//! listener (text exposition format), recorded with the `metrics` crate.
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `chatterbox_members` | gauge | protocol | named members in the lobby now (as `/healthz` `members` counts them: a Socket.IO socket from its `newUser` on) |
//! | `chatterbox_connections` | gauge | | places held under the connection limits now: TCP connections admitted and open, every listener (HTTP included), and Engine.IO sessions (`crate::http::sessions`), as `--max-connections` counts them |
//! | `chatterbox_joins_total` | counter | protocol | announced joins (a name taken, a guest connected, a rename) |
//! | `chatterbox_leaves_total` | counter | protocol | departures of named members |
//! | `chatterbox_lines_in_total` | counter | protocol | chat lines accepted from members |
//! | `chatterbox_lines_out_total` | counter | protocol | lobby events queued for members |
//! | `chatterbox_bytes_out_total` | counter | protocol | bytes of lobby events written to WebSocket and TCP members (Socket.IO's are written by socketioxide, not counted) |
//! | `chatterbox_refusals_total` | counter | protocol, reason | requests and connections refused with an error (reasons: `malformed`, `unknown_type`, `too_large`, `unnamed`, `message_too_long`, `room_name`, `room_full`, `not_seated`, `gone`, `busy`, `origin`, `rate`, `flood`, `connections`, `connections_per_ip`, `connect_timeout`, `stall`, `header_timeout`, `proxy_header`, `unavailable`, `joins`; the HTTP listener's under `socketio`) |
//! | `chatterbox_slow_consumer_cutoffs_total` | counter | protocol | members cut off as slow consumers (see `lobby::backlog`) |
//! | `chatterbox_history_lines_total` | counter | | chat lines committed to the history |
//! | `chatterbox_history_commit_seconds` | summary | | time of one group commit (one transaction, one fsync) |
//! | `chatterbox_history_commit_failures_total` | counter | | commits that failed and were retried |
//! | `chatterbox_cluster_entries_skipped_total` | counter | | cluster log entries this node could not read (foreign, truncated, another version), skipped (`--redis-url`) |
//! | `chatterbox_cluster_append_failures_total` | counter | | tries of an append to the cluster log that failed (Redis did not answer: tried again; or refused: not relayed) (`--redis-url`) |
//! | `chatterbox_cluster_redis_unavailable` | gauge | | 1 while Redis does not answer this node (chat lines refused with "the lobby is unavailable"), else 0 (`--redis-url`) |
//! | `chatterbox_log_lines_dropped_total` | counter | why | log lines not written: `full` (stderr's reader does not keep up: the queue of `crate::logging` was full) or `broken` (stderr is closed) |
//! | `chatterbox_cluster_log_gaps_total` | counter | | times this node found the cluster log had lost entries it had not read (trimmed while it was away): presence read anew (`--redis-url`) |
//!
//! The recorder is process-wide (the `metrics` crate has one global recorder): several
//! servers in one process share it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use metrics::{Counter, Gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::protocol::Protocol;

/// Named members in the lobby, by protocol.
pub(crate) const MEMBERS: &str = "chatterbox_members";
/// TCP connections admitted and open, every listener.
pub(crate) const CONNECTIONS: &str = "chatterbox_connections";
/// Announced joins, by protocol.
pub(crate) const JOINS: &str = "chatterbox_joins_total";
/// Departures of named members, by protocol.
pub(crate) const LEAVES: &str = "chatterbox_leaves_total";
/// Chat lines accepted, by protocol of the sender.
pub(crate) const LINES_IN: &str = "chatterbox_lines_in_total";
/// Events queued for members, by protocol of the receiver.
pub(crate) const LINES_OUT: &str = "chatterbox_lines_out_total";
/// Bytes written to WebSocket and TCP members.
pub(crate) const BYTES_OUT: &str = "chatterbox_bytes_out_total";
/// Requests refused, by protocol and reason.
pub(crate) const REFUSALS: &str = "chatterbox_refusals_total";
/// Slow consumers cut off, by protocol.
pub(crate) const CUTOFFS: &str = "chatterbox_slow_consumer_cutoffs_total";

/// Chat lines committed to the history.
pub(crate) const HISTORY_LINES: &str = "chatterbox_history_lines_total";
/// Duration of each group commit.
pub(crate) const HISTORY_COMMIT: &str = "chatterbox_history_commit_seconds";
/// Failed (and retried) commits.
pub(crate) const HISTORY_COMMIT_FAILURES: &str = "chatterbox_history_commit_failures_total";
/// Counter: times the allocator's free memory was given back after a storm of connections.
pub(crate) const MEMORY_TRIMS: &str = "chatterbox_memory_trims_total";

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the Prometheus recorder (once per process) and returns its handle; `None`
/// when another recorder was installed first.
pub(crate) fn prometheus() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => {
                describe();
                Some(handle)
            }
            Err(e) => {
                tracing::warn!("metrics are off: {e}");
                None
            }
        })
        .as_ref()
}

fn describe() {
    metrics::describe_gauge!(MEMBERS, "Named members in the lobby now, by protocol.");
    metrics::describe_gauge!(
        CONNECTIONS,
        "TCP connections admitted and open now, every listener."
    );
    metrics::describe_counter!(JOINS, "Announced joins, by protocol.");
    metrics::describe_counter!(LEAVES, "Departures of named members, by protocol.");
    metrics::describe_counter!(LINES_IN, "Chat lines accepted from members, by protocol.");
    metrics::describe_counter!(LINES_OUT, "Lobby events queued for members, by protocol.");
    metrics::describe_counter!(BYTES_OUT, "Bytes written to WebSocket and TCP members.");
    metrics::describe_counter!(
        REFUSALS,
        "Requests refused with an error, by protocol and reason."
    );
    metrics::describe_counter!(CUTOFFS, "Members cut off as slow consumers, by protocol.");
    metrics::describe_counter!(HISTORY_LINES, "Chat lines committed to the history.");
    metrics::describe_histogram!(
        HISTORY_COMMIT,
        metrics::Unit::Seconds,
        "Duration of one group commit of the history (one transaction, one fsync)."
    );
    metrics::describe_counter!(
        HISTORY_COMMIT_FAILURES,
        "History commits that failed and were retried."
    );
    metrics::describe_counter!(
        MEMORY_TRIMS,
        "Times the allocator's free memory was given back after a storm of connections."
    );
}

/// Counts a refused request.
pub(crate) fn refused(protocol: Protocol, reason: &'static str) {
    metrics::counter!(REFUSALS, "protocol" => protocol.as_str(), "reason" => reason).increment(1);
}

/// Records a group commit of `lines` lines that took `took`.
pub(crate) fn history_committed(lines: usize, took: std::time::Duration) {
    metrics::counter!(HISTORY_LINES).increment(lines as u64);
    metrics::histogram!(HISTORY_COMMIT).record(took.as_secs_f64());
}

/// Counts a failed history commit.
pub(crate) fn history_commit_failed() {
    metrics::counter!(HISTORY_COMMIT_FAILURES).increment(1);
}

/// Counts a trim of the allocator after a storm of connections.
pub(crate) fn memory_trimmed() {
    metrics::counter!(MEMORY_TRIMS).increment(1);
}

/// Counts bytes written to a member.
pub(crate) fn bytes_out(protocol: Protocol, bytes: usize) {
    metrics::counter!(BYTES_OUT, "protocol" => protocol.as_str()).increment(bytes as u64);
}

/// The lobby's own metrics, one handle per protocol, looked up once: fan-out adds to
/// them without a registry lookup per delivery.
pub(crate) struct LobbyMetrics {
    /// [`MEMBERS`] by protocol.
    pub members: [Gauge; 4],
    /// [`JOINS`] by protocol.
    pub joins: [Counter; 4],
    /// [`LEAVES`] by protocol.
    pub leaves: [Counter; 4],
    /// [`LINES_IN`] by protocol.
    pub lines_in: [Counter; 4],
    /// [`LINES_OUT`] by protocol.
    pub lines_out: [Counter; 4],
    /// [`CUTOFFS`] by protocol.
    pub cut_offs: [Counter; 4],
}

impl LobbyMetrics {
    /// Handles from the recorder installed now (no-ops if none is).
    pub(crate) fn new() -> Self {
        let counters = |name: &'static str| {
            Protocol::ALL.map(|p| metrics::counter!(name, "protocol" => p.as_str()))
        };
        Self {
            members: Protocol::ALL.map(|p| metrics::gauge!(MEMBERS, "protocol" => p.as_str())),
            joins: counters(JOINS),
            leaves: counters(LEAVES),
            lines_in: counters(LINES_IN),
            lines_out: counters(LINES_OUT),
            cut_offs: counters(CUTOFFS),
        }
    }
}

impl Default for LobbyMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Log lines not written, by why.
pub(crate) const LOG_LINES_DROPPED: &str = "chatterbox_log_lines_dropped_total";

/// Counts a log line dropped (`full` or `broken`). Looked up at each drop: the writer
/// starts before the recorder is installed.
pub(crate) fn log_line_dropped(why: &'static str) {
    metrics::counter!(LOG_LINES_DROPPED, "why" => why).increment(1);
}

/// The lobby members' traffic, process-wide (as the metrics recorder is): what the admin
/// UI's `aggregatedEvents` show as `packetsIn`, `bytesIn`, `packetsOut`, `bytesOut`.
///
/// A packet in is a request a member sent (a Socket.IO event, a WebSocket frame, a TCP
/// JSON object, a TCP text chunk), its bytes as read (a Socket.IO event: its Socket.IO
/// packet, as the Node `instrument()` counts it); a packet out is a lobby event queued
/// for a member, its bytes as encoded for it. Replies to one member (errors, acks,
/// room lines) are not counted. Relaxed atomics: packets out and Socket.IO's bytes out
/// are added once per fan-out batch, the other protocols' bytes once per write.
pub(crate) struct Traffic {
    packets_in: AtomicU64,
    bytes_in: AtomicU64,
    packets_out: AtomicU64,
    bytes_out: AtomicU64,
}

/// The totals of [`Traffic`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TrafficTotals {
    pub(crate) packets_in: u64,
    pub(crate) bytes_in: u64,
    pub(crate) packets_out: u64,
    pub(crate) bytes_out: u64,
}

/// The process's [`Traffic`].
pub(crate) static TRAFFIC: Traffic = Traffic {
    packets_in: AtomicU64::new(0),
    bytes_in: AtomicU64::new(0),
    packets_out: AtomicU64::new(0),
    bytes_out: AtomicU64::new(0),
};

impl Traffic {
    /// A packet of `bytes` received from a member.
    pub(crate) fn received(&self, bytes: usize) {
        self.received_packets(1);
        self.received_bytes(bytes);
    }

    /// `packets` received from members (their bytes counted as read).
    pub(crate) fn received_packets(&self, packets: u64) {
        if packets > 0 {
            self.packets_in.fetch_add(packets, Ordering::Relaxed);
        }
    }

    /// `bytes` read from a member.
    pub(crate) fn received_bytes(&self, bytes: usize) {
        self.bytes_in.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// `packets` queued for members.
    pub(crate) fn queued(&self, packets: u64) {
        if packets > 0 {
            self.packets_out.fetch_add(packets, Ordering::Relaxed);
        }
    }

    /// `bytes` sent to members.
    pub(crate) fn sent_bytes(&self, bytes: u64) {
        if bytes > 0 {
            self.bytes_out.fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// The totals so far.
    pub(crate) fn totals(&self) -> TrafficTotals {
        TrafficTotals {
            packets_in: self.packets_in.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            packets_out: self.packets_out.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
        }
    }
}
