//! Loopback ports for the cluster's listeners, picked by the kernel so that
//! clusters started in parallel (one per test) do not collide.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::error::{Error, Result};

/// `n` distinct free ports on 127.0.0.1.
///
/// All listeners are held until every port is chosen, so the kernel never
/// hands out the same one twice; another process can still take a port
/// between this call and the component binding it, which shows up as that
/// component failing to start with its log saying so.
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(Error::io("binding 127.0.0.1:0"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(Error::io("reading a bound port"))
}

/// Whether something accepts connections on 127.0.0.1:`port`.
pub fn listening(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_free() {
        let ports = free_ports(5).expect("ports");
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), 5);
        assert!(ports.iter().all(|p| !listening(*p)));
    }

    #[test]
    fn sees_a_listener() {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = l.local_addr().expect("addr").port();
        assert!(listening(port));
    }
}
