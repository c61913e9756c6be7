//! The Socket.IO lobby's payloads: the `update` packet (encoded once per delivery,
//! sent as it is to every receiver), the `message` acknowledgement, the `error` event,
//! what a `message` carries, and why a request's payload is refused.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use socketioxide::handler::Value;
use socketioxide_core::packet::Packet;
use socketioxide_core::parser::Parse;
use socketioxide_parser_common::CommonParser;

use crate::lobby::Event;

/// The `name` of server announcements, as the original server sent it (no member is
/// given it: see `crate::lobby::names`).
const SERVER_NAME: &str = crate::lobby::names::SERVER;

/// A Socket.IO packet as socketioxide's parser encodes it (the text of an event packet,
/// `2["update",{…}]`): what [`Socket::send_raw`] sends as it is.
pub(crate) type EncodedPacket = Value;

/// The `update` event packet for `event` (with `id`, a stored line's history id, on a
/// chat line), encoded once per delivery and sent to every Socket.IO receiver as it is.
///
/// Encoded as socketioxide's `emit` would encode it for each socket (its default parser,
/// the `/` namespace, no ack): the packet of a Socket.IO v4 or v5 client, over Engine.IO
/// v3 or v4, is the same; the engine frames it for each transport.
pub(super) fn update(event: &Event, line_id: Option<i64>) -> EncodedPacket {
    let (kind, name, message): (_, &str, Cow<str>) = match event {
        Event::Joined { name, .. } => {
            let says = format!("{name}님이 접속하였습니다.");
            ("connect", SERVER_NAME, says.into())
        }
        Event::Left { name, .. } => {
            let says = format!("{name}님이 나가셨습니다.");
            ("disconnect", SERVER_NAME, says.into())
        }
        Event::Message { name, text, .. } => ("message", name, Cow::Borrowed(text)),
    };
    let update = Update {
        kind,
        name,
        message: &message,
        id: line_id,
    };
    // Strings only: serde_json has no way to fail on them.
    let data = CommonParser
        .encode_value(&update, Some("update"))
        .unwrap_or_else(|e| {
            tracing::error!("cannot encode an update: {e}");
            Value::Str("[\"update\",null]".into(), None)
        });
    CommonParser.encode(Packet::event("/", data))
}

/// What an `update` event carries.
#[derive(Serialize)]
struct Update<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    message: &'a str,
    /// A chat line's history id; absent when it was not stored (`--no-history`).
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<i64>,
}

/// The acknowledgement of a `message` the client asked one for: the line's history id,
/// absent when it was not stored.
#[derive(Serialize)]
pub(super) struct Stored {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) id: Option<i64>,
}

/// What an `error` event carries.
#[derive(Serialize)]
pub(super) struct ErrorReply<'a> {
    pub(super) message: &'a str,
}

/// The `message` payload. Other fields (`type`, a client-claimed `name`) are ignored.
#[derive(Deserialize)]
pub(super) struct ChatLine {
    pub(super) message: String,
}

/// Why a Socket.IO request was refused, beyond what the lobby refuses.
#[derive(Debug, thiserror::Error)]
pub(super) enum Malformed {
    #[error("newUser expects your name as a string")]
    Name,
    #[error("message expects an object {{type: \"message\", message: \"<text>\"}}")]
    Line,
    #[error("room expects a room name as a string")]
    Room,
    #[error("chat message expects a string")]
    RoomLine,
}
