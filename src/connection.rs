//! What the raw connection protocols (plain WebSocket, TCP JSON, TCP text) share: the
//! accept loop with one task per connection, and the member's bounded outgoing queue.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::lobby::{Delivery, Event, Outbox, Protocol, Refusal};
use crate::telemetry;

/// Pause after a failed `accept` (out of file descriptors, mostly): retrying at once
/// would spin while nothing can change.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` until `shutdown`, running `connection` for each in
/// a task of its own; returns once every connection task has ended.
pub async fn accept_loop<F, Fut>(
    protocol: &'static str,
    listener: TcpListener,
    shutdown: CancellationToken,
    connection: F,
) -> std::io::Result<()>
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tracing::info!("listening {protocol}={}", listener.local_addr()?);
    let tasks = TaskTracker::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, "cannot set TCP_NODELAY: {e}");
                    }
                    tasks.spawn(connection(stream, peer));
                }
                Err(e) => {
                    tracing::warn!("{protocol}: cannot accept a connection: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// How a connection task ended.
pub enum Ending<T> {
    /// The server shuts down.
    Shutdown,
    /// The lobby cut the member off as a slow consumer.
    CutOff,
    /// The connection ended on its own, for this reason.
    Ended(T),
}

impl Ending<&'static str> {
    /// Why the connection ended, for the log.
    pub fn reason(&self) -> &'static str {
        match self {
            Ending::Shutdown => "shutdown",
            Ending::CutOff => "cut off as a slow consumer",
            Ending::Ended(reason) => reason,
        }
    }
}

/// Runs a connection's work until it ends, the server shuts down, or the member is cut
/// off; whatever the work was waiting for (a read, a write to a client that does not
/// read) is dropped then.
pub async fn until_stopped<T>(
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
pub async fn write_delivery(
    writer: &mut (impl AsyncWrite + Unpin),
    delivery: Option<Arc<Delivery>>,
    protocol: Protocol,
    encode: fn(&Event) -> Bytes,
) -> Result<(), &'static str> {
    let delivery = delivery.ok_or("closed")?;
    let bytes = delivery.encoded(protocol, encode);
    writer.write_all(&bytes).await.map_err(|_| "write failed")?;
    telemetry::bytes_out(protocol, bytes.len());
    Ok(())
}

/// A member's outbox for a connection task: a bounded queue the lobby fills with
/// `try_send`, and a token the task watches to learn that it was cut off.
pub struct QueueOutbox {
    queue: mpsc::Sender<Arc<Delivery>>,
    cut: CancellationToken,
}

/// What the connection task keeps of its [`QueueOutbox`].
pub struct Inbox {
    /// Deliveries to write, in order.
    pub queue: mpsc::Receiver<Arc<Delivery>>,
    /// Cancelled when the lobby cuts the member off as a slow consumer.
    pub cut: CancellationToken,
}

impl QueueOutbox {
    /// An outbox of `capacity` deliveries, and the connection's side of it.
    pub fn new(capacity: usize) -> (Self, Inbox) {
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
    fn offer(&self, delivery: &Arc<Delivery>) -> Result<(), Refusal> {
        self.queue.try_send(delivery.clone()).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Refusal::Full,
            mpsc::error::TrySendError::Closed(_) => Refusal::Closed,
        })
    }

    fn cut_off(&self) {
        self.cut.cancel();
    }
}
