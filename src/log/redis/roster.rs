//! Who is present in the whole cluster, as this node knows it: the members of every
//! node, kept from the log in its order (each join and leave applied as it is read),
//! starting from a snapshot of `<c>:members` taken with the log's position at one
//! instant ([`super::scripts::SNAPSHOT`]). So every node's presence is the one the log
//! has announced so far, and the counts in the announcements are the cluster's.
//!
//! `<c>:members` holds, under a member's key `<node>/<id>`, the member's JSON
//! ([`Someone`]'s serde form: `{"id":…,"name":…,"protocol":…,"since_ms":…,"key":…}`).

use std::collections::HashMap;

use crate::chat::Someone;

/// The members of every node (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Roster {
    members: HashMap<String, Someone>,
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
            match serde_json::from_str::<Someone>(&json) {
                Ok(someone) if someone.name.is_some() => roster.joined(key, &someone),
                Ok(_) => {
                    tracing::warn!(
                        member = key,
                        "a member without a name in the cluster's presence"
                    );
                    unreadable += 1;
                }
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
    pub(crate) fn joined(&mut self, key: String, someone: &Someone) {
        let name = String::from(name_key(someone));
        self.names.entry(name).or_default().push(key.clone());
        if let Some(old) = self.members.insert(key.clone(), someone.clone()) {
            self.forget_name(name_key(&old), &key);
        }
    }

    /// Member `key` left.
    pub(crate) fn left(&mut self, key: &str) {
        if let Some(old) = self.members.remove(key) {
            self.forget_name(name_key(&old), key);
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
    pub(crate) fn present(&self) -> Vec<Someone> {
        let mut present: Vec<(&String, &Someone)> = self.members.iter().collect();
        present.sort_by(|(a_key, a), (b_key, b)| a.since.cmp(&b.since).then(a_key.cmp(b_key)));
        present
            .into_iter()
            .map(|(_, someone)| someone.clone())
            .collect()
    }
}

/// The fold of a member's name, by which `names` holds it (empty for a member an early
/// build wrote without it).
fn name_key(someone: &Someone) -> &str {
    someone.key.as_deref().unwrap_or_default()
}

/// A member's key in `<c>:members`: its node and its id there.
pub(crate) fn member_key(node: &str, id: u64) -> String {
    format!("{node}/{id}")
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;
    use crate::protocol::Protocol;

    /// A member as a node announces it: the fold of its name is its lower case here.
    fn someone(name: &str, protocol: Protocol, since_ms: u64) -> Someone {
        Someone {
            id: 0,
            name: Some(Arc::from(name)),
            protocol,
            since: UNIX_EPOCH + Duration::from_millis(since_ms),
            key: Some(name.to_lowercase().into()),
        }
    }

    #[test]
    fn joins_are_listed_in_the_order_they_connected_ties_by_key() {
        let mut roster = Roster::default();
        roster.joined(
            member_key("n2", 1),
            &someone("Bob", Protocol::TcpText, 2_000),
        );
        roster.joined(
            member_key("n1", 7),
            &someone("Ann", Protocol::SocketIo, 1_000),
        );
        roster.joined(
            member_key("n1", 3),
            &someone("Cy", Protocol::WebSocket, 2_000),
        );
        assert_eq!(roster.len(), 3);
        assert_eq!(
            roster.present(),
            [
                someone("Ann", Protocol::SocketIo, 1_000),
                someone("Cy", Protocol::WebSocket, 2_000),
                someone("Bob", Protocol::TcpText, 2_000),
            ]
        );
    }

    #[test]
    fn a_rename_replaces_the_member_and_frees_its_old_name() {
        let mut roster = Roster::default();
        roster.joined(member_key("n1", 1), &someone("ann", Protocol::TcpJson, 5));
        roster.joined(member_key("n1", 1), &someone("Anna", Protocol::TcpJson, 5));
        assert_eq!(roster.len(), 1);
        assert_eq!(roster.present(), [someone("Anna", Protocol::TcpJson, 5)]);
        assert!(!roster.holds("ann", "n2/"));
        assert!(roster.holds("anna", "n2/"));
    }

    #[test]
    fn a_rename_to_the_same_name_holds_it_once() {
        let mut roster = Roster::default();
        roster.joined(member_key("n1", 1), &someone("ann", Protocol::SocketIo, 5));
        roster.joined(member_key("n1", 1), &someone("Ann", Protocol::SocketIo, 5));
        assert_eq!(roster.len(), 1);
        assert!(roster.holds("ann", "n2/"));
        roster.left("n1/1");
        assert_eq!(roster.len(), 0);
        assert_eq!(roster.present(), []);
        assert!(!roster.holds("ann", "n2/"));
    }

    #[test]
    fn a_name_is_held_elsewhere_only_by_another_nodes_member() {
        let mut roster = Roster::default();
        roster.joined(member_key("n1", 1), &someone("ann", Protocol::SocketIo, 1));
        roster.joined(member_key("n2", 5), &someone("Ann", Protocol::TcpText, 2));
        assert!(roster.holds("ann", "n1/"));
        assert!(roster.holds("ann", "n2/"));
        roster.left("n2/5");
        assert!(!roster.holds("ann", "n1/"));
        assert!(roster.holds("ann", "n2/"));
        assert!(!roster.holds("bob", "n3/"));
        assert_eq!(roster.len(), 1);
    }

    #[test]
    fn a_leave_of_a_member_not_present_changes_nothing() {
        let mut roster = Roster::default();
        roster.joined(member_key("n1", 1), &someone("ann", Protocol::SocketIo, 1));
        roster.left("n1/2");
        roster.left("n2/1");
        assert_eq!(roster.len(), 1);
        assert_eq!(roster.present(), [someone("ann", Protocol::SocketIo, 1)]);
        assert!(roster.holds("ann", "n2/"));
    }

    #[test]
    fn a_nodes_give_up_removes_its_members_and_only_them() {
        let mut roster = Roster::default();
        roster.joined(member_key("n1", 1), &someone("ann", Protocol::SocketIo, 1));
        roster.joined(member_key("n2", 1), &someone("bob", Protocol::TcpJson, 2));
        roster.joined(member_key("n1", 2), &someone("cy", Protocol::WebSocket, 3));
        roster.joined(member_key("n10", 1), &someone("dee", Protocol::TcpText, 4));
        // The give-up script announces a leave for each member of `<c>:node:n1`.
        for id in [1, 2] {
            roster.left(&member_key("n1", id));
        }
        assert_eq!(roster.len(), 2);
        assert_eq!(
            roster.present(),
            [
                someone("bob", Protocol::TcpJson, 2),
                someone("dee", Protocol::TcpText, 4),
            ]
        );
        assert!(!roster.holds("ann", "n2/"));
        assert!(!roster.holds("cy", "n2/"));
        assert!(roster.holds("dee", "n1/"));
    }

    #[test]
    fn a_snapshot_skips_and_counts_the_members_it_cannot_read() {
        let pairs = vec![
            (
                "n1/1".to_owned(),
                r#"{"name":"ann","protocol":"socketio","since_ms":5,"key":"ann"}"#.to_owned(),
            ),
            ("n1/2".to_owned(), "not json".to_owned()),
            (
                "n1/3".to_owned(),
                r#"{"protocol":"socketio","since_ms":4}"#.to_owned(),
            ),
            (
                "n2/1".to_owned(),
                r#"{"name":"Bob","protocol":"carrier-pigeon","since_ms":3,"key":"bob"}"#.to_owned(),
            ),
            (
                "n2/2".to_owned(),
                r#"{"name":"Cy","protocol":"tcp-text","since_ms":3,"key":"cy"}"#.to_owned(),
            ),
        ];
        let (roster, unreadable) = Roster::from_snapshot(pairs);
        assert_eq!(unreadable, 3);
        assert_eq!(roster.len(), 2);
        assert_eq!(
            roster.present(),
            [
                someone("Cy", Protocol::TcpText, 3),
                someone("ann", Protocol::SocketIo, 5),
            ]
        );
        assert!(roster.holds("cy", "n1/"));
        assert!(!roster.holds("bob", "n1/"));
    }

    #[test]
    fn a_member_key_is_its_node_and_its_id() {
        assert_eq!(member_key("node-a", 42), "node-a/42");
    }
}
