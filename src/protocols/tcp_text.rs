//! The raw TCP chat with plain text (PROTOCOLS.md section 4b).
//!
//! Wire format: no framing at all. Each chunk a client sends is relayed, byte for byte,
//! to every other TCP text client. The original had no names; in the one lobby such a
//! member is `guest-<n>` (n: its member number, stable for the connection), announced
//! when it connects. Server → client, one write per message, no line end added:
//!
//! | lobby event | bytes |
//! |---|---|
//! | another TCP text client's chunk | the chunk, as received |
//! | X said a line on another protocol | `<X> : <line>` |
//! | X joined (its own connection included) | `<X> connected!` |
//! | X left | `<X> left.` |
//!
//! A chunk is what one read returns, at most [`Limits::max_message_chars`] bytes (so it
//! is never over the line limit); a multi-byte UTF-8 character split by a read is kept
//! whole for the next chunk. Other protocols see the chunk as text (invalid UTF-8
//! replaced, one trailing line end taken off).
//!
//! Errors, each one line `error: <why>`: a chunk over the member's message rate is
//! refused and the connection stays; too many refused in a row, a UTF-8 character left
//! incomplete for [`Timeouts::stall`], or a connection over the connection limits
//! (`crate::net::admission`): the line, then the connection is closed.
//!
//! [`Timeouts::stall`]: crate::net::Timeouts::stall
//! [`Limits::max_message_chars`]: crate::lobby::Limits::max_message_chars

use std::net::SocketAddr;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::lobby::{Event, LobbyError};
use crate::net::accept::{Served, close_telling, close_with_error};
use crate::net::outbox::{until_stopped, write_delivery};
use crate::net::until;
use crate::protocol::Protocol;
use crate::refusals::{Refusal, Who};

/// A lobby event as a TCP text client sees it.
pub fn encode(event: &Event) -> Bytes {
    match event {
        Event::Joined { name, .. } => format!("{name} connected!").into(),
        Event::Left { name, .. } => format!("{name} left.").into(),
        Event::Message {
            raw: Some(raw),
            origin: Protocol::TcpText,
            ..
        } => raw.clone(),
        Event::Message { name, text, .. } => format!("{name} : {text}").into(),
    }
}

/// How many leading bytes of `buf` to send now: all but an incomplete UTF-8 character
/// at its end (which the next read completes).
fn complete_prefix(buf: &[u8]) -> usize {
    match std::str::from_utf8(buf) {
        Err(e) if e.error_len().is_none() => e.valid_up_to(),
        _ => buf.len(),
    }
}

/// Serves one client until it leaves, is cut off, or the server shuts down.
pub(crate) async fn client(stream: TcpStream, peer: SocketAddr, served: Served) {
    let (member, mut inbox) = match served.join(Protocol::TcpText, peer) {
        Ok(joined) => joined,
        Err(why) => return close_with_error(stream, peer, why).await,
    };
    let Served {
        lobby,
        timeouts,
        shutdown,
    } = served;
    let (mut reader, mut writer) = stream.into_split();
    // Holds one chunk; `filled` bytes of it are read, a split character's start first.
    let mut buf = vec![0; lobby.limits().max_message_chars.max(4)];
    let mut filled = 0;
    // When the split character at the start of `buf` must be complete.
    let mut stall_deadline = None;

    let ending = until_stopped(&shutdown, &inbox.cut, async {
            loop {
                tokio::select! {
                    delivery = inbox.queue.recv() => {
                        if let Err(stop) = write_delivery(&mut writer, delivery, Protocol::TcpText, encode).await {
                            return Ok(stop);
                        }
                    }
                    () = until(stall_deadline) => {
                        let why = format!("incomplete UTF-8 character for {} ms", millis(timeouts.stall));
                        lobby.refusals().report(Protocol::TcpText, Who::Member(member.id(), Some(peer)), Refusal::disconnecting("stall", &why));
                        return Err(why);
                    }
                    read = reader.read(&mut buf[filled..]) => {
                        match read {
                            Ok(0) | Err(_) => return Ok("closed by the client"),
                            Ok(n) => filled += n,
                        }
                        let ready = complete_prefix(&buf[..filled]);
                        if ready > 0 {
                            let chunk = Bytes::copy_from_slice(&buf[..ready]);
                            buf.copy_within(ready..filled, 0);
                            filled -= ready;
                            if let Err(why) = member.say_chunk(chunk) {
                                let disconnects = why.disconnects() || why == LobbyError::Gone;
                                lobby.refusals().report(Protocol::TcpText, Who::Member(member.id(), Some(peer)), Refusal { reason: why.reason(), why: &why, disconnects });
                                if disconnects {
                                    return Err(why.to_string());
                                }
                                if let Err(e) = writer.write_all(format!("error: {why}\n").as_bytes()).await {
                                    tracing::debug!(%peer, "cannot send the error line: {e}");
                                    return Ok("write failed");
                                }
                            }
                        }
                        stall_deadline = match (filled, stall_deadline) {
                            (0, _) => None,
                            (_, Some(deadline)) if ready == 0 => Some(deadline),
                            _ => timeouts.stall.map(|stall| Instant::now() + stall),
                        };
                    }
                }
            }
        })
    .await;
    tracing::debug!(%peer, member = member.id(), "tcp-text connection ends: {}", ending.reason());
    drop(member);
    close_telling(reader, writer, peer, ending).await;
}

/// A time limit in milliseconds, for error lines.
fn millis(limit: Option<std::time::Duration>) -> u128 {
    limit.map_or(0, |limit| limit.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_character_waits_for_its_end() {
        let word = "가나".as_bytes();
        assert_eq!(complete_prefix(&word[..4]), 3);
        assert_eq!(complete_prefix(&word[..3]), 3);
        assert_eq!(complete_prefix(&word[..2]), 0);
        assert_eq!(complete_prefix(word), 6);
        assert_eq!(complete_prefix(b"ab\xff\xfe"), 4);
    }

    #[test]
    fn chunks_from_tcp_text_go_as_they_are() {
        let raw = Bytes::from_static(b"hi\r\n");
        let event = Event::Message {
            name: "guest-1".into(),
            text: "hi".into(),
            origin: Protocol::TcpText,
            raw: Some(raw.clone()),
        };
        assert_eq!(encode(&event), raw);
        let event = Event::Message {
            name: "kim".into(),
            text: "hi".into(),
            origin: Protocol::SocketIo,
            raw: None,
        };
        assert_eq!(encode(&event), Bytes::from_static(b"kim : hi"));
    }
}
