//! The lobby's events as the cluster log carries them ([`Replicated`]): what this node
//! appends for an event, and the event another node's entry stands for.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use bytes::Bytes;

use super::Event;
use super::fanout::Outgoing;
use crate::log::NewLine;
use crate::log::redis::roster::Kept;
use crate::log::redis::{Record, Replicated, millis};
use crate::protocol::Protocol;

impl Replicated for Outgoing {
    fn record(&self, line: Option<&NewLine>) -> (Record, Option<u64>) {
        let member = self
            .someone
            .as_ref()
            .map(|someone| someone.id)
            .or(self.from);
        let record = match self.delivery.event() {
            Event::Joined { name, members } => {
                let (protocol, since, key) = match &self.someone {
                    Some(someone) => (someone.protocol, someone.since, someone.key.clone()),
                    None => (Protocol::SocketIo, UNIX_EPOCH, None),
                };
                Record::Joined {
                    name: name.to_string(),
                    members: *members,
                    id: member.unwrap_or(0),
                    protocol,
                    since_ms: millis(since),
                    key: key.map_or_else(|| name.to_string(), String::from),
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
                renamed: self.someone.as_ref().and_then(|someone| {
                    Some(Kept {
                        name: name.to_string(),
                        protocol: someone.protocol,
                        since_ms: millis(someone.since),
                        key: someone.key.as_deref()?.to_owned(),
                    })
                }),
            },
        };
        (record, member)
    }

    fn from_record(record: Record) -> Option<Self> {
        let event = match record {
            // The rooms' own: the log hands them to the rooms.
            Record::RoomLine { .. } => return None,
            Record::Joined { name, members, .. } => Event::Joined {
                name: Arc::from(name),
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
        };
        Some(Outgoing::new(event, None))
    }
}
