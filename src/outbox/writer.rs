//! Group commit: concurrent write-behind writers hand their outbox rows to one task, which
//! inserts everything that is waiting in one statement; each writer is acknowledged when
//! that statement has committed. The wait is bounded by one insert plus a few scheduler
//! turns ([`gather`]): rows that arrive while an insert runs go in the next.
//!
//! The hand-over is bounded: at most [`QUEUED`] rows wait for the task beside the group it
//! is inserting; further writers wait to hand theirs over (backpressure), so rows held in
//! memory do not grow while the database is slow or down.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use sea_orm::{
    ActiveValue, ConnectionTrait, DatabaseConnection, DbBackend, DbErr, EntityTrait, Statement,
    TransactionTrait, Value,
};
use tokio::sync::{mpsc, oneshot};

use super::table::outbox_row;
use crate::coherence::Journal;
use crate::error::Error;
use crate::invalidation::LogEntry;
use crate::retry::retrying;
use crate::stats::Counters;
use crate::tasks::{Stop, Tasks};

/// Most rows in one group insert.
const MAX_GROUP: usize = 1_000;
/// Most rows waiting for the insert task while it inserts a group: one more group.
const QUEUED: usize = MAX_GROUP;

type Request = (outbox_row::ActiveModel, oneshot::Sender<Result<(), DbErr>>);

/// Inserts `rows` in one statement; with `journal` (coherence on), atomically with a log row
/// for each row's key, so other instances drop what they cached for it: on Postgres in the
/// same single statement ([`POSTGRES_INSERT_LOGGED`]), elsewhere in one transaction.
async fn insert(
    db: &DatabaseConnection,
    journal: Option<(&Journal, &'static str)>,
    rows: &[outbox_row::ActiveModel],
) -> Result<(), DbErr> {
    let Some((journal, entity)) = journal else {
        return insert_on(db, rows).await;
    };
    if db.get_database_backend() == DbBackend::Postgres {
        // The outbox rows, their log rows and the notification in one statement: atomic
        // under autocommit, one round trip.
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            POSTGRES_INSERT_LOGGED,
            [Value::from(rows_json(rows)?), journal.origin.clone().into()],
        );
        return db.execute_raw(statement).await.map(|_| ());
    }
    let txn = db.begin().await?;
    insert_on(&txn, rows).await?;
    let entries = rows
        .iter()
        .map(|row| LogEntry {
            entity,
            key: row.pk.try_as_ref().cloned(),
        })
        .collect::<Vec<_>>();
    journal.write(&txn, &entries).await?;
    txn.commit().await
}

/// Inserts `rows` in one statement (one implicit transaction under autocommit).
///
/// On Postgres the rows travel as one JSON parameter of a statement whose text never
/// changes, so it is prepared once per connection and planned generically; a multi-row
/// `VALUES` would be a new statement for every group size, each prepared anew on every
/// pooled connection with hundreds of parameters to bind.
async fn insert_on<C: ConnectionTrait>(
    db: &C,
    rows: &[outbox_row::ActiveModel],
) -> Result<(), DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        let statement = Statement::from_sql_and_values(
            DbBackend::Postgres,
            POSTGRES_INSERT,
            [Value::from(rows_json(rows)?)],
        );
        return db.execute_raw(statement).await.map(|_| ());
    }
    outbox_row::Entity::insert_many(rows.iter().cloned())
        .exec_without_returning(db)
        .await
        .map(|_| ())
}

/// The Postgres group insert: one row per element of the JSON array `$1`.
const POSTGRES_INSERT: &str = "INSERT INTO sea_orm_cache_outbox \
     (entity, pk, op, payload, created_at, attempts, last_error, available_at) \
     SELECT entity, pk, op, payload, created_at, 0, NULL, created_at \
     FROM json_to_recordset($1::json) \
     AS r(entity text, pk text, op text, payload text, created_at bigint)";

/// [`POSTGRES_INSERT`] that also adds each row's key to the invalidation log (origin `$2`)
/// and notifies the log's listeners.
const POSTGRES_INSERT_LOGGED: &str = "WITH r AS (SELECT * FROM json_to_recordset($1::json) \
     AS r(entity text, pk text, op text, payload text, created_at bigint)), \
     outbox AS (INSERT INTO sea_orm_cache_outbox \
     (entity, pk, op, payload, created_at, attempts, last_error, available_at) \
     SELECT entity, pk, op, payload, created_at, 0, NULL, created_at FROM r), \
     logged AS (INSERT INTO sea_orm_cache_invalidation (entity, pk, origin, created_at) \
     SELECT entity, pk, $2::text, created_at FROM r) \
     SELECT pg_notify('sea_orm_cache_invalidation', $2::text)";

/// `rows` as the JSON array [`POSTGRES_INSERT`] reads.
fn rows_json(rows: &[outbox_row::ActiveModel]) -> Result<String, DbErr> {
    fn set<V: Into<Value>>(value: &ActiveValue<V>) -> Result<&V, DbErr> {
        value
            .try_as_ref()
            .ok_or_else(|| DbErr::Custom("an outbox row is missing a column".into()))
    }
    fn encode(err: serde_json::Error) -> DbErr {
        DbErr::Custom(format!("encoding outbox rows: {err}"))
    }
    let mut json = Vec::with_capacity(rows.len() * 160);
    json.push(b'[');
    for (n, row) in rows.iter().enumerate() {
        if n > 0 {
            json.push(b',');
        }
        for (name, text) in [
            ("{\"entity\":", set(&row.entity)?),
            (",\"pk\":", set(&row.pk)?),
            (",\"op\":", set(&row.op)?),
            (",\"payload\":", set(&row.payload)?),
        ] {
            json.extend_from_slice(name.as_bytes());
            serde_json::to_writer(&mut json, text).map_err(encode)?;
        }
        json.extend_from_slice(b",\"created_at\":");
        serde_json::to_writer(&mut json, set(&row.created_at)?).map_err(encode)?;
        json.push(b'}');
    }
    json.push(b']');
    String::from_utf8(json).map_err(|err| DbErr::Custom(format!("encoding outbox rows: {err}")))
}

/// Scheduler turns the insert task gives writers to join a group before it inserts.
const GATHER_TURNS: usize = 16;

/// The bounded wait of group commit, without a timer: writers acknowledged by the last
/// insert are usually about to send their next row, so the task yields a few scheduler turns
/// and takes what arrived, until a turn brings nothing (or [`GATHER_TURNS`] have passed).
/// A lone writer pays one turn; under load the groups grow, and fewer, larger inserts commit
/// more rows per second (64 writers on Postgres: groups of ~13 rows without it, ~30-60 with).
async fn gather(incoming: &mut mpsc::Receiver<Request>, group: &mut Vec<Request>) {
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

/// The sending side of an entity's group writer; its insert task runs from
/// [`start`](Self::start) until the layer's tasks stop.
pub(crate) struct GroupWriter {
    requests: mpsc::Sender<Request>,
    /// The insert task's work, until [`start`](Self::start) takes it.
    task: Mutex<Option<WriterTask>>,
}

impl fmt::Debug for GroupWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupWriter")
            .field("stopped", &self.requests.is_closed())
            .finish_non_exhaustive()
    }
}

/// What the insert task inserts with.
struct WriterTask {
    incoming: mpsc::Receiver<Request>,
    db: DatabaseConnection,
    entity: &'static str,
    journal: Option<Arc<Journal>>,
    counters: Arc<Counters>,
}

impl WriterTask {
    /// Inserts what writers send, group by group. Once `stop` is given it takes no more
    /// rows, inserts the ones already sent (their writers are waiting for the answer), and
    /// ends.
    async fn run(mut self, mut stop: Stop) {
        let mut group = Vec::new();
        loop {
            let received = match stop
                .or(self.incoming.recv_many(&mut group, MAX_GROUP))
                .await
            {
                Some(received) => received,
                None => {
                    self.incoming.close();
                    self.incoming.recv_many(&mut group, MAX_GROUP).await
                }
            };
            if received == 0 {
                return;
            }
            gather(&mut self.incoming, &mut group).await;
            let (rows, acks): (Vec<_>, Vec<_>) = group.drain(..).unzip();
            let journal = self.journal.as_deref().map(|j| (j, self.entity));
            let result = retrying(&self.counters, || insert(&self.db, journal, &rows)).await;
            for ack in acks {
                let _ = ack.send(result.clone());
            }
        }
    }
}

impl GroupWriter {
    /// The writer of `entity`'s outbox rows; with `journal`, each group's transaction also
    /// adds the rows' keys to the invalidation log. A group insert the database refuses as
    /// transient is retried ([`retrying`]), counted in `counters`. Nothing runs until
    /// [`start`](Self::start).
    pub(crate) fn new(
        db: DatabaseConnection,
        entity: &'static str,
        journal: Option<Arc<Journal>>,
        counters: Arc<Counters>,
    ) -> Self {
        let (requests, incoming) = mpsc::channel::<Request>(QUEUED);
        let task = WriterTask {
            incoming,
            db,
            entity,
            journal,
            counters,
        };
        Self {
            requests,
            task: Mutex::new(Some(task)),
        }
    }

    /// Starts the insert task, owned by `tasks` (a second call does nothing).
    pub(crate) fn start(&self, tasks: &Tasks) {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            tasks.spawn(task.run(tasks.signal()));
        }
    }

    /// Inserts `row` with whatever else is waiting; returns once it has committed.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the insert task no longer takes rows (the layer's tasks were
    /// stopped); the database's error if the insert failed.
    pub(crate) async fn write(&self, row: outbox_row::ActiveModel) -> Result<(), Error> {
        // Unanswered only if the task was aborted (at shutdown's deadline) with the row in
        // its insert: whether that committed is unknown, so the write is not acknowledged.
        let answer = self
            .enqueue(row)
            .await?
            .await
            .map_err(|_| DbErr::Custom("the outbox writer stopped before answering".into()))?;
        Ok(answer?)
    }

    /// Hands `row` to the insert task, waiting while [`QUEUED`] rows already wait for it;
    /// returns the receiver of its acknowledgement.
    ///
    /// # Errors
    /// [`Error::Shutdown`] if the insert task no longer takes rows.
    async fn enqueue(
        &self,
        row: outbox_row::ActiveModel,
    ) -> Result<oneshot::Receiver<Result<(), DbErr>>, Error> {
        let (ack, acked) = oneshot::channel();
        self.requests
            .send((row, ack))
            .await
            .map_err(|_| Error::Shutdown)?;
        Ok(acked)
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::ActiveValue::{NotSet, Set};

    use super::*;
    use crate::clock::wall_ms;

    fn row(pk: &str, payload: &str) -> outbox_row::ActiveModel {
        outbox_row::ActiveModel {
            id: NotSet,
            entity: Set("profile".into()),
            pk: Set(pk.into()),
            op: Set("upsert".into()),
            payload: Set(payload.into()),
            created_at: Set(42),
            attempts: Set(0),
            last_error: Set(None),
            available_at: Set(42),
        }
    }

    #[test]
    fn the_postgres_insert_names_the_outbox_table() {
        assert!(POSTGRES_INSERT.contains(&format!("INTO {} ", super::super::OUTBOX_TABLE)));
    }

    #[test]
    fn rows_travel_as_json_objects_with_their_text_escaped() {
        let payload = r#"{"name":"a \"quoted\" \\ name\n"}"#;
        let json = rows_json(&[row("[1]", payload), row("[\"k\"]", "{}")]).expect("encodes");
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(parsed[0]["payload"], payload);
        assert_eq!(parsed[0]["created_at"], 42);
        assert_eq!(parsed[1]["pk"], "[\"k\"]");
        assert_eq!(parsed[1]["entity"], "profile");
        assert_eq!(parsed[1]["op"], "upsert");
    }

    /// Issue 20 item 7: while the insert task is stuck (SQLite's write lock held by another
    /// connection), writers beyond one group being inserted and [`QUEUED`] waiting wait to
    /// hand their rows over; once the database is free every row commits.
    #[cfg(feature = "sqlite")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_wait_while_the_hand_over_is_full() {
        use std::sync::atomic::{AtomicUsize, Ordering};

        use sea_orm::{Database, SqliteTransactionMode, TransactionOptions};

        let path = std::env::temp_dir().join(format!(
            "soc_writer_bound_{}_{}.db",
            std::process::id(),
            wall_ms()
        ));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let db = Database::connect(url.as_str()).await.expect("connects");
        super::super::create_tables(&db).await.expect("tables");
        let holder = Database::connect(url.as_str()).await.expect("connects");
        let lock = holder
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
            .expect("write lock");

        let owner = crate::tasks::Tasks::new();
        let writer = Arc::new(GroupWriter::new(
            db.clone(),
            "profile",
            None,
            Arc::default(),
        ));
        writer.start(&owner);
        // Rows handed to the task, and rows it has answered (committed or failed): the
        // difference is what it holds in memory.
        let handed_over = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let bound = MAX_GROUP + QUEUED;
        let writers = bound + 100;
        let tasks: Vec<_> = (0..writers)
            .map(|n| {
                let writer = writer.clone();
                let (handed_over, answered) = (handed_over.clone(), answered.clone());
                tokio::spawn(async move {
                    let acked = writer.enqueue(row(&format!("[{n}]"), "{}")).await?;
                    handed_over.fetch_add(1, Ordering::SeqCst);
                    let result = acked.await.expect("answered");
                    answered.fetch_add(1, Ordering::SeqCst);
                    result
                })
            })
            .collect();
        // Read in this order, the difference can only err low.
        let held = || {
            let handed_over = handed_over.load(Ordering::SeqCst);
            handed_over.saturating_sub(answered.load(Ordering::SeqCst))
        };
        // The task is stuck inserting its first group; writers fill the channel behind it
        // (or, were it unbounded, all hand their rows over).
        while writer.requests.capacity() > 0 && handed_over.load(Ordering::SeqCst) < writers {
            tokio::task::yield_now().await;
        }
        // The other writers run and find no room.
        for _ in 0..1_000 {
            tokio::task::yield_now().await;
        }
        assert!(
            held() <= bound,
            "{} rows held, more than one group and {QUEUED} waiting, while the database is stuck",
            held()
        );
        assert!(handed_over.load(Ordering::SeqCst) < writers, "writers wait");
        lock.commit().await.expect("releases");
        let mut committed = 0;
        for task in tasks {
            committed += usize::from(task.await.expect("joins").is_ok());
        }
        let rows = outbox_row::Entity::find().all(&db).await.expect("reads");
        assert_eq!(rows.len(), committed, "every acknowledged row committed");
        assert!(
            committed >= writers - bound,
            "the rows after the stuck group commit"
        );
        drop(writer);
        let _ = db.close().await;
        let _ = holder.close().await;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    #[test]
    fn a_row_missing_a_column_is_an_error() {
        let mut bad = row("[1]", "{}");
        bad.payload = NotSet;
        assert!(rows_json(&[bad]).is_err());
    }
}
