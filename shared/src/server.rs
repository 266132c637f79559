//! The local server's HTTP/1 front: hyper's connection builder with the limits an endpoint open
//! to the internet needs. (The Lambda functions sit behind API Gateway, which has its own.)
//!
//! - At most `max_connections` connections at once; further ones wait in the listen backlog
//!   until one closes (accepted later, nothing lost).
//! - A request head must arrive within `header_read_timeout`, counted from the accept, or on a
//!   kept-alive connection from the first byte of the request.
//! - A kept-alive connection with nothing in progress is closed after `idle_timeout`; so is one
//!   whose client does not read its response within that time.
//! - A request body must arrive whole within `body_read_timeout` of its head ([`DeadlineBody`];
//!   the route answers 408).
//! - A request head (request line and headers) may be `max_header_bytes` + 16 KiB; hyper
//!   answers a larger one with a bare 431 (no body) and closes. Between `max_header_bytes` and
//!   that, the receiver answers its JSON 431 (see [`crate::ingest::ReceiverConfig::check_head`]).
//!
//! The idle and header clocks are kept here rather than with hyper's `header_read_timeout`:
//! hyper starts that timer as soon as it waits for a request, so on a kept-alive connection it
//! also counts the idle time before the next request, and an idle timeout separate from the
//! header timeout could not be expressed.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

use crate::http::body::DeadlineBody;

/// Room in a request head beyond the counted header names and values: the request line and
/// the `: ` and CRLF around each header.
const HEAD_SLACK: usize = 16 * 1024;
/// hyper's smallest allowed buffer.
const MIN_BUFFER: usize = 8 * 1024;

/// Connection limits of the local server (`hookhub dev` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(15),
            max_connections: 1024,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` turns true, then stops accepting, lets requests
/// in flight finish and returns once every connection has closed. `max_header_bytes` sizes
/// hyper's head limit (see the module docs).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServerOptions,
    max_header_bytes: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    // `acquire_many` below counts in u32.
    let max_connections = options
        .max_connections
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let slots = Arc::new(Semaphore::new(max_connections));
    let head_limit = max_header_bytes.saturating_add(HEAD_SLACK).max(MIN_BUFFER);
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        .header_read_timeout(None)
        .max_header_size(head_limit)
        .max_buf_size(head_limit);
    let connection = Arc::new(Connection {
        app,
        options,
        builder,
    });
    loop {
        // A slot first: at the limit, new connections stay in the backlog, unread.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            () = stopping(&mut shutdown) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => continue,
                        () = stopping(&mut shutdown) => break,
                    }
                }
            },
            () = stopping(&mut shutdown) => break,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(
            connection
                .clone()
                .serve(stream, peer, shutdown.clone(), slot),
        );
    }
    drop(listener);
    // Every slot back: every connection has closed.
    let _ = slots.acquire_many(max_connections as u32).await;
}

/// Resolves once `shutdown` is true; never if its sender is gone without saying so (a
/// `LocalServer` dropped without `shutdown` keeps serving).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    if shutdown.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

struct Connection {
    app: Router,
    options: ServerOptions,
    builder: http1::Builder,
}

impl Connection {
    async fn serve(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        mut shutdown: watch::Receiver<bool>,
        _slot: OwnedSemaphorePermit,
    ) {
        let clock = Arc::new(Clock::new(Instant::now()));
        let io = TokioIo::new(WatchedIo {
            inner: stream,
            clock: clock.clone(),
        });
        let service = {
            let (app, clock) = (self.app.clone(), clock.clone());
            let body_timeout = self.options.body_read_timeout;
            service_fn(move |request: hyper::Request<Incoming>| {
                let in_flight = InFlight::start(clock.clone());
                let request = request.map(|body| Body::new(DeadlineBody::new(body, body_timeout)));
                let app = app.clone();
                async move {
                    let response: Result<_, Infallible> = app.oneshot(request).await;
                    drop(in_flight);
                    response
                }
            })
        };
        let connection = self.builder.serve_connection(io, service);
        tokio::pin!(connection);
        let mut shutting_down = false;
        loop {
            let deadline = clock.deadline(&self.options);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    return;
                }
                () = clock.changed.notified() => {}
                () = sleep_until(deadline) => {
                    if clock.deadline(&self.options).is_some_and(|d| d <= Instant::now()) {
                        tracing::debug!(%peer, "closing a stalled or idle connection");
                        return;
                    }
                }
                () = stopping(&mut shutdown), if !shutting_down => {
                    shutting_down = true;
                    // Closes it if idle, else after the request in flight.
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Where a connection stands, for its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing in progress since `since`: just accepted (`first`), or a response was handed
    /// to hyper.
    Waiting { since: Instant, first: bool },
    /// A request head started arriving at `since`.
    Head { since: Instant },
    /// A request is being handled (its body has its own deadline).
    Busy,
}

impl Phase {
    fn deadline(self, options: &ServerOptions) -> Option<Instant> {
        match self {
            Phase::Waiting { since, first: true } | Phase::Head { since } => {
                Some(since + options.header_read_timeout)
            }
            Phase::Waiting {
                since,
                first: false,
            } => Some(since + options.idle_timeout),
            Phase::Busy => None,
        }
    }

    /// Bytes arrived. On a fresh connection the header clock already runs from the accept.
    fn on_bytes(self, now: Instant) -> Phase {
        match self {
            Phase::Waiting { first: false, .. } => Phase::Head { since: now },
            other => other,
        }
    }
}

/// A connection's phase, shared by its reader, its requests and its task.
struct Clock {
    phase: Mutex<Phase>,
    /// Wakes the connection task to recompute its deadline.
    changed: Notify,
}

impl Clock {
    fn new(accepted: Instant) -> Self {
        Self {
            phase: Mutex::new(Phase::Waiting {
                since: accepted,
                first: true,
            }),
            changed: Notify::new(),
        }
    }

    fn deadline(&self, options: &ServerOptions) -> Option<Instant> {
        self.phase().deadline(options)
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, change: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        let next = change(*phase);
        if next != *phase {
            *phase = next;
            self.changed.notify_one();
        }
    }
}

/// Marks a request in progress while alive.
struct InFlight(Arc<Clock>);

impl InFlight {
    fn start(clock: Arc<Clock>) -> Self {
        clock.update(|_| Phase::Busy);
        Self(clock)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let now = Instant::now();
        self.0.update(|_| Phase::Waiting {
            since: now,
            first: false,
        });
    }
}

/// The socket, telling the clock when bytes arrive.
struct WatchedIo {
    inner: TcpStream,
    clock: Arc<Clock>,
}

impl AsyncRead for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            let now = Instant::now();
            self.clock.update(|phase| phase.on_bytes(now));
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_follow_the_phase() {
        let options = ServerOptions {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            ..ServerOptions::default()
        };
        let t0 = Instant::now();
        let at = |secs: u64| t0 + Duration::from_secs(secs);
        let fresh = Phase::Waiting {
            since: t0,
            first: true,
        };
        let kept_alive = Phase::Waiting {
            since: t0,
            first: false,
        };
        // (phase, bytes arriving at this second (if any), expected deadline)
        let cases = [
            // A fresh connection: the head is due 10 s after the accept, first byte or not.
            (fresh, None, Some(at(10))),
            (fresh, Some(5), Some(at(10))),
            // Kept alive: idle for up to 60 s, then 10 s from the first byte for the head.
            (kept_alive, None, Some(at(60))),
            (kept_alive, Some(55), Some(at(65))),
            (Phase::Head { since: at(3) }, Some(4), Some(at(13))),
            // In a request: the body deadline governs.
            (Phase::Busy, Some(7), None),
        ];
        for (phase, bytes_at, expected) in cases {
            let phase = match bytes_at {
                Some(secs) => phase.on_bytes(at(secs)),
                None => phase,
            };
            assert_eq!(phase.deadline(&options), expected, "{phase:?}");
        }
    }

    #[test]
    fn a_request_holds_the_clock_until_it_ends() {
        let clock = Arc::new(Clock::new(Instant::now()));
        assert!(matches!(clock.phase(), Phase::Waiting { first: true, .. }));
        let in_flight = InFlight::start(clock.clone());
        assert_eq!(clock.phase(), Phase::Busy);
        drop(in_flight);
        assert!(matches!(clock.phase(), Phase::Waiting { first: false, .. }));
    }
}
