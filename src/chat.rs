//! The chat's own words that the lobby and its brokers ([`crate::log`]) both speak: what
//! is said in the lobby ([`Event`]), who a join or leave is about ([`Someone`]) and who
//! is present ([`Present`]). A
//! leaf: it imports neither the lobby nor a broker, so that each can name these without
//! importing the other.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::protocol::Protocol;

/// Something that happened in the lobby, as delivered to members' outboxes. Shared by
/// all receivers (`Arc`), never copied per receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A member named itself (or renamed itself) and is now known under `name`.
    Joined {
        /// The member's name.
        name: Arc<str>,
        /// Named members in the lobby after the join (unnamed connections not counted).
        members: usize,
    },
    /// A named member left (disconnected, or was cut off as a slow consumer).
    Left {
        /// The member's last name.
        name: Arc<str>,
        /// Named members in the lobby after the leave.
        members: usize,
    },
    /// A chat line.
    Message {
        /// The sender's name as the lobby stores it (never what the client claimed).
        name: Arc<str>,
        /// The line, as sent (TCP text: the chunk, lossily decoded, one line end trimmed).
        text: Arc<str>,
        /// The protocol of the sender.
        origin: Protocol,
        /// A TCP text chunk's bytes exactly as received, relayed as they are to other
        /// TCP text clients.
        raw: Option<Bytes>,
    },
}

/// The member a join or leave is about (or the sender a line renamed), as presence
/// records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Someone {
    /// Its id (unique in the whole lobby, a cluster's included).
    pub(crate) id: u64,
    /// Its protocol.
    pub(crate) protocol: Protocol,
    /// When it connected.
    pub(crate) since: SystemTime,
    /// The fold of its name (`crate::lobby::names::fold`), by which names are compared.
    pub(crate) key: Option<Box<str>>,
}

/// A named member present in the lobby, for the presence API and the counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Present {
    /// Its name.
    pub(crate) name: Arc<str>,
    /// Its protocol.
    pub(crate) protocol: Protocol,
    /// When it connected.
    pub(crate) since: SystemTime,
}
