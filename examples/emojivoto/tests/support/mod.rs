//! The app in-process on loopback ports, and plain HTTP/1.1 and raw
//! HTTP/2 clients to drive it: the tests see the wire as a mesh would.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, TE};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use weft_emojivoto::grpc::Channel;
use weft_emojivoto::shutdown::{self, Trigger};
use weft_emojivoto::web::WebConfig;
use weft_emojivoto::{emoji_svc, voting_svc, web};

/// Every wait in these tests is bounded by this.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// How long the servers drain at shutdown.
const GRACE: Duration = Duration::from_secs(2);

pub async fn loopback() -> TcpListener {
    TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback")
}

fn addr(listener: &TcpListener) -> SocketAddr {
    listener.local_addr().expect("local address")
}

/// One server task and the trigger that stops it.
pub struct Running {
    trigger: Trigger,
    task: JoinHandle<()>,
    /// The main port.
    pub addr: SocketAddr,
    /// The admin port (gRPC services only).
    pub admin: Option<SocketAddr>,
}

impl Running {
    /// Triggers shutdown and waits for the server to finish draining.
    pub async fn stop(self) {
        self.trigger.trigger();
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("the server stops in time")
            .expect("the server task ends without a panic");
    }
}

pub async fn emoji_svc_on(grpc: TcpListener) -> Running {
    let admin = loopback().await;
    let (trigger, shutdown) = shutdown::channel();
    let (addr, admin_addr) = (addr(&grpc), addr(&admin));
    let task = tokio::spawn(emoji_svc::run(grpc, admin, shutdown, GRACE));
    Running {
        trigger,
        task,
        addr,
        admin: Some(admin_addr),
    }
}

pub async fn voting_svc() -> Running {
    let (grpc, admin) = (loopback().await, loopback().await);
    let (trigger, shutdown) = shutdown::channel();
    let (addr, admin_addr) = (addr(&grpc), addr(&admin));
    let task = tokio::spawn(voting_svc::run(grpc, admin, shutdown, GRACE));
    Running {
        trigger,
        task,
        addr,
        admin: Some(admin_addr),
    }
}

/// web, calling the services at these addresses.
pub async fn web_to(emoji: SocketAddr, voting: SocketAddr) -> Running {
    let listener = loopback().await;
    let channel = |a: SocketAddr| {
        let authority = a.to_string().parse().expect("an authority");
        Channel::new(authority, Duration::from_secs(2))
    };
    let config = WebConfig {
        emoji: channel(emoji),
        voting: channel(voting),
        index_bundle: None,
    };
    let (trigger, shutdown) = shutdown::channel();
    let addr = addr(&listener);
    let task = tokio::spawn(web::run(listener, config, shutdown, GRACE));
    Running {
        trigger,
        task,
        addr,
        admin: None,
    }
}

/// The three servers, wired as in the cluster.
pub struct App {
    pub emoji: Running,
    pub voting: Running,
    pub web: Running,
}

impl App {
    pub async fn start() -> App {
        let emoji = emoji_svc_on(loopback().await).await;
        let voting = voting_svc().await;
        let web = web_to(emoji.addr, voting.addr).await;
        App { emoji, voting, web }
    }

    pub async fn stop(self) {
        self.web.stop().await;
        self.voting.stop().await;
        self.emoji.stop().await;
    }
}

/// An HTTP/1.1 answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {:?}", self.body))
    }
}

/// One HTTP/1.1 request on a new connection.
pub async fn http1(
    addr: SocketAddr,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &str,
) -> Answer {
    let exchange = async {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(conn);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, addr.to_string());
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        let request = request
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        let response = sender.send_request(request).await.expect("an answer");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("the body").to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: String::from_utf8(body.to_vec()).expect("UTF-8 body"),
        }
    };
    tokio::time::timeout(PATIENCE, exchange)
        .await
        .expect("HTTP/1.1 answer in time")
}

pub async fn get(addr: SocketAddr, path: &str) -> Answer {
    http1(addr, Method::GET, path, None, "").await
}

/// A gRPC answer as it came over the wire.
#[derive(Debug)]
pub struct RawGrpc {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub trailers: Option<HeaderMap>,
    pub data: Bytes,
}

impl RawGrpc {
    /// grpc-status from the trailers (where these servers put it).
    pub fn grpc_status(&self) -> Option<u32> {
        self.trailers
            .as_ref()?
            .get("grpc-status")?
            .to_str()
            .ok()?
            .parse()
            .ok()
    }

    pub fn grpc_message(&self) -> Option<String> {
        let value = self.trailers.as_ref()?.get("grpc-message")?;
        Some(value.to_str().ok()?.to_string())
    }
}

/// One HTTP/2 connection (h2c, prior knowledge) for raw gRPC requests.
pub struct H2 {
    sender: http2::SendRequest<Full<Bytes>>,
    authority: SocketAddr,
}

impl H2 {
    pub async fn connect(addr: SocketAddr) -> H2 {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("HTTP/2 handshake");
        tokio::spawn(conn);
        H2 {
            sender,
            authority: addr,
        }
    }

    /// POSTs `body` as is (framing included) to `path`.
    pub async fn call(&mut self, path: &str, content_type: &str, body: Vec<u8>) -> RawGrpc {
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("http://{}{path}", self.authority))
            .header(CONTENT_TYPE, content_type)
            .header(TE, "trailers")
            .body(Full::new(Bytes::from(body)))
            .expect("request");
        let exchange = async {
            let response = self.sender.send_request(request).await.expect("an answer");
            let (parts, body) = response.into_parts();
            let collected = body.collect().await.expect("the body");
            RawGrpc {
                status: parts.status,
                headers: parts.headers,
                trailers: collected.trailers().cloned(),
                data: collected.to_bytes(),
            }
        };
        tokio::time::timeout(PATIENCE, exchange)
            .await
            .expect("gRPC answer in time")
    }

    /// A well-formed unary call: `message` framed.
    pub async fn unary(&mut self, path: &str, message: &[u8]) -> RawGrpc {
        let mut body = vec![0];
        body.extend_from_slice(&(message.len() as u32).to_be_bytes());
        body.extend_from_slice(message);
        self.call(path, "application/grpc", body).await
    }
}
