//! The proxy's HTTPS client for the control plane (identity on 8080,
//! destination on 8086): one HTTP/2 connection per service, verified
//! against the mesh trust anchors and the service's host name, shared by
//! every request and reopened when it breaks.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;

use super::TlsError;

/// The largest control-plane answer read (a certificate chain or a
/// destination answer is a few KiB).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Why a control-plane request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// TCP connect, TLS handshake or HTTP/2 handshake failed.
    #[error("cannot reach {addr}: {reason}")]
    Connect {
        /// The service address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The request failed on an open connection.
    #[error("request to {addr} failed: {reason}")]
    Request {
        /// The service address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// No complete answer within the timeout.
    #[error("{addr} did not answer within {timeout:?}")]
    Timeout {
        /// The service address.
        addr: String,
        /// The limit.
        timeout: Duration,
    },
}

/// A status and body from the control plane.
#[derive(Debug)]
pub struct Answer {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body, at most [`MAX_BODY_BYTES`].
    pub body: Bytes,
}

/// An HTTPS client of one control-plane service.
pub struct ControlClient {
    addr: String,
    authority: String,
    server_name: ServerName<'static>,
    config: Arc<ClientConfig>,
    timeout: Duration,
    sender: Mutex<Option<http2::SendRequest<Full<Bytes>>>>,
}

impl std::fmt::Debug for ControlClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlClient")
            .field("addr", &self.addr)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl ControlClient {
    /// A client of `addr` (`host:port`, validated by the config), whose
    /// certificate must name `host`; each request ends within `timeout`.
    pub fn new(addr: &str, config: Arc<ClientConfig>, timeout: Duration) -> Result<Self, TlsError> {
        let bad = |reason: &str| TlsError::BadServerName {
            addr: addr.to_owned(),
            reason: reason.to_owned(),
        };
        let (host, _) = addr
            .rsplit_once(':')
            .ok_or_else(|| bad("expected host:port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = match host.parse::<IpAddr>() {
            Ok(ip) => ServerName::IpAddress(ip.into()),
            Err(_) => ServerName::try_from(host.to_owned())
                .map_err(|e| bad(&format!("not a DNS name: {e}")))?,
        };
        Ok(Self {
            addr: addr.to_owned(),
            authority: addr.to_owned(),
            server_name,
            config,
            timeout,
            sender: Mutex::new(None),
        })
    }

    /// The service address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The limit on each request (and on opening a connection).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Opens an HTTP/2 connection of the caller's own, verified like the
    /// shared one, within the timeout: for a caller that multiplexes
    /// long-lived streams on it and manages its connections itself
    /// (destination's watches).
    pub async fn open_connection(&self) -> Result<http2::SendRequest<Full<Bytes>>, ControlError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.connect()).await {
            Ok(Ok(sender)) => Ok(sender),
            Ok(Err(e)) => Err(ControlError::Connect {
                addr: self.addr.clone(),
                reason: e.to_string(),
            }),
            Err(_) => Err(ControlError::Timeout {
                addr: self.addr.clone(),
                timeout,
            }),
        }
    }

    /// `GET path`.
    pub async fn get(&self, path_and_query: &str) -> Result<Answer, ControlError> {
        self.send(Method::GET, path_and_query, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post_json(&self, path: &str, body: Vec<u8>) -> Result<Answer, ControlError> {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        json: Option<Vec<u8>>,
    ) -> Result<Answer, ControlError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, self.exchange(method, path_and_query, json))
            .await
            .map_err(|_| ControlError::Timeout {
                addr: self.addr.clone(),
                timeout,
            })?
    }

    async fn exchange(
        &self,
        method: Method,
        path_and_query: &str,
        json: Option<Vec<u8>>,
    ) -> Result<Answer, ControlError> {
        let request_error = |reason: String| ControlError::Request {
            addr: self.addr.clone(),
            reason,
        };
        let uri = format!("https://{}{path_and_query}", self.authority);
        let mut builder = Request::builder().method(method).uri(uri);
        let body = match json {
            Some(json) => {
                builder = builder.header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Full::new(Bytes::from(json))
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder
            .body(body)
            .map_err(|e| request_error(e.to_string()))?;
        let mut sender = self.sender().await?;
        if let Err(e) = sender.ready().await {
            self.forget().await;
            return Err(request_error(e.to_string()));
        }
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(e) => {
                // A broken connection is reopened by the next request.
                self.forget().await;
                return Err(request_error(e.to_string()));
            }
        };
        let status = response.status();
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| request_error(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok(Answer { status, body })
    }

    async fn sender(&self) -> Result<http2::SendRequest<Full<Bytes>>, ControlError> {
        let mut slot = self.sender.lock().await;
        if let Some(sender) = slot.as_ref()
            && !sender.is_closed()
        {
            return Ok(sender.clone());
        }
        let sender = self.connect().await.map_err(|e| ControlError::Connect {
            addr: self.addr.clone(),
            reason: e.to_string(),
        })?;
        *slot = Some(sender.clone());
        Ok(sender)
    }

    async fn forget(&self) {
        *self.sender.lock().await = None;
    }

    async fn connect(&self) -> io::Result<http2::SendRequest<Full<Bytes>>> {
        let tcp = TcpStream::connect(&self.addr).await?;
        tcp.set_nodelay(true)?;
        let tls = TlsConnector::from(self.config.clone())
            .connect(self.server_name.clone(), tcp)
            .await?;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .handshake(TokioIo::new(tls))
            .await
            .map_err(io::Error::other)?;
        let addr = self.addr.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%addr, error = %e, "control-plane connection ended");
            }
        });
        Ok(sender)
    }
}
