//! Protocol detection that serves whichever side speaks first.
//!
//! On accept the proxy starts connecting upstream at once and then waits for
//! the first of: the client's first bytes (classified by [`classify`]), the
//! server's first bytes (a server-speaks-first protocol such as MySQL or SMTP:
//! opaque, forwarded the moment they arrive), or a timeout (opaque).
//!
//! Two timeouts, because only one case holds bytes back: a client prefix
//! that could still become an HTTP request line waits at most
//! [`Timeouts::partial`] (short) from its first byte. While neither side has
//! said anything nothing is held back — any byte from either side ends the
//! wait at once — so that wait ([`Timeouts::quiet`]) can be long, and a client
//! that connects early and writes late (a busy or CPU-throttled application)
//! still gets HTTP, not opaque bytes without metrics.

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::connect::Dial;
use super::context::Protocol;

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The longest prefix read before giving up on HTTP/1 and going opaque: a
/// request line longer than this is unusual enough to forward untouched.
pub const MAX_DETECT_BYTES: usize = 8 * 1024;

// Methods longer than this are not HTTP methods anyone uses; stopping early
// keeps binary protocols from waiting for a space that never comes.
const MAX_METHOD_LEN: usize = 24;

/// Classifies a connection's first client bytes; `None` means "need more".
pub fn classify(prefix: &[u8]) -> Option<Protocol> {
    let first = *prefix.first()?;
    if first == 0x16 {
        // A TLS record of type handshake, protocol major version 3.
        return match prefix.get(1) {
            None => None,
            Some(0x03) => Some(Protocol::Tls),
            Some(_) => Some(Protocol::Opaque),
        };
    }
    if prefix.starts_with(H2_PREFACE) {
        return Some(Protocol::Http2);
    }
    if H2_PREFACE.starts_with(prefix) {
        return None;
    }
    let verdict = http1_request_line(prefix);
    if verdict.is_none() && prefix.len() >= MAX_DETECT_BYTES {
        return Some(Protocol::Opaque);
    }
    verdict
}

// `method SP request-target SP HTTP/1.x CRLF`, checked as far as the bytes go.
fn http1_request_line(prefix: &[u8]) -> Option<Protocol> {
    let mut rest = prefix;
    // Method: a token.
    let method_len = rest.iter().take_while(|b| is_tchar(**b)).count();
    if method_len > MAX_METHOD_LEN {
        return Some(Protocol::Opaque);
    }
    if method_len == rest.len() {
        return None;
    }
    if method_len == 0 || rest[method_len] != b' ' {
        return Some(Protocol::Opaque);
    }
    rest = &rest[method_len + 1..];
    // Request target: visible ASCII.
    let target_len = rest
        .iter()
        .take_while(|b| (0x21..=0x7e).contains(*b))
        .count();
    if target_len == rest.len() {
        return None;
    }
    if target_len == 0 || rest[target_len] != b' ' {
        return Some(Protocol::Opaque);
    }
    rest = &rest[target_len + 1..];
    // Version, then the line end (CRLF, or the bare LF parsers accept).
    for version in [&b"HTTP/1.1"[..], b"HTTP/1.0"] {
        let n = rest.len().min(version.len());
        if rest[..n] != version[..n] {
            continue;
        }
        return match rest.get(version.len()..) {
            None | Some([]) | Some([b'\r']) => None,
            Some([b'\r', b'\n', ..]) | Some([b'\n', ..]) => Some(Protocol::Http1),
            Some(_) => Some(Protocol::Opaque),
        };
    }
    Some(Protocol::Opaque)
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// An HTTP/2 SETTINGS frame header on stream 0: what an h2 (gRPC) server
/// sends on accept without waiting for the client's preface.
fn is_h2_settings(bytes: &[u8]) -> bool {
    bytes.len() >= 9 && bytes[3] == 0x04 && bytes[5..9] == [0, 0, 0, 0]
}

/// What detection decided, and the bytes it read on the way.
#[derive(Debug)]
pub struct Detection {
    /// The protocol to serve.
    pub protocol: Protocol,
    /// Bytes already read from the client, to replay upstream.
    pub client_prefix: Bytes,
    /// Bytes already read from the server, to replay to the client.
    pub server_prefix: Bytes,
    /// Why detection ended, for logs.
    pub reason: &'static str,
}

/// How long detection waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From the client's first byte, while its prefix is still ambiguous.
    pub partial: Duration,
    /// From accept, while neither side has sent anything.
    pub quiet: Duration,
}

/// Races the client's first bytes, the server's first bytes and the timeouts.
///
/// Returns the verdict and the upstream dial as it then stands: connected,
/// failed, or (when the client spoke before the handshake finished) still
/// connecting.
pub async fn detect<C>(
    client: &mut C,
    dial: Dial,
    timeouts: Timeouts,
) -> io::Result<(Detection, Dial)>
where
    C: AsyncRead + Unpin,
{
    let deadline = tokio::time::sleep(timeouts.quiet);
    tokio::pin!(deadline);
    // A deferred dial stays deferred: only the client is listened to.
    let (mut connecting, mut stream, mut failed, deferred) = match dial {
        Dial::Deferred(c) => (None, None, None, Some(c)),
        Dial::Connecting(c) => (Some(c), None, None, None),
        Dial::Connected(s) => (None, Some(s), None, None),
        Dial::Failed(e) => (None, None, Some(e), None),
    };
    let mut client_buf = BytesMut::with_capacity(1024);
    let mut server_buf = BytesMut::new();
    // An h2 server's SETTINGS arrived first: keep listening to the client only.
    let mut server_settings = false;
    let (protocol, reason) = loop {
        let listen_server = stream.is_some() && !server_settings;
        tokio::select! {
            // The client is read first: its bytes decide when both are ready.
            biased;
            read = client.read_buf(&mut client_buf) => {
                if read? == 0 {
                    break (Protocol::Opaque, "client closed");
                }
                match classify(&client_buf) {
                    None => {
                        // Bytes are held back from now on: keep it short.
                        let partial = tokio::time::Instant::now() + timeouts.partial;
                        if partial < deadline.deadline() {
                            deadline.as_mut().reset(partial);
                        }
                    }
                    Some(Protocol::Http2) if server_settings => break (Protocol::Http2, "client preface"),
                    Some(_) if server_settings => break (Protocol::Opaque, "server spoke first"),
                    Some(protocol) => break (protocol, "client spoke first"),
                }
            }
            connected = async {
                match connecting.as_mut() {
                    Some(c) => c.await,
                    None => std::future::pending().await,
                }
            }, if connecting.is_some() => {
                connecting = None;
                match connected {
                    Ok(s) => stream = Some(s),
                    Err(e) => failed = Some(e),
                }
            }
            read = async {
                match stream.as_mut() {
                    Some(s) => s.read_buf(&mut server_buf).await,
                    None => std::future::pending().await,
                }
            }, if listen_server => {
                match read {
                    Ok(n) if n > 0 && is_h2_settings(&server_buf) => server_settings = true,
                    Ok(n) if n > 0 => break (Protocol::Opaque, "server spoke first"),
                    // Closed or reset before a word: the upstream is gone, but
                    // the client still gets its answer (a 502, or a reset).
                    Ok(_) => {
                        stream = None;
                        failed = Some(io::Error::new(
                            io::ErrorKind::ConnectionAborted,
                            "upstream closed the connection before any byte",
                        ));
                    }
                    Err(e) => {
                        stream = None;
                        failed = Some(e);
                    }
                }
            }
            () = &mut deadline => break (Protocol::Opaque, "detection timeout"),
        }
    };
    let dial = match (deferred, connecting, stream, failed) {
        (Some(c), ..) => Dial::Deferred(c),
        (None, Some(c), _, _) => Dial::Connecting(c),
        (None, None, Some(s), _) => Dial::Connected(s),
        (None, None, None, Some(e)) => Dial::Failed(e),
        (None, None, None, None) => Dial::Failed(io::Error::other("upstream connection lost")),
    };
    let detection = Detection {
        protocol,
        client_prefix: client_buf.freeze(),
        server_prefix: server_buf.freeze(),
        reason,
    };
    Ok((detection, dial))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http1_request_lines() {
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(
            classify(b"POST /a?b=c HTTP/1.0\r\nHost: x\r\n"),
            Some(Protocol::Http1)
        );
        assert_eq!(classify(b"GET / HTTP/1.1\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"OPTIONS * HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(
            classify(b"CONNECT example.com:443 HTTP/1.1\r\n"),
            Some(Protocol::Http1)
        );
    }

    #[test]
    fn every_strict_prefix_of_a_request_line_needs_more() {
        let line = b"GET /index.html HTTP/1.1\r\n";
        for end in 1..line.len() {
            assert_eq!(classify(&line[..end]), None, "prefix {end}");
        }
    }

    #[test]
    fn http2_preface() {
        assert_eq!(classify(H2_PREFACE), Some(Protocol::Http2));
        for end in 1..H2_PREFACE.len() {
            assert_eq!(classify(&H2_PREFACE[..end]), None, "prefix {end}");
        }
    }

    #[test]
    fn tls_client_hello() {
        assert_eq!(classify(&[0x16]), None);
        assert_eq!(
            classify(&[0x16, 0x03, 0x01, 0x02, 0x00]),
            Some(Protocol::Tls)
        );
        assert_eq!(classify(&[0x16, 0x42]), Some(Protocol::Opaque));
    }

    #[test]
    fn other_protocols_are_opaque_at_once() {
        // Redis inline command, memcached, a binary frame, HTTP/2 without
        // the preface, a lowercase-looking but malformed line.
        assert_eq!(classify(b"PING\r\n"), Some(Protocol::Opaque));
        assert_eq!(classify(b"stats detail on\r\n"), Some(Protocol::Opaque));
        assert_eq!(classify(&[0x00, 0x00, 0x12, 0x04]), Some(Protocol::Opaque));
        assert_eq!(classify(b"GET / HTTP/2.0\r\n"), Some(Protocol::Opaque));
        assert_eq!(classify(b"GET  / HTTP/1.1\r\n"), Some(Protocol::Opaque));
        assert_eq!(classify(b"GET / HTTP/1.1 \r\n"), Some(Protocol::Opaque));
        assert_eq!(classify(b"GET / HTTP/1.1\rX"), Some(Protocol::Opaque));
        assert_eq!(classify(&[b'A'; 40]), Some(Protocol::Opaque));
    }

    #[test]
    fn overlong_lines_go_opaque() {
        let mut line = b"GET /".to_vec();
        line.resize(MAX_DETECT_BYTES, b'a');
        assert_eq!(classify(&line), Some(Protocol::Opaque));
        assert_eq!(classify(&line[..MAX_DETECT_BYTES - 1]), None);
    }

    const TIMEOUTS: Timeouts = Timeouts {
        partial: Duration::from_millis(300),
        quiet: Duration::from_secs(10),
    };

    fn no_upstream() -> Dial {
        Dial::Failed(io::Error::new(io::ErrorKind::ConnectionRefused, "test"))
    }

    #[tokio::test(start_paused = true)]
    async fn quiet_connections_wait_the_long_timeout() -> io::Result<()> {
        let (_client, mut proxy_side) = tokio::io::duplex(1024);
        let start = tokio::time::Instant::now();
        let (found, _) = detect(&mut proxy_side, no_upstream(), TIMEOUTS).await?;
        assert_eq!(
            (found.protocol, found.reason),
            (Protocol::Opaque, "detection timeout")
        );
        assert_eq!(start.elapsed(), TIMEOUTS.quiet);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_prefix_waits_the_short_timeout() -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let (mut client, mut proxy_side) = tokio::io::duplex(1024);
        client.write_all(b"GET /index").await?;
        let start = tokio::time::Instant::now();
        let (found, _) = detect(&mut proxy_side, no_upstream(), TIMEOUTS).await?;
        assert_eq!(found.protocol, Protocol::Opaque);
        assert_eq!(&found.client_prefix[..], b"GET /index");
        assert_eq!(start.elapsed(), TIMEOUTS.partial);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_late_client_is_still_detected() -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let (mut client, mut proxy_side) = tokio::io::duplex(1024);
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(2)).await;
            client.write_all(b"GET / HTTP/1.1\r\n").await?;
            Ok::<_, io::Error>(client)
        });
        let (found, _) = detect(&mut proxy_side, no_upstream(), TIMEOUTS).await?;
        assert_eq!(found.protocol, Protocol::Http1);
        drop(writer.await.map_err(io::Error::other)??);
        Ok(())
    }

    #[tokio::test]
    async fn a_server_that_speaks_first_is_heard_at_once() -> io::Result<()> {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let dial = Dial::start(listener.local_addr()?, Duration::from_secs(5));
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await?;
            stream.write_all(b"220 ready\r\n").await?;
            Ok::<_, io::Error>(stream)
        });
        let (_client, mut proxy_side) = tokio::io::duplex(1024);
        let (found, dial) = detect(&mut proxy_side, dial, TIMEOUTS).await?;
        assert_eq!(
            (found.protocol, found.reason),
            (Protocol::Opaque, "server spoke first")
        );
        assert_eq!(&found.server_prefix[..], b"220 ready\r\n");
        assert!(matches!(dial, Dial::Connected(_)));
        drop(server.await.map_err(io::Error::other)??);
        Ok(())
    }

    #[test]
    fn empty_needs_more() {
        assert_eq!(classify(b""), None);
    }
}
