//! The layer's background tasks, where they run, and the one signal that stops them all.
//!
//! [`CacheLayerBuilder::build`](crate::CacheLayerBuilder::build) starts every task (the
//! write-behind writers and flushers, the freshness samplers, the invalidation log tailer and
//! its Postgres listener, the metrics publisher) through one [`Tasks`], once every check has
//! passed, so a build that fails has started nothing. Each task watches a [`Stop`] and ends at
//! its next wait once it is given; [`CacheLayer::shutdown`](crate::CacheLayer::shutdown)
//! gives it and joins them all. Dropping the [`Tasks`] (with the layer) gives it too: the
//! tasks end at their next wait, without being joined.
//!
//! Where they run: the work the application's load must not delay (the tailer and its
//! listener, the write-behind flushers) on the layer's own thread
//! ([`spawn_background`](Tasks::spawn_background), `background.rs`), when the layer has one;
//! the rest (the write-behind writers, which acknowledge the application's writes, the
//! samplers, the metrics publisher) on the application's runtime ([`spawn`](Tasks::spawn)).
//! The thread outlives `shutdown` (idle: nothing runs there) and ends once the [`Tasks`] is
//! dropped and its tasks have ended.

use std::fmt;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::background::BackgroundRuntime;

/// Owns a layer's background tasks, and the layer's thread when it has one.
pub(crate) struct Tasks {
    stop: watch::Sender<bool>,
    running: Mutex<JoinSet<()>>,
    /// The layer's own thread, for [`spawn_background`](Self::spawn_background).
    background: Option<BackgroundRuntime>,
}

impl fmt::Debug for Tasks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let running = self
            .running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("Tasks")
            .field("stopped", &*self.stop.borrow())
            .field("running", &running)
            .field("background", &self.background.is_some())
            .finish()
    }
}

impl Tasks {
    /// Tasks on the caller's runtime only: [`spawn_background`](Self::spawn_background)
    /// runs there too.
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::with_background(None)
    }

    /// Tasks whose background work runs on `background`, the layer's thread, when given.
    pub(crate) fn with_background(background: Option<BackgroundRuntime>) -> Self {
        Self {
            stop: watch::Sender::new(false),
            running: Mutex::new(JoinSet::new()),
            background,
        }
    }

    /// Runs `task` on the current runtime until it ends; it is expected to end once its
    /// [`Stop`] (from [`signal`](Self::signal)) is given.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.running
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .spawn(task);
    }

    /// Runs `task` on the layer's own thread (the current runtime without one) until it
    /// ends; as [`spawn`](Self::spawn) otherwise: joined by [`join`](Self::join), told to
    /// stop by [`stop`](Self::stop) and by the drop. For work the application's load must not
    /// delay.
    pub(crate) fn spawn_background<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        match &self.background {
            Some(background) => {
                running.spawn_on(background.keep_alive(task), background.handle());
            }
            None => {
                running.spawn(task);
            }
        }
    }

    /// The signal a task watches.
    pub(crate) fn signal(&self) -> Stop {
        Stop(self.stop.subscribe())
    }

    /// Tells every task to stop at its next wait.
    pub(crate) fn stop(&self) {
        self.stop.send_replace(true);
    }

    /// Waits for every task to end (after [`stop`](Self::stop)); tasks still running at
    /// `deadline` are aborted. Returns whether all ended by themselves.
    pub(crate) async fn join(&self, deadline: Instant) -> bool {
        let mut running =
            std::mem::take(&mut *self.running.lock().unwrap_or_else(PoisonError::into_inner));
        let ended = tokio::time::timeout_at(deadline, async {
            while running.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !ended {
            running.shutdown().await;
        }
        ended
    }
}

impl Drop for Tasks {
    /// Stops the tasks without waiting for them: each ends at its next wait (a statement in
    /// flight completes first).
    fn drop(&mut self) {
        self.stop.send_replace(true);
        self.running
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .detach_all();
    }
}

/// The stop signal of a layer's tasks ([`Tasks::signal`]); also given when the [`Tasks`] is
/// dropped.
#[derive(Clone, Debug)]
pub(crate) struct Stop(watch::Receiver<bool>);

impl Stop {
    /// Whether the tasks were told to stop.
    pub(crate) fn is_given(&self) -> bool {
        *self.0.borrow() || self.0.has_changed().is_err()
    }

    /// Returns once the tasks are told to stop.
    pub(crate) async fn given(&mut self) {
        // An error: the `Tasks` was dropped, which stops them too.
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// Runs `work` unless the stop comes first: `None` if it did.
    pub(crate) async fn or<F: Future>(&mut self, work: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            () = self.given() => None,
            out = work => Some(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    /// `n` tasks that each wait for the stop, then count themselves done.
    fn waiting_tasks(tasks: &Tasks, n: usize) -> Arc<AtomicUsize> {
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..n {
            let (mut stop, done) = (tasks.signal(), done.clone());
            tasks.spawn(async move {
                stop.given().await;
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        done
    }

    #[tokio::test]
    async fn join_returns_once_every_task_has_seen_the_stop() {
        let tasks = Tasks::new();
        let done = waiting_tasks(&tasks, 3);
        tasks.stop();
        assert!(tasks.join(Instant::now() + Duration::from_secs(60)).await);
        assert_eq!(done.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn join_aborts_tasks_that_ignore_the_stop_at_the_deadline() {
        let tasks = Tasks::new();
        tasks.spawn(std::future::pending());
        tasks.stop();
        assert!(!tasks.join(Instant::now() + Duration::from_millis(20)).await);
        assert_eq!(
            tokio::runtime::Handle::current()
                .metrics()
                .num_alive_tasks(),
            0
        );
    }

    #[tokio::test]
    async fn background_tasks_run_on_the_layers_thread_and_are_joined_and_stopped_alike() {
        let tasks =
            Tasks::with_background(Some(BackgroundRuntime::start().expect("the thread starts")));
        let (names, mut ran_on) = tokio::sync::mpsc::unbounded_channel();
        for _ in 0..2 {
            let (mut stop, names) = (tasks.signal(), names.clone());
            tasks.spawn_background(async move {
                let _ = names.send(std::thread::current().name().map(str::to_owned));
                stop.given().await;
            });
        }
        for _ in 0..2 {
            let name = ran_on.recv().await.expect("each task reports");
            assert_eq!(name.as_deref(), Some(crate::background::THREAD_NAME));
        }
        tasks.stop();
        assert!(tasks.join(Instant::now() + Duration::from_secs(60)).await);

        // Dropped instead of joined: the tasks see the stop and end.
        let tasks =
            Tasks::with_background(Some(BackgroundRuntime::start().expect("the thread starts")));
        let (ended, gone) = tokio::sync::oneshot::channel::<()>();
        let mut stop = tasks.signal();
        tasks.spawn_background(async move {
            stop.given().await;
            drop(ended);
        });
        drop(tasks);
        assert!(matches!(
            tokio::time::timeout(Duration::from_secs(60), gone).await,
            Ok(Err(_))
        ));
    }

    #[tokio::test]
    async fn dropping_the_owner_gives_the_stop() {
        let tasks = Tasks::new();
        let mut stop = tasks.signal();
        assert!(!stop.is_given());
        assert_eq!(stop.or(async { 7 }).await, Some(7));
        drop(tasks);
        assert!(stop.is_given());
        assert_eq!(stop.or(std::future::pending::<()>()).await, None);
    }
}
