//! Group commit: concurrent write-behind writers hand their outbox rows to one task, which
//! inserts everything that is waiting in one statement; each writer is acknowledged when
//! that statement has committed. The wait is bounded by one insert: rows that arrive while
//! an insert runs go in the next.

use std::time::Duration;

use sea_orm::{DatabaseConnection, DbErr, EntityTrait};
use tokio::sync::{mpsc, oneshot};

use super::table::outbox_row;

/// Most rows in one group insert.
const MAX_GROUP: usize = 1_000;
/// Retries of a group insert the database refused for a deadlock or a busy lock.
const RETRIES: u32 = 5;

type Request = (outbox_row::ActiveModel, oneshot::Sender<Result<(), DbErr>>);

/// Scheduler turns the insert task gives writers to join a group before it inserts.
const GATHER_TURNS: usize = 16;

/// The bounded wait of group commit, without a timer: writers acknowledged by the last
/// insert are usually about to send their next row, so the task yields a few scheduler turns
/// and takes what arrived, until a turn brings nothing (or [`GATHER_TURNS`] have passed).
/// One turn costs a lone writer about a microsecond; under load the groups grow, and fewer,
/// larger inserts commit more rows per second.
async fn gather(incoming: &mut mpsc::UnboundedReceiver<Request>, group: &mut Vec<Request>) {
    for _ in 0..GATHER_TURNS {
        if group.len() >= MAX_GROUP {
            return;
        }
        tokio::task::yield_now().await;
        let before = group.len();
        while group.len() < MAX_GROUP {
            match incoming.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        if group.len() == before {
            return;
        }
    }
}

/// The sending side; the insert task ends when it is dropped.
#[derive(Debug, Clone)]
pub(crate) struct GroupWriter {
    requests: mpsc::UnboundedSender<Request>,
}

impl GroupWriter {
    /// Starts the insert task on the current runtime.
    pub(crate) fn start(db: DatabaseConnection) -> Self {
        let (requests, mut incoming) = mpsc::unbounded_channel::<Request>();
        tokio::spawn(async move {
            let mut group = Vec::new();
            while incoming.recv_many(&mut group, MAX_GROUP).await > 0 {
                gather(&mut incoming, &mut group).await;
                let (rows, acks): (Vec<_>, Vec<_>) = group.drain(..).unzip();
                let mut attempt = 0;
                let result = loop {
                    let result = outbox_row::Entity::insert_many(rows.iter().cloned())
                        .exec_without_returning(&db)
                        .await
                        .map(|_| ());
                    match result {
                        Err(err) if attempt < RETRIES && super::is_transient(&err) => {
                            attempt += 1;
                            tokio::time::sleep(Duration::from_millis(5 << attempt)).await;
                        }
                        other => break other,
                    }
                };
                for ack in acks {
                    let _ = ack.send(result.clone());
                }
            }
        });
        Self { requests }
    }

    /// Inserts `row` with whatever else is waiting; returns once it has committed.
    pub(crate) async fn write(&self, row: outbox_row::ActiveModel) -> Result<(), DbErr> {
        let (ack, acked) = oneshot::channel();
        self.requests
            .send((row, ack))
            .map_err(|_| DbErr::Custom("the outbox writer has stopped".into()))?;
        acked
            .await
            .map_err(|_| DbErr::Custom("the outbox writer has stopped".into()))?
    }
}
