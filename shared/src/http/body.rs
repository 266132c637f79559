//! Reading request bodies within limits: a size limit per route, a total read deadline (set by
//! the local server), and a refusal that clients can read.
//!
//! A server that answers 413 and closes while the client is still sending leaves unread bytes
//! in its socket; closing such a socket sends a TCP reset, and a client still writing sees a
//! broken pipe instead of the 413. So the rest of a refused body is read and discarded, up to
//! [`DRAIN_CAP`] (and the read deadline); only beyond that is the answer sent early, with
//! `Connection: close`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use http_body::{Body as _, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::time::{Instant, Sleep};

use super::ApiError;
use crate::ingest::{declared_length, IngestError};

/// The most a refused body is read (and discarded) for, so that its client gets the answer.
pub const DRAIN_CAP: u64 = 8 * 1024 * 1024;

/// How reading a body ended when it did not give the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Over the limit. `drained`: the rest was read, so the connection can stay open.
    TooLarge { drained: bool },
    /// The body read deadline passed.
    TimedOut,
    /// The client broke off or sent malformed framing.
    Unreadable,
}

impl BodyError {
    /// The JSON error answer; it closes the connection unless the body was read to its end.
    pub(crate) fn into_response(self, limit: usize) -> Response {
        let (error, drained) = match self {
            BodyError::TooLarge { drained } => (
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    IngestError::PayloadTooLarge { limit }.to_string(),
                ),
                drained,
            ),
            BodyError::TimedOut => (
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    "the request body did not arrive within the time limit",
                ),
                false,
            ),
            BodyError::Unreadable => (
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "body_unreadable",
                    "the request body could not be read",
                ),
                false,
            ),
        };
        close_unless(drained, error.into_response())
    }
}

/// Adds `Connection: close` when the request body was not read to its end: the server closes
/// such a connection anyway, and says so.
pub(crate) fn close_unless(drained: bool, mut response: Response) -> Response {
    if !drained {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The whole body, if it is at most `limit` bytes.
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    mut body: Body,
    limit: usize,
) -> Result<Bytes, BodyError> {
    let limit = limit as u64;
    if declared_length(headers).is_some_and(|len| len > limit) {
        return Err(BodyError::TooLarge {
            drained: drain(headers, &mut body, 0).await,
        });
    }
    // Chunks as they arrive (memory follows what was actually sent, not what was declared),
    // joined once at the end.
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(|e| classify(&e))?.into_data() else {
            continue; // trailers
        };
        received += data.len() as u64;
        if received > limit {
            drop(chunks);
            return Err(BodyError::TooLarge {
                drained: drain(headers, &mut body, received).await,
            });
        }
        chunks.push(data);
    }
    Ok(match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.swap_remove(0),
        _ => {
            let mut joined = BytesMut::with_capacity(received as usize);
            for chunk in chunks {
                joined.extend_from_slice(&chunk);
            }
            joined.freeze()
        }
    })
}

/// Reads and discards the body of a request refused on its head. True when it was read to
/// its end.
pub(crate) async fn discard(headers: &HeaderMap, mut body: Body) -> bool {
    drain(headers, &mut body, 0).await
}

async fn drain(headers: &HeaderMap, body: &mut Body, mut received: u64) -> bool {
    // A client waiting for `100 Continue` has sent no body: the refusal is its answer.
    let expects_continue = headers
        .get(header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if (expects_continue && received == 0)
        || declared_length(headers).is_some_and(|len| len > DRAIN_CAP)
    {
        return body.is_end_stream();
    }
    while received <= DRAIN_CAP {
        match body.frame().await {
            None => return true,
            Some(Ok(frame)) => received += frame.data_ref().map_or(0, |d| d.len() as u64),
            Some(Err(_)) => return false,
        }
    }
    false
}

fn classify(error: &axum::Error) -> BodyError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<BodyTimedOut>() {
            return BodyError::TimedOut;
        }
        source = e.source();
    }
    BodyError::Unreadable
}

/// The error of a [`DeadlineBody`] whose deadline passed.
#[derive(Debug)]
pub struct BodyTimedOut(pub Duration);

impl fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the request body was not received within {:?}", self.0)
    }
}

impl std::error::Error for BodyTimedOut {}

/// A request body with a deadline for the whole of it, counted from when the request head was
/// read. tower-http's `TimeoutBody` bounds only the wait between frames, which a client sending
/// a byte a second never exceeds.
pub struct DeadlineBody<B> {
    inner: B,
    timeout: Duration,
    deadline: Instant,
    /// Armed the first time the body is not ready, so bodies that arrive with their head cost
    /// no timer.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<B> DeadlineBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: Instant::now() + timeout,
            timer: None,
        }
    }
}

impl<B> http_body::Body for DeadlineBody<B>
where
    B: http_body::Body + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = B::Data;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = this.deadline;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        ready!(timer.as_mut().poll(cx));
        Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.timeout)))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    /// A body streamed in `chunks` frames of `size` bytes.
    fn streamed(chunks: usize, size: usize) -> Body {
        let frames =
            (0..chunks).map(move |_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; size])));
        Body::from_stream(futures::stream::iter(frames))
    }

    #[tokio::test]
    async fn bodies_within_the_limit_are_joined() {
        let got = read_limited(&headers(&[]), streamed(3, 4), 12)
            .await
            .unwrap();
        assert_eq!(&got[..], b"xxxxxxxxxxxx");
        let got = read_limited(&headers(&[]), Body::empty(), 12)
            .await
            .unwrap();
        assert!(got.is_empty());
    }

    type Headers = &'static [(&'static str, &'static str)];

    #[tokio::test]
    async fn refused_bodies_are_drained_up_to_the_cap() {
        // (headers, frames, frame size, expected): a limit of 10 bytes throughout.
        let cap = DRAIN_CAP as usize;
        let cases: [(Headers, usize, usize, BodyError); 5] = [
            (&[], 3, 4, BodyError::TooLarge { drained: true }),
            (
                &[("content-length", "12")],
                3,
                4,
                BodyError::TooLarge { drained: true },
            ),
            // Over the cap: answered early.
            (&[], 3, cap / 2, BodyError::TooLarge { drained: false }),
            (
                &[("content-length", "9000000")],
                1,
                12,
                BodyError::TooLarge { drained: false },
            ),
            // The client waits for `100 Continue`: nothing to drain, nothing sent.
            (
                &[("content-length", "12"), ("expect", "100-continue")],
                1,
                12,
                BodyError::TooLarge { drained: false },
            ),
        ];
        for (pairs, chunks, size, expected) in cases {
            let got = read_limited(&headers(pairs), streamed(chunks, size), 10).await;
            assert_eq!(got, Err(expected), "{pairs:?} {chunks}x{size}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_covers_the_whole_body() {
        // One byte every second: each wait is short, the whole is not.
        let frames = futures::stream::unfold(0u32, |n| async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"x")), n + 1))
        });
        let body = Body::new(DeadlineBody::new(
            Body::from_stream(frames),
            Duration::from_secs(5),
        ));
        let started = Instant::now();
        let got = read_limited(&headers(&[]), body, 1024).await;
        assert_eq!(got, Err(BodyError::TimedOut));
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[test]
    fn only_complete_reads_keep_the_connection() {
        let close = |e: BodyError| e.into_response(10).headers().contains_key("connection");
        assert!(!close(BodyError::TooLarge { drained: true }));
        assert!(close(BodyError::TooLarge { drained: false }));
        assert!(close(BodyError::TimedOut));
        assert!(close(BodyError::Unreadable));
        let response = BodyError::TimedOut.into_response(10);
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    }
}
