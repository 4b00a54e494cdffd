//! Postgres wake-ups for the tailer: a `LISTEN` on the log's channel, which every writing
//! transaction notifies on (delivered on commit only), with its writer's origin as the
//! payload: a notification of this instance's own writes wakes nothing. While the listener is
//! connected the tailer reads the log only every `backstop_interval` without a notification.
//! A notification only wakes the tailer,
//! which reads the log from its cursor: a notification lost, or sent while the listener was
//! reconnecting, costs at most one poll interval, never a row. When the listener's
//! connection drops, it reconnects and wakes the tailer at once, so what was written in
//! between is read straight away.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use sea_orm::DatabaseConnection;
use sea_orm::sqlx::postgres::PgListener;

use super::journal::CHANNEL;
use super::tailer::Tailer;
use crate::tasks::Tasks;

/// Starts the listener task of `tailer`, on a connection of `db`'s pool, owned by `tasks`;
/// it ends (closing its connection) when their stop is given.
pub(crate) fn spawn(db: &DatabaseConnection, tailer: Arc<Tailer>, tasks: &Tasks) {
    let pool = db.get_postgres_connection_pool().clone();
    let mut stop = tasks.signal();
    tasks.spawn_background(async move {
        let mut listener: Option<PgListener> = None;
        loop {
            if stop.is_given() {
                return;
            }
            let Some(active) = &mut listener else {
                let connected = async {
                    let mut fresh = PgListener::connect_with(&pool).await?;
                    fresh.listen(CHANNEL).await?;
                    Ok::<_, sea_orm::sqlx::Error>(fresh)
                };
                tokio::select! {
                    () = stop.given() => return,
                    connected = connected => match connected {
                        Ok(fresh) => {
                            listener = Some(fresh);
                            tailer.listening.store(true, Ordering::Release);
                            // Rows written while there was no listener are read now.
                            tailer.wake.notify_one();
                        }
                        Err(err) => {
                            tracing::warn!(%err, "invalidation log listener cannot connect; polling");
                            tokio::select! {
                                () = stop.given() => return,
                                () = tokio::time::sleep(tailer.poll_interval()) => {}
                            }
                        }
                    },
                }
                continue;
            };
            tokio::select! {
                () = stop.given() => return,
                received = active.try_recv() => match received {
                    // A notification's payload is its writer's origin: this instance's own
                    // writes have nothing for its tailer.
                    Ok(Some(note)) => {
                        tailer.listening.store(true, Ordering::Release);
                        if note.payload() != tailer.origin() {
                            tailer.wake.notify_one();
                        }
                    }
                    // The connection was lost: reconnect and listen again (above); meanwhile
                    // poll, and read the log from the cursor now.
                    Ok(None) => {
                        tailer.listening.store(false, Ordering::Release);
                        tailer.counters.listener_reconnects.fetch_add(1, Ordering::Relaxed);
                        listener = None;
                        tailer.wake.notify_one();
                    }
                    Err(err) => {
                        tracing::warn!(%err, "invalidation log listener failed; reconnecting");
                        tailer.listening.store(false, Ordering::Release);
                        tailer.counters.listener_reconnects.fetch_add(1, Ordering::Relaxed);
                        listener = None;
                        tailer.wake.notify_one();
                    }
                },
            }
        }
    });
}
