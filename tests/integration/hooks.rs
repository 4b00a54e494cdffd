//! The `hooks` helpers in a user's `ActiveModelBehavior`: writes made on a plain
//! `DatabaseConnection` invalidate at once; inside a cached transaction they wait for the
//! commit; inside a plain `DatabaseTransaction` the key is quarantined until it commits.

use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, EntityTrait, ModelTrait, Schema, TransactionTrait,
};
use std::time::Duration;

use sea_orm_cache::hooks::QUARANTINE;
use sea_orm_cache::{Clock, Coherence, Policy};

use crate::common::*;

/// A table whose `ActiveModelBehavior` calls the hook helpers.
mod note {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, sea_orm_cache::Cached)]
    #[sea_orm(table_name = "notes")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) id: i64,
        pub(crate) text: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    #[async_trait::async_trait]
    impl ActiveModelBehavior for ActiveModel {
        async fn after_save<C: ConnectionTrait>(
            model: Model,
            db: &C,
            _insert: bool,
        ) -> Result<Model, DbErr> {
            sea_orm_cache::hooks::after_save::<Entity, C>(&model, db).await?;
            Ok(model)
        }

        async fn after_delete<C: ConnectionTrait>(self, db: &C) -> Result<Self, DbErr> {
            sea_orm_cache::hooks::after_delete::<Entity, C>(&self, db).await?;
            Ok(self)
        }
    }
}

/// A service's own connection wrapper that happens to be called `CachedConnection`: it is not
/// the layer's, so the hooks must not leave the write to it.
mod mine {
    use sea_orm::{
        ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult, Statement,
    };

    pub(crate) struct CachedConnection(pub(crate) DatabaseConnection);

    #[async_trait::async_trait]
    impl ConnectionTrait for CachedConnection {
        fn get_database_backend(&self) -> DbBackend {
            self.0.get_database_backend()
        }

        async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
            self.0.execute_raw(stmt).await
        }

        async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
            self.0.execute_unprepared(sql).await
        }

        async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
            self.0.query_one_raw(stmt).await
        }

        async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
            self.0.query_all_raw(stmt).await
        }

        fn support_returning(&self) -> bool {
            self.0.support_returning()
        }
    }
}

fn edit(id: i64, text: &str) -> note::ActiveModel {
    note::ActiveModel {
        id: Unchanged(id),
        text: Set(text.to_owned()),
    }
}

/// Creates `notes` with rows 1 to 3 and 11 to 13, text "first".
async fn notes_table(t: &TestDb) {
    let schema = Schema::new(t.db_backend());
    t.db.execute(&schema.create_table_from_entity(note::Entity))
        .await
        .unwrap();
    for id in (1..=3).chain(11..=13) {
        note::ActiveModel {
            id: Set(id),
            text: Set("first".into()),
        }
        .insert(&t.db)
        .await
        .unwrap();
    }
}

/// One test per backend, so no other test's layer holds `notes` meanwhile (the hooks reach
/// every layer of the process on the same kind of database): its two parts run one after the
/// other.
async fn hook_helpers_follow_the_connection_they_ran_on(t: TestDb) {
    notes_table(&t).await;
    by_connection(&t).await;
    a_hook_write_reaches_the_log_with_its_transaction(&t).await;
}

/// Autocommit, cached transaction, plain transaction, delete, a look-alike connection type.
async fn by_connection(t: &TestDb) {
    let cache = t
        .builder()
        .cached::<note::Entity>(|c| c.policy(Policy::ReadThrough))
        .build()
        .await
        .unwrap();
    let notes = cache.repository::<note::Entity>().unwrap();
    for id in 1..=3 {
        notes.get(id).await.unwrap();
    }

    // Autocommit on the plain connection: invalidated at once.
    edit(1, "autocommit").update(&t.db).await.unwrap();
    assert_eq!(notes.peek(1), None);
    assert_eq!(notes.get(1).await.unwrap().unwrap().text, "autocommit");

    // Inside a cached transaction: nothing before the commit, invalidated after it.
    let txn = cache.connection().begin().await.unwrap();
    edit(2, "cached txn").update(&txn).await.unwrap();
    assert!(notes.peek(2).is_some(), "not before the commit");
    txn.commit().await.unwrap();
    assert_eq!(notes.peek(2), None);
    assert_eq!(notes.get(2).await.unwrap().unwrap().text, "cached txn");

    // Inside a plain transaction the hook cannot see the commit: the key is invalidated and
    // quarantined, so a reader of the old row before the commit cannot cache it.
    let txn = t.db.begin().await.unwrap();
    edit(3, "plain txn").update(&txn).await.unwrap();
    assert_eq!(notes.peek(3), None, "invalidated at the write");
    let reader = cache.repository::<note::Entity>().unwrap();
    assert_eq!(
        reader.get(3).await.unwrap().unwrap().text,
        "first",
        "uncommitted"
    );
    assert_eq!(
        notes.peek(3),
        None,
        "the old row was not cached: quarantined"
    );
    txn.commit().await.unwrap();
    assert_eq!(notes.get(3).await.unwrap().unwrap().text, "plain txn");

    // Delete on the plain connection.
    notes.get(1).await.unwrap();
    let first = note::Entity::find_by_id(1)
        .one(&t.db)
        .await
        .unwrap()
        .unwrap();
    first.delete(&t.db).await.unwrap();
    assert_eq!(notes.peek(1), None);
    assert_eq!(notes.get(1).await.unwrap(), None);

    // A connection type of the service's that shares the layer's type name: told apart by
    // exact type, it is "any other connection", so the key is invalidated (and quarantined).
    notes.get(2).await.unwrap();
    assert!(notes.peek(2).is_some());
    let own = mine::CachedConnection(t.db.clone());
    edit(2, "own wrapper").update(&own).await.unwrap();
    assert_eq!(
        notes.peek(2),
        None,
        "not mistaken for the layer's connection"
    );
    cache.shutdown().await.unwrap();
}

/// Rows of the invalidation log naming note `id`, by origin.
async fn logged(t: &TestDb, id: i64) -> Vec<String> {
    t.db.query_all_raw(sea_orm::Statement::from_string(
        t.db_backend(),
        format!(
            "SELECT origin FROM sea_orm_cache_invalidation \
             WHERE entity = 'notes' AND pk = '[{id}]' ORDER BY id"
        ),
    ))
    .await
    .unwrap()
    .iter()
    .map(|row| row.try_get::<String>("", "origin").unwrap())
    .collect()
}

/// With coherence on, a hook adds its key to the invalidation log on the connection the write
/// ran on: inside a plain transaction the row commits (or rolls back) with the write, and
/// every instance applies it after the commit, the writing one included. So a read between
/// the quarantine's end and a late commit, which caches the old row, is corrected once the
/// commit is read from the log, where without the row it would last until the TTL.
async fn a_hook_write_reaches_the_log_with_its_transaction(t: &TestDb) {
    let clock = Clock::manual();
    let cache = t
        .builder()
        .clock(clock.clone())
        .coherence(
            Coherence::on()
                .poll_interval(Duration::from_secs(3600))
                .listen(false),
        )
        .cached::<note::Entity>(|c| c.policy(Policy::ReadThrough).ttl(Duration::from_secs(3600)))
        .build()
        .await
        .unwrap();
    let notes = cache.repository::<note::Entity>().unwrap();
    notes.get(11).await.unwrap();

    let txn = t.db.begin().await.unwrap();
    edit(11, "late commit").update(&txn).await.unwrap();
    assert_eq!(notes.peek(11), None, "quarantined at the write");
    clock.advance(QUARANTINE + Duration::from_millis(1));
    assert_eq!(
        notes.get(11).await.unwrap().unwrap().text,
        "first",
        "past the quarantine, the uncommitted write is not seen and the old row is cached"
    );
    assert!(notes.peek(11).is_some());
    txn.commit().await.unwrap();
    cache.catch_up().await.unwrap();
    assert_eq!(
        notes.peek(11),
        None,
        "the log row invalidated the old row here too"
    );
    assert_eq!(notes.get(11).await.unwrap().unwrap().text, "late commit");
    assert_eq!(
        logged(t, 11).await,
        ["hook"],
        "one row, committed with the write"
    );

    // Rolled back: the log row goes with the write.
    let txn = t.db.begin().await.unwrap();
    edit(12, "rolled back").update(&txn).await.unwrap();
    txn.rollback().await.unwrap();
    assert!(
        logged(t, 12).await.is_empty(),
        "no log row without the write"
    );

    // Autocommit on the plain connection: the row follows the committed write.
    edit(13, "autocommit").update(&t.db).await.unwrap();
    assert_eq!(logged(t, 13).await, ["hook"]);

    // Through the layer's own connection the layer writes the row, not the hook: one row.
    edit(12, "cached")
        .update(&cache.connection())
        .await
        .unwrap();
    let rows = logged(t, 12).await;
    assert_eq!(rows.len(), 1, "one row per write: {rows:?}");
    assert_ne!(rows[0], "hook");
    cache.shutdown().await.unwrap();
}

crate::backend_tests!(hook_helpers_follow_the_connection_they_ran_on);
