//! Who is present in the whole cluster, as this node knows it: the members of every
//! node, kept from the log in its order (each join and leave applied as it is read),
//! starting from a snapshot of `<c>:members` taken with the log's position at one
//! instant ([`super::scripts::SNAPSHOT`]). So every node's presence is the one the log
//! has announced so far, and the counts in the announcements are the cluster's.
//!
//! `<c>:members` holds, under a member's key `<node>/<id>`, `{"name":…,"protocol":…,
//! "since_ms":…}` ([`Kept`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::log::Present;
use crate::protocol::Protocol;

/// A member as `<c>:members` keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Kept {
    /// Its name.
    pub(crate) name: String,
    /// Its protocol.
    #[serde(with = "super::entry::protocol_name")]
    pub(crate) protocol: Protocol,
    /// When it connected, in milliseconds since the Unix epoch.
    pub(crate) since_ms: i64,
    /// The fold of its name, by which names are compared (`crate::lobby::names`).
    #[serde(default)]
    pub(crate) key: String,
}

/// The members of every node (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Roster {
    members: HashMap<String, (Present, String)>,
    /// The members holding each name, by its fold.
    names: HashMap<String, Vec<String>>,
}

impl Roster {
    /// The roster of a snapshot: `(key, member JSON)` pairs; one it cannot read is
    /// skipped (and returned, for the caller to count).
    pub(crate) fn from_snapshot(pairs: Vec<(String, String)>) -> (Self, usize) {
        let mut roster = Self::default();
        let mut unreadable = 0;
        for (key, json) in pairs {
            match serde_json::from_str::<Kept>(&json) {
                Ok(kept) => roster.joined(key, &kept),
                Err(e) => {
                    tracing::warn!(
                        member = key,
                        "an unreadable member in the cluster's presence: {e}"
                    );
                    unreadable += 1;
                }
            }
        }
        (roster, unreadable)
    }

    /// Member `key` joined (or renamed itself).
    pub(crate) fn joined(&mut self, key: String, kept: &Kept) {
        let since = UNIX_EPOCH + Duration::from_millis(u64::try_from(kept.since_ms).unwrap_or(0));
        let present = Present {
            name: Arc::from(kept.name.as_str()),
            protocol: kept.protocol,
            since,
        };
        self.names
            .entry(kept.key.clone())
            .or_default()
            .push(key.clone());
        if let Some((_, old_name)) = self
            .members
            .insert(key.clone(), (present, kept.key.clone()))
        {
            self.forget_name(&old_name, &key);
        }
    }

    /// Member `key` left.
    pub(crate) fn left(&mut self, key: &str) {
        if let Some((_, name)) = self.members.remove(key) {
            self.forget_name(&name, key);
        }
    }

    /// Member `key` no longer holds the name folding to `name` (one entry of it: a
    /// rename to the same name added a second).
    fn forget_name(&mut self, name: &str, key: &str) {
        if let Some(holders) = self.names.get_mut(name) {
            if let Some(at) = holders.iter().position(|holder| holder == key) {
                holders.swap_remove(at);
            }
            if holders.is_empty() {
                self.names.remove(name);
            }
        }
    }

    /// Whether a member whose key does not start with `except_prefix` holds the name
    /// folding to `name`.
    pub(crate) fn holds(&self, name: &str, except_prefix: &str) -> bool {
        self.names
            .get(name)
            .is_some_and(|holders| holders.iter().any(|key| !key.starts_with(except_prefix)))
    }

    /// How many members are present.
    pub(crate) fn len(&self) -> usize {
        self.members.len()
    }

    /// The members present, in the order they connected (ties by key).
    pub(crate) fn present(&self) -> Vec<Present> {
        let mut present: Vec<(&String, &Present)> = self
            .members
            .iter()
            .map(|(key, (member, _))| (key, member))
            .collect();
        present.sort_by(|(a_key, a), (b_key, b)| a.since.cmp(&b.since).then(a_key.cmp(b_key)));
        present
            .into_iter()
            .map(|(_, member)| member.clone())
            .collect()
    }
}

/// A member's key in `<c>:members`: its node and its id there.
pub(crate) fn member_key(node: &str, id: u64) -> String {
    format!("{node}/{id}")
}
