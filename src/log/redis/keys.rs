//! The names of the cluster's keys in Redis, under its prefix `<c>` (`--cluster`): the
//! table in the parent module's doc says what each holds.

/// The cluster's keys, under its prefix (see the module doc).
#[derive(Debug, Clone)]
pub(super) struct Keys {
    pub(super) prefix: String,
    pub(super) log: String,
    pub(super) line_id: String,
    pub(super) lines: String,
    pub(super) members: String,
    pub(super) nodes: String,
    pub(super) epochs: String,
    pub(super) seqs: String,
    pub(super) member_ids: String,
    pub(super) seats: String,
}

impl Keys {
    pub(super) fn new(cluster: &str) -> Self {
        let key = |name: &str| format!("{cluster}:{name}");
        Self {
            prefix: cluster.to_owned(),
            log: key("log"),
            line_id: key("line-id"),
            lines: key("lines"),
            members: key("members"),
            nodes: key("nodes"),
            epochs: key("epochs"),
            seqs: key("seqs"),
            member_ids: key("member-ids"),
            seats: key("seats"),
        }
    }

    /// The set of `node`'s member keys.
    pub(super) fn node_members(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    /// The set of `node`'s seated members (freed when it is given up).
    pub(super) fn node_seats(&self, node: &str) -> String {
        format!("{}:node-seats:{node}", self.prefix)
    }
}
