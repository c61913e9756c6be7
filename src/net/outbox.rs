//! The outgoing side of a raw connection protocol's member: a bounded queue the lobby
//! fills with `try_send` ([`QueueOutbox`]), the connection task's end of it
//! ([`Inbox`]), the writer of each delivery, and how a connection task ends.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::lobby::{Delivery, Event, Outbox, OutboxRefusal};
use crate::protocol::Protocol;
use crate::telemetry;

/// How a connection task ended.
pub(crate) enum Ending<T> {
    /// The server shuts down.
    Shutdown,
    /// The lobby cut the member off as a slow consumer.
    CutOff,
    /// The connection ended on its own, for this reason.
    Ended(T),
}

/// How a raw TCP connection's own work ends: closed, for a reason (`Ok`), or refused
/// with an error line (`Err`).
pub(crate) type Ended = Result<&'static str, String>;

impl Ending<Ended> {
    /// Why the connection ended, for the log: a connection that ended with an error
    /// line was refused.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            Ending::Shutdown => "shutdown",
            Ending::CutOff => "cut off as a slow consumer",
            Ending::Ended(Ok(reason)) => reason,
            Ending::Ended(Err(_)) => "refused",
        }
    }
}

/// Runs a connection's work until it ends, the server shuts down, or the member is cut
/// off; whatever the work was waiting for (a read, a write to a client that does not
/// read) is dropped then.
pub(crate) async fn until_stopped<T>(
    shutdown: &CancellationToken,
    cut: &CancellationToken,
    work: impl Future<Output = T>,
) -> Ending<T> {
    tokio::select! {
        () = shutdown.cancelled() => Ending::Shutdown,
        () = cut.cancelled() => Ending::CutOff,
        ended = work => Ending::Ended(ended),
    }
}

/// Writes a delivery from the queue in `protocol`'s encoding, as one write.
pub(crate) async fn write_delivery(
    writer: &mut (impl AsyncWrite + Unpin),
    delivery: Option<Arc<Delivery>>,
    protocol: Protocol,
    encode: fn(&Event) -> Bytes,
) -> Result<(), &'static str> {
    let delivery = delivery.ok_or("closed")?;
    let bytes = delivery.encoded(protocol, encode);
    writer.write_all(&bytes).await.map_err(|_| "write failed")?;
    telemetry::bytes_out(protocol, bytes.len());
    telemetry::TRAFFIC.sent_bytes(bytes.len() as u64);
    Ok(())
}

/// A member's outbox for a connection task: a bounded queue the lobby fills with
/// `try_send`, and a token the task watches to learn that it was cut off.
pub(crate) struct QueueOutbox {
    queue: mpsc::Sender<Arc<Delivery>>,
    cut: CancellationToken,
}

/// What the connection task keeps of its [`QueueOutbox`].
pub(crate) struct Inbox {
    /// Deliveries to write, in order.
    pub(crate) queue: mpsc::Receiver<Arc<Delivery>>,
    /// Cancelled when the lobby cuts the member off as a slow consumer.
    pub(crate) cut: CancellationToken,
}

impl QueueOutbox {
    /// An outbox of `capacity` deliveries, and the connection's side of it.
    pub(crate) fn new(capacity: usize) -> (Self, Inbox) {
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let cut = CancellationToken::new();
        (
            Self {
                queue,
                cut: cut.clone(),
            },
            Inbox {
                queue: receiver,
                cut,
            },
        )
    }
}

impl Outbox for QueueOutbox {
    fn offer(&self, delivery: &Arc<Delivery>) -> Result<(), OutboxRefusal> {
        self.queue.try_send(delivery.clone()).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => OutboxRefusal::Full,
            mpsc::error::TrySendError::Closed(_) => OutboxRefusal::Closed,
        })
    }

    fn queued(&self) -> usize {
        self.queue.max_capacity() - self.queue.capacity()
    }

    fn cut_off(&self) {
        self.cut.cancel();
    }
}
