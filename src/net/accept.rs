//! The accept loop of every listener: admission, one task per connection, refusals
//! logged, counted and answered, and the wait for every connection at shutdown. On the
//! raw listeners, a trusted proxy's connection first gives its PROXY header
//! ([`super::proxy`]) and is then admitted for the client it names.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Timeouts;
use super::admission::{Admission, AdmissionRefusal, Permit, REFUSAL_TIMEOUT};
use super::outbox::{Ended, Ending, Inbox, QueueOutbox};
use super::proxy::{ProxyHeaderError, read_proxy_header};
use crate::lobby::{Lobby, LobbyError, Member};
use crate::protocol::Protocol;
use crate::refusals::{Refusal, Refusals, Who};

/// Pause after a failed `accept` (out of file descriptors, mostly): retrying at once
/// would spin while nothing can change.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What every client task of a raw connection protocol (plain WebSocket, TCP JSON,
/// TCP text) is given besides its stream.
#[derive(Clone)]
pub(crate) struct Served {
    /// The lobby its member joins.
    pub(crate) lobby: Lobby,
    /// The time limits.
    pub(crate) timeouts: Timeouts,
    /// Cancelled when the server shuts down.
    pub(crate) shutdown: CancellationToken,
}

impl Served {
    /// Joins the lobby as a member of `protocol` from `peer` with a bounded outgoing
    /// queue (`--outbox-messages`); the client task writes out what comes into the
    /// [`Inbox`]. A protocol announced on connect is refused over the address's join
    /// budget (counted and logged here; the client task tells the client).
    pub(crate) fn join(
        &self,
        protocol: Protocol,
        peer: SocketAddr,
    ) -> Result<(Member, Inbox), LobbyError> {
        let (outbox, inbox) = QueueOutbox::new(self.lobby.limits().outbox_messages);
        match self.lobby.join(protocol, outbox, Some(peer.ip())) {
            Ok(member) => Ok((member, inbox)),
            Err(why) => {
                let refusals = self.lobby.refusals();
                refusals.report(protocol, Who::Peer(peer), Refusal::new(why.reason(), &why));
                Err(why)
            }
        }
    }
}

/// Serves a raw connection protocol on `listener` until the shutdown: runs `client` for
/// each connection `admission` admits (holding its permit) in a task of its own, and
/// `refuse` for each one it does not; returns once every client task has ended. A
/// trusted proxy's connection is served for (and counted for) the client its PROXY
/// header names; without a valid header it is closed.
pub(crate) async fn serve_raw<F, Fut, R, RFut>(
    protocol: Protocol,
    listener: TcpListener,
    admission: Admission,
    served: Served,
    client: F,
    refuse: R,
) -> std::io::Result<()>
where
    F: Fn(TcpStream, SocketAddr, Served) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
    R: Fn(TcpStream, SocketAddr, AdmissionRefusal) -> RFut + Clone + Send + 'static,
    RFut: Future<Output = ()> + Send + 'static,
{
    let accepting = Accepting {
        name: protocol.as_str(),
        protocol,
        listener,
        admission,
        refusals: served.lobby.refusals().clone(),
        shutdown: served.shutdown.clone(),
    };
    let refuse_proxied = refuse.clone();
    let connection = |mut stream, mut peer, mut permit: Permit| {
        let (client, refuse, served) = (client.clone(), refuse_proxied.clone(), served.clone());
        async move {
            if permit.is_forwarded() {
                let refusals = served.lobby.refusals();
                match proxied_client(&mut stream, served.timeouts.header).await {
                    Ok(Some(client)) => peer = client,
                    // The proxy's own connection (a health check).
                    Ok(None) => {}
                    Err(why) => {
                        refusals.report(
                            protocol,
                            Who::Peer(peer),
                            Refusal::new("proxy_header", why),
                        );
                        return;
                    }
                }
                if let Err(why) = permit.count_for(peer.ip()) {
                    refusals.report(protocol, Who::Peer(peer), Refusal::new(why.reason(), why));
                    drop(permit);
                    return refuse(stream, peer, why).await;
                }
            }
            hold(permit, client(stream, peer, served)).await
        }
    };
    accept_with(accepting, connection, refuse, async {}).await
}

/// The client a trusted proxy's connection names in its PROXY header, read within
/// `limit` (`--header-timeout-ms`).
async fn proxied_client(
    stream: &mut TcpStream,
    limit: Option<Duration>,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let read = read_proxy_header(stream);
    match limit {
        Some(limit) => tokio::time::timeout(limit, read)
            .await
            .unwrap_or(Err(ProxyHeaderError::Timeout(limit))),
        None => read.await,
    }
}

/// A listener for [`accept_with`], with what it is called in the log and the metrics.
pub(crate) struct Accepting {
    /// Its name in the log: `listening NAME=ADDRESS`.
    pub(crate) name: &'static str,
    /// The protocol its refused connections are counted under.
    pub(crate) protocol: Protocol,
    /// The listener.
    pub(crate) listener: TcpListener,
    /// Who may connect.
    pub(crate) admission: Admission,
    /// Where the connections admission refuses are counted and logged.
    pub(crate) refusals: Refusals,
    /// Stops accepting.
    pub(crate) shutdown: CancellationToken,
}

/// The accept loop of every listener: accepts until `shutdown`, runs `connection` with
/// its admission permit for each connection admitted and `refuse` for each other one,
/// each in a task of its own; once accepting has stopped, runs `stopped` (which ends
/// the connections, for listeners whose connections do not end on `shutdown` alone),
/// and returns when every connection task has ended.
pub(crate) async fn accept_with<F, Fut, R, RFut>(
    accepting: Accepting,
    connection: F,
    refuse: R,
    stopped: impl Future<Output = ()>,
) -> std::io::Result<()>
where
    F: Fn(TcpStream, SocketAddr, Permit) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
    R: Fn(TcpStream, SocketAddr, AdmissionRefusal) -> RFut,
    RFut: Future<Output = ()> + Send + 'static,
{
    let Accepting {
        name,
        protocol,
        listener,
        admission,
        refusals,
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
                            refusals.report(protocol, Who::Peer(peer), Refusal::new(why.reason(), why));
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

/// Ends a raw TCP connection task: a connection whose own work ended with an error
/// line (`Err(why)`) gets it with [`close_with_error`]'s lingering close; any other
/// ending just closes.
pub(crate) async fn close_telling(
    reader: OwnedReadHalf,
    writer: OwnedWriteHalf,
    peer: SocketAddr,
    ending: Ending<Ended>,
) {
    let Ending::Ended(Err(why)) = ending else {
        return;
    };
    match reader.reunite(writer) {
        Ok(stream) => close_with_error(stream, peer, why).await,
        // Cannot happen (both halves are the one stream's); the close is then abrupt.
        Err(e) => tracing::warn!(%peer, "cannot send the error line: {e}"),
    }
}

/// Ends a TCP connection with one line `error: <why>`: writes it, closes the sending
/// side, and reads (and drops) what the client sends until it closes too, all within
/// [`REFUSAL_TIMEOUT`]. Closing with unread bytes would reset the connection, and a
/// reset can discard the line before the client reads it.
pub(crate) async fn close_with_error(
    mut stream: TcpStream,
    peer: SocketAddr,
    why: impl fmt::Display,
) {
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
