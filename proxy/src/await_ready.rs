//! `weft-proxy await`: waits until the local proxy answers `GET /ready` with
//! 200, or gives up after a timeout.
//!
//! The classic-sidecar `postStart` hook runs it so the kubelet starts the
//! app only once the proxy can carry its traffic. It speaks just enough
//! HTTP/1.1 to read a status line: the admin server is ours and local, and a
//! full client would cost the image more than it buys.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout};

/// How often the admin server is asked.
const INTERVAL: Duration = Duration::from_millis(100);
/// The longest one probe may take; a stalled admin server is retried.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// The most of an answer read while looking for the status line.
const MAX_STATUS_LINE: usize = 1024;

/// The arguments of `weft-proxy await`.
#[derive(Debug, Clone, clap::Args)]
pub struct AwaitArgs {
    /// How long to wait: `120s`, `2m`, `500ms` (a bare number is seconds).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// The proxy's admin server.
    #[arg(long, default_value = "127.0.0.1:4191")]
    pub admin_addr: SocketAddr,
}

/// Why the proxy was not found ready.
#[derive(Debug, thiserror::Error)]
pub enum AwaitError {
    /// No 200 from `/ready` before the timeout.
    #[error("proxy not ready: http://{addr}/ready did not answer 200 within {waited:?} ({last})")]
    NotReady {
        /// The admin address asked.
        addr: SocketAddr,
        /// How long we waited.
        waited: Duration,
        /// The last answer or failure seen.
        last: String,
    },
}

impl AwaitError {
    /// The process exit code documented for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            AwaitError::NotReady { .. } => 1,
        }
    }
}

/// Polls `GET /ready` on the admin server until it answers 200 or
/// `args.timeout` has passed.
pub async fn wait_ready(args: &AwaitArgs) -> Result<(), AwaitError> {
    let deadline = Instant::now() + args.timeout;
    let mut last = "no attempt made".to_owned();
    let mut first = true;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AwaitError::NotReady {
                addr: args.admin_addr,
                waited: args.timeout,
                last,
            });
        }
        let limit = left.min(PROBE_TIMEOUT);
        let outcome = timeout(limit, probe(args.admin_addr)).await;
        let cut_short = limit < PROBE_TIMEOUT && !first;
        first = false;
        match outcome {
            Ok(Ok(200)) => return Ok(()),
            Ok(Ok(code)) => last = format!("last answer: HTTP {code}"),
            Ok(Err(e)) => last = e,
            // A probe cut short by the deadline says little; keep the
            // previous answer, which is what an operator needs to see.
            Err(_) if cut_short => {}
            Err(_) => last = format!("last probe got no answer within {limit:?}"),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        sleep(INTERVAL.min(left)).await;
    }
}

/// One `GET /ready`: the status code, or why there was none.
async fn probe(addr: SocketAddr) -> Result<u16, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("last connect failed: {e}"))?;
    let request = format!(
        "GET /ready HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: weft-proxy-await\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("last request failed: {e}"))?;

    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < MAX_STATUS_LINE {
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("last read failed: {e}"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    status_code(&buf).ok_or_else(|| {
        let shown = String::from_utf8_lossy(&buf[..buf.len().min(64)]).into_owned();
        format!("last answer was not HTTP: {shown:?}")
    })
}

/// The code of an `HTTP/1.x NNN reason` status line.
fn status_code(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|&b| b == b'\r').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut words = line.split(' ');
    let version = words.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = words.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// Parses `500ms`, `30s`, `2m`, `1h`, or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let expected = || format!("`{text}` is not a duration (expected e.g. 500ms, 120s, 2m, 1h)");
    let n: u64 = digits.parse().map_err(|_| expected())?;
    let per_unit = match unit {
        "ms" => Duration::from_millis(1),
        "" | "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(expected()),
    };
    u32::try_from(n)
        .ok()
        .and_then(|n| per_unit.checked_mul(n))
        .ok_or_else(expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("120s"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("7"), Ok(Duration::from_secs(7)));
        for bad in ["", "s", "1.5s", "-1s", "10d", "99999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn status_lines_are_read_strictly() {
        assert_eq!(status_code(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            status_code(b"HTTP/1.0 503 Service Unavailable\r\n"),
            Some(503)
        );
        assert_eq!(status_code(b"HTTP/1.1 200"), Some(200));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b"HTTP/1.1 2000 OK\r\n"), None);
        assert_eq!(status_code(b""), None);
    }

    /// An admin server that answers `/ready` with each status in turn, then
    /// keeps repeating the last one.
    async fn admin_server(statuses: Vec<u16>) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let mut i = 0;
            while let Ok((mut s, _)) = listener.accept().await {
                let code = statuses[i.min(statuses.len() - 1)];
                i += 1;
                let mut req = [0u8; 1024];
                let _ = s.read(&mut req).await;
                let answer = format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\n\r\n");
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        Ok(addr)
    }

    #[tokio::test]
    async fn returns_once_ready_answers_200() -> std::io::Result<()> {
        let addr = admin_server(vec![503, 503, 200]).await?;
        let args = AwaitArgs {
            timeout: Duration::from_secs(10),
            admin_addr: addr,
        };
        let result = wait_ready(&args).await;
        assert!(result.is_ok(), "{result:?}");
        Ok(())
    }

    #[tokio::test]
    async fn times_out_with_the_last_answer() -> std::io::Result<()> {
        let addr = admin_server(vec![503]).await?;
        let args = AwaitArgs {
            timeout: Duration::from_secs(1),
            admin_addr: addr,
        };
        let err = wait_ready(&args).await.err().map(|e| e.to_string());
        assert_eq!(
            err,
            Some(format!(
                "proxy not ready: http://{addr}/ready did not answer 200 within 1s (last answer: HTTP 503)"
            ))
        );
        Ok(())
    }

    #[tokio::test]
    async fn times_out_when_nothing_listens() -> std::io::Result<()> {
        // Bind then drop: the port is known to be free, so connects are refused.
        let addr = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
        let args = AwaitArgs {
            timeout: Duration::from_millis(300),
            admin_addr: addr,
        };
        let err = wait_ready(&args).await.err();
        assert!(
            matches!(&err, Some(AwaitError::NotReady { last, .. }) if last.starts_with("last connect failed")),
            "{err:?}"
        );
        Ok(())
    }
}
