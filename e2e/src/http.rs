//! A minimal plain-HTTP GET for loopback admin endpoints (`/readyz`,
//! `/metrics`) of processes the harness runs. HTTP/1.0 with the connection
//! closed by the server, so the body is everything after the headers and no
//! chunked decoding is needed.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// A response: status code and body.
#[derive(Debug, Clone)]
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The body as text (lossy UTF-8).
    pub body: String,
}

/// `GET path` from 127.0.0.1:`port`, within `timeout`.
pub async fn get(port: u16, path: &str, timeout: Duration) -> Result<Response> {
    get_from(SocketAddr::from((Ipv4Addr::LOCALHOST, port)), path, timeout).await
}

/// `GET path` from `addr` (a pod on the node's bridge, say), within
/// `timeout`.
pub async fn get_from(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response> {
    let context = format!("GET http://{addr}{path}");
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).await?;
        Ok::<_, std::io::Error>(bytes)
    };
    let bytes = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| {
            Error::io(context.clone())(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer",
            ))
        })?
        .map_err(Error::io(context.clone()))?;
    parse(&bytes).ok_or_else(|| {
        Error::io(context)(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not an HTTP response",
        ))
    })
}

fn parse(bytes: &[u8]) -> Option<Response> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(Response {
        status,
        body: body.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn parses_status_and_body() {
        let r = parse(b"HTTP/1.0 503 Service Unavailable\r\ncontent-length: 3\r\n\r\nno\n")
            .expect("parse");
        assert_eq!(r.status, 503);
        assert_eq!(r.body, "no\n");
        assert!(parse(b"garbage").is_none());
    }

    #[tokio::test]
    async fn talks_to_a_server() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.expect("read");
            assert!(buf[..n].starts_with(b"GET /readyz HTTP/1.0\r\n"));
            s.write_all(b"HTTP/1.1 200 OK\r\n\r\nok")
                .await
                .expect("write");
        });
        let r = get(port, "/readyz", Duration::from_secs(5))
            .await
            .expect("get");
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
        server.await.expect("server");
    }
}
