//! The raw TCP chat with JSON commands (PROTOCOLS.md section 4a).
//!
//! Wire format. Client → server: JSON objects with nothing between them (white space is
//! allowed), split or glued at any byte:
//! `{"type":"CONNECT","content":"<X>"}` once, then `{"type":"CHAT","content":"<X> : <line>"}`
//! per line. Server → client: plain text, one write per message, no line end:
//!
//! | lobby event | text |
//! |---|---|
//! | X joined (any protocol; the client's own CONNECT included) | `<X> connected!` |
//! | someone left | `Someone's out.` |
//! | X said a line (any protocol; the client's own included) | `<X> : <line>` |
//!
//! The name is the one of CONNECT (cleaned like every name), or the nearest free one
//! when it is taken (`crate::lobby::names`): then the client is told
//! `error: the name "<X>" is taken: you are "<Y>"` before `<Y> connected!`, and the
//! connection stays. A CHAT's content is relayed under the name given: its leading
//! `<X> : ` is taken off when it is the client's name (as typed or as given), and
//! anything else in it is part of the line, so no client can speak as another.
//!
//! Errors: malformed JSON, a value that is not a command object, an unknown `type`, an
//! object over `--max-json-object-bytes`, no CONNECT within
//! [`Timeouts::connect`], an object left incomplete for [`Timeouts::stall`] from its
//! first byte, too many commands refused for the rate in a row, or a connection over the
//! connection limits (`crate::net::admission`): the client gets one line `error: <why>` and
//! is disconnected. A CHAT before CONNECT, a line over the length limit or a command over
//! the member's message rate: `error: <why>` and the connection stays.
//!
//! [`Timeouts::connect`]: crate::net::Timeouts::connect
//! [`Timeouts::stall`]: crate::net::Timeouts::stall

use std::fmt;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::codec::Decoder;

use crate::lobby::names::NameTaken;
use crate::lobby::{Delivery, Event, LobbyError, Member};
use crate::net::accept::{Served, close_telling, close_with_error};
use crate::net::outbox::{Ended, until_stopped, write_delivery};
use crate::net::{Timeouts, until};
use crate::protocol::Protocol;
use crate::refusals::{Refusal, Refusals, Who};
use crate::telemetry;

/// Default for `--max-json-object-bytes`, the largest object a client may send: as for
/// WebSocket messages (`crate::protocols::websocket::DEFAULT_MAX_WS_MESSAGE_BYTES`).
pub(crate) const DEFAULT_MAX_JSON_OBJECT_BYTES: usize = 64 * 1024;

/// Bytes asked of the socket per read.
const READ_BYTES: usize = 4096;

/// A command from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `{"type":"CONNECT","content":"<name>"}`
    Connect(String),
    /// `{"type":"CHAT","content":"<name> : <line>"}`
    Chat(String),
}

impl Command {
    /// The object the client sent, as the admin UI's `event_received` shows it.
    fn as_sent(&self) -> serde_json::Value {
        let (kind, content) = match self {
            Command::Connect(name) => ("CONNECT", name),
            Command::Chat(content) => ("CHAT", content),
        };
        serde_json::json!({ "type": kind, "content": content })
    }
}

/// Why the stream of a client cannot be read on; the text is its error line.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// Not JSON.
    #[error("malformed JSON: {0}")]
    Malformed(String),
    /// JSON, but not an object with a string `type` and a string `content`.
    #[error(r#"expected {{"type": "CONNECT" | "CHAT", "content": "<text>"}}"#)]
    NotACommand,
    /// A command of a type this chat does not know.
    #[error("unknown type {0:?}: expected CONNECT or CHAT")]
    UnknownType(String),
    /// An object over the size limit.
    #[error("object larger than {max} bytes")]
    TooLarge {
        /// The limit in force.
        max: usize,
    },
    /// No CONNECT within the connect timeout.
    #[error("no CONNECT within {ms} ms")]
    ConnectTimeout {
        /// The limit in force.
        ms: u128,
    },
    /// An object still incomplete a stall timeout after its first byte.
    #[error("incomplete object for {ms} ms")]
    Stalled {
        /// The limit in force.
        ms: u128,
    },
    /// Too many commands refused for the rate in a row.
    #[error("{0}")]
    Flooding(LobbyError),
    /// The connection failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl StreamError {
    /// The refusal's reason as a metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            StreamError::Malformed(_) | StreamError::NotACommand => "malformed",
            StreamError::UnknownType(_) => "unknown_type",
            StreamError::TooLarge { .. } => "too_large",
            StreamError::ConnectTimeout { .. } => "connect_timeout",
            StreamError::Stalled { .. } => "stall",
            StreamError::Flooding(e) => e.reason(),
            StreamError::Io(_) => "io",
        }
    }
}

/// Splits a byte stream into JSON objects, scanning each byte once, so an object
/// trickled in one byte at a time costs no more than one sent whole.
#[derive(Debug)]
pub struct Commands {
    max_object_bytes: usize,
    /// Bytes of the current object scanned so far.
    scanned: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl Commands {
    /// A decoder refusing objects over `max_object_bytes`.
    pub fn new(max_object_bytes: usize) -> Self {
        Self {
            max_object_bytes,
            scanned: 0,
            depth: 0,
            in_string: false,
            escaped: false,
        }
    }
}

impl Decoder for Commands {
    type Item = Command;
    type Error = StreamError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, StreamError> {
        if self.scanned == 0 {
            let blank = buf.iter().take_while(|b| b.is_ascii_whitespace()).count();
            buf.advance(blank);
            match buf.first() {
                None => return Ok(None),
                Some(b'{') => {}
                Some(_) => return Err(StreamError::NotACommand),
            }
        }
        while self.scanned < buf.len() {
            if self.scanned >= self.max_object_bytes {
                return Err(StreamError::TooLarge {
                    max: self.max_object_bytes,
                });
            }
            let byte = buf[self.scanned];
            self.scanned += 1;
            if self.in_string {
                match (self.escaped, byte) {
                    (true, _) => self.escaped = false,
                    (false, b'\\') => self.escaped = true,
                    (false, b'"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'{' | b'[' => self.depth += 1,
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        let object = buf.split_to(self.scanned);
                        self.scanned = 0;
                        return parse(&object).map(Some);
                    }
                }
                _ => {}
            }
        }
        Ok(None)
    }
}

fn parse(object: &[u8]) -> Result<Command, StreamError> {
    let value: Value =
        serde_json::from_slice(object).map_err(|e| StreamError::Malformed(e.to_string()))?;
    let (Some(kind), Some(content)) = (
        value.get("type").and_then(Value::as_str),
        value.get("content").and_then(Value::as_str),
    ) else {
        return Err(StreamError::NotACommand);
    };
    match kind {
        "CONNECT" => Ok(Command::Connect(content.to_owned())),
        "CHAT" => Ok(Command::Chat(content.to_owned())),
        other => Err(StreamError::UnknownType(other.to_owned())),
    }
}

/// A lobby event as a TCP JSON client sees it.
pub fn encode(event: &Event) -> Bytes {
    match event {
        Event::Joined { name, .. } => format!("{name} connected!").into(),
        Event::Left { .. } => Bytes::from_static(b"Someone's out."),
        Event::Message { name, text, .. } => format!("{name} : {text}").into(),
    }
}

/// The line of a CHAT's `content`: without the `<X> : ` the client's own name puts
/// before it (as the client typed the name, or as the lobby cleaned it).
fn line_of<'a>(content: &'a str, typed_name: &str, stored_name: &str) -> &'a str {
    [typed_name, stored_name]
        .iter()
        .find_map(|name| content.strip_prefix(name)?.strip_prefix(" : "))
        .unwrap_or(content)
}

/// Serves one client until it leaves, is cut off, or the server shuts down; an object
/// over `max_object_bytes` (`--max-json-object-bytes`) ends the connection.
pub(crate) async fn client(
    stream: TcpStream,
    peer: SocketAddr,
    served: Served,
    max_object_bytes: usize,
) {
    let (member, mut inbox) = match served.join(Protocol::TcpJson, peer) {
        Ok(joined) => joined,
        // Not announced on connect: its joins are its CONNECTs, refused one by one.
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
        timeouts,
        reader,
        writer,
        commands: Commands::new(max_object_bytes),
        buf: BytesMut::new(),
        names: None,
        connect_deadline: timeouts.connect.map(|connect| Instant::now() + connect),
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
    tracing::debug!(%peer, member = member.id(), "tcp-json connection ends: {}", ending.reason());
    drop(member);
    close_telling(reader, writer, peer, ending).await;
}

/// One client's connection, as its task serves it.
struct Connection {
    member: Member,
    peer: SocketAddr,
    refusals: Refusals,
    timeouts: Timeouts,
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    commands: Commands,
    /// Holds at most one object over the limit, and one read more.
    buf: BytesMut,
    /// The name as the client typed it, and as the lobby stored it.
    names: Option<(String, String)>,
    /// When the client must have sent CONNECT.
    connect_deadline: Option<Instant>,
    /// When the incomplete object at the start of `buf` must be complete.
    stall_deadline: Option<Instant>,
}

impl Connection {
    /// Writes out what the lobby sends and carries out what the client sends, until
    /// either side ends.
    async fn run(&mut self, queue: &mut mpsc::Receiver<Arc<Delivery>>) -> Ended {
        loop {
            let next = tokio::select! {
                delivery = queue.recv() => self.deliver(delivery).await,
                () = until(self.connect_deadline), if self.names.is_none() => {
                    self.fatal(StreamError::ConnectTimeout { ms: millis(self.timeouts.connect) })
                }
                () = until(self.stall_deadline) => {
                    self.fatal(StreamError::Stalled { ms: millis(self.timeouts.stall) })
                }
                read = self.reader.read_buf(reserve(&mut self.buf)) => self.on_read(read).await,
            };
            if let ControlFlow::Break(ended) = next {
                return ended;
            }
        }
    }

    /// Writes a delivery out.
    async fn deliver(&mut self, delivery: Option<Arc<Delivery>>) -> ControlFlow<Ended> {
        match write_delivery(&mut self.writer, delivery, Protocol::TcpJson, encode).await {
            Ok(()) => ControlFlow::Continue(()),
            Err(stop) => ControlFlow::Break(Ok(stop)),
        }
    }

    /// Carries out every command a read completed.
    async fn on_read(&mut self, read: std::io::Result<usize>) -> ControlFlow<Ended> {
        match read {
            Ok(0) => return ControlFlow::Break(Ok("closed by the client")),
            Ok(read) => telemetry::TRAFFIC.received_bytes(read),
            Err(_) => return ControlFlow::Break(Ok("read failed")),
        }
        let mut decoded = false;
        loop {
            match self.commands.decode(&mut self.buf) {
                Ok(None) => break,
                Ok(Some(command)) => {
                    decoded = true;
                    self.on_command(command).await?;
                }
                Err(why) => return self.fatal(why),
            }
        }
        self.stall_deadline = match self.stall_deadline {
            _ if self.buf.is_empty() => None,
            Some(deadline) if !decoded => Some(deadline),
            _ => self.timeouts.stall.map(|stall| Instant::now() + stall),
        };
        ControlFlow::Continue(())
    }

    /// Carries out one command; tells the client what it must know of it.
    async fn on_command(&mut self, command: Command) -> ControlFlow<Ended> {
        telemetry::TRAFFIC.received_packets(1);
        self.member
            .tap_received(|| serde_json::json!(["message", command.as_sent()]));
        let why = match handle(&self.member, &mut self.names, command) {
            Ok(None) => return ControlFlow::Continue(()),
            Ok(Some(taken)) => return self.tell(&taken).await,
            Err(why) => why,
        };
        if why.disconnects() {
            return self.fatal(StreamError::Flooding(why));
        }
        self.refuse(Refusal::new(why.reason(), &why));
        self.tell(&why).await
    }

    /// Sends the client one line `error: <why>`.
    async fn tell(&mut self, why: &impl fmt::Display) -> ControlFlow<Ended> {
        match self
            .writer
            .write_all(format!("error: {why}\n").as_bytes())
            .await
        {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(Ok("write failed")),
        }
    }

    /// Ends the connection for `fatal`, the client's last line.
    fn fatal(&self, fatal: StreamError) -> ControlFlow<Ended> {
        self.refuse(Refusal::disconnecting(fatal.reason(), &fatal));
        ControlFlow::Break(Err(fatal.to_string()))
    }

    fn refuse(&self, refusal: Refusal<impl fmt::Display>) {
        let who = Who::Member(self.member.id(), Some(self.peer));
        self.refusals.report(Protocol::TcpJson, who, refusal);
    }
}

/// `buf`, with room for one more read.
fn reserve(buf: &mut BytesMut) -> &mut BytesMut {
    buf.reserve(READ_BYTES);
    buf
}

/// A time limit in milliseconds, for error lines.
fn millis(limit: Option<std::time::Duration>) -> u128 {
    limit.map_or(0, |limit| limit.as_millis())
}

/// Carries out a command; returns what the client must be told about the name it was
/// given, if it is not the one it asked for.
fn handle(
    member: &Member,
    names: &mut Option<(String, String)>,
    command: Command,
) -> Result<Option<NameTaken>, LobbyError> {
    match command {
        Command::Connect(typed) => {
            let mut told = None;
            let stored = member.set_name_telling(&typed, |taken| told = Some(taken.clone()))?;
            *names = Some((typed, stored.to_string()));
            Ok(told)
        }
        Command::Chat(content) => {
            let line = match names {
                Some((typed, stored)) => line_of(&content, typed, stored),
                None => &content,
            };
            member.say(line).map(|()| None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(decoder: &mut Commands, bytes: &[u8]) -> Vec<Result<Command, String>> {
        let mut buf = BytesMut::from(bytes);
        let mut out = Vec::new();
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(command)) => out.push(Ok(command)),
                Ok(None) => return out,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
        }
    }

    #[test]
    fn glued_objects_and_strings_with_braces() {
        let stream =
            br#"{"type":"CONNECT","content":"a}{\"b"} {"type":"CHAT","content":"a : [x]"}"#;
        assert_eq!(
            decode_all(&mut Commands::new(1024), stream),
            vec![
                Ok(Command::Connect("a}{\"b".into())),
                Ok(Command::Chat("a : [x]".into()))
            ]
        );
    }

    #[test]
    fn one_byte_at_a_time_gives_the_same_commands() {
        let stream =
            br#"{"type":"CONNECT","content":"kim"}{"type":"CHAT","content":"kim : \u00e9\\"}"#;
        let mut decoder = Commands::new(1024);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for byte in stream {
            buf.extend_from_slice(&[*byte]);
            while let Some(command) = decoder.decode(&mut buf).unwrap() {
                out.push(command);
            }
        }
        assert_eq!(
            out,
            vec![
                Command::Connect("kim".into()),
                Command::Chat("kim : é\\".into())
            ]
        );
    }

    #[test]
    fn errors_say_why() {
        let not_a_command = r#"expected {"type": "CONNECT" | "CHAT", "content": "<text>"}"#;
        let cases: [(&[u8], usize, &str); 6] = [
            (b"hello", 1024, not_a_command),
            (br#"{"type":"CHAT"}"#, 1024, not_a_command),
            (br#"["CHAT"]"#, 1024, not_a_command),
            (
                br#"{"type":"JOIN","content":"x"}"#,
                1024,
                r#"unknown type "JOIN": expected CONNECT or CHAT"#,
            ),
            (
                br#"{"type":"CHAT",,}"#,
                1024,
                "malformed JSON: key must be a string at line 1 column 16",
            ),
            (
                br#"{"type":"CHAT","content":"0123456789"}"#,
                16,
                "object larger than 16 bytes",
            ),
        ];
        for (stream, max, why) in cases {
            let got = decode_all(&mut Commands::new(max), stream);
            let context = String::from_utf8_lossy(stream);
            assert_eq!(got.last(), Some(&Err(why.to_owned())), "{context}");
        }
    }

    #[test]
    fn the_name_prefix_is_taken_off_only_when_it_is_the_clients() {
        assert_eq!(line_of("kim : hi", "kim", "kim"), "hi");
        assert_eq!(line_of(" kim  : hi", " kim ", "kim"), "hi");
        assert_eq!(line_of("kim : hi", " kim ", "kim"), "hi");
        assert_eq!(line_of("lee : hi", "kim", "kim"), "lee : hi");
        assert_eq!(line_of("kim: hi", "kim", "kim"), "kim: hi");
    }
}
