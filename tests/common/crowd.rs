//! Twenty well-behaved clients, five of each protocol, chatting while a test misbehaves
//! elsewhere: every round each of them sends one numbered line, and each of them must
//! receive every other's lines, complete and in order, until the test stops them.
//!
//! Lines carry tokens `[<sender>.<number>]`, found again in whatever a client receives
//! ([`take_tokens`]): chat texts of Socket.IO and WebSocket, the unframed TCP streams.

use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use std::net::SocketAddr;

use rust_socketio::TransportType;

use rust_socketio::asynchronous::Client as SioClient;

use super::{Client, TcpClient, TestServer, WAIT, WsClient};

/// Members of the crowd: five per protocol.
pub const SIZE: usize = 20;

/// Longest token: `[` and `]` around two numbers of up to 7 digits and a dot.
const MAX_TOKEN_BYTES: usize = 17;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where a server listens, every listener on.
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    pub http: SocketAddr,
    pub websocket: SocketAddr,
    pub tcp_json: SocketAddr,
    pub tcp_text: SocketAddr,
}

/// A client's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    SocketIo,
    WebSocket,
    TcpJson,
    TcpText,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::SocketIo,
        Kind::WebSocket,
        Kind::TcpJson,
        Kind::TcpText,
    ];
}

/// A client's sending side.
pub enum Sender {
    Sio(SioClient),
    Ws(SplitSink<Ws, Message>, String),
    TcpJson(OwnedWriteHalf, String),
    TcpText(OwnedWriteHalf),
}

/// A client's receiving side.
pub enum Receiver {
    Sio(mpsc::UnboundedReceiver<(String, Value)>),
    Ws(SplitStream<Ws>),
    Tcp(OwnedReadHalf),
}

/// Connects a client of `kind` and names it `name` where its protocol has names
/// (Socket.IO, TCP JSON: once its join has come back; WebSocket: with its lines; TCP
/// text: none, it is a guest), while others may be chatting.
pub async fn connect(kind: Kind, at: &Addresses, name: &str) -> (Sender, Receiver) {
    match kind {
        Kind::SocketIo => {
            let url = format!("http://{}/", at.http);
            let mut client = Client::connect_to(url, TransportType::Any).await;
            client.name_amid_chat(name).await;
            let Client { socket, events, .. } = client;
            (Sender::Sio(socket), Receiver::Sio(events))
        }
        Kind::WebSocket => {
            let ws = WsClient::connect(Some(at.websocket)).await;
            let (sink, stream) = ws.socket.split();
            (Sender::Ws(sink, name.to_owned()), Receiver::Ws(stream))
        }
        Kind::TcpJson => {
            let mut tj = TcpClient::connect(Some(at.tcp_json)).await;
            tj.command("CONNECT", name).await;
            tj.expect_somewhere(format!("{name} connected!")).await;
            let (read, write) = tj.stream.into_split();
            (Sender::TcpJson(write, name.to_owned()), Receiver::Tcp(read))
        }
        Kind::TcpText => {
            let tt = TcpClient::connect(Some(at.tcp_text)).await;
            let (read, write) = tt.stream.into_split();
            (Sender::TcpText(write), Receiver::Tcp(read))
        }
    }
}

/// The crowd, connected and named, not chatting yet.
pub struct Crowd {
    pub(crate) senders: Vec<Sender>,
    pub(crate) receivers: Vec<Receiver>,
}

/// The crowd chatting, until [`Chatting::finish`].
pub struct Chatting {
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) rounds: watch::Receiver<usize>,
    /// Returns the rounds sent, and the senders: dropping a TCP sender's half would
    /// close its connection for the receiving half too.
    pub(crate) sending: JoinHandle<(usize, Vec<Sender>)>,
    pub(crate) totals: watch::Sender<Option<usize>>,
    pub(crate) receiving: Vec<JoinHandle<()>>,
}

fn token(member: usize, round: usize) -> String {
    format!("[{member:02}.{round:04}]")
}

impl Crowd {
    /// Connects and names twenty clients, five per protocol, and waits until the lobby
    /// holds them and `others` members more.
    pub async fn join(server: &TestServer, others: usize) -> Self {
        let (mut senders, mut receivers) = (Vec::new(), Vec::new());
        let at = server.addresses();
        for i in 0..SIZE / 4 {
            for kind in Kind::ALL {
                let (sender, receiver) = connect(kind, &at, &format!("{kind:?}{i}")).await;
                senders.push(sender);
                receivers.push(receiver);
            }
        }
        server.wait_for_members(SIZE + others).await;
        Self { senders, receivers }
    }

    /// Starts chatting: one line from each member every `every`.
    pub fn start(self, every: Duration) -> Chatting {
        let (stop, mut stopped) = watch::channel(false);
        let (rounds_tx, rounds) = watch::channel(0);
        let (totals, totals_rx) = watch::channel(None);
        let receiving = self
            .receivers
            .into_iter()
            .enumerate()
            .map(|(me, receiver)| tokio::spawn(receive(me, receiver, totals_rx.clone())))
            .collect();
        let mut senders = self.senders;
        let sending = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut round = 0;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stopped.changed() => return (round, senders),
                }
                for (member, sender) in senders.iter_mut().enumerate() {
                    sender.say(&token(member, round)).await;
                }
                round += 1;
                rounds_tx.send_replace(round);
            }
        });
        Chatting {
            stop,
            rounds,
            sending,
            totals,
            receiving,
        }
    }
}

impl Sender {
    /// Sends a chat line as the protocol's original client does.
    pub async fn say(&mut self, text: &str) {
        match self {
            Sender::Sio(socket) => socket
                .emit("message", json!({"type": "message", "message": text}))
                .await
                .expect("emit"),
            Sender::Ws(sink, name) => {
                let frame = json!({"name": name, "msg": text}).to_string();
                sink.send(Message::text(frame)).await.expect("send");
            }
            Sender::TcpJson(write, name) => {
                let content = format!("{name} : {text}");
                let command = json!({"type": "CHAT", "content": content}).to_string();
                write.write_all(command.as_bytes()).await.expect("write");
            }
            Sender::TcpText(write) => write.write_all(text.as_bytes()).await.expect("write"),
        }
    }
}

impl Sender {
    /// Leaves: disconnects (Socket.IO), closes (WebSocket) or shuts the connection's
    /// sending side (TCP: the server then closes it).
    pub async fn leave(self) {
        match self {
            Sender::Sio(socket) => socket.disconnect().await.expect("disconnect"),
            Sender::Ws(mut sink, _) => {
                // The server may have closed first; either way the connection ends.
                let _ = sink.close().await;
            }
            Sender::TcpJson(write, _) | Sender::TcpText(write) => drop(write),
        }
    }
}

impl Receiver {
    /// The text of what came next: a chat line's text (Socket.IO, WebSocket), or the
    /// bytes read (TCP); empty for presence notices. A crowd member is never refused
    /// nor disconnected.
    pub async fn next(&mut self, me: usize) -> Vec<u8> {
        match self {
            Receiver::Sio(events) => {
                let (event, value) = events.recv().await.expect("open");
                assert_eq!(event, "update", "crowd member {me} got {event} {value}");
                match value["type"].as_str() {
                    Some("message") => value["message"].as_str().expect("text").into(),
                    _ => Vec::new(),
                }
            }
            Receiver::Ws(stream) => {
                let frame = stream.next().await.expect("open").expect("frame");
                let text = frame.to_text().expect("a text frame");
                let value: Value = serde_json::from_str(text).expect("JSON");
                match value["type"].as_str() {
                    Some("message") => value["msg"].as_str().expect("text").into(),
                    Some("notification") => Vec::new(),
                    _ => panic!("crowd member {me} got {value}"),
                }
            }
            Receiver::Tcp(read) => {
                let mut buf = vec![0; 64 * 1024];
                let n = read.read(&mut buf).await.expect("read");
                assert!(n > 0, "crowd member {me} was disconnected");
                buf.truncate(n);
                buf
            }
        }
    }
}

/// Reads member `me`'s stream until every other member's lines of every round have
/// come, each sender's in order.
async fn receive(me: usize, mut receiver: Receiver, mut totals: watch::Receiver<Option<usize>>) {
    let mut next = [0; SIZE];
    let mut pending = Vec::new();
    loop {
        let total = *totals.borrow_and_update();
        if let Some(total) = total
            && (0..SIZE).all(|member| member == me || next[member] == total)
        {
            return;
        }
        tokio::select! {
            text = receiver.next(me) => {
                pending.extend_from_slice(&text);
                for (member, round) in take_tokens(&mut pending) {
                    if member == me {
                        continue; // echoes of its own lines, where the protocol has them
                    }
                    assert_eq!(
                        (member, round),
                        (member, next[member]),
                        "crowd member {me}: a line lost or out of order"
                    );
                    next[member] += 1;
                }
            }
            changed = totals.changed() => {
                if changed.is_err() {
                    return; // the test ended (failed) without finishing the crowd
                }
            }
        }
    }
}

/// Takes every complete token `[<sender>.<number>]` out of `pending`, keeping the
/// start of a token that the next read completes.
pub fn take_tokens(pending: &mut Vec<u8>) -> Vec<(usize, usize)> {
    let (mut tokens, mut at) = (Vec::new(), 0);
    while at < pending.len() {
        if pending[at] != b'[' {
            at += 1;
            continue;
        }
        let window = &pending[at..pending.len().min(at + MAX_TOKEN_BYTES)];
        match window.iter().position(|&b| b == b']') {
            Some(end) => match parse(&window[1..end]) {
                Some(token) => {
                    tokens.push(token);
                    at += end + 1;
                }
                None => at += 1,
            },
            None if window.len() < MAX_TOKEN_BYTES => break,
            None => at += 1,
        }
    }
    pending.drain(..at);
    tokens
}

fn parse(token: &[u8]) -> Option<(usize, usize)> {
    let (sender, number) = std::str::from_utf8(token).ok()?.split_once('.')?;
    let digits = |text: &str| !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits(sender) || !digits(number) {
        return None;
    }
    Some((sender.parse().ok()?, number.parse().ok()?))
}

impl Chatting {
    /// Lets the crowd chat at least three rounds, stops it, and checks that every member
    /// received every other's lines, complete and in order.
    pub async fn finish(mut self) {
        tokio::time::timeout(WAIT, self.rounds.wait_for(|rounds| *rounds >= 3))
            .await
            .expect("three rounds in time")
            .expect("the crowd sends");
        self.stop.send_replace(true);
        let (rounds, senders) = tokio::time::timeout(WAIT, self.sending)
            .await
            .expect("the crowd stops in time")
            .expect("the crowd's sender");
        self.totals.send_replace(Some(rounds));
        for (member, receiving) in self.receiving.into_iter().enumerate() {
            tokio::time::timeout(WAIT, receiving)
                .await
                .unwrap_or_else(|_| panic!("crowd member {member}: lines missing"))
                .expect("crowd member");
        }
        drop(senders);
    }
}
