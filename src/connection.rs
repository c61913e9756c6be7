//! What the raw connection protocols (plain WebSocket, TCP JSON, TCP text) share: the
//! accept loop with one task per connection and its admission ([`crate::admission`]),
//! the member's bounded outgoing queue, and the time limits ([`Timeouts`]).

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::admission::{Admission, Permit, REFUSAL_TIMEOUT, Refused};
use crate::lobby::{Delivery, Event, Outbox, Protocol, Refusal};
use crate::telemetry;

/// Default for `--connect-timeout-ms`: the original client sends CONNECT as soon as its
/// user has typed a name at its prompt; half a minute is plenty for that, and a
/// connection that never names itself holds a place for nothing.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 30_000;

/// Default for `--stall-timeout-ms`: the original clients send each object in one write,
/// so an object still incomplete after ten seconds is a client trickling bytes to hold
/// the connection and its buffer (slowloris), not a slow network.
pub const DEFAULT_STALL_TIMEOUT_MS: u64 = 10_000;

/// The time limits of the raw connection protocols; `None`: no limit.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timeouts {
    /// How long a TCP JSON client may stay without sending CONNECT.
    pub connect: Option<Duration>,
    /// How long a TCP JSON object (a UTF-8 character on TCP text) may stay incomplete
    /// from its first byte.
    pub stall: Option<Duration>,
    /// How long an HTTP request's headers (a WebSocket upgrade's included) may take.
    pub header: Option<Duration>,
}

/// Waits until `deadline`; forever when there is none.
pub async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Pause after a failed `accept` (out of file descriptors, mostly): retrying at once
/// would spin while nothing can change.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Accepts connections on `listener` until `shutdown`, running `connection` for each one
/// `admission` admits (holding its permit) in a task of its own, and `refuse` for each
/// one it does not; returns once every connection task has ended.
pub async fn accept_loop<F, Fut, R, RFut>(
    protocol: Protocol,
    listener: TcpListener,
    admission: Admission,
    shutdown: CancellationToken,
    connection: F,
    refuse: R,
) -> std::io::Result<()>
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
    R: Fn(TcpStream, SocketAddr, Refused) -> RFut,
    RFut: Future<Output = ()> + Send + 'static,
{
    let accepting = Accepting {
        name: protocol.as_str(),
        protocol,
        listener,
        admission,
        shutdown,
    };
    let connection = |stream, peer, permit| hold(permit, connection(stream, peer));
    accept_with(accepting, connection, refuse, async {}).await
}

/// A listener for [`accept_with`], with what it is called in the log and the metrics.
pub struct Accepting {
    /// Its name in the log: `listening NAME=ADDRESS`.
    pub name: &'static str,
    /// The protocol its refused connections are counted under.
    pub protocol: Protocol,
    /// The listener.
    pub listener: TcpListener,
    /// Who may connect.
    pub admission: Admission,
    /// Stops accepting.
    pub shutdown: CancellationToken,
}

/// The accept loop of every listener: accepts until `shutdown`, runs `connection` with
/// its admission permit for each connection admitted and `refuse` for each other one,
/// each in a task of its own; once accepting has stopped, runs `stopped` (which ends
/// the connections, for listeners whose connections do not end on `shutdown` alone),
/// and returns when every connection task has ended.
pub async fn accept_with<F, Fut, R, RFut>(
    accepting: Accepting,
    connection: F,
    refuse: R,
    stopped: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    F: Fn(TcpStream, SocketAddr, Permit) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
    R: Fn(TcpStream, SocketAddr, Refused) -> RFut,
    RFut: Future<Output = ()> + Send + 'static,
{
    let Accepting {
        name,
        protocol,
        listener,
        admission,
        shutdown,
    } = accepting;
    tracing::info!("listening {name}={}", listener.local_addr()?);
    let tasks = TaskTracker::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    // Chat frames are small and latency matters: no Nagle delay.
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(%peer, "cannot set TCP_NODELAY: {e}");
                    }
                    match admission.admit(peer.ip()) {
                        Ok(permit) => {
                            tasks.spawn(connection(stream, peer, permit));
                        }
                        Err(why) => {
                            refused_connection(protocol, peer, why);
                            tasks.spawn(refuse(stream, peer, why));
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!("{name}: cannot accept a connection: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
    }
    drop(listener);
    stopped.await;
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Runs `connection` holding its admission `permit`, released when it ends.
async fn hold(permit: Permit, connection: impl Future<Output = ()>) {
    connection.await;
    drop(permit);
}

/// Logs and counts a connection refused by admission.
pub fn refused_connection(protocol: Protocol, peer: SocketAddr, why: Refused) {
    tracing::info!(%peer, protocol = protocol.as_str(), %why, "refused");
    telemetry::refused(protocol, why.reason());
}

/// Ends a TCP connection with one line `error: <why>`: writes it, closes the sending
/// side, and reads (and drops) what the client sends until it closes too, all within
/// [`REFUSAL_TIMEOUT`]. Closing with unread bytes would reset the connection, and a
/// reset can discard the line before the client reads it.
pub async fn close_with_error(mut stream: TcpStream, peer: SocketAddr, why: impl fmt::Display) {
    let line = format!("error: {why}\n");
    let refusal = async {
        stream.write_all(line.as_bytes()).await?;
        stream.shutdown().await?;
        let mut sink = [0; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    match tokio::time::timeout(REFUSAL_TIMEOUT, refusal).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(%peer, "cannot send the error line: {e}"),
        Err(_) => tracing::debug!(%peer, "error line not taken in time"),
    }
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
