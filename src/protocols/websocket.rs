//! The plain WebSocket JSON chat (PROTOCOLS.md section 3), on its own port, path `/`.
//!
//! Wire format: text frames carrying JSON.
//!
//! | direction | frame |
//! |---|---|
//! | client → server | `{"name":"<X>","msg":"<text>"}`: a line; the name travels with every line |
//! | server → client | `{"type":"message","name":"<X>","msg":"<text>"}`: a line of anyone in the lobby, the client's own included |
//! | server → client | `{"type":"notification","msg":"새로운 유저 접속 [현재 : N명]"}`: someone joined (the client itself included), N counts the lobby's named members (a Socket.IO socket from its `newUser` on) |
//! | server → client | `{"type":"notification","msg":"유저 연결 해제 [현재 : N명]"}`: someone left |
//! | server → client | `{"type":"error","msg":"<why>"}`: the client's frame was refused, nothing was relayed |
//! | server → client | `{"type":"error","msg":"the name \"X\" is taken: you are \"Y\""}`: the line's name is one the client cannot have (`crate::lobby::names`); the line goes out under Y, after this frame |
//!
//! A `message` frame carries the name and the text exactly as they were sent, with one
//! exception: for a connection whose upgrade request carried an `Origin` header (a page
//! in a browser: browsers always send one, programs usually do not), `name` and `msg`
//! are HTML-escaped (`& < > " '`). The original WebSocket page inserts frames with
//! `innerHTML`; escaped, they show exactly as typed, and nothing anyone types on any
//! protocol runs in that page. The server cannot fix that page; this keeps the one lobby
//! from making it worse, without changing the text for programs.
//!
//! A connection is in the lobby as `guest-<n>` from its first moment; a line's `name`
//! (cleaned like every name) becomes its name from then on, or the nearest free name
//! when it is taken, which it keeps for as long as its lines claim the same name (told
//! once, at the first of them). A message over
//! [`Policy::max_message_bytes`] (`--max-ws-message-bytes`) closes the connection with code 1009; a handshake
//! that does not finish within `--header-timeout-ms` ([`Timeouts::header`]) is dropped
//! and counted (`header_timeout`); an upgrade from an
//! origin that `--allowed-origins` does not list gets HTTP 403 (see `crate::http::origins`);
//! an upgrade over the connection limits gets HTTP 503 with the reason as its body (see
//! `crate::net::admission`). A line over the member's message rate gets an `error` frame;
//! too many in a row close the connection with code 1008 (policy) `too many messages`.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use crate::http::origins::AllowedOrigins;
use crate::lobby::{Delivery, Event, LobbyError, Member};
use crate::net::accept::Served;
use crate::net::admission::{AdmissionRefusal, REFUSAL_TIMEOUT};
use crate::net::outbox::{Ending, until_stopped};
use crate::net::until;
use crate::protocol::Protocol;
use crate::refusals::{Refusal, Refusals, Who};
use crate::telemetry;

/// Default for [`Policy::max_message_bytes`]: a chat frame is a few hundred bytes;
/// 64 KiB leaves room for any legitimate one.
pub(crate) const DEFAULT_MAX_WS_MESSAGE_BYTES: usize = 64 * 1024;

/// What the plain WebSocket listener is handed of the settings: its own policies.
#[derive(Debug, Clone)]
pub(crate) struct Policy {
    /// Web origins allowed to upgrade (`--allowed-origins`).
    pub(crate) allowed_origins: AllowedOrigins,
    /// Largest message (and frame), in bytes (`--max-ws-message-bytes`).
    pub(crate) max_message_bytes: usize,
}

/// How long a client that is being closed may take to read its close frame: a client
/// that does not read cannot hold its connection open longer than this.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers the upgrade of a connection over the connection limits with HTTP 503 and
/// the reason as the body, within [`REFUSAL_TIMEOUT`].
pub(crate) async fn refuse_upgrade(stream: TcpStream, peer: SocketAddr, why: AdmissionRefusal) {
    // The signature is tungstenite's handshake callback's.
    #[allow(clippy::result_large_err)]
    let refusal = move |_: &Request, _: Response| -> Result<Response, ErrorResponse> {
        let mut refusal = ErrorResponse::new(Some(format!("{why}\n")));
        *refusal.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        Err(refusal)
    };
    let handshake = tokio_tungstenite::accept_hdr_async(stream, refusal);
    match tokio::time::timeout(REFUSAL_TIMEOUT, handshake).await {
        Ok(Ok(_)) => tracing::error!(%peer, "a refused upgrade was accepted"),
        Ok(Err(e)) => tracing::debug!(%peer, "refused upgrade: {e}"),
        Err(_) => tracing::debug!(%peer, "refused upgrade: timed out"),
    }
}

/// A frame to the client.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Outgoing<'a> {
    Message { name: &'a str, msg: &'a str },
    Notification { msg: &'a str },
    Error { msg: &'a str },
}

/// A line from the client.
#[derive(Deserialize)]
struct Line {
    name: String,
    msg: String,
}

const NOT_A_LINE: &str = r#"expected a text frame {"name": "<name>", "msg": "<text>"}"#;

/// A lobby event as a WebSocket program sees it (a connection without `Origin`): the
/// text exactly as sent.
pub fn encode(event: &Event) -> Bytes {
    encode_with(event, |text| Cow::Borrowed(text))
}

/// A lobby event as a WebSocket page sees it (a connection whose upgrade carried an
/// `Origin`): names and texts HTML-escaped, for a page that inserts them as HTML.
pub fn encode_for_page(event: &Event) -> Bytes {
    encode_with(event, escape_html)
}

fn encode_with(event: &Event, text_of: fn(&str) -> Cow<'_, str>) -> Bytes {
    let notice;
    let frame = match event {
        Event::Joined { members, .. } => {
            notice = format!("새로운 유저 접속 [현재 : {members}명]");
            Outgoing::Notification { msg: &notice }
        }
        Event::Left { members, .. } => {
            notice = format!("유저 연결 해제 [현재 : {members}명]");
            Outgoing::Notification { msg: &notice }
        }
        Event::Message { name, text, .. } => {
            let (name, msg) = (text_of(name), text_of(text));
            return to_json(&Outgoing::Message {
                name: &name,
                msg: &msg,
            });
        }
    };
    to_json(&frame)
}

/// `text` with the characters HTML gives a meaning replaced by their entities.
fn escape_html(text: &str) -> Cow<'_, str> {
    if !text.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            c => escaped.push(c),
        }
    }
    Cow::Owned(escaped)
}

fn to_json(frame: &Outgoing<'_>) -> Bytes {
    // Serialising these string-only structures cannot fail.
    serde_json::to_vec(frame).map_or_else(|_| Bytes::new(), Bytes::from)
}

fn text_frame(json: Bytes) -> Message {
    match Utf8Bytes::try_from(json) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Text(Utf8Bytes::from_static("{}")),
    }
}

/// Accepts an upgrade to `/` from an allowed origin.
// The signature is tungstenite's handshake callback's.
#[allow(clippy::result_large_err)]
fn admit(
    origins: &AllowedOrigins,
    refusals: &Refusals,
    peer: SocketAddr,
    request: &Request,
    response: Response,
) -> Result<Response, ErrorResponse> {
    let refuse = |status, why: &str| {
        let mut refusal = ErrorResponse::new(Some(why.to_owned()));
        *refusal.status_mut() = status;
        Err(refusal)
    };
    if request.uri().path() != "/" {
        return refuse(StatusCode::NOT_FOUND, "the chat is at /");
    }
    let origin = request.headers().get("origin");
    if !origins.allows_header(origin) {
        let why = format_args!("origin not allowed: {origin:?}");
        refusals.report(
            Protocol::WebSocket,
            Who::Peer(peer),
            Refusal::new("origin", why),
        );
        return refuse(StatusCode::FORBIDDEN, "origin not allowed");
    }
    Ok(response)
}

/// Serves one client until it leaves, is cut off, or the server shuts down.
pub(crate) async fn client(stream: TcpStream, peer: SocketAddr, served: Served, policy: Policy) {
    let Some((socket, from_page)) = handshake(stream, peer, &served, policy).await else {
        return;
    };
    let (mut sink, mut frames) = socket.split();
    let (member, mut inbox) = match served.join(Protocol::WebSocket, peer) {
        Ok(joined) => joined,
        Err(why) => return refuse_join(&mut sink, peer, &why).await,
    };
    let mut connection = Connection {
        member,
        peer,
        refusals: served.lobby.refusals().clone(),
        from_page,
        sink,
    };
    let work = connection.run(&mut frames, &mut inbox.queue);
    let close = match until_stopped(&served.shutdown, &inbox.cut, work).await {
        Ending::Shutdown => Some((CloseCode::Away, "server shutting down")),
        Ending::CutOff => None,
        Ending::Ended(close) => close,
    };
    let Connection {
        member, mut sink, ..
    } = connection;
    drop(member);
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        // A client that is gone cannot be told why; a client that does not read gets
        // no longer than the handshake's timeout to take it.
        match tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!(%peer, "cannot send the close frame: {e}"),
            Err(_) => tracing::debug!(%peer, "close frame not taken in time"),
        }
    }
}

/// The upgrade of a connection, within `--header-timeout-ms`, and whether it came from a
/// page (its request carried an `Origin`); `None`: refused, failed or shut down.
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    served: &Served,
    policy: Policy,
) -> Option<(WebSocketStream<TcpStream>, bool)> {
    let Served {
        lobby,
        timeouts,
        shutdown,
    } = served;
    let config = WebSocketConfig::default()
        .max_message_size(Some(policy.max_message_bytes))
        .max_frame_size(Some(policy.max_message_bytes));
    let origins = policy.allowed_origins;
    let refusals = lobby.refusals().clone();
    let mut from_page = false;
    // The signature is tungstenite's handshake callback's.
    #[allow(clippy::result_large_err)]
    let admit = |request: &Request, response| {
        from_page = request.headers().contains_key("origin");
        admit(&origins, &refusals, peer, request, response)
    };
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, admit, Some(config));
    let socket = tokio::select! {
        () = shutdown.cancelled() => return None,
        () = until(timeouts.header.map(|header| Instant::now() + header)) => {
            let refusal = Refusal::disconnecting("header_timeout", "upgrade request too slow");
            lobby.refusals().report(Protocol::WebSocket, Who::Peer(peer), refusal);
            return None;
        }
        handshake = handshake => match handshake {
            Ok(socket) => socket,
            Err(e) => {
                tracing::debug!(%peer, "websocket handshake failed: {e}");
                return None;
            }
        },
    };
    Some((socket, from_page))
}

/// Tells a client whose join was refused why, then closes its connection: its join is
/// its connection.
async fn refuse_join(sink: &mut Sink, peer: SocketAddr, why: &LobbyError) {
    let reply = to_json(&Outgoing::Error {
        msg: &why.to_string(),
    });
    let frame = CloseFrame {
        code: CloseCode::Policy,
        reason: Utf8Bytes::from_static("too many joins"),
    };
    let refusal = async {
        sink.send(text_frame(reply)).await?;
        sink.send(Message::Close(Some(frame))).await
    };
    match tokio::time::timeout(CLOSE_TIMEOUT, refusal).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(%peer, "cannot refuse the join: {e}"),
        Err(_) => tracing::debug!(%peer, "join refusal not taken in time"),
    }
}

/// The sending half of a client's WebSocket.
type Sink = SplitSink<WebSocketStream<TcpStream>, Message>;

/// The receiving half of a client's WebSocket.
type Frames = SplitStream<WebSocketStream<TcpStream>>;

/// How a connection's own work ends: the close frame to send, if any.
type Close = Option<(CloseCode, &'static str)>;

/// One client's connection, once it is a member, as its task serves it.
struct Connection {
    member: Member,
    peer: SocketAddr,
    refusals: Refusals,
    /// Its upgrade carried an `Origin`: frames are HTML-escaped (see the module doc).
    from_page: bool,
    sink: Sink,
}

impl Connection {
    /// Writes out what the lobby sends and relays what the client sends, until either
    /// side ends.
    async fn run(
        &mut self,
        frames: &mut Frames,
        queue: &mut mpsc::Receiver<Arc<Delivery>>,
    ) -> Close {
        loop {
            let next = tokio::select! {
                delivery = queue.recv() => self.deliver(delivery, queue).await,
                frame = frames.next() => self.on_frame(frame).await,
            };
            if let ControlFlow::Break(close) = next {
                return close;
            }
        }
    }

    /// Writes a delivery out, and everything queued behind it, with one flush.
    async fn deliver(
        &mut self,
        delivery: Option<Arc<Delivery>>,
        queue: &mut mpsc::Receiver<Arc<Delivery>>,
    ) -> ControlFlow<Close> {
        let Some(delivery) = delivery else {
            return ControlFlow::Break(None);
        };
        let mut next = Some(delivery);
        while let Some(delivery) = next {
            let json = if self.from_page {
                delivery.encoded_for_page(encode_for_page)
            } else {
                delivery.encoded(Protocol::WebSocket, encode)
            };
            telemetry::bytes_out(Protocol::WebSocket, json.len());
            telemetry::TRAFFIC.sent_bytes(json.len() as u64);
            if self.sink.feed(text_frame(json)).await.is_err() {
                return ControlFlow::Break(None);
            }
            next = queue.try_recv().ok();
        }
        match self.sink.flush().await {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(None),
        }
    }

    /// Carries out a frame from the client.
    async fn on_frame(&mut self, frame: Option<Result<Message, WsError>>) -> ControlFlow<Close> {
        let refusal = match frame {
            None | Some(Ok(Message::Close(_))) => return ControlFlow::Break(None),
            Some(Err(WsError::Capacity(e))) => {
                self.refuse(Refusal::disconnecting("too_large", e));
                return ControlFlow::Break(Some((CloseCode::Size, "message too big")));
            }
            Some(Err(e)) => {
                tracing::debug!(peer = %self.peer, "websocket read failed: {e}");
                return ControlFlow::Break(None);
            }
            Some(Ok(Message::Text(text))) => {
                self.received(&text);
                match serde_json::from_str::<Line>(&text) {
                    Ok(line) => return self.say(line).await,
                    Err(_) => Refusal::new("malformed", NOT_A_LINE.to_owned()),
                }
            }
            Some(Ok(Message::Binary(binary))) => {
                telemetry::TRAFFIC.received(binary.len());
                Refusal::new("malformed", NOT_A_LINE.to_owned())
            }
            Some(Ok(_)) => return ControlFlow::Continue(()), // ping and pong: tungstenite answers pings itself
        };
        self.refuse(refusal.by_ref());
        self.tell(&refusal.why).await
    }

    /// Counts a text frame the client sent and hands it to the admin UI's tap (its JSON,
    /// or its text when it is not JSON).
    fn received(&self, text: &str) {
        telemetry::TRAFFIC.received(text.len());
        self.member.tap_received(|| {
            let sent = serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::from(text));
            serde_json::json!(["message", sent])
        });
    }

    /// Says a line in the lobby under the name it carries.
    async fn say(&mut self, line: Line) -> ControlFlow<Close> {
        match self.member.say_as(&line.name, &line.msg) {
            Ok(None) => ControlFlow::Continue(()),
            Ok(Some(taken)) => self.tell(&taken.to_string()).await,
            Err(e) if e.disconnects() => {
                self.refuse(Refusal::disconnecting(e.reason(), &e));
                self.tell(&e.to_string()).await?;
                ControlFlow::Break(Some((CloseCode::Policy, "too many messages")))
            }
            Err(e) => {
                self.refuse(Refusal::new(e.reason(), &e));
                self.tell(&e.to_string()).await
            }
        }
    }

    /// Sends the client an `error` frame.
    async fn tell(&mut self, why: &str) -> ControlFlow<Close> {
        let reply = to_json(&Outgoing::Error { msg: why });
        match self.sink.send(text_frame(reply)).await {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(None),
        }
    }

    fn refuse(&self, refusal: Refusal<impl fmt::Display>) {
        let who = Who::Member(self.member.id(), Some(self.peer));
        self.refusals.report(Protocol::WebSocket, who, refusal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_as_frames() {
        let joined = Event::Joined {
            name: "kim".into(),
            members: 3,
        };
        assert_eq!(
            encode(&joined),
            r#"{"type":"notification","msg":"새로운 유저 접속 [현재 : 3명]"}"#
        );
        let left = Event::Left {
            name: "kim".into(),
            members: 2,
        };
        assert_eq!(
            encode(&left),
            r#"{"type":"notification","msg":"유저 연결 해제 [현재 : 2명]"}"#
        );
        let line = Event::Message {
            name: "<b>kim</b>".into(),
            text: "\"hi\" & 'bye'\n".into(),
            origin: Protocol::TcpJson,
            raw: None,
        };
        assert_eq!(
            encode_for_page(&line),
            r#"{"type":"message","name":"&lt;b&gt;kim&lt;/b&gt;","msg":"&quot;hi&quot; &amp; &#39;bye&#39;\n"}"#
        );
        assert_eq!(
            encode(&line),
            r#"{"type":"message","name":"<b>kim</b>","msg":"\"hi\" & 'bye'\n"}"#
        );
        // Notices carry no client text: the same for pages and programs.
        assert_eq!(encode_for_page(&joined), encode(&joined));
    }
}
