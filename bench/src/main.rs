//! chatterbox-bench: the load generator for the Socket.IO lobby chat (PROTOCOLS.md
//! section 1), for chatterbox and for the Node original alike.
//!
//! It speaks Engine.IO v4 / Socket.IO v5 over WebSocket itself (no client library on the
//! hot path). `--members` N members connect (at most `--handshakes-in-flight` at once)
//! and send `newUser`; the first `--senders` K of them send `message` at `--rate` lines
//! per second each for `--duration-secs`. Every line carries its sender, a sequence
//! number and its send time (`<sender>|<seq>|<µs>;`); every receiver records the latency
//! in an HDR histogram and checks that nothing is lost, duplicated, reordered per sender
//! or echoed to its sender (a line the server refused, and said so, leaves a gap in its
//! sender's sequence that is not counted as reordered). Plain WebSocket and TCP JSON members (chatterbox only)
//! receive too, so cross-protocol fan-out is measured.
//!
//! Reported: deliveries/s, latency p50/p90/p99/max, losses, the server's CPU (cores)
//! and peak RSS (from /proc, with `--server-pid`), and the generator's own CPU, so that
//! a saturated generator is flagged rather than mistaken for the server's limit.
//! `--search` raises the rate round by round until a round fails (p99 over
//! `--max-p99-ms`, a loss, or a saturated generator); a round that failed on its p99
//! alone is run again at the same rate (`--retries`) before the search ends. `--idle` reports the server's RSS
//! per joined idle member and the time the members took to join.
//!
//! Exit status (without `--search`): 1 when the round lost, duplicated, reordered or
//! echoed a line or a member was disconnected. A search always ends on a failing round,
//! so it exits 0 with every round in its report.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, mpsc, watch};

/// How long a round waits for lines still in flight once the senders stop.
const DRAIN: Duration = Duration::from_secs(5);

/// A lobby with no frame for this long has delivered everything.
const QUIET: Duration = Duration::from_millis(500);

/// With no member joining for this long, the run ends with an error, not a hang.
const JOIN_STALL: Duration = Duration::from_secs(30);

/// Most rates a search tries (a round run again at the same rate is not counted).
const MAX_ROUNDS: usize = 14;

/// Load generator for the Socket.IO lobby chat.
#[derive(Debug, Parser)]
#[command(name = "chatterbox-bench", version)]
struct Args {
    /// The server's HTTP address: members connect to ws://ADDR/socket.io/.
    #[arg(long, default_value = "127.0.0.1:8000")]
    addr: String,
    /// The server's process id, for its CPU time and memory (read from /proc).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Socket.IO members.
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Members that send lines (the first K).
    #[arg(long, default_value_t = 10)]
    senders: usize,
    /// Lines per second of each sender (the first round's, when searching).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Length of a round of sending, in seconds.
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Raise the rate by `--rate-step` each round until a round fails.
    #[arg(long)]
    search: bool,
    /// Factor between the rates of two rounds of a search.
    #[arg(long, default_value_t = 1.5)]
    rate_step: f64,
    /// A round whose p99 latency is over this fails.
    #[arg(long, default_value_t = 100.0)]
    max_p99_ms: f64,
    /// In a search, a round that failed on its p99 alone (nothing lost, refused or cut
    /// off) is run again at the same rate up to this many times before the search ends:
    /// one stall of the machine (a slow fsync) is then not taken for the server's limit.
    #[arg(long, default_value_t = 1)]
    retries: usize,
    /// Connection handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    handshakes_in_flight: usize,
    /// The plain WebSocket listener, for `--ws-members`.
    #[arg(long)]
    ws_addr: Option<String>,
    /// Plain WebSocket members (receivers).
    #[arg(long, default_value_t = 0)]
    ws_members: usize,
    /// The TCP JSON listener, for `--tcp-json-members`.
    #[arg(long)]
    tcp_json_addr: Option<String>,
    /// TCP JSON members (receivers).
    #[arg(long, default_value_t = 0)]
    tcp_json_members: usize,
    /// Join, report memory per idle member and the join time, and stop.
    #[arg(long)]
    idle: bool,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

/// What the senders do now.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Quiet,
    Sending { rate: f64 },
    Done,
}

/// What the receivers saw in one round.
struct Round {
    latency_us: Histogram<u64>,
    received: u64,
    duplicated: u64,
    reordered: u64,
    echoed: u64,
}

impl Round {
    fn new() -> Self {
        Self {
            latency_us: Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds"),
            received: 0,
            duplicated: 0,
            reordered: 0,
            echoed: 0,
        }
    }
}

struct Shared {
    base: Instant,
    senders: usize,
    sent: Vec<AtomicU64>,
    round: Mutex<Round>,
    disconnected: AtomicU64,
    finishing: AtomicBool,
    /// Lines the server refused with an `error` event (say, its history did not keep up).
    refused: AtomicU64,
    /// Events received by Socket.IO members (Engine.IO pings, which never stop, are
    /// not counted).
    events: AtomicU64,
}

impl Shared {
    fn now_us(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Adds what a member saw since it last reported to the round, and clears it.
    fn report(&self, seen: &mut Seen) {
        if seen.latencies_us.is_empty() && seen.echoed == 0 {
            return;
        }
        let mut round = self.round.lock().unwrap_or_else(|p| p.into_inner());
        round.received += seen.latencies_us.len() as u64;
        round.duplicated += std::mem::take(&mut seen.duplicated);
        round.reordered += std::mem::take(&mut seen.reordered);
        round.echoed += std::mem::take(&mut seen.echoed);
        for latency in seen.latencies_us.drain(..) {
            round.latency_us.saturating_record(latency.max(1));
        }
    }

    /// Counts a member whose connection ended before the run did.
    fn member_ended(&self, result: anyhow::Result<()>) {
        if let Err(e) = result
            && !self.finishing.load(Ordering::Relaxed)
        {
            eprintln!("{e:#}");
            self.disconnected.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn lines_sent(&self) -> u64 {
        self.sent.iter().map(|n| n.load(Ordering::Relaxed)).sum()
    }
}

/// What one receiver saw since it last reported to the round: it checks each sender's
/// sequence numbers itself and takes the round's lock once per read, not once per line.
struct Seen {
    /// The sender this member is, if it sends.
    me: Option<usize>,
    /// The last sequence number seen of each sender.
    last: Vec<u64>,
    latencies_us: Vec<u64>,
    duplicated: u64,
    reordered: u64,
    echoed: u64,
}

impl Seen {
    fn new(senders: usize, me: Option<usize>) -> Self {
        Self {
            me,
            last: vec![0; senders],
            latencies_us: Vec::new(),
            duplicated: 0,
            reordered: 0,
            echoed: 0,
        }
    }

    /// Takes a line `<sender>|<seq>|<µs>;` received at `now_us`.
    fn line(&mut self, content: &[u8], now_us: u64) {
        let mut fields = content
            .strip_suffix(b";")
            .unwrap_or(content)
            .split(|&b| b == b'|')
            .map(|field| std::str::from_utf8(field).ok()?.parse::<u64>().ok());
        let (Some(Some(sender)), Some(Some(seq)), Some(Some(sent_us))) =
            (fields.next(), fields.next(), fields.next())
        else {
            return;
        };
        let Ok(sender) = usize::try_from(sender) else {
            return;
        };
        let Some(seen) = self.last.get_mut(sender) else {
            return;
        };
        if self.me == Some(sender) {
            self.echoed += 1;
            return;
        }
        match seq.cmp(&(*seen + 1)) {
            std::cmp::Ordering::Equal => *seen = seq,
            std::cmp::Ordering::Less => self.duplicated += 1,
            std::cmp::Ordering::Greater => {
                self.reordered += 1;
                *seen = seq;
            }
        }
        self.latencies_us.push(now_us.saturating_sub(sent_us));
    }
}

/// The content of `"key":"<content>"` in `text`.
fn field<'a>(text: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let start = find(text, key)? + key.len();
    let len = text[start..].iter().position(|&b| b == b'"')?;
    Some(&text[start..start + len])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Reads what `stream` has into `buf[*end..]`, for `what`: an error when the peer
/// closed or `what` does not fit in `buf`.
async fn read_more(
    stream: &mut tokio::net::TcpStream,
    buf: &mut [u8],
    end: &mut usize,
    what: &str,
) -> anyhow::Result<()> {
    if *end == buf.len() {
        bail!("{what}: over {} bytes", buf.len());
    }
    let n = stream.read(&mut buf[*end..]).await?;
    if n == 0 {
        bail!("{what}: connection closed");
    }
    *end += n;
    Ok(())
}

/// A WebSocket client reduced to what the benchmark needs, so that the generator costs
/// less per line than the servers it measures: frames are parsed in place from one read
/// buffer (every frame a read brings, in one go), and frames out are masked with a zero
/// key, which RFC 6455 allows and which leaves the payload as it is.
mod ws {
    use anyhow::{Context, bail};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

    /// Room for a read; a larger frame grows the buffer.
    const READ_BYTES: usize = 16 * 1024;

    pub const TEXT: u8 = 0x1;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    const PONG: u8 = 0xA;

    /// Connects to `ws://addr{path}`; returns the frames in and the way out.
    pub async fn connect(addr: &str, path: &str) -> anyhow::Result<(Reader, Writer)> {
        let mut stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let mut buf = vec![0; READ_BYTES];
        let mut end = 0;
        let head_end = loop {
            super::read_more(&mut stream, &mut buf, &mut end, "the WebSocket upgrade").await?;
            if let Some(at) = super::find(&buf[..end], b"\r\n\r\n") {
                break at + 4;
            }
        };
        if !buf.starts_with(b"HTTP/1.1 101") {
            let status = String::from_utf8_lossy(&buf[..head_end]);
            bail!("upgrade refused: {}", status.lines().next().unwrap_or(""));
        }
        let (read, write) = stream.into_split();
        Ok((
            Reader {
                read,
                buf,
                start: head_end,
                end,
            },
            Writer { write },
        ))
    }

    /// The frame whose header starts `bytes`: its opcode, payload length and header
    /// length, once the header is whole.
    pub fn frame_at(bytes: &[u8]) -> anyhow::Result<Option<(u8, usize, usize)>> {
        let [first, second, ..] = *bytes else {
            return Ok(None);
        };
        if first & 0x80 == 0 {
            bail!("fragmented frames are not supported");
        }
        if second & 0x80 != 0 {
            bail!("a masked frame from the server");
        }
        let (len, header) = match second & 0x7f {
            126 if bytes.len() >= 4 => (u64::from(u16::from_be_bytes([bytes[2], bytes[3]])), 4),
            127 if bytes.len() >= 10 => {
                let mut len = [0; 8];
                len.copy_from_slice(&bytes[2..10]);
                (u64::from_be_bytes(len), 10)
            }
            126 | 127 => return Ok(None),
            len => (u64::from(len), 2),
        };
        Ok(Some((first & 0x0f, usize::try_from(len)?, header)))
    }

    /// Frames from the server.
    pub struct Reader {
        read: OwnedReadHalf,
        buf: Vec<u8>,
        start: usize,
        end: usize,
    }

    impl Reader {
        /// Waits for more bytes.
        pub async fn fill(&mut self) -> anyhow::Result<()> {
            if self.start == self.end {
                (self.start, self.end) = (0, 0);
            } else if self.end == self.buf.len() {
                if self.start > 0 {
                    self.buf.copy_within(self.start..self.end, 0);
                    (self.start, self.end) = (0, self.end - self.start);
                } else {
                    self.buf.resize(self.buf.len() * 2, 0);
                }
            }
            let n = self.read.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                bail!("connection closed");
            }
            self.end += n;
            Ok(())
        }

        /// The next whole frame already read: its opcode and payload.
        pub fn next_frame(&mut self) -> anyhow::Result<Option<(u8, &[u8])>> {
            let bytes = &self.buf[self.start..self.end];
            let Some((opcode, len, header)) = frame_at(bytes)? else {
                return Ok(None);
            };
            if bytes.len() < header + len {
                if self.start + header + len > self.buf.len() {
                    // Room for the whole frame once `fill` moves it to the front.
                    self.buf.resize((header + len).max(self.buf.len()), 0);
                }
                return Ok(None);
            }
            let payload = self.start + header..self.start + header + len;
            self.start = payload.end;
            Ok(Some((opcode, &self.buf[payload])))
        }

        /// The next text frame, answering pings on the way (for handshakes).
        pub async fn next_text(&mut self, writer: &mut Writer) -> anyhow::Result<String> {
            loop {
                match self.next_frame()? {
                    Some((TEXT, text)) => return Ok(String::from_utf8_lossy(text).into_owned()),
                    Some((PING, payload)) => {
                        let payload = payload.to_vec();
                        writer.pong(&payload).await?;
                    }
                    Some((CLOSE, _)) => bail!("closed by the server"),
                    Some(_) => {}
                    None => self.fill().await?,
                }
            }
        }
    }

    /// Frames to the server.
    pub struct Writer {
        write: OwnedWriteHalf,
    }

    impl Writer {
        pub async fn text(&mut self, text: &str) -> anyhow::Result<()> {
            self.send(0x80 | TEXT, text.as_bytes()).await
        }

        pub async fn pong(&mut self, payload: &[u8]) -> anyhow::Result<()> {
            self.send(0x80 | PONG, payload).await
        }

        async fn send(&mut self, first: u8, payload: &[u8]) -> anyhow::Result<()> {
            let mut frame = Vec::with_capacity(payload.len() + 14);
            frame.push(first);
            match payload.len() {
                len @ 0..=125 => frame.push(0x80 | len as u8),
                len @ 126..=0xffff => {
                    frame.push(0x80 | 126);
                    frame.extend_from_slice(&(len as u16).to_be_bytes());
                }
                len => {
                    frame.push(0x80 | 127);
                    frame.extend_from_slice(&(len as u64).to_be_bytes());
                }
            }
            frame.extend_from_slice(&[0; 4]); // the masking key
            frame.extend_from_slice(payload);
            self.write.write_all(&frame).await?;
            Ok(())
        }
    }
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
async fn socketio_member(
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
    let mut seen = Seen::new(shared.senders, me);
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
    loop {
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                let now = *phase.borrow_and_update();
                ticker = match now {
                    Phase::Done => return Ok(()),
                    Phase::Sending { rate } => {
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
                let line = format!(
                    r#"42["message",{{"type":"message","message":"{index}|{seq}|{};"}}]"#,
                    shared.now_us()
                );
                writer.text(&line).await?;
                shared.sent[index].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One plain WebSocket member: receives every line as `{"type":"message",…,"msg":"…"}`.
async fn websocket_member(
    shared: Arc<Shared>,
    addr: String,
    joined: mpsc::UnboundedSender<()>,
) -> anyhow::Result<()> {
    let (mut reader, mut writer) = ws::connect(&addr, "/").await?;
    joined.send(()).ok();
    let mut seen = Seen::new(shared.senders, None);
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
async fn tcp_json_member(
    shared: Arc<Shared>,
    addr: String,
    joined: mpsc::UnboundedSender<()>,
) -> anyhow::Result<()> {
    let mut stream = tokio::net::TcpStream::connect(&addr).await?;
    joined.send(()).ok();
    let mut seen = Seen::new(shared.senders, None);
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

/// A process's CPU time (user + system) and memory, from /proc.
#[derive(Debug, Clone, Copy, Default)]
struct Usage {
    cpu: Duration,
    rss_kib: u64,
    peak_rss_kib: u64,
}

fn usage(pid: &str) -> Option<Usage> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state: utime and
    // stime are the 12th and 13th of them.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a constant of the system.
    let per_second = u64::try_from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) })
        .ok()
        .filter(|&hz| hz > 0)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|line| line.starts_with(key))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some(Usage {
        cpu: Duration::from_millis(ticks * 1000 / per_second),
        rss_kib: kib("VmRSS:")?,
        peak_rss_kib: kib("VmHWM:")?,
    })
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.senders > args.members {
        bail!("--senders must not be over --members");
    }
    let server_pid = args.server_pid.map(|pid| pid.to_string());
    let server_usage = || server_pid.as_deref().and_then(usage);
    let empty = server_usage();

    let shared = Arc::new(Shared {
        base: Instant::now(),
        senders: args.senders,
        sent: (0..args.senders).map(|_| AtomicU64::new(0)).collect(),
        round: Mutex::new(Round::new()),
        disconnected: AtomicU64::new(0),
        finishing: AtomicBool::new(false),
        refused: AtomicU64::new(0),
        events: AtomicU64::new(0),
    });
    let (phase_tx, phase) = watch::channel(Phase::Quiet);
    let (joined_tx, mut joined) = mpsc::unbounded_channel();
    let handshakes = Arc::new(Semaphore::new(args.handshakes_in_flight.max(1)));
    let mut members = tokio::task::JoinSet::new();
    let join_started = Instant::now();
    for index in 0..args.members {
        let member = socketio_member(
            shared.clone(),
            index,
            args.addr.clone(),
            handshakes.clone(),
            joined_tx.clone(),
            phase.clone(),
        );
        let shared = shared.clone();
        members.spawn(async move {
            shared.member_ended(member.await);
        });
    }
    for (count, addr, kind) in [
        (args.ws_members, &args.ws_addr, "ws"),
        (args.tcp_json_members, &args.tcp_json_addr, "tcp-json"),
    ] {
        if count == 0 {
            continue;
        }
        let addr = addr
            .clone()
            .with_context(|| format!("--{kind}-addr is needed"))?;
        for _ in 0..count {
            let (shared, addr, joined) = (shared.clone(), addr.clone(), joined_tx.clone());
            members.spawn(async move {
                let result = if kind == "ws" {
                    websocket_member(shared.clone(), addr, joined).await
                } else {
                    tcp_json_member(shared.clone(), addr, joined).await
                };
                shared.member_ended(result);
            });
        }
    }
    drop(joined_tx);
    let everyone = args.members + args.ws_members + args.tcp_json_members;
    let mut joined_count = 0;
    let mut last_join = Instant::now();
    while joined_count < everyone {
        tokio::select! {
            got = joined.recv() => {
                got.context("members failed to join")?;
                joined_count += 1;
                last_join = Instant::now();
            }
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        if last_join.elapsed() > JOIN_STALL {
            bail!(
                "{joined_count} of {everyone} members joined, then none for {} s",
                JOIN_STALL.as_secs()
            );
        }
        let lost = shared.disconnected.load(Ordering::Relaxed);
        if lost > 0 {
            bail!("{lost} members were disconnected before all had joined");
        }
    }
    let join_secs = join_started.elapsed().as_secs_f64();
    // Every join is announced to everyone: wait until those announcements have all
    // arrived (no event for QUIET), so that rounds measure lines only.
    let mut events = shared.events.load(Ordering::Relaxed);
    loop {
        tokio::time::sleep(QUIET).await;
        let now = shared.events.load(Ordering::Relaxed);
        if now == events {
            break;
        }
        events = now;
    }
    if !args.json {
        println!(
            "{everyone} members joined in {join_secs:.2} s, quiet after {:.2} s",
            join_started.elapsed().as_secs_f64()
        );
    }

    let mut report = json!({
        "members": args.members,
        "senders": args.senders,
        "ws_members": args.ws_members,
        "tcp_json_members": args.tcp_json_members,
        "join_secs": join_secs,
        "empty_rss_kib": empty.map(|u| u.rss_kib),
    });
    let mut failed = false;
    if args.idle {
        // Let the server settle what the joins allocated before reading its memory.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = server_usage();
        let per_member = match (empty, idle) {
            (Some(empty), Some(idle)) => {
                Some(idle.rss_kib.saturating_sub(empty.rss_kib) * 1024 / everyone.max(1) as u64)
            }
            _ => None,
        };
        report["idle_rss_kib"] = json!(idle.map(|u| u.rss_kib));
        report["idle_rss_per_member_bytes"] = json!(per_member);
        if !args.json {
            println!(
                "server RSS: empty {} KiB, with {everyone} idle members {} KiB: {} bytes per member",
                empty.map_or("?".into(), |u| u.rss_kib.to_string()),
                idle.map_or("?".into(), |u| u.rss_kib.to_string()),
                per_member.map_or("?".into(), |b| b.to_string()),
            );
        }
    } else {
        let receivers_per_line =
            (args.members - 1 + args.ws_members + args.tcp_json_members) as u64;
        let mut rounds = Vec::new();
        let mut rate = args.rate;
        let mut best: Option<serde_json::Value> = None;
        if !args.json {
            println!(
                "{:>9} {:>12} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>6}",
                "rate/s",
                "deliveries/s",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "max ms",
                "lost",
                "server",
                "bench",
                "pass"
            );
        }
        let (mut steps, mut tries) = (0, 0);
        loop {
            *shared.round.lock().unwrap_or_else(|p| p.into_inner()) = Round::new();
            let sent_before = shared.lines_sent();
            let refused_before = shared.refused.load(Ordering::Relaxed);
            let (server_before, bench_before) = (server_usage(), usage("self"));
            let started = Instant::now();
            phase_tx.send(Phase::Sending { rate }).ok();
            tokio::time::sleep(Duration::from_secs(args.duration_secs)).await;
            phase_tx.send(Phase::Quiet).ok();
            let sending = started.elapsed().as_secs_f64();
            let sent = shared.lines_sent() - sent_before;
            // A refused line was never accepted (its sender was told): nobody is owed it.
            let refused = || shared.refused.load(Ordering::Relaxed) - refused_before;
            let expected = || sent.saturating_sub(refused()) * receivers_per_line;
            let drain_until = Instant::now() + DRAIN;
            while shared
                .round
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .received
                < expected()
                && Instant::now() < drain_until
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let (refused, expected) = (refused(), expected());
            let wall = started.elapsed().as_secs_f64();
            let (server_after, bench_after) = (server_usage(), usage("self"));
            let cores = |before: Option<Usage>, after: Option<Usage>| {
                Some((after?.cpu.saturating_sub(before?.cpu)).as_secs_f64() / wall)
            };
            let server_cores = cores(server_before, server_after);
            let bench_cores = cores(bench_before, bench_after).unwrap_or(0.0);
            let round = std::mem::replace(
                &mut *shared.round.lock().unwrap_or_else(|p| p.into_inner()),
                Round::new(),
            );
            let lost = expected.saturating_sub(round.received);
            let h = &round.latency_us;
            let p99_ms = ms(h.value_at_quantile(0.99));
            let saturated = bench_cores > 0.9;
            // A refused line leaves a gap in its sender's sequence at every receiver,
            // which looks like a line out of order: only gaps beyond those count.
            let out_of_order = round.reordered.saturating_sub(refused * receivers_per_line);
            let clean =
                lost == 0 && round.duplicated == 0 && out_of_order == 0 && round.echoed == 0;
            let disconnected = shared.disconnected.load(Ordering::Relaxed);
            let pass = clean
                && refused == 0
                && disconnected == 0
                && p99_ms <= args.max_p99_ms
                && !saturated;
            let deliveries_per_s = round.received as f64 / sending;
            let summary = json!({
                "rate": rate,
                "deliveries_per_s": deliveries_per_s,
                "p50_ms": ms(h.value_at_quantile(0.5)),
                "p90_ms": ms(h.value_at_quantile(0.9)),
                "p99_ms": p99_ms,
                "max_ms": ms(h.max()),
                "expected": expected,
                "received": round.received,
                "lost": lost,
                "refused": refused,
                "duplicated": round.duplicated,
                "reordered": out_of_order,
                "gaps_after_refused_lines": round.reordered - out_of_order,
                "echoed": round.echoed,
                "disconnected": disconnected,
                "server_cores": server_cores,
                "server_peak_rss_kib": server_after.map(|u| u.peak_rss_kib),
                "bench_cores": bench_cores,
                "generator_saturated": saturated,
                "pass": pass,
                "attempt": tries + 1,
            });
            if !args.json {
                println!(
                    "{:>9.1} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7} {:>7} {:>7.2} {:>6}",
                    rate,
                    deliveries_per_s,
                    ms(h.value_at_quantile(0.5)),
                    ms(h.value_at_quantile(0.9)),
                    p99_ms,
                    ms(h.max()),
                    lost,
                    server_cores.map_or("?".into(), |c| format!("{c:.2}")),
                    bench_cores,
                    if pass {
                        "yes"
                    } else if saturated {
                        "GEN"
                    } else {
                        "no"
                    },
                );
                if refused > 0 {
                    println!("  refused {refused} of {sent} lines (the server said why)");
                }
                if !clean {
                    println!(
                        "  lost {lost}, duplicated {}, reordered {out_of_order}, echoed {}",
                        round.duplicated, round.echoed
                    );
                }
            }
            failed |= !clean || disconnected > 0;
            if pass {
                best = Some(summary.clone());
            }
            rounds.push(summary);
            if !args.search {
                break;
            }
            let outcome = if pass {
                Outcome::Passed
            } else if clean && refused == 0 && disconnected == 0 && !saturated {
                Outcome::OnlyP99Failed
            } else {
                Outcome::Failed
            };
            match next_round(outcome, steps + 1, tries, args.retries) {
                Next::Raise => {
                    (steps, tries) = (steps + 1, 0);
                    rate *= args.rate_step;
                }
                Next::Again => {
                    tries += 1;
                    if !args.json {
                        println!("  failed on p99 alone: once more at the same rate");
                    }
                }
                Next::End => break,
            }
        }
        if args.search {
            // A search ends on a failing round by design, whatever failed it (members cut
            // off by an overloaded server included): the report says what happened.
            failed = false;
        }
        report["rounds"] = json!(rounds);
        report["best"] = json!(best);
    }
    let peak = server_usage().map(|u| u.peak_rss_kib);
    report["server_peak_rss_kib"] = json!(peak);
    if args.json {
        println!("{report}");
    } else if let Some(peak) = peak {
        println!("server peak RSS {peak} KiB");
    }
    shared.finishing.store(true, Ordering::Relaxed);
    phase_tx.send(Phase::Done).ok();
    members.abort_all();
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// How a search round went.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Passed,
    /// Nothing lost, refused or cut off, the generator not saturated: only the p99 was
    /// over the limit (which one stall of the machine can cause).
    OnlyP99Failed,
    Failed,
}

/// What a search does after a round.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Next {
    /// The next rate.
    Raise,
    /// The same rate once more.
    Again,
    End,
}

/// The search's rule: a passing round raises the rate (up to [`MAX_ROUNDS`] rates); a
/// round failing on its p99 alone is run again, `retries` times at most; any other
/// failure ends the search. `rates` counts the rates tried so far, this one included;
/// `tries`, the runs of this rate before this one.
fn next_round(outcome: Outcome, rates: usize, tries: usize, retries: usize) -> Next {
    match outcome {
        Outcome::Passed if rates < MAX_ROUNDS => Next::Raise,
        Outcome::OnlyP99Failed if tries < retries => Next::Again,
        _ => Next::End,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_retries_a_p99_failure_only_and_stops_at_its_last_rate() {
        use Next::*;
        use Outcome::*;
        assert_eq!(next_round(Passed, 1, 0, 1), Raise);
        assert_eq!(next_round(OnlyP99Failed, 3, 0, 1), Again);
        assert_eq!(next_round(OnlyP99Failed, 3, 1, 1), End);
        assert_eq!(next_round(Passed, 3, 1, 1), Raise);
        assert_eq!(next_round(OnlyP99Failed, 3, 0, 0), End);
        assert_eq!(next_round(OnlyP99Failed, 3, 1, 2), Again);
        assert_eq!(next_round(Failed, 3, 0, 1), End);
        assert_eq!(next_round(Passed, MAX_ROUNDS - 1, 0, 1), Raise);
        assert_eq!(next_round(Passed, MAX_ROUNDS, 0, 1), End);
    }

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
    fn losses_duplicates_reorders_and_echoes_are_told_apart() {
        let mut seen = Seen::new(2, Some(1));
        for line in ["0|1|10;", "0|2|0;", "1|1|0;", "0|2|0;", "0|4|0;", "1|2|0;"] {
            seen.line(line.as_bytes(), 100);
        }
        seen.line(b"not a line", 100);
        seen.line(b"7|1|0;", 100); // no such sender
        let shared = Shared {
            base: Instant::now(),
            senders: 2,
            sent: (0..2).map(|_| AtomicU64::new(0)).collect(),
            round: Mutex::new(Round::new()),
            disconnected: AtomicU64::new(0),
            finishing: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            events: AtomicU64::new(0),
        };
        shared.report(&mut seen);
        let round = shared.round.lock().unwrap();
        // Received: 0|1, 0|2, 0|2 again (a duplicate), 0|4 (reordered: 0|3 is
        // missing); 1|1 and 1|2 are the receiver's own lines, echoed.
        assert_eq!(
            (
                round.received,
                round.duplicated,
                round.reordered,
                round.echoed
            ),
            (4, 1, 1, 2)
        );
        assert_eq!(seen.last, [4, 0]);
        assert_eq!(round.latency_us.min(), 90);
        assert_eq!(round.latency_us.max(), 100);
        assert!(seen.latencies_us.is_empty());
    }

    #[test]
    fn frames_are_parsed_whole_whatever_the_reads_cut() {
        // Two text frames (short and 16-bit length) and a ping, as a server sends them.
        let long = "x".repeat(300);
        let mut wire = vec![0x81, 1, b'2', 0x81, 126, 1, 44];
        wire.extend_from_slice(long.as_bytes());
        wire.extend_from_slice(&[0x89, 0]);
        for cut in 0..wire.len() {
            let mut frames = Vec::new();
            let mut buf = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                buf.extend_from_slice(part);
                let mut start = 0;
                while let Some((opcode, len, header)) = ws::frame_at(&buf[start..]).unwrap() {
                    if buf.len() - start < header + len {
                        break;
                    }
                    frames.push((opcode, buf[start + header..start + header + len].to_vec()));
                    start += header + len;
                }
                buf.drain(..start);
            }
            assert_eq!(
                frames,
                [
                    (ws::TEXT, b"2".to_vec()),
                    (ws::TEXT, long.as_bytes().to_vec()),
                    (ws::PING, Vec::new())
                ],
                "cut at {cut}"
            );
        }
    }
}
