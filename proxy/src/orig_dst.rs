//! The original destination of a redirected connection (`SO_ORIGINAL_DST`).
//!
//! `weft-proxy init` installs `REDIRECT` rules, so every connection the proxy
//! accepts on 4143/4140 arrives with its destination rewritten to the proxy.
//! The kernel keeps the address the client really dialled in conntrack; this
//! module reads it back through socket2's safe wrapper of the getsockopt.

use std::io;
use std::net::SocketAddr;

use socket2::SockRef;

/// The address the peer dialled before the redirect rewrote it to our listener.
///
/// For a connection that was not redirected the kernel answers with the
/// address it was accepted on (conntrack tracks it without NAT) or `ENOENT`
/// (conntrack not loaded); either way the caller learns no other address.
pub fn original_dst(stream: &tokio::net::TcpStream) -> io::Result<SocketAddr> {
    let sock = SockRef::from(stream);
    // The option lives in the IP layer of the socket's family: asking the
    // IPv4 option on an IPv6 socket (or the reverse) is an error, so pick the
    // one that matches how the connection was accepted.
    let addr = match stream.local_addr()? {
        SocketAddr::V4(_) => sock.original_dst_v4()?,
        SocketAddr::V6(_) => sock.original_dst_v6()?,
    };
    addr.as_socket().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "SO_ORIGINAL_DST returned a non-IP address",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A plain loopback connection has no NAT entry: the answer is either an
    // error or the address the connection really reached, never another one.
    // The redirected case is proven in tests/init_netns.rs, where real
    // iptables rules exist.
    #[tokio::test]
    async fn unredirected_connection_reports_no_other_address() -> io::Result<()> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let _client = tokio::net::TcpStream::connect(addr).await?;
        let (server, _) = listener.accept().await?;
        match original_dst(&server) {
            Ok(dst) => assert_eq!(dst, addr),
            Err(e) => assert_ne!(e.kind(), io::ErrorKind::InvalidData, "{e}"),
        }
        Ok(())
    }
}
