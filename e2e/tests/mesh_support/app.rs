//! The applications of the mesh suite: a small HTTP/1.1 server that runs in
//! a pod (its listener made in the pod's namespace) and counts what reaches
//! it, and clients whose sockets are made in a pod, so the pod's iptables
//! redirect sends them through its outbound proxy as it would a real app's.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use weft_testrig::Pod;

use super::TestResult;

/// How long a client waits for a connection or an answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(15);

/// An HTTP server in a pod: `POST /echo` answers the body it got, any
/// other request `200 <app name> <path>`. Stops when dropped.
pub struct App {
    requests: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl App {
    /// Serves on 0.0.0.0:`port` in `pod`, as a container's server would.
    pub fn start(pod: &Pod<'_>, port: u16) -> TestResult<Self> {
        let listener =
            pod.in_netns(|| std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)))??;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let requests = Arc::new(AtomicU64::new(0));
        let name = pod.name().to_owned();
        let counted = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (name, counted) = (name.clone(), counted.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        counted.fetch_add(1, Ordering::SeqCst);
                        answer(name.clone(), req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Ok(App { requests, task })
    }

    /// How many requests reached the application.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn answer(name: String, req: Request<Incoming>) -> hyper::Result<Response<Full<Bytes>>> {
    let path = req.uri().path().to_owned();
    let echo = req.method() == hyper::Method::POST && path == "/echo";
    let body = req.into_body().collect().await?.to_bytes();
    let reply = if echo {
        body
    } else {
        Bytes::from(format!("{name} {path}"))
    };
    Ok(Response::new(Full::new(reply)))
}

/// A TCP connection made from inside `pod`, as its application makes it.
pub async fn connect_from(pod: &Pod<'_>, to: SocketAddr) -> TestResult<TcpStream> {
    let socket = pod.in_netns(TcpSocket::new_v4)??;
    Ok(tokio::time::timeout(CLIENT_TIMEOUT, socket.connect(to)).await??)
}

/// One HTTP/1.1 connection from an application in a pod, kept alive for
/// as many requests as the caller sends.
pub struct Client {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Client {
    /// Connects from `pod` to `to`.
    pub async fn connect(pod: &Pod<'_>, to: SocketAddr) -> TestResult<Self> {
        let stream = connect_from(pod, to)
            .await
            .map_err(|e| format!("connecting from pod {} to {to}: {e}", pod.name()))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Client {
            sender,
            host: to.to_string(),
        })
    }

    /// Sends one request; the status and the body.
    pub async fn send(&mut self, method: &str, path: &str, body: &str) -> TestResult<(u16, Bytes)> {
        let exchange = async {
            self.sender.ready().await?;
            let request = Request::builder()
                .method(method)
                .uri(path)
                .header("host", &self.host)
                .body(Full::new(Bytes::from(body.to_owned())))?;
            let response = self.sender.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, body))
        };
        tokio::time::timeout(CLIENT_TIMEOUT, exchange).await?
    }
}

/// One request on a new connection from `pod` to `to`.
pub async fn request(
    pod: &Pod<'_>,
    to: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> TestResult<(u16, Bytes)> {
    let exchange = async {
        Client::connect(pod, to)
            .await?
            .send(method, path, body)
            .await
    };
    exchange
        .await
        .map_err(|e| format!("{method} {path} from pod {} to {to}: {e}", pod.name()).into())
}
