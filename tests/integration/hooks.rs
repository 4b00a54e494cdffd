//! The `hooks` helpers in a user's `ActiveModelBehavior`: writes made on a plain
//! `DatabaseConnection` invalidate at once; inside a cached transaction they wait for the
//! commit; inside a plain `DatabaseTransaction` the key is quarantined until it commits.

use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, EntityTrait, ModelTrait, Schema, TransactionTrait,
};
use sea_orm_cache::{CacheLayer, Policy};

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
            sea_orm_cache::hooks::after_save::<Entity, C>(&model, db);
            Ok(model)
        }

        async fn after_delete<C: ConnectionTrait>(self, db: &C) -> Result<Self, DbErr> {
            sea_orm_cache::hooks::after_delete::<Entity, C>(&self, db);
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

/// One test per backend, so no other test's layer holds `notes` meanwhile (the hooks reach
/// every layer of the process on the same kind of database).
async fn hook_helpers_follow_the_connection_they_ran_on(t: TestDb) {
    let schema = Schema::new(t.db_backend());
    t.db.execute(&schema.create_table_from_entity(note::Entity))
        .await
        .unwrap();
    for id in 1..=3 {
        note::ActiveModel {
            id: Set(id),
            text: Set("first".into()),
        }
        .insert(&t.db)
        .await
        .unwrap();
    }
    let cache = CacheLayer::builder(t.db.clone())
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
}

crate::backend_tests!(hook_helpers_follow_the_connection_they_ran_on);
