//! The entry format of the cluster log: a lobby event as it travels through `<c>:log`
//! (and a chat line as `<c>:lines` keeps it), JSON in the field `e`:
//! `{"v":1,"node":"…","seq":N,"kind":"joined"|"left"|"line"|"room_line",…}` ([`Envelope`]
//! around a [`Record`]). An entry this build cannot read is logged, counted and skipped
//! ([`decode`]).

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::chat::{Event, Someone, millis};
use crate::log::{NewLine, Said};
use crate::protocol::Protocol;

/// The version of the entry format this build writes and reads.
pub(super) const ENTRY_VERSION: u32 = 1;

/// Entries skipped because this build cannot read them.
pub(super) const SKIPPED: &str = "chatterbox_cluster_entries_skipped_total";

/// A lobby event as the cluster log carries it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Record {
    /// A line for a two-person room (the room is the log's field `room`, which the
    /// cluster fills in: the sender's seat as Redis has it).
    RoomLine {
        /// The line.
        text: String,
    },
    /// A member named (or renamed) itself.
    Joined {
        /// Members present after the join (the log's `count` is the cluster's).
        members: usize,
        /// The member (its fields the entry's own: `id`, `name`, `protocol`,
        /// `since_ms`, `key`).
        #[serde(flatten)]
        member: Someone,
    },
    /// A named member left.
    Left {
        /// Its last name.
        name: String,
        /// Members present after the leave (the log's `count` is the cluster's).
        members: usize,
        /// Its id on its node.
        id: u64,
    },
    /// A chat line.
    Line {
        /// The sender's stored name.
        name: String,
        /// The sender's protocol.
        protocol: Protocol,
        /// The line.
        text: String,
        /// When its node accepted it, in milliseconds since the Unix epoch.
        time_ms: i64,
        /// A TCP text chunk's bytes as received.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        raw: Option<Vec<u8>>,
        /// The sender's id on its node.
        #[serde(default)]
        id: u64,
        /// The sender under its new name, when this line renamed it (a WebSocket
        /// client's line under another name than it had: renamed silently).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        renamed: Option<Someone>,
    },
}

impl Record {
    /// The member `<c>:members` keeps (under its key, [`super::roster::member_key`]):
    /// who joined, or the sender a line renamed.
    pub(super) fn member(&self) -> Option<&Someone> {
        match self {
            Record::Joined { member, .. } => Some(member),
            Record::Line { renamed, .. } => renamed.as_ref(),
            Record::Left { .. } | Record::RoomLine { .. } => None,
        }
    }

    /// The entry for what an item of this node's says (a chat line's time from its
    /// `line`, [`Queued::line`](crate::log::Queued::line)), and the member it is from or
    /// about (for `<c>:members`).
    pub(super) fn of(said: Said<'_>, line: Option<&NewLine>) -> (Self, Option<u64>) {
        let member = said.someone.map(|someone| someone.id).or(said.from);
        let record = match said.event {
            Event::Joined { name, members } => {
                // Who joined, under the name announced (the lobby always says who; an
                // item that does not is written with what the entry knows).
                let mut joined = said.someone.cloned().unwrap_or(Someone {
                    id: member.unwrap_or(0),
                    name: None,
                    protocol: Protocol::SocketIo,
                    since: UNIX_EPOCH,
                    key: None,
                });
                joined.key.get_or_insert_with(|| Box::from(&**name));
                joined.name = Some(name.clone());
                Record::Joined {
                    members: *members,
                    member: joined,
                }
            }
            Event::Left { name, members } => Record::Left {
                name: name.to_string(),
                members: *members,
                id: member.unwrap_or(0),
            },
            Event::Message {
                name,
                text,
                origin,
                raw,
            } => Record::Line {
                name: name.to_string(),
                protocol: *origin,
                text: text.to_string(),
                time_ms: line.map_or(0, |line| millis(line.time)),
                raw: raw.as_ref().map(|raw| raw.to_vec()),
                id: member.unwrap_or(0),
                // A line that renamed its sender says so to presence.
                renamed: said.someone.cloned(),
            },
        };
        (record, member)
    }

    /// The lobby event an entry stands for (`None`: a room line, the rooms' own; or a
    /// join without a name, which [`decode`] refuses).
    pub(super) fn into_event(self) -> Option<Event> {
        Some(match self {
            Record::RoomLine { .. } => return None,
            Record::Joined { member, members } => Event::Joined {
                name: member.name?,
                members,
            },
            Record::Left { name, members, .. } => Event::Left {
                name: Arc::from(name),
                members,
            },
            Record::Line {
                name,
                protocol,
                text,
                raw,
                ..
            } => Event::Message {
                name: Arc::from(name),
                text: Arc::from(text),
                origin: protocol,
                raw: raw.map(Bytes::from),
            },
        })
    }
}

/// An entry of the log: a record, with who wrote it.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Envelope {
    pub(super) v: u32,
    pub(super) node: String,
    pub(super) seq: u64,
    #[serde(flatten)]
    pub(super) record: Record,
}

/// Decodes an entry; `None` (logged, counted) for one this build cannot read.
pub(super) fn decode(json: &str) -> Option<Envelope> {
    match serde_json::from_str::<Envelope>(json) {
        Ok(envelope) if envelope.v != ENTRY_VERSION => {
            tracing::warn!(version = envelope.v, "a cluster entry of another version");
            None
        }
        Ok(envelope) if envelope.record.member().is_some_and(|m| m.name.is_none()) => {
            tracing::warn!("an undecodable cluster entry: a member without a name");
            None
        }
        Ok(envelope) => Some(envelope),
        Err(e) => {
            tracing::warn!("an undecodable cluster entry: {e}");
            None
        }
    }
}

/// Logs and counts an entry skipped.
pub(super) fn skipped(id: &str, why: &str) {
    tracing::warn!(entry = id, "cluster entry skipped: {why}");
    metrics::counter!(SKIPPED).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_bad_ones_are_refused() {
        let envelope = Envelope {
            v: ENTRY_VERSION,
            node: "n1".into(),
            seq: 7,
            record: Record::Line {
                name: "ann".into(),
                protocol: Protocol::TcpText,
                text: "hi".into(),
                time_ms: 5,
                raw: Some(b"hi\n".to_vec()),
                id: 3,
                renamed: None,
            },
        };
        let json = serde_json::to_string(&envelope).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"node":"n1","seq":7,"kind":"line","name":"ann","protocol":"tcp-text","text":"hi","time_ms":5,"raw":[104,105,10],"id":3}"#
        );
        assert_eq!(decode(&json).unwrap().record, envelope.record);
        assert!(decode(&json[..json.len() - 3]).is_none());
        assert!(decode(&json.replace(r#""v":1"#, r#""v":2"#)).is_none());
        assert!(decode(&json.replace("tcp-text", "carrier-pigeon")).is_none());
        assert!(decode("not json").is_none());
    }

    #[test]
    fn a_join_reads_as_every_build_wrote_it() {
        let joined = Record::Joined {
            members: 1,
            member: Someone {
                id: 3,
                name: Some("Ann".into()),
                protocol: Protocol::SocketIo,
                since: UNIX_EPOCH + std::time::Duration::from_millis(5),
                key: Some("ann".into()),
            },
        };
        // The fields as builds before the member's shape was one wrote them, in their
        // order, and without the fold (the oldest).
        let earlier = r#"{"v":1,"node":"n1","seq":2,"kind":"joined","name":"Ann","members":1,"id":3,"protocol":"socketio","since_ms":5,"key":"ann"}"#;
        assert_eq!(decode(earlier).unwrap().record, joined);
        let without_key = earlier.replace(r#","key":"ann""#, "");
        let Record::Joined { member, .. } = decode(&without_key).unwrap().record else {
            panic!("not a join");
        };
        assert_eq!(member.key, None);
        let envelope = Envelope {
            v: ENTRY_VERSION,
            node: "n1".into(),
            seq: 2,
            record: joined.clone(),
        };
        let json = serde_json::to_string(&envelope).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"node":"n1","seq":2,"kind":"joined","members":1,"id":3,"name":"Ann","protocol":"socketio","since_ms":5,"key":"ann"}"#
        );
        assert_eq!(decode(&json).unwrap().record, joined);
        assert_eq!(
            joined.member().and_then(|member| member.name.as_deref()),
            Some("Ann")
        );
        // A join without a name cannot be read (it never could).
        assert!(decode(&earlier.replace(r#""name":"Ann","#, "")).is_none());
    }
}
