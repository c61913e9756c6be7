//! Twenty well-behaved clients, five of each protocol, chatting while a test misbehaves
//! elsewhere: every round each of them sends one numbered line, and each of them must
//! receive every other's lines, complete and in order, until the test stops them.

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

use super::{Client, SioClient, TcpClient, TestServer, WAIT, WsClient};

/// Members of the crowd: five per protocol.
pub const SIZE: usize = 20;

/// Bytes of a line's token: `[ss.rrrr]`, member ss, round rrrr.
const TOKEN_BYTES: usize = 9;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

enum Sender {
    Sio(SioClient),
    Ws(SplitSink<Ws, Message>, String),
    TcpJson(OwnedWriteHalf, String),
    TcpText(OwnedWriteHalf),
}

enum Receiver {
    Sio(mpsc::UnboundedReceiver<(String, Value)>),
    Ws(SplitStream<Ws>),
    Tcp(OwnedReadHalf),
}

/// The crowd, connected and named, not chatting yet.
pub struct Crowd {
    senders: Vec<Sender>,
    receivers: Vec<Receiver>,
}

/// The crowd chatting, until [`Chatting::finish`].
pub struct Chatting {
    stop: watch::Sender<bool>,
    rounds: watch::Receiver<usize>,
    /// Returns the rounds sent, and the senders: dropping a TCP sender's half would
    /// close its connection for the receiving half too.
    sending: JoinHandle<(usize, Vec<Sender>)>,
    totals: watch::Sender<Option<usize>>,
    receiving: Vec<JoinHandle<()>>,
}

fn token(member: usize, round: usize) -> String {
    format!("[{member:02}.{round:04}]")
}

impl Crowd {
    /// Connects and names twenty clients, five per protocol, and waits until the lobby
    /// holds them and `others` members more.
    pub async fn join(server: &TestServer, others: usize) -> Self {
        let (mut senders, mut receivers) = (Vec::new(), Vec::new());
        for i in 0..SIZE / 4 {
            let Client { socket, events } = Client::named(server, &format!("sio{i}")).await;
            senders.push(Sender::Sio(socket));
            receivers.push(Receiver::Sio(events));

            let ws = WsClient::connect(server.websocket).await;
            let (sink, stream) = ws.socket.split();
            senders.push(Sender::Ws(sink, format!("ws{i}")));
            receivers.push(Receiver::Ws(stream));

            let mut tj = TcpClient::connect(server.tcp_json).await;
            let name = format!("tj{i}");
            tj.command("CONNECT", &name).await;
            tj.expect_eventually(format!("{name} connected!")).await;
            let (read, write) = tj.stream.into_split();
            senders.push(Sender::TcpJson(write, name));
            receivers.push(Receiver::Tcp(read));

            let tt = TcpClient::connect(server.tcp_text).await;
            let (read, write) = tt.stream.into_split();
            senders.push(Sender::TcpText(write));
            receivers.push(Receiver::Tcp(read));
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
    async fn say(&mut self, text: &str) {
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

impl Receiver {
    /// The text of what came next: a chat line's text (Socket.IO, WebSocket), or the
    /// bytes read (TCP); empty for presence notices. A crowd member is never refused
    /// nor disconnected.
    async fn next(&mut self, me: usize) -> Vec<u8> {
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

/// Takes every complete token out of `pending`, keeping the start of a token that the
/// next read completes.
fn take_tokens(pending: &mut Vec<u8>) -> Vec<(usize, usize)> {
    let (mut tokens, mut at) = (Vec::new(), 0);
    while at < pending.len() {
        if pending[at] != b'[' {
            at += 1;
            continue;
        }
        if pending.len() - at < TOKEN_BYTES {
            break;
        }
        match parse(&pending[at..at + TOKEN_BYTES]) {
            Some(token) => {
                tokens.push(token);
                at += TOKEN_BYTES;
            }
            None => at += 1,
        }
    }
    pending.drain(..at);
    tokens
}

fn parse(token: &[u8]) -> Option<(usize, usize)> {
    let text = std::str::from_utf8(token).ok()?;
    let (member, round) = text.strip_prefix('[')?.strip_suffix(']')?.split_once('.')?;
    Some((member.parse().ok()?, round.parse().ok()?))
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
