//! Upstream servers for the proxy tests: an HTTP/1+HTTP/2 application with
//! test routes, and plain TCP servers (payload exchange, greeting first,
//! answer after EOF, reset, silent).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body::{Body, Frame};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use super::grpc_app::{self, Events};
use super::{Payload, TestResult};

type Body_ = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// The HTTP test application; counts the connections it accepted.
pub struct HttpApp {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    /// What its gRPC streaming routes saw.
    pub grpc: Arc<Events>,
}

/// Starts the HTTP application (HTTP/1.1 and HTTP/2 prior knowledge).
///
/// Routes: `GET /status/{code}`, `POST /echo` (streams the body back),
/// `GET /headers` (the request's header names), `POST /grpc/{code}` (data
/// then trailers), `POST /grpc-only/{code}` (trailers-only), `GET /hang`
/// (never answers), `GET /ws` (upgrade, then echo), `GET /abort` (body
/// fails midway), `GET /close` (closes after answering), `GET /sleep/{ms}`,
/// `GET /bytes/{n}`, and the gRPC streaming routes of [`grpc_app`].
pub async fn http_app() -> TestResult<HttpApp> {
    http_app_on(TcpListener::bind("127.0.0.1:0").await?)
}

/// The HTTP application on a listener the caller made (e.g. in a rig pod).
pub fn http_app_on(listener: TcpListener) -> TestResult<HttpApp> {
    let addr = listener.local_addr()?;
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let grpc = Arc::new(Events::default());
    let events = grpc.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let events = events.clone();
            tokio::spawn(async move {
                let builder = auto::Builder::new(TokioExecutor::new());
                let service = service_fn(move |req| route(events.clone(), req));
                let _ = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(HttpApp {
        addr,
        connections,
        grpc,
    })
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body_> {
    let mut response = Response::new(Full::new(body.into()).map_err(|e| match e {}).boxed());
    *response.status_mut() = status;
    response
}

async fn route(
    events: Arc<Events>,
    mut req: Request<Incoming>,
) -> Result<Response<Body_>, Infallible> {
    if req.uri().path().starts_with(grpc_app::PREFIX) {
        return Ok(grpc_app::route(events, req));
    }
    let path = req.uri().path().to_owned();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let head = parts.next().unwrap_or_default();
    let arg = parts.next().unwrap_or_default();
    let response = match head {
        "status" => match arg
            .parse::<u16>()
            .ok()
            .and_then(|c| StatusCode::from_u16(c).ok())
        {
            Some(status) => full(status, format!("status {}", status.as_u16())),
            None => full(StatusCode::BAD_REQUEST, "bad status"),
        },
        "echo" => Response::new(req.into_body().map_err(|e| Box::new(e) as _).boxed()),
        "headers" => {
            let mut names: Vec<&str> = req.headers().keys().map(|k| k.as_str()).collect();
            names.sort_unstable();
            full(StatusCode::OK, names.join(","))
        }
        "grpc" => {
            let code = arg.to_owned();
            let data = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let body = Full::new(data)
                .map_err(|e| match e {})
                .with_trailers(async move {
                    let mut trailers = HeaderMap::new();
                    let value =
                        HeaderValue::from_str(&code).unwrap_or(HeaderValue::from_static("2"));
                    trailers.insert("grpc-status", value);
                    Some(Ok(trailers))
                })
                .boxed();
            let mut response = Response::new(body);
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/grpc"));
            response
        }
        "grpc-only" => {
            let mut response = Response::new(Empty::new().map_err(|e| match e {}).boxed());
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/grpc"));
            if let Ok(value) = HeaderValue::from_str(arg) {
                response.headers_mut().insert("grpc-status", value);
            }
            response
        }
        "hang" => std::future::pending().await,
        "ws" => {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(upgraded) = upgrade.await {
                    let mut io = TokioIo::new(upgraded);
                    let mut buf = [0u8; 4096];
                    loop {
                        match io.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if io.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                }
            });
            let mut response = full(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
            response
                .headers_mut()
                .insert("connection", HeaderValue::from_static("upgrade"));
            response
                .headers_mut()
                .insert("upgrade", HeaderValue::from_static("websocket"));
            response
        }
        "abort" => Response::new(AbortBody::new().boxed()),
        "sleep" => {
            let millis = arg.parse().unwrap_or(0);
            tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
            full(StatusCode::OK, format!("slept {millis} ms"))
        }
        "close" => {
            // hyper closes the connection after a response that says so.
            let mut response = full(StatusCode::OK, "closing");
            response
                .headers_mut()
                .insert("connection", HeaderValue::from_static("close"));
            response
        }
        "bytes" => {
            let n: usize = arg.parse().unwrap_or(0);
            let mut data = vec![0u8; n];
            Payload::new(n as u64).fill(&mut data);
            full(StatusCode::OK, data)
        }
        _ => full(StatusCode::NOT_FOUND, "no route"),
    };
    Ok(response)
}

/// One data frame, then (a moment later, so the headers are surely out)
/// an error: the upstream fails mid-body.
struct AbortBody {
    sent: bool,
    pause: Pin<Box<tokio::time::Sleep>>,
}

impl AbortBody {
    fn new() -> Self {
        Self {
            sent: false,
            pause: Box::pin(tokio::time::sleep(std::time::Duration::from_millis(50))),
        }
    }
}

impl Body for AbortBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if !self.sent {
            self.sent = true;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"partial")))));
        }
        match self.pause.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err("upstream gave up".into()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// What the exchange server received on one connection.
#[derive(Debug)]
pub struct Received {
    pub len: usize,
    pub sha256: [u8; 32],
}

/// Payload exchange: the client's first 16 bytes say what to send back
/// (seed, length, little endian); the server then sends that payload and
/// shuts its write half while reading the client's bytes to EOF, and reports
/// what it received on the channel.
pub async fn exchange_server() -> TestResult<(SocketAddr, mpsc::UnboundedReceiver<Received>)> {
    exchange_server_on(TcpListener::bind("127.0.0.1:0").await?)
}

/// The exchange server on a listener the caller made.
pub fn exchange_server_on(
    listener: TcpListener,
) -> TestResult<(SocketAddr, mpsc::UnboundedReceiver<Received>)> {
    let addr = listener.local_addr()?;
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(received) = exchange(stream).await {
                    let _ = tx.send(received);
                }
            });
        }
    });
    Ok((addr, rx))
}

async fn exchange(stream: TcpStream) -> TestResult<Received> {
    let (mut read, mut write) = stream.into_split();
    let mut header = [0u8; 16];
    read.read_exact(&mut header).await?;
    let seed = u64::from_le_bytes(header[..8].try_into()?);
    let len = usize::try_from(u64::from_le_bytes(header[8..].try_into()?))?;
    let sender =
        tokio::spawn(async move { super::send_payload(&mut write, seed, len).await.map(|_| ()) });
    let (len, sha256) = super::hash_to_eof(&mut read).await?;
    sender.await.map_err(|e| e.to_string())??;
    Ok(Received { len, sha256 })
}

/// Writes a greeting as soon as a client connects (SMTP/MySQL style), then
/// echoes whatever it reads.
pub async fn greeting_server(greeting: &'static [u8]) -> TestResult<SocketAddr> {
    greeting_server_on(TcpListener::bind("127.0.0.1:0").await?, greeting)
}

/// The greeting server on a listener the caller made.
pub fn greeting_server_on(
    listener: TcpListener,
    greeting: &'static [u8],
) -> TestResult<SocketAddr> {
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if stream.write_all(greeting).await.is_err() {
                    return;
                }
                let (mut r, mut w) = stream.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Ok(addr)
}

/// Reads to EOF, then answers `got N bytes` and closes: works only when a
/// half-close reaches it and the way back stays open.
pub async fn after_eof_server() -> TestResult<SocketAddr> {
    after_eof_server_on(TcpListener::bind("127.0.0.1:0").await?)
}

/// The answer-after-EOF server on a listener the caller made.
pub fn after_eof_server_on(listener: TcpListener) -> TestResult<SocketAddr> {
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut all = Vec::new();
                if stream.read_to_end(&mut all).await.is_ok() {
                    let _ = stream
                        .write_all(format!("got {} bytes\n", all.len()).as_bytes())
                        .await;
                }
            });
        }
    });
    Ok(addr)
}

/// Resets every connection at once.
pub async fn reset_server() -> TestResult<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_zero_linger();
            drop(stream);
        }
    });
    Ok(addr)
}

/// Accepts and never reads or writes, holding each connection open until the
/// client closes it.
pub async fn silent_server() -> TestResult<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                // Wait for the peer to go away without ever answering.
                let mut sink = Vec::new();
                let _ = stream.read_to_end(&mut sink).await;
            });
        }
    });
    Ok(addr)
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}
