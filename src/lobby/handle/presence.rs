//! Who is in the lobby: presence (the counts, the named members, the watch that tells
//! when they change), the operator's roster of this node's connections and throwing one
//! out, and the admin UI's tap. The rest of the lobby's handle is in the parent module.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::Lobby;
use crate::chat::Someone;
use crate::lobby::roster::Listed;
use crate::lobby::tap::Tapped;

impl Lobby {
    /// Named members in the lobby now: those the protocols count (a Socket.IO socket
    /// from its `newUser`, a TCP JSON client from its `CONNECT`, a WebSocket or TCP text
    /// client from its connection).
    pub(crate) fn member_count(&self) -> usize {
        let here = self.lock().named();
        self.inner.broker.member_count(here)
    }

    /// Whether what the lobby's broker depends on answers now (a cluster node's Redis);
    /// `None` when it depends on nothing (a single node).
    pub(crate) fn cluster_available(&self) -> Option<bool> {
        self.inner.broker.reachable()
    }

    /// Connections in the lobby now, named or not.
    pub(crate) fn connection_count(&self) -> usize {
        self.lock().len()
    }

    /// Opens the lobby's tap ([`super::tap`]) into a queue of `capacity` (once: later
    /// calls get `None`); it stays off until [`Lobby::tap_on`].
    pub(crate) fn tap(&self, capacity: usize) -> Option<mpsc::Receiver<Tapped>> {
        self.inner.tap.open(capacity)
    }

    /// Turns the tap on (an admin watches) or off.
    pub(crate) fn tap_on(&self, on: bool) {
        self.inner.tap.turn(on);
    }

    /// What the tap dropped so far, its queue full.
    pub(crate) fn tap_dropped(&self) -> u64 {
        self.inner.tap.dropped()
    }

    /// The named members present now, in the order they connected (the whole lobby's,
    /// as the broker knows it).
    pub(crate) fn present(&self) -> Vec<Someone> {
        self.inner.broker.present(&|| self.present_here())
    }

    /// The named members of this node, in the order they connected.
    fn present_here(&self) -> Vec<Someone> {
        let members = self.lock();
        let mut present: Vec<Someone> = members
            .values()
            .filter(|entry| entry.someone.name.is_some())
            .map(|entry| entry.someone.clone())
            .collect();
        drop(members);
        present.sort_unstable_by_key(|someone| someone.id);
        present
    }

    /// Changes whenever [`Lobby::present`] may have changed.
    pub(crate) fn watch_presence(&self) -> watch::Receiver<u64> {
        self.inner.presence.subscribe()
    }

    pub(in crate::lobby) fn presence_changed(&self) {
        self.inner.presence.send_modify(|version| *version += 1);
    }

    /// Every connection of this node, in the order they connected.
    pub(crate) fn roster(&self) -> Vec<Listed> {
        let rooms: HashMap<u64, Arc<str>> = self.inner.rooms.seated().into_iter().collect();
        let mut listed: Vec<Listed> = self
            .lock()
            .values()
            .map(|entry| Listed {
                someone: entry.someone.clone(),
                from: entry.from,
                room: rooms.get(&entry.someone.id).cloned(),
            })
            .collect();
        listed.sort_unstable_by_key(|listed| listed.someone.id);
        listed
    }

    /// Throws member `id` out, whatever its protocol: it leaves the lobby (announced as
    /// left to everyone, as a slow consumer is) and its connection is closed. False if
    /// it is not in this node's lobby.
    pub(crate) fn throw_out(&self, id: u64) -> bool {
        let Some(outbox) = self.lock().get(&id).map(|entry| entry.outbox.clone()) else {
            return false;
        };
        self.leave(id);
        outbox.cut_off();
        true
    }
}
