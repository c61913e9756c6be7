//! The members: one task per connection, of three protocols (PROTOCOLS.md).
//!
//! - Socket.IO (section 1): Engine.IO v4 / Socket.IO v5 over WebSocket. A member
//!   answers the open packet (`0…`) with `40`, waits for `40…`, sends
//!   `42["newUser","m<index>"]` and has joined when its own join notice
//!   (`"message":"m<index>님이…"`) comes back. It then reads
//!   `42["update",{"type":"message",…,"message":"<line>"}]` and counts
//!   `42["error",…]` as a refused line; senders send
//!   `42["message",{"type":"message","message":"<line>"}]`. Pings (`2`) get `3`.
//! - Plain WebSocket: receives `{"type":"message",…,"msg":"<line>"}`.
//! - TCP JSON, never named: receives `<X> : <line>` with no delimiter.
//!
//! `<line>` is `<sender>|<seq>|<µs>;` (see [`crate::stats`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::stats::Shared;
use crate::ws::{self, find, read_more};

/// What the senders do now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Phase {
    /// Not sending (between rounds).
    Quiet,
    /// Sending, each sender at `rate` lines per second, at most `lines` of them in
    /// this phase (`None`: no limit), each line's content padded to `line_bytes`.
    Sending {
        rate: f64,
        lines: Option<u64>,
        line_bytes: usize,
    },
    /// The run is over.
    Done,
}

/// The content of `"key":"<content>"` in `text`.
fn field<'a>(text: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let start = find(text, key)? + key.len();
    let len = text[start..].iter().position(|&b| b == b'"')?;
    Some(&text[start..start + len])
}

/// How a receiving member answers Engine.IO pings: itself, or through its sender task,
/// which holds the way out.
enum Pong {
    Direct(ws::Writer),
    Via(mpsc::UnboundedSender<()>),
}

impl Pong {
    async fn send(&mut self) -> anyhow::Result<()> {
        match self {
            Pong::Direct(writer) => writer.text("3").await,
            Pong::Via(sender) => sender.send(()).context("sender task ended"),
        }
    }
}

/// Reads text frames until one satisfies `done`, answering Engine.IO pings.
async fn until_text(
    reader: &mut ws::Reader,
    writer: &mut ws::Writer,
    done: impl Fn(&str) -> bool,
) -> anyhow::Result<()> {
    loop {
        match reader.next_text(writer).await? {
            text if done(&text) => return Ok(()),
            text if text == "2" => writer.text("3").await?,
            _ => {}
        }
    }
}

/// One Socket.IO member: joins, then receives (and, if it is one of the senders, a task
/// of its own sends while the phase says so).
pub async fn socketio_member(
    shared: Arc<Shared>,
    index: usize,
    addr: String,
    handshakes: Arc<Semaphore>,
    joined: mpsc::UnboundedSender<()>,
    phase: watch::Receiver<Phase>,
) -> anyhow::Result<()> {
    let permit = handshakes.acquire_owned().await?;
    let (mut reader, mut writer) =
        ws::connect(&addr, "/socket.io/?EIO=4&transport=websocket").await?;
    until_text(&mut reader, &mut writer, |text| text.starts_with('0')).await?;
    writer.text("40").await?;
    until_text(&mut reader, &mut writer, |text| text.starts_with("40")).await?;
    let name = format!("m{index}");
    writer.text(&format!(r#"42["newUser","{name}"]"#)).await?;
    let own_join = format!(r#""message":"{name}님이"#);
    until_text(&mut reader, &mut writer, |text| text.contains(&own_join)).await?;
    drop(permit);
    joined.send(()).ok();

    let me = (index < shared.senders).then_some(index);
    let mut pong = match me {
        Some(sender) => {
            let (pongs, asked) = mpsc::unbounded_channel();
            let sending = send_lines(shared.clone(), sender, writer, phase, asked);
            let shared = shared.clone();
            tokio::spawn(async move { shared.member_ended(sending.await) });
            Pong::Via(pongs)
        }
        None => Pong::Direct(writer),
    };
    let mut seen = shared.seen(&addr, me);
    loop {
        reader.fill().await?;
        let now = shared.now_us();
        let mut events = 0;
        let mut pings = 0;
        while let Some((opcode, payload)) = reader.next_frame()? {
            events += u64::from(opcode == ws::TEXT && payload.starts_with(b"42"));
            match opcode {
                ws::TEXT if payload == b"2" => pings += 1,
                ws::TEXT if payload.starts_with(br#"42["error","#) => {
                    shared.refused.fetch_add(1, Ordering::Relaxed);
                }
                ws::TEXT if payload.starts_with(br#"42["update",{"type":"message""#) => {
                    if let Some(content) = field(payload, br#""message":""#) {
                        seen.line(content, now);
                    }
                }
                // The server disconnected the socket (a slow consumer cut off, a
                // flood): the connection may stay open, but the member is out.
                ws::TEXT if payload.starts_with(b"41") => {
                    bail!("member {index} disconnected by the server")
                }
                ws::CLOSE => bail!("member {index} closed"),
                _ => {}
            }
        }
        shared.events.fetch_add(events, Ordering::Relaxed);
        shared.report(&mut seen);
        for _ in 0..pings {
            pong.send().await?;
        }
    }
}

/// Sender `index`'s lines, at the phase's rate; also answers pings its reader saw.
async fn send_lines(
    shared: Arc<Shared>,
    index: usize,
    mut writer: ws::Writer,
    mut phase: watch::Receiver<Phase>,
    mut pongs: mpsc::UnboundedReceiver<()>,
) -> anyhow::Result<()> {
    let mut seq = 0;
    let mut ticker: Option<tokio::time::Interval> = None;
    // This phase's limit and padding, and the lines sent in it.
    let (mut limit, mut line_bytes, mut sent_in_phase) = (None, 0, 0);
    loop {
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let now = *phase.borrow_and_update();
                ticker = match now {
                    Phase::Done => return Ok(()),
                    Phase::Sending { rate, lines, line_bytes: bytes } => {
                        (limit, line_bytes, sent_in_phase) = (lines, bytes, 0);
                        // Senders spread over the period, as independent clients are.
                        let period = Duration::from_secs_f64(1.0 / rate);
                        let offset = period.mul_f64(index as f64 / shared.senders as f64);
                        let start = tokio::time::Instant::now() + offset;
                        let mut ticker = tokio::time::interval_at(start, period);
                        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                        Some(ticker)
                    }
                    Phase::Quiet => None,
                };
            }
            asked = pongs.recv() => match asked {
                Some(()) => writer.text("3").await?,
                None => return Ok(()),
            },
            _ = async { ticker.as_mut().expect("ticking").tick().await }, if ticker.is_some() => {
                seq += 1;
                let content = line(index, seq, shared.now_us(), line_bytes);
                writer
                    .text(&format!(r#"42["message",{{"type":"message","message":"{content}"}}]"#))
                    .await?;
                shared.sent[index].fetch_add(1, Ordering::Relaxed);
                sent_in_phase += 1;
                if limit.is_some_and(|limit| sent_in_phase >= limit) {
                    ticker = None;
                }
            }
        }
    }
}

/// A line's content, `<sender>|<seq>|<µs>;`, padded to `bytes` (when longer) with a
/// fourth field of `x`s that receivers ignore: `<sender>|<seq>|<µs>|xxx…;`.
fn line(sender: usize, seq: u64, sent_us: u64, bytes: usize) -> String {
    let mut line = format!("{sender}|{seq}|{sent_us}");
    if bytes > line.len() + 2 {
        let pad = bytes - line.len() - 2;
        line.push('|');
        line.extend(std::iter::repeat_n('x', pad));
    }
    line.push(';');
    line
}

/// One plain WebSocket member: receives every line as `{"type":"message",…,"msg":"…"}`.
pub async fn websocket_member(
    shared: Arc<Shared>,
    addr: String,
    joined: mpsc::UnboundedSender<()>,
) -> anyhow::Result<()> {
    let (mut reader, mut writer) = ws::connect(&addr, "/").await?;
    joined.send(()).ok();
    let mut seen = shared.seen(&addr, None);
    loop {
        reader.fill().await?;
        let now = shared.now_us();
        let mut pings = Vec::new();
        while let Some((opcode, payload)) = reader.next_frame()? {
            match opcode {
                ws::TEXT => {
                    if let Some(content) = field(payload, br#""msg":""#) {
                        seen.line(content, now);
                    }
                }
                ws::PING => pings.push(payload.to_vec()),
                ws::CLOSE => bail!("websocket member closed"),
                _ => {}
            }
        }
        shared.report(&mut seen);
        for payload in pings {
            writer.pong(&payload).await?;
        }
    }
}

/// One TCP JSON member, never named: receives every line as `<X> : <line>` with no
/// delimiter; the lines' own `;` ends them.
pub async fn tcp_json_member(
    shared: Arc<Shared>,
    addr: String,
    joined: mpsc::UnboundedSender<()>,
) -> anyhow::Result<()> {
    let mut stream = tokio::net::TcpStream::connect(&addr).await?;
    joined.send(()).ok();
    let mut seen = shared.seen(&addr, None);
    let mut buf = vec![0; 64 * 1024];
    let mut end = 0;
    loop {
        read_more(&mut stream, &mut buf, &mut end, "a tcp json member's line").await?;
        let now = shared.now_us();
        let mut start = 0;
        while let Some(len) = buf[start..end].iter().position(|&b| b == b';') {
            let piece = &buf[start..start + len];
            if let Some(at) = piece.windows(3).rposition(|w| w == b" : ") {
                seen.line(&piece[at + 3..], now);
            }
            start += len + 1;
        }
        buf.copy_within(start..end, 0);
        end -= start;
        shared.report(&mut seen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_found_in_either_servers_field_order() {
        let ours = br#"42["update",{"type":"message","name":"m1","message":"1|7|99;"}]"#;
        let node = br#"42["update",{"type":"message","message":"1|7|99;","name":"m1"}]"#;
        for frame in [&ours[..], &node[..]] {
            assert_eq!(field(frame, br#""message":""#), Some(&b"1|7|99;"[..]));
        }
        let ws = br#"{"type":"message","name":"m1","msg":"0|1|5;"}"#;
        assert_eq!(field(ws, br#""msg":""#), Some(&b"0|1|5;"[..]));
    }

    #[test]
    fn a_padded_line_has_the_bytes_asked_for_and_reads_as_the_same_line() {
        assert_eq!(line(3, 7, 99, 0), "3|7|99;");
        assert_eq!(line(3, 7, 99, 8), "3|7|99;");
        assert_eq!(line(3, 7, 99, 12), "3|7|99|xxxx;");
        assert_eq!(line(3, 7, 99, 1024).len(), 1024);
        let mut seen = crate::stats::Seen::new(4, None);
        seen.line(line(3, 1, 99, 1024).as_bytes(), 100);
        let shared = Shared::new(4);
        shared.report(&mut seen);
        let round = shared.round();
        assert_eq!((round.received, round.reordered), (1, 0));
        assert_eq!(round.latency_us.max(), 1);
    }
}
