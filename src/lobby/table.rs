//! The lobby's member table: every connection's [`Entry`] (its place: protocol, name,
//! outbox, backlog), and how many of them are
//! named (the lobby's members as the protocols count them: WebSocket notifications,
//! `Event::Joined`/`Left`, `/healthz` `members`). The count is kept with the table, so
//! reading it costs nothing however many members there are.
//!
//! Reading goes through `Deref` to the map; every change of who is in the table or
//! whether an entry has a name goes through [`Table::insert`], [`Table::remove`] and
//! [`Table::name`], which keep the count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::SystemTime;

use super::backlog::Backlog;
use super::event::Outbox;
use super::names::{Given, fold};
use crate::chat::Someone;
use crate::protocol::Protocol;

/// A member's place in the lobby's table.
pub(super) struct Entry {
    /// Who it is.
    pub(super) someone: Someone,
    /// The (cleaned) name it last asked for: a WebSocket client sends it with every line,
    /// and keeps the name it was given for as long as it asks for the same.
    asked: Option<Arc<str>>,
    /// The client's address, if known.
    pub(super) from: Option<IpAddr>,
    pub(super) outbox: Arc<dyn Outbox>,
    /// The history id of the first chat line relayed to it: a replay stops before it,
    /// since everything from there on reached the member live (even unnamed).
    pub(super) first_live_line: Option<i64>,
    /// What it was offered since it last caught up (the slow-consumer rule).
    pub(super) backlog: Backlog,
}

impl Entry {
    /// The place of member `id` of `protocol`, connected now from `from`: named `name`
    /// by the server (a guest name) or unnamed.
    pub(super) fn new(
        id: u64,
        protocol: Protocol,
        name: Option<Arc<str>>,
        from: Option<IpAddr>,
        outbox: Arc<dyn Outbox>,
    ) -> Self {
        Self {
            someone: Someone {
                id,
                key: name.as_deref().map(fold),
                name,
                protocol,
                since: SystemTime::now(),
            },
            asked: None,
            from,
            outbox,
            first_live_line: None,
            backlog: Backlog::default(),
        }
    }

    /// Stores the name the member was given.
    pub(super) fn take_name(&mut self, given: Given) {
        self.someone.name = Some(given.name);
        self.someone.key = Some(given.key);
        self.asked = Some(given.asked);
    }

    /// Whether `asked` is what the member asked for last (and so keeps the name it was
    /// given then).
    pub(super) fn asked_for(&self, asked: &str) -> bool {
        self.asked.as_deref() == Some(asked)
    }
}

/// The member table (see the module doc).
#[derive(Default)]
pub(super) struct Table {
    entries: HashMap<u64, Entry>,
    named: usize,
}

impl Table {
    /// Named members in the table.
    pub(super) fn named(&self) -> usize {
        self.named
    }

    /// Adds (or replaces) member `id`.
    pub(super) fn insert(&mut self, id: u64, entry: Entry) {
        if entry.someone.name.is_some() {
            self.named += 1;
        }
        if let Some(old) = self.entries.insert(id, entry)
            && old.someone.name.is_some()
        {
            self.named -= 1;
        }
    }

    /// Takes member `id` out of the table.
    pub(super) fn remove(&mut self, id: &u64) -> Option<Entry> {
        let entry = self.entries.remove(id)?;
        if entry.someone.name.is_some() {
            self.named -= 1;
        }
        Some(entry)
    }

    /// Gives member `id` the name decided for it ([`Lobby::give_name`]); true if it is
    /// its first name (false: a rename, or `id` is not in the table).
    ///
    /// [`Lobby::give_name`]: super::Lobby::give_name
    pub(super) fn give(&mut self, id: u64, given: Given) -> bool {
        let Some(entry) = self.entries.get_mut(&id) else {
            return false;
        };
        let first = entry.someone.name.is_none();
        entry.take_name(given);
        if first {
            self.named += 1;
        }
        first
    }
}

impl Deref for Table {
    type Target = HashMap<u64, Entry>;

    fn deref(&self) -> &Self::Target {
        &self.entries
    }
}

impl DerefMut for Table {
    // For the fields of an entry that do not change the count; `name` goes through
    // [`Table::give`].
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lobby::tests::Recorder;
    use crate::protocol::Protocol;

    fn entry(id: u64, name: Option<&str>) -> Entry {
        let outbox = Arc::new(Recorder::default());
        Entry::new(id, Protocol::SocketIo, name.map(Arc::from), None, outbox)
    }

    #[test]
    fn the_named_count_follows_joins_names_and_leaves() {
        let mut table = Table::default();
        table.insert(1, entry(1, None));
        table.insert(2, entry(2, Some("guest-2")));
        assert_eq!((table.len(), table.named()), (2, 1));
        assert!(table.give(1, Given::as_asked("ann")));
        assert_eq!((table.len(), table.named()), (2, 2));
        // A rename is not a second member.
        assert!(!table.give(1, Given::as_asked("anna")));
        assert_eq!(table[&1].someone.name.as_deref(), Some("anna"));
        assert_eq!(table.named(), 2);
        table.insert(3, entry(3, None));
        assert_eq!((table.len(), table.named()), (3, 2));
        assert!(table.remove(&2).is_some());
        assert!(table.remove(&2).is_none());
        assert_eq!((table.len(), table.named()), (2, 1));
        assert!(table.remove(&3).is_some());
        assert_eq!((table.len(), table.named()), (1, 1));
        assert!(!table.give(9, Given::as_asked("nobody")));
        assert_eq!(table.named(), 1);
    }
}
