//! Graceful shutdown: one signal that stops the listeners, asks HTTP
//! connections to finish their in-flight requests, and a tracker of every
//! connection task so the process exits when they are done or the grace
//! period runs out, whichever is first.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;

/// The shutdown signal and the tasks it waits for. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Drain {
    signal: CancellationToken,
    tasks: TaskTracker,
}

impl Drain {
    /// A drain nobody has signalled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts draining (SIGTERM, `/shutdown`); idempotent.
    pub fn signal(&self) {
        self.signal.cancel();
    }

    /// Whether draining has started.
    pub fn is_draining(&self) -> bool {
        self.signal.is_cancelled()
    }

    /// Resolves once draining has started.
    pub fn signaled(&self) -> Signaled<'_> {
        Signaled {
            token: &self.signal,
            inner: self.signal.cancelled(),
            registered: None,
        }
    }

    /// Runs `task` as one the drain waits for.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.tasks.spawn(task);
    }

    /// After the signal: waits for tracked tasks, at most `grace`. Returns
    /// how many were still running when the grace period ended.
    pub async fn wait(&self, grace: Duration) -> usize {
        self.tasks.close();
        match tokio::time::timeout(grace, self.tasks.wait()).await {
            Ok(()) => 0,
            Err(_) => self.tasks.len(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`Drain::signaled`]. Every connection loop polls it on
    /// each wake-up: polling it again for the same task costs one atomic
    /// load instead of a trip through the token's waiter list.
    pub struct Signaled<'a> {
        token: &'a CancellationToken,
        #[pin]
        inner: WaitForCancellationFuture<'a>,
        registered: Option<Waker>,
    }
}

impl Future for Signaled<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        if this.token.is_cancelled() {
            return Poll::Ready(());
        }
        // The token wakes the waker it holds; the same task's waker needs
        // no new registration.
        if this
            .registered
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        let poll = this.inner.poll(cx);
        if poll.is_pending() {
            *this.registered = Some(cx.waker().clone());
        }
        poll
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_for_tasks_then_gives_up_at_the_grace_period() {
        let drain = Drain::new();
        drain.spawn(tokio::time::sleep(Duration::from_secs(1)));
        drain.spawn(tokio::time::sleep(Duration::from_secs(100)));
        drain.signal();
        assert!(drain.is_draining());
        assert_eq!(drain.wait(Duration::from_secs(10)).await, 1);
    }

    #[tokio::test]
    async fn a_waiting_signal_wakes_when_the_drain_starts() {
        let drain = Drain::new();
        let (polled, polled_rx) = tokio::sync::oneshot::channel();
        let waiter = {
            let drain = drain.clone();
            tokio::spawn(async move {
                let mut signaled = std::pin::pin!(drain.signaled());
                // Polled again and again while waiting, as connection
                // loops do, then woken by the signal.
                for _ in 0..3 {
                    let ready = std::future::poll_fn(|cx| {
                        Poll::Ready(signaled.as_mut().poll(cx).is_ready())
                    })
                    .await;
                    assert!(!ready);
                }
                let _ = polled.send(());
                signaled.await;
            })
        };
        assert!(polled_rx.await.is_ok());
        drain.signal();
        let done = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert!(matches!(done, Ok(Ok(()))), "{done:?}");
        // Already signalled: resolves at once.
        drain.signaled().await;
    }

    #[tokio::test(start_paused = true)]
    async fn returns_early_when_everything_finished() {
        let drain = Drain::new();
        drain.spawn(tokio::time::sleep(Duration::from_millis(5)));
        let start = tokio::time::Instant::now();
        assert_eq!(drain.wait(Duration::from_secs(30)).await, 0);
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
