//! The deadline of a Socket.IO request's body (`--stall-timeout-ms`): a long-polling
//! POST whose body has not all come within the limit of its headers' end fails (HTTP
//! 400, socketioxide's answer to a body that fails) and is counted as `stall`, so a
//! client trickling a body (slowloris) cannot hold a connection and its buffer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::State;
use hyper::body::{Body as HttpBody, Frame, SizeHint};

use super::peer_of;
use crate::protocol::Protocol;
use crate::refusals::{Refusal, Refusals, Who};

/// Gives a Socket.IO request's body `limit` to arrive whole (a long-polling POST
/// trickled to hold the connection and its buffer: slowloris).
pub(super) async fn body_deadline(
    State((limit, refusals)): State<(Option<Duration>, Refusals)>,
    request: axum::extract::Request,
) -> axum::extract::Request {
    let Some(limit) = limit else {
        return request;
    };
    let who = peer_of(&request);
    request.map(|body| {
        axum::body::Body::new(Deadline {
            body,
            sleep: Box::pin(tokio::time::sleep(limit)),
            limit,
            expired: false,
            refusals,
            who,
        })
    })
}

/// A request body that fails once its deadline has passed before its end.
struct Deadline {
    body: axum::body::Body,
    sleep: Pin<Box<tokio::time::Sleep>>,
    limit: Duration,
    expired: bool,
    refusals: Refusals,
    who: Who,
}

/// Why a request body was cut off.
#[derive(Debug, thiserror::Error)]
#[error("request body incomplete after {} ms", limit.as_millis())]
pub(crate) struct BodyStalled {
    limit: Duration,
}

impl HttpBody for Deadline {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if this.expired {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if this.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        this.expired = true;
        let why = BodyStalled { limit: this.limit };
        let refusal = Refusal::disconnecting("stall", &why);
        this.refusals.report(Protocol::SocketIo, this.who, refusal);
        Poll::Ready(Some(Err(axum::Error::new(why))))
    }

    fn is_end_stream(&self) -> bool {
        self.expired || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::extract::Request;

    const WITHIN: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn a_body_not_whole_within_its_deadline_fails() {
        let limit = Some(Duration::from_millis(50));
        let refusals = Refusals::new(Duration::ZERO);
        let stalled = futures_util::stream::pending::<Result<bytes::Bytes, std::io::Error>>();
        let request = Request::post("/socket.io/")
            .body(Body::from_stream(stalled))
            .unwrap();
        let request = body_deadline(State((limit, refusals.clone())), request).await;
        let read = axum::body::to_bytes(request.into_body(), usize::MAX);
        let error = tokio::time::timeout(WITHIN, read)
            .await
            .expect("ended by the deadline")
            .unwrap_err();
        assert_eq!(error.to_string(), "request body incomplete after 50 ms");
        // A body that is whole in time is read as it was sent.
        let request = Request::post("/socket.io/")
            .body(Body::from("42[\"message\"]"))
            .unwrap();
        let request = body_deadline(State((limit, refusals)), request).await;
        let read = axum::body::to_bytes(request.into_body(), usize::MAX);
        let body = tokio::time::timeout(WITHIN, read).await.unwrap().unwrap();
        assert_eq!(&body[..], b"42[\"message\"]");
    }
}
