//! Where log lines go: stderr, through a bounded queue and a writer thread of their own,
//! so that logging never blocks the server nor takes it down.
//!
//! - A full queue (stderr into a pipe nobody reads fast enough, a stalled log shipper)
//!   drops the line instead of waiting, and a closed stderr (a log shipper that
//!   restarted, `chatterbox 2>&1 | head`) drops every line from then on instead of
//!   panicking (tracing-subscriber's own `stderr` writer reports a failed write with
//!   `eprintln!`, which panics on a broken pipe). Each dropped line is counted in
//!   `chatterbox_log_lines_dropped_total` (`why`: `full` or `broken`).
//! - At exit, [`LogGuard`] waits (at most [`FLUSH_TIMEOUT`]) for the lines already queued
//!   to be written.
//!
//! tracing-appender's non-blocking writer does the same, but its guard prints to stdout
//! when the queue is full at exit, which blocks forever when stdout is that same full
//! pipe.

use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

use crate::telemetry;

/// Log lines waiting for the writer thread, at most; past it, lines are dropped.
pub const LOG_QUEUE_LINES: usize = 4_096;

/// How long the exit waits for the queued lines to be written.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

enum Line {
    Text(Vec<u8>),
    /// Answered once every line before it is written.
    Flush(mpsc::Sender<()>),
}

/// The writer tracing-subscriber's fmt layer is given: queues each formatted event.
#[derive(Clone)]
pub struct LogWriter {
    queue: SyncSender<Line>,
}

/// Flushes the queued lines when dropped (at the end of `main`).
pub struct LogGuard {
    queue: SyncSender<Line>,
}

/// A queue of log lines to `out` (stderr), written by a thread of its own.
pub fn to_stderr() -> io::Result<(LogWriter, LogGuard)> {
    to(io::stderr())
}

fn to(out: impl Write + Send + 'static) -> io::Result<(LogWriter, LogGuard)> {
    let (queue, lines) = mpsc::sync_channel(LOG_QUEUE_LINES);
    std::thread::Builder::new()
        .name("log-writer".into())
        .spawn(move || write_lines(lines, out))?;
    Ok((
        LogWriter {
            queue: queue.clone(),
        },
        LogGuard { queue },
    ))
}

fn write_lines(lines: Receiver<Line>, mut out: impl Write) {
    for line in lines {
        match line {
            Line::Text(text) => {
                if out.write_all(&text).is_err() {
                    telemetry::log_line_dropped("broken");
                }
            }
            Line::Flush(done) => {
                // Nothing to tell when the flush fails: the lines were counted already.
                let _ = out.flush();
                let _ = done.send(());
            }
        }
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.queue.try_send(Line::Text(buf.to_vec())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => telemetry::log_line_dropped("full"),
            Err(TrySendError::Disconnected(_)) => telemetry::log_line_dropped("broken"),
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        let (done, written) = mpsc::channel();
        if self.queue.try_send(Line::Flush(done)).is_ok() {
            // Not written in time (a stalled reader): the exit goes on.
            let _ = written.recv_timeout(FLUSH_TIMEOUT);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer that fails every write, as a closed pipe does.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
    }

    #[derive(Clone, Default)]
    struct Kept(Arc<Mutex<Vec<u8>>>);

    impl Write for Kept {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_written_in_order_and_flushed_at_exit() {
        let kept = Kept::default();
        let (mut writer, guard) = to(kept.clone()).unwrap();
        for n in 0..100 {
            writer.write_all(format!("line {n}\n").as_bytes()).unwrap();
        }
        drop(guard);
        let expected: String = (0..100).map(|n| format!("line {n}\n")).collect();
        assert_eq!(
            String::from_utf8(kept.0.lock().unwrap().clone()).unwrap(),
            expected
        );
    }

    #[test]
    fn a_broken_output_never_fails_a_write_nor_the_exit() {
        let (mut writer, guard) = to(Broken).unwrap();
        for _ in 0..10 * LOG_QUEUE_LINES {
            assert_eq!(writer.write(b"lost\n").unwrap(), 5);
        }
        drop(guard);
    }
}
