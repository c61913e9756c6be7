//! Where the cluster is and who this node is ([`ClusterSettings`], from the command
//! line): what every part of a cluster node reads, and a leaf.

use std::time::Duration;

/// Where the cluster is and who this node is.
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// `redis://…` or `redis+unix://…`.
    pub url: String,
    /// The key prefix.
    pub cluster: String,
    /// This node's id in the log.
    pub node_id: String,
    /// The node's lease (`--node-lease-ms`).
    pub lease: Duration,
    /// How long a command waits for Redis's answer (`--redis-timeout-ms`).
    pub response_timeout: Duration,
    /// About how many entries `<c>:log` keeps (`--cluster-log-entries`).
    pub log_entries: u64,
    /// About how many lines `<c>:lines` keeps; 0: all (`--history-keep-lines`).
    pub history_lines: u64,
}
