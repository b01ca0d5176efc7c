//! Graceful shutdown: one signal that stops the listeners, asks HTTP
//! connections to finish their in-flight requests, and a tracker of every
//! connection task so the process exits when they are done or the grace
//! period runs out, whichever is first.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
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
    pub async fn signaled(&self) {
        self.signal.cancelled().await;
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

    #[tokio::test(start_paused = true)]
    async fn returns_early_when_everything_finished() {
        let drain = Drain::new();
        drain.spawn(tokio::time::sleep(Duration::from_millis(5)));
        let start = tokio::time::Instant::now();
        assert_eq!(drain.wait(Duration::from_secs(30)).await, 0);
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
