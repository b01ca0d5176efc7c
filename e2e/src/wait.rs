//! Waiting for the cluster to reach a state: poll a check until it yields a
//! value, with a deadline that fails with a message naming what was awaited.
//! Controllers and informers converge in their own time, so a test waits for
//! the state it needs rather than sleeping for a guess.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// How often a check is repeated.
const INTERVAL: Duration = Duration::from_millis(100);

/// Calls `check` until it returns `Some`, or fails after `timeout` with the
/// last thing `check` reported about why it is not there yet.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, String>>,
{
    let started = Instant::now();
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(why) if started.elapsed() >= timeout => {
                return Err(Error::Timeout {
                    what: what.to_string(),
                    after: started.elapsed(),
                    detail: format!("last check: {why}"),
                });
            }
            Err(_) => tokio::time::sleep(INTERVAL).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn returns_the_first_value() {
        let mut calls = 0;
        let got = eventually("three calls", Duration::from_secs(5), || {
            calls += 1;
            let n = calls;
            async move {
                if n >= 3 {
                    Ok(n)
                } else {
                    Err(format!("{n} calls"))
                }
            }
        })
        .await
        .expect("value");
        assert_eq!(got, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn times_out_with_the_last_reason() {
        let err = eventually::<(), _, _>("never", Duration::from_secs(1), || async {
            Err("still nothing".to_string())
        })
        .await
        .expect_err("timeout");
        let text = err.to_string();
        assert!(
            text.contains("never") && text.contains("still nothing"),
            "{text}"
        );
    }
}
