//! When to stop: SIGTERM (what Kubernetes sends) or SIGINT, seen by every
//! server and the vote bot through a cloneable [`Shutdown`].

use tokio::sync::watch;

/// Resolves [`Shutdown::wait`] for every clone.
#[derive(Debug)]
pub struct Trigger {
    tx: watch::Sender<bool>,
}

/// Waits for the [`Trigger`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// A trigger and the shutdown it fires.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger { tx }, Shutdown { rx })
}

impl Trigger {
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }
}

impl Shutdown {
    /// Returns once shutdown is triggered, or its trigger is dropped (no
    /// one is left who could trigger it: nothing to wait for).
    pub async fn wait(&mut self) {
        let _ = self.rx.wait_for(|stop| *stop).await;
    }

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }
}

/// A shutdown triggered by the first SIGTERM or SIGINT.
pub fn on_signals() -> std::io::Result<Shutdown> {
    use tokio::signal::unix::{SignalKind, signal};

    // Install both handlers now, so a signal that comes early is not lost.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (trigger, shutdown) = channel();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!("{name}: shutting down");
        trigger.trigger();
    });
    Ok(shutdown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn trigger_reaches_every_clone() {
        let (trigger, mut a) = channel();
        let mut b = a.clone();
        assert!(!a.is_triggered());
        trigger.trigger();
        a.wait().await;
        b.wait().await;
        assert!(b.is_triggered());
    }

    #[tokio::test]
    async fn a_dropped_trigger_ends_the_wait() {
        let (trigger, mut shutdown) = channel();
        drop(trigger);
        shutdown.wait().await;
    }
}
