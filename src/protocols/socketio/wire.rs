//! The Socket.IO lobby's payloads: the `update` packet (encoded once per delivery,
//! sent as it is to every receiver), the `message` acknowledgement, the `error` event,
//! what a `message` carries, and why a request's payload is refused.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use socketioxide::handler::Value;
use socketioxide::socket::Socket;
use socketioxide_core::packet::Packet;
use socketioxide_core::parser::Parse;
use socketioxide_parser_common::CommonParser;

use crate::lobby::{Delivery, Event};

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

/// What a Socket.IO member is sent for `delivery`, as the admin UI's `event_sent`
/// shows it: `["update", {…}]`, its packet's data.
pub(crate) fn update_args(delivery: &Delivery) -> serde_json::Value {
    delivery
        .socketio_packet(update)
        .as_str()
        // The packet type (`2`); the `/` namespace and no ack add nothing.
        .and_then(|packet| packet.as_str().get(1..))
        .and_then(|data| serde_json::from_str(data).ok())
        .unwrap_or_else(|| serde_json::json!(["update"]))
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

/// Sends the socket an `error` event `{message}`: a refusal's reason, or the name it was
/// given instead of the one it asked for.
pub(super) fn send_error(socket: &Arc<Socket>, message: &str) {
    if let Err(e) = socket.emit("error", &ErrorReply { message }) {
        // Its queue is full (it will be cut off as a slow consumer at the next delivery)
        // or closing: what it was told is logged (and a refusal counted) already, and a
        // line per unsent reply would flood the log under overload.
        tracing::debug!(socket = %socket.id, "cannot send an error event: {e}");
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Protocol;

    /// The text of an encoded packet, as it goes out on the wire (before Engine.IO's framing).
    fn text(packet: &EncodedPacket) -> &str {
        packet.as_str().expect("a text packet")
    }

    #[test]
    fn updates_are_the_original_servers_packets() {
        let joined = Event::Joined {
            name: "kim".into(),
            members: 3,
        };
        assert_eq!(
            text(&update(&joined, None)),
            r#"2["update",{"type":"connect","name":"SERVER","message":"kim님이 접속하였습니다."}]"#
        );
        let left = Event::Left {
            name: "kim".into(),
            members: 2,
        };
        assert_eq!(
            text(&update(&left, None)),
            r#"2["update",{"type":"disconnect","name":"SERVER","message":"kim님이 나가셨습니다."}]"#
        );
        let line = Event::Message {
            name: "lee".into(),
            text: "say \"hi\"\n".into(),
            origin: Protocol::TcpJson,
            raw: None,
        };
        assert_eq!(
            text(&update(&line, Some(42))),
            r#"2["update",{"type":"message","name":"lee","message":"say \"hi\"\n","id":42}]"#
        );
        // Not stored (no history): no id at all.
        assert_eq!(
            text(&update(&line, None)),
            r#"2["update",{"type":"message","name":"lee","message":"say \"hi\"\n"}]"#
        );
    }

    #[test]
    fn acks_and_errors_carry_what_the_table_says() {
        let ack = |id| serde_json::to_string(&Stored { id }).unwrap();
        assert_eq!(ack(Some(7)), r#"{"id":7}"#);
        assert_eq!(ack(None), "{}");
        let error = ErrorReply {
            message: "too many messages",
        };
        assert_eq!(
            serde_json::to_string(&error).unwrap(),
            r#"{"message":"too many messages"}"#
        );
    }

    #[test]
    fn a_message_is_its_text_and_nothing_else() {
        let claimed = r#"{"type":"message","message":"hi","name":"SERVER"}"#;
        let line: ChatLine = serde_json::from_str(claimed).unwrap();
        assert_eq!(line.message, "hi");
        assert!(serde_json::from_str::<ChatLine>(r#"{"type":"message"}"#).is_err());
        assert!(serde_json::from_str::<ChatLine>(r#""hi""#).is_err());
    }

    #[test]
    fn malformed_requests_say_what_was_expected() {
        assert_eq!(
            Malformed::Name.to_string(),
            "newUser expects your name as a string"
        );
        assert_eq!(
            Malformed::Line.to_string(),
            r#"message expects an object {type: "message", message: "<text>"}"#
        );
        assert_eq!(
            Malformed::Room.to_string(),
            "room expects a room name as a string"
        );
        assert_eq!(
            Malformed::RoomLine.to_string(),
            "chat message expects a string"
        );
    }
}
