//! Graceful shutdown: one trigger, many listeners, and a way to wait until every task has finished.
//!
//! The mini-redis pattern: [`channel`] returns a [`Shutdown`] that every long-lived task clones and keeps
//! until it has cleaned up, and a [`ShutdownComplete`] the node awaits; it resolves once all `Shutdown`
//! clones are dropped. [`ShutdownTrigger`] can start the shutdown (signals, the `stop` RPC) without holding
//! completion back. No global state: the node creates the channel and hands out clones.

use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, watch};

/// Runs on the triggering thread just before the listeners are woken.
type BeforeHook = Box<dyn Fn() + Send + Sync>;

/// Starts a shutdown; cheap to clone, does not delay completion.
#[derive(Clone)]
pub struct ShutdownTrigger {
    tx: Arc<watch::Sender<bool>>,
    before: Arc<OnceLock<BeforeHook>>,
}

impl std::fmt::Debug for ShutdownTrigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShutdownTrigger").field("triggered", &self.is_triggered()).finish_non_exhaustive()
    }
}

impl ShutdownTrigger {
    /// Asks every task to stop. Idempotent. The hook set with [`ShutdownTrigger::before_trigger`]
    /// runs first, while every task is still running.
    pub fn trigger(&self) {
        if !self.is_triggered() {
            if let Some(hook) = self.before.get() {
                hook();
            }
        }
        self.tx.send_replace(true);
    }

    /// Sets the one hook that captures state before any task sees the shutdown (the node takes its
    /// anchors there: once the connection tasks wake, they leave the peer registry). Returns `false`
    /// if a hook was already set.
    pub fn before_trigger(&self, hook: impl Fn() + Send + Sync + 'static) -> bool {
        self.before.set(Box::new(hook)).is_ok()
    }

    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }
}

/// Held by each task for as long as it runs; see the module docs.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
    trigger: ShutdownTrigger,
    _alive: mpsc::Sender<()>,
}

impl Shutdown {
    /// Resolves once shutdown has been triggered (at once if it already was).
    pub async fn wait(&mut self) {
        // The sender lives in `self.trigger`, so `wait_for` can only fail if it is dropped, which it is not.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }

    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    pub fn trigger(&self) {
        self.trigger.trigger();
    }

    pub fn trigger_handle(&self) -> ShutdownTrigger {
        self.trigger.clone()
    }
}

/// Resolves when every [`Shutdown`] clone has been dropped.
#[derive(Debug)]
pub struct ShutdownComplete {
    rx: mpsc::Receiver<()>,
}

impl ShutdownComplete {
    pub async fn wait(mut self) {
        // Nothing is ever sent; `recv` returns `None` once the last sender is gone.
        let _ = self.rx.recv().await;
    }
}

/// A new shutdown channel.
pub fn channel() -> (Shutdown, ShutdownComplete) {
    let (tx, rx) = watch::channel(false);
    let (alive_tx, alive_rx) = mpsc::channel(1);
    let trigger = ShutdownTrigger { tx: Arc::new(tx), before: Arc::new(OnceLock::new()) };
    (Shutdown { rx, trigger, _alive: alive_tx }, ShutdownComplete { rx: alive_rx })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn completes_when_every_task_has_dropped_its_handle() {
        let (shutdown, complete) = channel();
        let trigger = shutdown.trigger_handle();
        let mut task_handle = shutdown.clone();
        let task = tokio::spawn(async move {
            task_handle.wait().await;
            drop(task_handle);
        });
        drop(shutdown);
        assert!(!trigger.is_triggered());
        trigger.trigger();
        tokio::time::timeout(Duration::from_secs(10), complete.wait()).await.expect("all tasks finished");
        task.await.expect("task");
    }

    #[tokio::test]
    async fn the_hook_runs_once_before_any_listener_sees_the_shutdown() {
        let (shutdown, _complete) = channel();
        let trigger = shutdown.trigger_handle();
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (watcher, log) = (shutdown.clone(), seen.clone());
        assert!(trigger.before_trigger(move || log.lock().unwrap().push(watcher.is_triggered())));
        assert!(!trigger.before_trigger(|| {}), "one hook only");
        trigger.trigger();
        shutdown.trigger();
        assert_eq!(*seen.lock().unwrap(), vec![false], "ran once, before the shutdown was visible");
    }
}
