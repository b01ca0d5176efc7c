//! Watches over real TLS and HTTP/2 against a small stand-in destination
//! on loopback that, like weft-control, takes a limited number of streams
//! per connection: watches share a connection until it is full; a refusal
//! and an unreachable destination are errors, and watches waiting on a
//! connect that fails share its failure; the cache gets its first answer
//! over the wire.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body::{Body, Frame};
use http_body_util::BodyExt as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use weft_certs::{Issuer, SpiffeId, TrustAnchor};

use super::*;
use crate::destination::watch::WatchError;
use crate::destination::{Cache, DEFAULT_SETTINGS, DestinationClient, Subscribe, WatchMetrics};
use crate::tls::{TrustAnchors, config};

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const TD: &str = "cluster.local";
const HOUR: Duration = Duration::from_secs(3600);

/// A body that sends its line and then ends, or stays open as a quiet
/// watch does.
struct Line {
    line: Option<Bytes>,
    end: bool,
}

impl Body for Line {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.line.take() {
            Some(line) => Poll::Ready(Some(Ok(Frame::data(line)))),
            None if self.end => Poll::Ready(None),
            None => Poll::Pending,
        }
    }
}

/// The stand-in: `/v1/watch?addr=...` answers `{"meshed":false}` and stays
/// open, except for port 1, which gets a 503.
struct Server {
    addr: SocketAddr,
    anchors: TrustAnchors,
    connections: Arc<AtomicUsize>,
}

async fn server(max_streams: u32) -> TestResult<Server> {
    let anchor = TrustAnchor::generate("test anchor", HOUR)?;
    let pair = anchor.issue_issuer("test issuer", HOUR)?;
    let issuer = Issuer::from_pem(&pair.cert_pem, &pair.key_pem)?;
    let identity = SpiffeId::new(TD, "weft", "weft-control")?;
    let (leaf, _) = issuer.issue_with_key(
        &identity,
        &["127.0.0.1".to_owned()],
        HOUR,
        SystemTime::now(),
    )?;
    let chain =
        CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes())?;
    let mut tls = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let connections = Arc::new(AtomicUsize::new(0));
    let accepted = connections.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            accepted.fetch_add(1, Ordering::SeqCst);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let watch = service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                    let refused = req.uri().query().is_some_and(|q| q.ends_with(":1"));
                    let line: &'static [u8] = if refused {
                        b"{\"error\":\"caches not synced\"}"
                    } else {
                        b"{\"meshed\":false}\n"
                    };
                    let mut response = Response::new(Line {
                        line: Some(Bytes::from_static(line)),
                        end: refused,
                    });
                    if refused {
                        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    }
                    Ok::<_, Infallible>(response)
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .max_concurrent_streams(max_streams)
                    .serve_connection(TokioIo::new(tls), watch)
                    .await;
            });
        }
    });
    Ok(Server {
        addr,
        anchors: TrustAnchors::from_pem(anchor.cert_pem())?,
        connections,
    })
}

fn client(addr: SocketAddr, anchors: &TrustAnchors) -> TestResult<ControlClient> {
    Ok(ControlClient::new(
        &addr.to_string(),
        config::control_client(anchors)?,
        Duration::from_secs(2),
    )?)
}

#[tokio::test]
async fn watches_share_a_connection_until_it_is_full() -> TestResult {
    let server = server(2).await?;
    let connections = Connections::new(client(server.addr, &server.anchors)?, 2);
    let mut streams = Vec::new();
    for _ in 0..5 {
        let (response, slot) = connections.get("/v1/watch?addr=10.0.0.1:80").await?;
        assert_eq!(response.status(), 200);
        streams.push((response, slot));
    }
    assert_eq!(connections.count().await, 3);
    assert_eq!(server.connections.load(Ordering::SeqCst), 3);

    // Two watches end: their places are taken again, no new connection.
    streams.drain(..2);
    for _ in 0..2 {
        streams.push(connections.get("/v1/watch?addr=10.0.0.1:80").await?);
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 3);

    // Each stream carries its own body.
    let (response, slot) = streams.remove(0);
    let first = response
        .into_body()
        .frame()
        .await
        .ok_or("no frame")??
        .into_data()
        .map_err(|_| "not data")?;
    assert_eq!(&first[..], b"{\"meshed\":false}\n");

    // Every watch ends: of the empty connections one stays for the next.
    drop(slot);
    streams.clear();
    let _next = connections.get("/v1/watch?addr=10.0.0.1:80").await?;
    assert_eq!(connections.count().await, 1);
    assert_eq!(server.connections.load(Ordering::SeqCst), 3);
    Ok(())
}

#[tokio::test]
async fn a_refusal_and_an_unreachable_destination_are_errors() -> TestResult {
    let server = server(100).await?;
    let destination = Arc::new(DestinationClient::new(client(
        server.addr,
        &server.anchors,
    )?));
    let err = destination
        .subscribe(SocketAddr::from(([10, 0, 0, 1], 1)))
        .await
        .err()
        .ok_or("a refused watch was accepted")?;
    assert_eq!(
        err,
        WatchError::Refused {
            status: 503,
            body: "{\"error\":\"caches not synced\"}".to_owned()
        }
    );

    let nobody = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    let unreachable = Arc::new(DestinationClient::new(client(nobody, &server.anchors)?));
    let err = unreachable
        .subscribe(SocketAddr::from(([10, 0, 0, 1], 80)))
        .await
        .err()
        .ok_or("subscribed to nobody")?;
    assert!(matches!(err, WatchError::Open(_)), "{err}");
    Ok(())
}

#[tokio::test]
async fn the_cache_gets_its_first_answer_over_the_wire() -> TestResult {
    let server = server(100).await?;
    let metrics = WatchMetrics::default();
    let cache = Cache::new(
        Arc::new(DestinationClient::new(client(
            server.addr,
            &server.anchors,
        )?)),
        TD,
        DEFAULT_SETTINGS,
        metrics.clone(),
    );
    for port in [80, 81, 82] {
        let answer = cache
            .get(SocketAddr::from(([10, 0, 0, 1], port)))
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(answer.identity, None);
    }
    assert_eq!(metrics.watches(), 3);
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        1,
        "three watches, one connection"
    );
    Ok(())
}

#[tokio::test]
async fn watches_waiting_on_a_failed_connect_share_its_failure() -> TestResult {
    // Takes TCP connections and never answers, like a hung destination.
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let accepted = Arc::new(AtomicUsize::new(0));
    let counting = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            counting.fetch_add(1, Ordering::SeqCst);
            held.push(tcp);
        }
    });
    let anchors = server(1).await?.anchors;
    let control = ControlClient::new(
        &addr.to_string(),
        config::control_client(&anchors)?,
        Duration::from_millis(300),
    )?;
    let connections = Connections::new(control, 100);
    let path = "/v1/watch?addr=10.0.0.1:80";
    let (a, b, c, d) = tokio::join!(
        connections.get(path),
        connections.get(path),
        connections.get(path),
        connections.get(path)
    );
    for result in [a, b, c, d] {
        assert!(matches!(result, Err(WatchError::Open(_))));
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connect for all four"
    );
    // A later watch tries again.
    assert!(connections.get(path).await.is_err());
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
    Ok(())
}
