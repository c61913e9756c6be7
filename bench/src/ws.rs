//! A WebSocket client reduced to what the benchmark needs, so that the generator costs
//! less per line than the servers it measures: frames are parsed in place from one read
//! buffer (every frame a read brings, in one go), and frames out are masked with a zero
//! key, which RFC 6455 allows and which leaves the payload as it is.
//!
//! Wire format: RFC 6455 frames, unfragmented (a fragmented frame is an error), over a
//! plain TCP connection upgraded with a fixed `Sec-WebSocket-Key` (the answer's
//! `Sec-WebSocket-Accept` is not checked: the servers measured are known).

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// Room for a read; a larger frame grows the buffer.
const READ_BYTES: usize = 16 * 1024;

/// The opcode of a text frame.
pub const TEXT: u8 = 0x1;
/// The opcode of a close frame.
pub const CLOSE: u8 = 0x8;
/// The opcode of a ping frame.
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
        read_more(&mut stream, &mut buf, &mut end, "the WebSocket upgrade").await?;
        if let Some(at) = find(&buf[..end], b"\r\n\r\n") {
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
    /// Sends a text frame.
    pub async fn text(&mut self, text: &str) -> anyhow::Result<()> {
        self.send(0x80 | TEXT, text.as_bytes()).await
    }

    /// Sends a pong frame with `payload` (its ping's).
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

/// Where `needle` first occurs in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Reads what `stream` has into `buf[*end..]`, for `what`: an error when the peer
/// closed or `what` does not fit in `buf` (the upgrade here, a TCP JSON member's lines).
pub async fn read_more(
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

#[cfg(test)]
mod tests {
    use super::*;

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
                while let Some((opcode, len, header)) = frame_at(&buf[start..]).unwrap() {
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
                    (TEXT, b"2".to_vec()),
                    (TEXT, long.as_bytes().to_vec()),
                    (PING, Vec::new())
                ],
                "cut at {cut}"
            );
        }
    }
}
