//! Opaque forwarding: bytes copied both ways unchanged, with half-close kept
//! (when one side finishes sending, the other side's write half is shut and
//! the other direction keeps flowing), as a direct connection behaves.

use std::io;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

use super::io::PrefixedIo;

/// Copies between `client` and `upstream` until both directions end.
///
/// `client_prefix` (read from the client during detection) goes upstream
/// first; `server_prefix` (a server's greeting) goes to the client first.
/// Returns the bytes sent upstream and to the client.
pub async fn forward<C, U>(
    client: C,
    client_prefix: Bytes,
    upstream: U,
    server_prefix: Bytes,
) -> io::Result<(u64, u64)>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let mut client = PrefixedIo::new(client_prefix, client);
    let mut upstream = PrefixedIo::new(server_prefix, upstream);
    tokio::io::copy_bidirectional(&mut client, &mut upstream).await
}
