//! The chat's own words that the lobby and its brokers ([`crate::log`]) both speak: what
//! is said in the lobby ([`Event`]) and who a member is ([`Someone`]). A leaf: it
//! imports neither the lobby nor a broker, so that each can name these without importing
//! the other.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

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

/// Who a member is: the one identity the lobby's table, its announcements, presence
/// (a node's or a whole cluster's), the operator's roster and the cluster log all hold.
/// Its name and the name's fold are `None` until it names itself.
///
/// Its serde form is how the cluster keeps a member (`<c>:members`, and the entries of
/// joins and renames in `<c>:log`: [`crate::log`]'s Redis broker):
/// `{"id":…,"name":…,"protocol":"socketio"|…,"since_ms":…,"key":…}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Someone {
    /// Its id (unique in the whole lobby, a cluster's included).
    #[serde(default)]
    pub(crate) id: u64,
    /// Its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) name: Option<Arc<str>>,
    /// Its protocol.
    pub(crate) protocol: Protocol,
    /// When it connected (milliseconds since the Unix epoch in its serde form).
    #[serde(rename = "since_ms", with = "unix_millis")]
    pub(crate) since: SystemTime,
    /// The fold of its name (`crate::lobby::names::fold`), by which names are compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) key: Option<Box<str>>,
}

/// Milliseconds since the Unix epoch (0 for a time before it, the greatest for one
/// beyond what 63 bits hold).
pub(crate) fn millis(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A time as milliseconds since the Unix epoch ([`millis`]); a negative count reads as
/// the epoch.
mod unix_millis {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(time: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(super::millis(*time))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let ms = i64::deserialize(d)?;
        Ok(UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
    }
}
