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

use std::fmt;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::lobby::{Delivery, Event, LobbyError, Member};
use crate::net::accept::{Served, close_telling, close_with_error};
use crate::net::outbox::{Ended, until_stopped, write_delivery};
use crate::net::until;
use crate::protocol::Protocol;
use crate::refusals::{Refusal, Refusals, Who};
use crate::telemetry;

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
    let (reader, writer) = stream.into_split();
    let mut connection = Connection {
        peer,
        refusals: lobby.refusals().clone(),
        stall: timeouts.stall,
        reader,
        writer,
        buf: vec![0; lobby.limits().max_message_chars.max(4)],
        filled: 0,
        stall_deadline: None,
        member,
    };
    let work = connection.run(&mut inbox.queue);
    let ending = until_stopped(&shutdown, &inbox.cut, work).await;
    let Connection {
        member,
        reader,
        writer,
        ..
    } = connection;
    tracing::debug!(%peer, member = member.id(), "tcp-text connection ends: {}", ending.reason());
    drop(member);
    close_telling(reader, writer, peer, ending).await;
}

/// One client's connection, as its task serves it.
struct Connection {
    member: Member,
    peer: SocketAddr,
    refusals: Refusals,
    /// `--stall-timeout-ms`.
    stall: Option<Duration>,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    /// Holds one chunk; `filled` bytes of it are read, a split character's start first.
    buf: Vec<u8>,
    filled: usize,
    /// When the split character at the start of `buf` must be complete.
    stall_deadline: Option<Instant>,
}

impl Connection {
    /// Writes out what the lobby sends and relays what the client sends, until either
    /// side ends.
    async fn run(&mut self, queue: &mut mpsc::Receiver<Arc<Delivery>>) -> Ended {
        loop {
            let next = tokio::select! {
                delivery = queue.recv() => self.deliver(delivery).await,
                () = until(self.stall_deadline) => self.stalled(),
                read = self.reader.read(&mut self.buf[self.filled..]) => self.on_read(read).await,
            };
            if let ControlFlow::Break(ended) = next {
                return ended;
            }
        }
    }

    /// Writes a delivery out.
    async fn deliver(&mut self, delivery: Option<Arc<Delivery>>) -> ControlFlow<Ended> {
        match write_delivery(&mut self.writer, delivery, Protocol::TcpText, encode).await {
            Ok(()) => ControlFlow::Continue(()),
            Err(stop) => ControlFlow::Break(Ok(stop)),
        }
    }

    /// A split character stayed incomplete too long: the client is cut off.
    fn stalled(&self) -> ControlFlow<Ended> {
        let why = format!("incomplete UTF-8 character for {} ms", millis(self.stall));
        self.refuse(Refusal::disconnecting("stall", &why));
        ControlFlow::Break(Err(why))
    }

    /// Relays what a read completed, keeping a split character for the next read.
    async fn on_read(&mut self, read: std::io::Result<usize>) -> ControlFlow<Ended> {
        match read {
            Ok(0) | Err(_) => return ControlFlow::Break(Ok("closed by the client")),
            Ok(n) => {
                self.filled += n;
                telemetry::TRAFFIC.received_bytes(n);
            }
        }
        let ready = complete_prefix(&self.buf[..self.filled]);
        if ready > 0 {
            let chunk = Bytes::copy_from_slice(&self.buf[..ready]);
            self.buf.copy_within(ready..self.filled, 0);
            self.filled -= ready;
            self.say(chunk).await?;
        }
        self.stall_deadline = match (self.filled, self.stall_deadline) {
            (0, _) => None,
            (_, Some(deadline)) if ready == 0 => Some(deadline),
            _ => self.stall.map(|stall| Instant::now() + stall),
        };
        ControlFlow::Continue(())
    }

    /// Says a chunk in the lobby; a refusal is told, or ends the connection.
    async fn say(&mut self, chunk: Bytes) -> ControlFlow<Ended> {
        telemetry::TRAFFIC.received_packets(1);
        self.member
            .tap_received(|| serde_json::json!(["message", String::from_utf8_lossy(&chunk)]));
        let Err(why) = self.member.say_chunk(chunk) else {
            return ControlFlow::Continue(());
        };
        let disconnects = why.disconnects() || why == LobbyError::Gone;
        self.refuse(Refusal {
            reason: why.reason(),
            why: &why,
            disconnects,
        });
        if disconnects {
            return ControlFlow::Break(Err(why.to_string()));
        }
        if let Err(e) = self
            .writer
            .write_all(format!("error: {why}\n").as_bytes())
            .await
        {
            tracing::debug!(peer = %self.peer, "cannot send the error line: {e}");
            return ControlFlow::Break(Ok("write failed"));
        }
        ControlFlow::Continue(())
    }

    fn refuse(&self, refusal: Refusal<impl fmt::Display>) {
        let who = Who::Member(self.member.id(), Some(self.peer));
        self.refusals.report(Protocol::TcpText, who, refusal);
    }
}

/// A time limit in milliseconds, for error lines.
fn millis(limit: Option<Duration>) -> u128 {
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
