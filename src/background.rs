//! The layer's own thread (DESIGN G13, issues 21 and 26): background work the application's
//! load must not delay (the invalidation log tailer and its Postgres listener, the
//! write-behind flushers) runs on a current-thread tokio runtime of its own, on one OS thread
//! named `sea-orm-cache`, with connections of its own (`own_pool.rs`). A CPU-busy
//! application, or one whose pool connections are all taken by long queries, then neither
//! keeps those tasks from being polled nor from getting a connection.
//!
//! [`BackgroundRuntime`] owns the thread; [`OnBackground`] is what the work needs to run
//! there: the runtime's handle and the connection to use. The thread ends once its owner
//! (the layer's `Tasks`) is dropped and every task spawned there as background work has
//! ended (each watches the layer's stop, which that drop gives).

use std::future::Future;
use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tracing::instrument::{Instrument, WithSubscriber};

/// The name of the layer's thread.
pub(crate) const THREAD_NAME: &str = "sea-orm-cache";

/// The layer's own thread and the current-thread runtime it runs.
#[derive(Debug)]
pub(crate) struct BackgroundRuntime {
    handle: Handle,
    /// Held by the owner and by every task spawned with [`keep_alive`](Self::keep_alive):
    /// the thread ends once all are dropped.
    alive: mpsc::Sender<()>,
}

impl BackgroundRuntime {
    /// Starts the thread and its runtime.
    ///
    /// # Errors
    /// The thread or the runtime could not be created.
    pub(crate) fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = runtime.handle().clone();
        let (alive, mut ended) = mpsc::channel::<()>(1);
        std::thread::Builder::new()
            .name(THREAD_NAME.to_owned())
            .spawn(move || {
                // Nothing is ever sent: `recv` returns once every sender is dropped. Tasks
                // still on the runtime then (work an application call handed over, which no
                // one waits for any more) are dropped with it.
                runtime.block_on(async move { while ended.recv().await.is_some() {} });
            })?;
        Ok(Self { handle, alive })
    }

    /// The runtime's handle, to spawn on.
    pub(crate) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// `task`, holding the thread alive until it ends.
    pub(crate) fn keep_alive<F>(&self, task: F) -> impl Future<Output = ()> + Send + 'static
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let alive = self.alive.clone();
        async move {
            task.await;
            drop(alive);
        }
    }
}

/// Where background work runs and which connection it uses: the layer's thread and its own
/// pool, or (without a thread of its own: in unit tests, or work built before it) the
/// caller's runtime and the application's connection. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct OnBackground {
    handle: Option<Handle>,
    db: DatabaseConnection,
}

impl OnBackground {
    /// Work on the layer's thread (`handle`), with `db`.
    pub(crate) fn new(handle: Option<Handle>, db: DatabaseConnection) -> Arc<Self> {
        Arc::new(Self { handle, db })
    }

    /// The connection background work uses.
    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Runs the future `make` returns on the layer's thread and waits for it there, so its
    /// statements run on that runtime's connections rather than on the caller's: for the
    /// calls an application makes into background work (a flush it asks for, shutdown's
    /// final flush, a catch-up of the log). If the thread has ended (the layer was dropped)
    /// or there is none, it runs on the caller's runtime instead. Either way it is traced in
    /// the caller's span and to the caller's `tracing` subscriber. Dropping the returned
    /// future does not cancel the work once it runs on the layer's thread.
    pub(crate) async fn run<F, Fut, T>(&self, make: F) -> T
    where
        F: Fn() -> Fut,
        Fut: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        if let Some(handle) = &self.handle {
            // Traced as if it ran here: in the caller's span, to the caller's subscriber.
            let work = make().in_current_span().with_current_subscriber();
            match handle.spawn(work).await {
                Ok(out) => return out,
                Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                // The runtime is shutting down: run here.
                Err(_) => {}
            }
        }
        make().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_named_thread_and_it_ends_once_the_owner_and_tasks_are_gone() {
        let runtime = BackgroundRuntime::start().expect("the thread starts");
        let on = OnBackground::new(
            Some(runtime.handle().clone()),
            DatabaseConnection::default(),
        );
        let name = on
            .run(|| async { std::thread::current().name().map(str::to_owned) })
            .await;
        assert_eq!(name.as_deref(), Some(THREAD_NAME));

        // A task that keeps the thread alive until it is told to end.
        let (end, ended) = tokio::sync::oneshot::channel::<()>();
        let (thread_gone, gone) = std::sync::mpsc::channel::<()>();
        runtime.handle().spawn(runtime.keep_alive(async move {
            let _ = ended.await;
        }));
        // Dropped with the runtime, on the thread, once it ends.
        struct Signal(std::sync::mpsc::Sender<()>);
        impl Drop for Signal {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let signal = Signal(thread_gone);
        runtime.handle().spawn(async move {
            std::future::pending::<()>().await;
            drop(signal)
        });
        drop(runtime);
        assert!(
            gone.try_recv().is_err(),
            "a task still runs: the thread lives"
        );
        end.send(()).expect("the task waits");
        gone.recv_timeout(std::time::Duration::from_secs(60))
            .expect("the thread ended, dropping its runtime's tasks");
        // The work a caller hands over once the thread has ended runs on the caller's runtime.
        let here = on
            .run(|| async { std::thread::current().name().map(str::to_owned) })
            .await;
        assert_ne!(here.as_deref(), Some(THREAD_NAME));
    }
}
