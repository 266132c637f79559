//! A loopback TCP proxy between a client under test (an SDK, say) and a real server (moto),
//! counting what passes each way: how many bytes a call really moves.
//!
//! Each accepted connection is handed to a [`Relay`]. [`Forward`] copies both directions
//! unchanged and counts; a relay that injects faults (throttling answers, dropped connections)
//! implements [`Relay`] itself and can call [`forward`] for the traffic it lets through.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// Running totals of a proxy, shared with its relay.
#[derive(Debug, Default)]
pub struct Counters {
    connections: AtomicU64,
    to_upstream: AtomicU64,
    from_upstream: AtomicU64,
}

/// A reading of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Connections accepted from clients.
    pub connections: u64,
    /// Bytes the clients sent (requests).
    pub to_upstream: u64,
    /// Bytes the server sent back (responses).
    pub from_upstream: u64,
}

impl Counters {
    pub fn traffic(&self) -> Traffic {
        Traffic {
            connections: self.connections.load(Ordering::SeqCst),
            to_upstream: self.to_upstream.load(Ordering::SeqCst),
            from_upstream: self.from_upstream.load(Ordering::SeqCst),
        }
    }

    pub fn add_to_upstream(&self, bytes: usize) {
        self.to_upstream.fetch_add(bytes as u64, Ordering::SeqCst);
    }

    pub fn add_from_upstream(&self, bytes: usize) {
        self.from_upstream.fetch_add(bytes as u64, Ordering::SeqCst);
    }
}

impl Traffic {
    /// What moved between `earlier` and this reading.
    pub fn since(&self, earlier: Traffic) -> Traffic {
        Traffic {
            connections: self.connections - earlier.connections,
            to_upstream: self.to_upstream - earlier.to_upstream,
            from_upstream: self.from_upstream - earlier.from_upstream,
        }
    }
}

/// What the proxy does with one accepted client connection.
#[async_trait]
pub trait Relay: Send + Sync + 'static {
    async fn relay(
        &self,
        client: TcpStream,
        upstream: SocketAddr,
        counters: &Counters,
    ) -> io::Result<()>;
}

/// Connects to the upstream and copies both ways unchanged, counting.
pub struct Forward;

#[async_trait]
impl Relay for Forward {
    async fn relay(
        &self,
        client: TcpStream,
        upstream: SocketAddr,
        counters: &Counters,
    ) -> io::Result<()> {
        forward(client, TcpStream::connect(upstream).await?, counters).await
    }
}

/// Copies `client` ⇄ `upstream` until both directions are closed, counting every byte.
pub async fn forward(
    client: TcpStream,
    upstream: TcpStream,
    counters: &Counters,
) -> io::Result<()> {
    let (client_read, client_write) = client.into_split();
    let (upstream_read, upstream_write) = upstream.into_split();
    tokio::try_join!(
        pump(client_read, upstream_write, |n| counters.add_to_upstream(n)),
        pump(upstream_read, client_write, |n| counters
            .add_from_upstream(n)),
    )?;
    Ok(())
}

/// Copies until end of stream, then closes the write side (so the peer sees it too).
async fn pump(
    mut from: impl AsyncRead + Unpin,
    mut to: impl AsyncWrite + Unpin,
    count: impl Fn(usize),
) -> io::Result<()> {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = from.read(&mut buffer).await?;
        if n == 0 {
            return to.shutdown().await;
        }
        count(n);
        to.write_all(&buffer[..n]).await?;
    }
}

/// A running proxy on 127.0.0.1; it and its connections stop when it is dropped.
pub struct TcpProxy {
    addr: SocketAddr,
    counters: Arc<Counters>,
    accept: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// A counting proxy to `upstream`, on the current tokio runtime.
    pub async fn start(upstream: SocketAddr) -> io::Result<TcpProxy> {
        Self::start_with(upstream, Arc::new(Forward)).await
    }

    /// A proxy that hands each connection to `relay`.
    pub async fn start_with(upstream: SocketAddr, relay: Arc<dyn Relay>) -> io::Result<TcpProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        let accept = tokio::spawn(async move {
            // Owned here so aborting the accept loop (on drop) aborts every connection too.
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let (relay, counters) = (relay.clone(), shared.clone());
                connections.spawn(async move {
                    // A client or server hanging up mid-stream is no failure of the proxy.
                    let _ = relay.relay(client, upstream, &counters).await;
                });
                // Reap finished connections so a long test does not accumulate them.
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(TcpProxy {
            addr,
            counters,
            accept,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, for an SDK endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn traffic(&self) -> Traffic {
        self.counters.traffic()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn forwards_both_ways_and_counts() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = server.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = server.accept().await.unwrap();
            let mut request = [0u8; 5];
            socket.read_exact(&mut request).await.unwrap();
            socket.write_all(&[7u8; 100_000]).await.unwrap();
        });
        let proxy = TcpProxy::start(upstream).await.unwrap();
        let mut client = TcpStream::connect(proxy.addr()).await.unwrap();
        client.write_all(b"hello").await.unwrap();
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        assert_eq!(answer.len(), 100_000);
        let traffic = proxy.traffic();
        assert_eq!(
            traffic,
            Traffic {
                connections: 1,
                to_upstream: 5,
                from_upstream: 100_000
            }
        );
        assert_eq!(traffic.since(traffic), Traffic::default());
    }
}
