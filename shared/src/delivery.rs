//! The outbound HTTP client: one per process, with timeouts, no redirects, no proxies, and a
//! resolver that refuses non-public addresses unless explicitly allowed (SSRF guard: subscriber
//! URLs are user input and must not reach the cloud metadata service or internal hosts; which
//! addresses are public is [`crate::netguard`]'s decision).

use std::error::Error as StdError;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::HeaderMap;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::decision::DeliveryError;
use crate::netguard::{ip_literal, is_public};

/// At most this much of a subscriber's response body is kept in the attempt log.
pub const RESPONSE_EXCERPT_BYTES: usize = 4096;

#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// Allow loopback/private/link-local targets (dev mode and tests).
    pub allow_private_targets: bool,
    pub user_agent: String,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(15),
            allow_private_targets: false,
            user_agent: format!("Hookhub/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// What came of one POST.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryResponse {
    pub status: Option<u16>,
    /// Why no status was received.
    pub error: Option<DeliveryError>,
    pub retry_after: Option<String>,
    pub excerpt: Option<String>,
    pub duration: Duration,
}

impl DeliveryResponse {
    pub fn is_success(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0} is a private, loopback or link-local address")]
struct BlockedAddress(IpAddr);

#[derive(Debug, thiserror::Error)]
#[error("could not resolve {host}: {source}")]
struct DnsFailure {
    host: String,
    source: std::io::Error,
}

/// Resolves with the system resolver, then drops forbidden addresses.
struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|source| DnsFailure {
                    host: host.clone(),
                    source,
                })?
                .collect();
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|a| is_public(a.ip()))
                .collect();
            match (allowed.is_empty(), addrs.first()) {
                (true, Some(first)) => Err(Box::new(BlockedAddress(first.ip())) as _),
                _ => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

#[derive(Clone)]
pub struct DeliveryClient {
    http: reqwest::Client,
    allow_private_targets: bool,
}

impl DeliveryClient {
    pub fn new(options: &DeliveryOptions) -> Result<Self, reqwest::Error> {
        // reqwest is built with `rustls-no-provider`: rustls on ring, as the AWS SDK client
        // (aws-lc-rs would add ~0.7 MB per binary). Fails only if a provider is already installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(options.user_agent.clone());
        if !options.allow_private_targets {
            builder = builder.dns_resolver(Arc::new(GuardedResolver));
        }
        Ok(Self {
            http: builder.build()?,
            allow_private_targets: options.allow_private_targets,
        })
    }

    /// POSTs `body` to `url` and reports what happened; never fails.
    pub async fn post(&self, url: &str, headers: HeaderMap, body: Bytes) -> DeliveryResponse {
        let started = Instant::now();
        let failed = |error: DeliveryError| DeliveryResponse {
            status: None,
            error: Some(error),
            retry_after: None,
            excerpt: None,
            duration: started.elapsed(),
        };
        let Ok(parsed) = reqwest::Url::parse(url) else {
            return failed(DeliveryError::Request);
        };
        // The resolver is bypassed for IP literals, so check those here.
        if !self.allow_private_targets && ip_literal(&parsed).is_some_and(|ip| !is_public(ip)) {
            return failed(DeliveryError::Blocked);
        }
        let mut response = match self
            .http
            .post(parsed)
            .headers(headers)
            .body(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return failed(classify(&e)),
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(http::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut excerpt = Vec::new();
        // Read only what is kept; a subscriber streaming a large body must not hold us up.
        while excerpt.len() < RESPONSE_EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = RESPONSE_EXCERPT_BYTES - excerpt.len();
                    excerpt.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        DeliveryResponse {
            status: Some(status),
            error: None,
            retry_after,
            excerpt: (!excerpt.is_empty()).then(|| String::from_utf8_lossy(&excerpt).into_owned()),
            duration: started.elapsed(),
        }
    }
}

/// Maps a transport failure to a stable error code by walking its typed source chain.
fn classify(error: &reqwest::Error) -> DeliveryError {
    let mut source: Option<&(dyn StdError + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<BlockedAddress>() {
            return DeliveryError::Blocked;
        }
        if e.is::<DnsFailure>() {
            return DeliveryError::Dns;
        }
        if is_tls(e) {
            return DeliveryError::Tls;
        }
        source = e.source();
    }
    if error.is_timeout() {
        DeliveryError::Timeout
    } else if error.is_connect() {
        DeliveryError::Connect
    } else {
        DeliveryError::Request
    }
}

/// rustls reports through (nested) `io::Error`s, whose `source()` skips the error they wrap.
fn is_tls(mut e: &(dyn StdError + 'static)) -> bool {
    loop {
        if e.is::<rustls::Error>() {
            return true;
        }
        match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => e = inner,
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_is_blocked_unless_allowed() {
        let client = DeliveryClient::new(&DeliveryOptions::default()).unwrap();
        let r = client
            .post("http://127.0.0.1:9/", HeaderMap::new(), Bytes::new())
            .await;
        assert_eq!(r.error, Some(DeliveryError::Blocked));
        let r = client
            .post("http://localhost:9/", HeaderMap::new(), Bytes::new())
            .await;
        assert_eq!(r.error, Some(DeliveryError::Blocked));
    }

    #[tokio::test]
    async fn connection_refused_is_connect() {
        let client = DeliveryClient::new(&DeliveryOptions {
            allow_private_targets: true,
            ..DeliveryOptions::default()
        })
        .unwrap();
        // Bind then drop to get a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = client
            .post(
                &format!("http://127.0.0.1:{port}/"),
                HeaderMap::new(),
                Bytes::new(),
            )
            .await;
        assert_eq!(r.error, Some(DeliveryError::Connect));
        assert!(!r.is_success());
    }

    #[tokio::test]
    async fn a_failed_tls_handshake_is_tls() {
        let client = DeliveryClient::new(&DeliveryOptions {
            allow_private_targets: true,
            ..DeliveryOptions::default()
        })
        .unwrap();
        // A plain-HTTP server answering a TLS ClientHello with plain text.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
        });
        let r = client
            .post(
                &format!("https://127.0.0.1:{port}/"),
                HeaderMap::new(),
                Bytes::new(),
            )
            .await;
        assert_eq!(r.error, Some(DeliveryError::Tls), "{r:?}");
        server.abort();
    }
}
