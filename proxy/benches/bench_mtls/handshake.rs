//! Mesh TLS handshakes per second on one core, in process: the proxy's own
//! server and client configurations (`weft_proxy::tls::config`) with real
//! certificates, over loopback TCP, one handshake at a time — full (no
//! resumption) and resumed.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use weft_certs::SpiffeId;
use weft_proxy::identity::IdentityStore;
use weft_proxy::tls::{TrustAnchors, config, peer};

use super::Clock;
use super::mtls_support::{NS, Pki, TD};
use super::run_support::TestResult;

fn store(pki: &Pki, sa: &str) -> TestResult<Arc<IdentityStore>> {
    let (chain, key) = pki.leaf(sa, &[], Duration::from_secs(3600), SystemTime::now())?;
    let store = Arc::new(IdentityStore::new(SpiffeId::new(TD, NS, sa)?));
    let provider = weft_proxy::tls::provider();
    let key = rustls::sign::CertifiedKey::from_der(chain, key, &provider)?;
    store.install(key, SystemTime::now() + Duration::from_secs(3600));
    Ok(store)
}

/// Runs `n` handshakes (each with a one-byte exchange) and returns per second.
async fn run(
    n: usize,
    acceptor: TlsAcceptor,
    connector: TlsConnector,
    name: rustls::pki_types::ServerName<'static>,
) -> TestResult<f64> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        for _ in 0..n {
            let (tcp, _) = listener.accept().await?;
            // As the proxy's own sockets: without it, Nagle holds the
            // client's one byte behind its Finished flight until a delayed
            // ACK (40 ms), and that is what this would measure.
            tcp.set_nodelay(true)?;
            let mut tls = acceptor.accept(tcp).await?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await?;
            tls.write_all(&byte).await?;
            tls.shutdown().await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let start = Clock::now();
    for _ in 0..n {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let mut tls = connector.connect(name.clone(), tcp).await?;
        tls.write_all(b"x").await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    server.await??;
    Ok(rate)
}

/// Prints full handshakes per second.
pub async fn report(n: usize) -> TestResult {
    let pki = Pki::new("handshake anchor")?;
    let anchors = TrustAnchors::from_pem(pki.anchor.cert_pem())?;
    let server = config::mesh_server(&anchors, TD, store(&pki, "server")?)?;
    let client_store = store(&pki, "client")?;
    let name = peer::server_name(&SpiffeId::new(TD, NS, "server")?)?;
    println!("\n### Mesh TLS handshakes, in process, one at a time (ECDSA P-256, TLS 1.3)\n");
    println!("| handshake | per second | µs each |");
    println!("| --- | --- | --- |");
    // Mesh TLS never resumes a session (see `tls::config::mesh_server`):
    // every connection pays the full handshake measured here.
    let client = config::mesh_client(&anchors, TD, client_store)?;
    let rate = run(
        n,
        TlsAcceptor::from(server),
        TlsConnector::from(client),
        name,
    )
    .await?;
    println!("| full | {rate:.0} | {:.0} |", 1e6 / rate);
    Ok(())
}
