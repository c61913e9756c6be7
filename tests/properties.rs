//! Property tests: the TCP JSON stream decoder and every bridging formatter, on
//! arbitrary splits, arbitrary bytes and arbitrary Unicode: no panic, and the same
//! result however the bytes are split.

use std::sync::Arc;

use bytes::BytesMut;
use chatterbox::lobby::Event;
use chatterbox::protocol::Protocol;
use chatterbox::protocols::tcp_json::{Command, Commands};
use chatterbox::protocols::{tcp_json, tcp_text, websocket};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

/// Feeds `bytes` to a fresh decoder in pieces cut at `cuts`; returns the commands and
/// the error that stopped the stream, if any.
fn decode_in_pieces(bytes: &[u8], cuts: &[usize]) -> (Vec<Command>, Option<String>) {
    let mut decoder = Commands::new(4_096);
    let mut buf = BytesMut::new();
    let mut commands = Vec::new();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.push(bytes.len());
    points.sort_unstable();
    let mut at = 0;
    for point in points {
        buf.extend_from_slice(&bytes[at..point]);
        at = point;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(command)) => commands.push(command),
                Ok(None) => break,
                Err(e) => return (commands, Some(e.to_string())),
            }
        }
    }
    (commands, None)
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        any::<String>().prop_map(Command::Connect),
        any::<String>().prop_map(Command::Chat),
    ]
}

fn as_json(command: &Command) -> String {
    let (kind, content) = match command {
        Command::Connect(content) => ("CONNECT", content),
        Command::Chat(content) => ("CHAT", content),
    };
    serde_json::json!({"type": kind, "content": content}).to_string()
}

proptest! {
    #[test]
    fn commands_come_out_whole_however_the_stream_is_cut(
        commands in prop::collection::vec(command(), 0..12),
        blanks in prop::collection::vec(prop::sample::select(vec!["", " ", "\n", "\r\n", "\t "]), 12),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let stream: String = commands
            .iter()
            .zip(blanks.iter().cycle())
            .map(|(command, blank)| format!("{blank}{}", as_json(command)))
            .collect();
        // Objects over the decoder's limit are refused by design; keep to those under it.
        prop_assume!(commands.iter().all(|c| as_json(c).len() < 4_096));
        let (decoded, error) = decode_in_pieces(stream.as_bytes(), &cuts);
        prop_assert_eq!(error, None);
        prop_assert_eq!(decoded, commands);
    }

    #[test]
    fn arbitrary_bytes_give_the_same_result_however_cut(
        bytes in prop::collection::vec(any::<u8>(), 0..600),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        prop_assert_eq!(decode_in_pieces(&bytes, &cuts), decode_in_pieces(&bytes, &[]));
    }

    #[test]
    fn json_like_noise_gives_the_same_result_however_cut(
        pieces in prop::collection::vec(
            prop::sample::select(vec!["{", "}", "[", "]", "\"", "\\", ":", ",", "type", "CHAT", "content", "x", " ", "가"]),
            0..80,
        ),
        cuts in prop::collection::vec(any::<usize>(), 0..40),
    ) {
        let bytes = pieces.concat().into_bytes();
        prop_assert_eq!(decode_in_pieces(&bytes, &cuts), decode_in_pieces(&bytes, &[]));
    }

    #[test]
    fn every_formatter_keeps_any_name_and_line(name in any::<String>(), text in any::<String>()) {
        for origin in Protocol::ALL {
            let line = Event::Message {
                name: Arc::from(name.as_str()),
                text: Arc::from(text.as_str()),
                origin,
                raw: None,
            };
            let expected = format!("{name} : {text}");
            prop_assert_eq!(&tcp_json::encode(&line)[..], expected.as_bytes());
            prop_assert_eq!(&tcp_text::encode(&line)[..], expected.as_bytes());
            // A program gets the text exactly as sent.
            let frame: serde_json::Value = serde_json::from_slice(&websocket::encode(&line))
                .expect("a JSON frame");
            prop_assert_eq!(&frame["type"], "message");
            prop_assert_eq!(frame["name"].as_str(), Some(name.as_str()));
            prop_assert_eq!(frame["msg"].as_str(), Some(text.as_str()));
            // A page gets it escaped: no markup left, and unescaped it is the text.
            let frame: serde_json::Value =
                serde_json::from_slice(&websocket::encode_for_page(&line)).expect("a JSON frame");
            let unescape = |s: &str| {
                s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"")
                    .replace("&#39;", "'").replace("&amp;", "&")
            };
            prop_assert_eq!(&frame["type"], "message");
            for field in ["name", "msg"] {
                let escaped = frame[field].as_str().expect("a string");
                prop_assert!(!escaped.contains(['<', '>', '"', '\'']), "{}", escaped);
            }
            prop_assert_eq!(unescape(frame["name"].as_str().expect("name")), name.clone());
            prop_assert_eq!(unescape(frame["msg"].as_str().expect("msg")), text.clone());
        }
        for members in [0, 1, usize::MAX] {
            let joined = Event::Joined { name: Arc::from(name.as_str()), members };
            let expected = format!("{name} connected!");
            prop_assert_eq!(&tcp_json::encode(&joined)[..], expected.as_bytes());
            prop_assert_eq!(&tcp_text::encode(&joined)[..], expected.as_bytes());
            let frame: serde_json::Value = serde_json::from_slice(&websocket::encode(&joined))
                .expect("a JSON frame");
            let notice = format!("새로운 유저 접속 [현재 : {members}명]");
            prop_assert_eq!(frame["msg"].as_str(), Some(notice.as_str()));
            prop_assert_eq!(websocket::encode_for_page(&joined), websocket::encode(&joined));
        }
    }
}
