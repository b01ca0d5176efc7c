//! The vote bot's HTTP/1.1 client: one keep-alive connection to web,
//! resolved and made again whenever it fails.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HOST, USER_AGENT};
use http::uri::Authority;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Answers are read (to keep the connection usable) up to this size.
const MAX_ANSWER: usize = 1024 * 1024;

#[derive(Debug)]
pub struct WebClient {
    authority: Authority,
    timeout: Duration,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

impl WebClient {
    pub fn new(authority: Authority, timeout: Duration) -> Self {
        WebClient {
            authority,
            timeout,
            sender: None,
        }
    }

    /// `GET path`: the answer's status, or why there was none.
    pub async fn get(&mut self, path: &str) -> Result<StatusCode, String> {
        let answer = tokio::time::timeout(self.timeout, self.try_get(path)).await;
        let answer = answer.unwrap_or_else(|_| Err(format!("no answer in {:?}", self.timeout)));
        if answer.is_err() {
            // The connection may be stuck or half-closed: start afresh.
            self.sender = None;
        }
        answer
    }

    async fn try_get(&mut self, path: &str) -> Result<StatusCode, String> {
        // A kept connection that web closed meanwhile is not ready.
        let mut sender = match self.sender.take() {
            Some(mut kept) => match kept.ready().await {
                Ok(()) => kept,
                Err(_) => self.connect().await?,
            },
            None => self.connect().await?,
        };
        let request = Request::get(path)
            .header(HOST, self.authority.as_str())
            .header(
                USER_AGENT,
                concat!("weft-emojivoto-vote-bot/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|err| format!("bad request {path}: {err}"))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| err.to_string())?;
        let status = response.status();
        Limited::new(response.into_body(), MAX_ANSWER)
            .collect()
            .await
            .map_err(|err| format!("reading the answer: {err}"))?;
        self.sender = Some(sender);
        Ok(status)
    }

    async fn connect(&self) -> Result<SendRequest<Empty<Bytes>>, String> {
        let target = self.authority.as_str();
        let addrs = tokio::net::lookup_host(target)
            .await
            .map_err(|err| format!("cannot resolve {target}: {err}"))?;
        let mut last_err = format!("{target}: no address");
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    let (sender, connection) =
                        hyper::client::conn::http1::handshake(TokioIo::new(stream))
                            .await
                            .map_err(|err| format!("{addr}: {err}"))?;
                    tokio::spawn(async move {
                        if let Err(err) = connection.await {
                            tracing::debug!(%err, "web connection ended");
                        }
                    });
                    return Ok(sender);
                }
                Err(err) => last_err = format!("{addr}: {err}"),
            }
        }
        Err(last_err)
    }
}
