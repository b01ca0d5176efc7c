//! The benchmark's upstream: answers every request (HTTP/1.1 or HTTP/2
//! prior knowledge) with a 1 KiB body after reading the request body.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

pub const BODY_SIZE: usize = 1024;

/// Starts the server on `bind`, on a thread and runtime of its own (made
/// from the calling thread, so in its network namespace); returns the
/// address it listens on.
pub fn start(bind: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(bind)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("bench-server".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let body = Bytes::from(vec![b'x'; BODY_SIZE]);
                while let Ok((stream, _)) = listener.accept().await {
                    let _ = stream.set_nodelay(true);
                    let body = body.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req: Request<Incoming>| {
                            let body = body.clone();
                            async move {
                                // Read the request body whole, as an app would.
                                let _ = req.into_body().collect().await;
                                Ok::<_, Infallible>(Response::new(Full::new(body)))
                            }
                        });
                        let _ = auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), svc)
                            .await;
                    });
                }
            });
        })?;
    Ok(addr)
}
