//! What a write through the cache layer's connection does to the cache: each statement is
//! read by [`crate::sql`] for its table and keys and becomes *effects* (invalidate these keys,
//! or every entry of an entity), which [`crate::connection`] runs at once under autocommit or
//! buffers until the outermost commit.

use std::collections::HashMap;
use std::fmt;
use std::mem;
use std::sync::Arc;

use sea_orm::{DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult, Value};

use crate::spans;
use crate::sql::{self, Classified, Verb};

/// Work to do on the cache once a write is committed, and, for an effect that changes what a
/// key (or an entity) holds, the invalidation other instances must apply
/// ([`LogEntry`], written to the invalidation log in the writing transaction).
pub(crate) struct Effect {
    run: Box<dyn FnOnce() + Send + Sync>,
    log: Option<LogEntry>,
}

impl Effect {
    /// Local work only: nothing for other instances (an outbox reservation, a flush record).
    pub(crate) fn local(run: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self {
            run: Box::new(run),
            log: None,
        }
    }

    /// Work that changes what `key` of `entity` holds (`None`: every key of it); other
    /// instances invalidate the same.
    pub(crate) fn logged(
        entity: &'static str,
        key: Option<String>,
        run: impl FnOnce() + Send + Sync + 'static,
    ) -> Self {
        Self {
            run: Box::new(run),
            log: Some(LogEntry { entity, key }),
        }
    }

    /// The invalidation other instances must apply, if any.
    pub(crate) fn log(&self) -> Option<&LogEntry> {
        self.log.as_ref()
    }
}

/// One invalidation for the other instances: a key of an entity, as its canonical
/// [`key_text`](crate::key_text()), or the whole entity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LogEntry {
    /// Table name of the entity.
    pub(crate) entity: &'static str,
    /// The key's canonical text; `None` for every key of the entity.
    pub(crate) key: Option<String>,
}

/// How a cached table answers a write the connection saw.
#[async_trait::async_trait]
pub(crate) trait TableCache: Send + Sync {
    /// Effects known before the statement runs; `None` when the keys must come from its
    /// result (RETURNING rows, MySQL's last insert id).
    fn plan(&self, write: &sql::Write) -> Option<Vec<Effect>>;
    /// Invalidation of the keys in `rows`, or `None` if they do not carry the key columns.
    fn keys_in_rows(&self, rows: &[QueryResult]) -> Option<Vec<Effect>>;
    /// Invalidation of an auto-increment key reported by the database.
    fn key_of_insert_id(&self, id: u64) -> Option<Effect>;
    /// Invalidation of every entry of the entity.
    fn everything(&self) -> Effect;
    /// Applies another instance's invalidation now, through the fence: the key of this
    /// canonical text, or every key (`None`, or a text that names no key of this entity,
    /// which is also returned as the error).
    fn remote(&self, key: Option<&str>) -> Result<(), crate::key::KeyTextError>;
    /// Whether the entity is write-behind: a write to its table must come after its pending
    /// outbox rows ([`apply_pending`](Self::apply_pending)).
    fn is_write_behind(&self) -> bool;
    /// The canonical key texts of every row `write` can change, when the statement names
    /// them all (and moves no key); `None` when it may touch any row.
    fn written_keys(&self, write: &sql::Write) -> Option<Vec<String>>;
    /// Applies the entity's pending outbox rows of `keys` (`None`: all of them) on `txn`,
    /// before a write to its table made in that transaction; returns what to record once it
    /// commits.
    async fn apply_pending(
        &self,
        txn: &DatabaseTransaction,
        keys: Option<&[String]>,
    ) -> Result<Option<Effect>, DbErr>;
    /// Applies the entity's pending outbox rows through its flusher, in its batches and
    /// transactions, outside any caller's transaction.
    async fn flush_pending(&self) -> Result<(), DbErr>;
}

/// The cached tables, by name.
#[derive(Default)]
pub(crate) struct Tables {
    by_name: HashMap<&'static str, Arc<dyn TableCache>>,
}

impl fmt::Debug for Tables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

impl Tables {
    /// Drops every entry of every cached table.
    pub(crate) fn invalidate_everything(&self) {
        for table in self.by_name.values() {
            // `None` names every key: there is no text to misread.
            let _ = table.remote(None);
        }
    }

    /// Registers the cache of table `name`.
    pub(crate) fn insert(&mut self, name: &'static str, table: Arc<dyn TableCache>) {
        self.by_name.insert(name, table);
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Arc<dyn TableCache>> {
        self.by_name.get(name).or_else(|| {
            self.by_name
                .iter()
                .find(|(table, _)| table.eq_ignore_ascii_case(name))
                .map(|(_, cache)| cache)
        })
    }

    /// What a statement does to the cache: effects to run once it is committed, and tables
    /// whose keys must be read from the statement's result.
    pub(crate) fn plan(&self, sql: &str, values: &[Value], backend: DbBackend) -> Planned {
        let mut planned = Planned::default();
        if is_plain_select(sql) {
            return planned;
        }
        for statement in sql::classify(sql, values, backend) {
            match statement {
                Classified::Read => {}
                Classified::Everything => {
                    planned.now = self.by_name.values().map(|t| t.everything()).collect();
                    planned.from_result.clear();
                    planned.write_behind = self
                        .by_name
                        .values()
                        .filter(|t| t.is_write_behind())
                        .map(|t| (t.clone(), None))
                        .collect();
                    return planned;
                }
                Classified::Write(write) => {
                    if let Some(table) = self.get(&write.table) {
                        if table.is_write_behind() {
                            planned.writes_behind(table, table.written_keys(&write));
                        }
                        match table.plan(&write) {
                            Some(effects) => planned.now.extend(effects),
                            None => planned.from_result.push(FromResult {
                                table: table.clone(),
                                // Only a one-row INSERT on MySQL or SQLite reports its key as
                                // the last insert id.
                                by_insert_id: matches!(write.verb, Verb::Insert { .. })
                                    && backend != DbBackend::Postgres,
                            }),
                        }
                    }
                }
            }
        }
        planned
    }
}

/// Whether `sql` is a `SELECT` (the common case), without reading it further.
fn is_plain_select(sql: &str) -> bool {
    let head = sql.trim_start();
    head.get(..6)
        .is_some_and(|word| word.eq_ignore_ascii_case("select"))
        && !head.contains(';')
}

#[derive(Default)]
pub(crate) struct Planned {
    now: Vec<Effect>,
    from_result: Vec<FromResult>,
    /// Write-behind tables the statement writes, with the key texts it writes (`None`: any
    /// row): their pending rows go first.
    write_behind: Vec<WrittenBehind>,
}

/// A write-behind table a statement writes, and the key texts it writes (`None`: any row).
type WrittenBehind = (Arc<dyn TableCache>, Option<Vec<String>>);

/// A write whose keys only its result can tell.
struct FromResult {
    table: Arc<dyn TableCache>,
    /// Whether the result's last insert id names the written row.
    by_insert_id: bool,
}

impl Planned {
    pub(crate) fn is_empty(&self) -> bool {
        self.now.is_empty() && self.from_result.is_empty()
    }

    /// The log entries of the statement's effects when they are all known before it runs
    /// (none must be read from its result).
    pub(crate) fn known_logs(&self) -> Option<impl Iterator<Item = &LogEntry>> {
        self.from_result
            .is_empty()
            .then(|| self.now.iter().filter_map(Effect::log))
    }

    /// Whether the statement writes a write-behind entity's table.
    pub(crate) fn writes_write_behind(&self) -> bool {
        !self.write_behind.is_empty()
    }

    /// Records that the statement writes write-behind `table`, at `keys` (`None`: any row).
    fn writes_behind(&mut self, table: &Arc<dyn TableCache>, keys: Option<Vec<String>>) {
        match self
            .write_behind
            .iter_mut()
            .find(|(t, _)| Arc::ptr_eq(t, table))
        {
            None => self.write_behind.push((table.clone(), keys)),
            Some((_, known)) => match (known.as_mut(), keys) {
                (Some(known), Some(keys)) => known.extend(keys),
                _ => *known = None,
            },
        }
    }

    /// Before the statement's transaction begins (autocommit only): the write-behind tables
    /// it writes at rows it cannot name have their pending rows applied by their flushers,
    /// in the flushers' batches, so the statement's own transaction applies only what was
    /// written meanwhile instead of holding its locks while it applies the whole outbox.
    pub(crate) async fn flush_unkeyed(&self) -> Result<(), DbErr> {
        for (table, keys) in &self.write_behind {
            if keys.is_none() {
                table.flush_pending().await?;
            }
        }
        Ok(())
    }

    /// Applies the pending outbox rows of every write-behind table the statement writes, on
    /// `txn`, before the statement runs there: the rows of the keys it writes when it names
    /// them, else every pending row of the table. Returns what to record after the commit.
    pub(crate) async fn apply_pending(
        &self,
        txn: &DatabaseTransaction,
    ) -> Result<Vec<Effect>, DbErr> {
        let mut after = Vec::new();
        for (table, keys) in &self.write_behind {
            if let Some(effect) = table.apply_pending(txn, keys.as_deref()).await? {
                after.push(effect);
            }
        }
        Ok(after)
    }

    /// All effects, once the statement's outcome is known.
    pub(crate) fn resolve(
        mut self,
        rows: Option<&[QueryResult]>,
        exec: Option<&ExecResult>,
    ) -> Vec<Effect> {
        for FromResult {
            table,
            by_insert_id,
        } in mem::take(&mut self.from_result)
        {
            let effects = match (rows, exec) {
                (Some(rows), _) => table.keys_in_rows(rows),
                (None, Some(exec))
                    if by_insert_id && exec.rows_affected() == 1 && exec.last_insert_id() > 0 =>
                {
                    table
                        .key_of_insert_id(exec.last_insert_id())
                        .map(|e| vec![e])
                }
                _ => None,
            };
            match effects {
                Some(effects) => self.now.extend(effects),
                None => self.now.push(table.everything()),
            }
        }
        self.now
    }
}

/// Runs every effect, in order, in a `sea_orm_cache.commit_effects` span (none when there is
/// nothing to run).
pub(crate) fn run(effects: Vec<Effect>) {
    if effects.is_empty() {
        return;
    }
    let mut entities = effects
        .iter()
        .filter_map(|e| e.log.as_ref().map(|l| l.entity));
    let entity = entities
        .next()
        .filter(|first| entities.all(|other| other == *first));
    let _span = spans::commit_effects(effects.len(), entity).entered();
    for effect in effects {
        (effect.run)();
    }
}
