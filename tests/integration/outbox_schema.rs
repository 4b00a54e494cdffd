//! Issue 9, items 2 and 3: the outbox tables. Creating them is idempotent on every backend
//! (the builder's `create_outbox_tables` and the migration's `up` alike) and upgrades the
//! tables an older version created on MySQL/MariaDB; a write-behind row holds any model the
//! table holds (a 1 MB one too); and a row the outbox's columns cannot hold is refused with
//! `Error::OutboxRowTooLarge` before it is acknowledged, whatever the `sql_mode`.

use std::sync::Arc;
use std::time::Duration;

use entity::profile;
use migration::{MigrationTrait, OutboxMigration, SchemaManager};
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, EntityTrait, Statement,
};
use sea_orm_cache::{CacheLayer, Error, Policy, Repository, WriteBehindConfig};

use crate::common::*;

/// A document whose body may be large, under a client-set string key.
mod doc {
    use sea_orm::entity::prelude::*;
    use serde::{Deserialize, Serialize};

    #[derive(
        Clone,
        Debug,
        PartialEq,
        Eq,
        DeriveEntityModel,
        Serialize,
        Deserialize,
        sea_orm_cache::Cached,
    )]
    #[sea_orm(table_name = "docs")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) id: String,
        #[sea_orm(column_type = "Text")]
        pub(crate) body: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// `docs`, able to hold a 1 MB body and a key of 700 characters on every backend.
async fn create_docs(db: &DatabaseConnection) {
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::MySql => {
            "CREATE TABLE docs (id VARCHAR(700) NOT NULL PRIMARY KEY, body LONGTEXT NOT NULL) \
             ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
        }
        _ => "CREATE TABLE docs (id TEXT NOT NULL PRIMARY KEY, body TEXT NOT NULL)",
    };
    db.execute_unprepared(sql).await.unwrap();
}

fn one_window() -> WriteBehindConfig {
    WriteBehindConfig::default().max_delay(Duration::from_secs(3600))
}

async fn docs_on(db: &DatabaseConnection) -> (CacheLayer, Repository<doc::Entity>) {
    let cache = CacheLayer::builder(db.clone())
        .write_behind::<doc::Entity>(|c| c.write_behind(one_window()))
        .build()
        .await
        .unwrap();
    let docs = cache.repository::<doc::Entity>().unwrap();
    (cache, docs)
}

fn new_doc(id: &str, body: &str) -> doc::ActiveModel {
    doc::ActiveModel {
        id: Set(id.to_owned()),
        body: Set(body.to_owned()),
    }
}

fn edit_doc(id: &str, body: &str) -> doc::ActiveModel {
    doc::ActiveModel {
        id: Unchanged(id.to_owned()),
        body: Set(body.to_owned()),
    }
}

async fn table_body(db: &DatabaseConnection, id: &str) -> Option<String> {
    doc::Entity::find_by_id(id.to_owned())
        .one(db)
        .await
        .unwrap()
        .map(|d| d.body)
}

/// About `bytes` bytes of text with one-, two- and four-byte characters, distinct per `seed`.
fn big_text(bytes: usize, seed: char) -> String {
    let unit = format!("{seed}é😀 \"quoted\" \\ line\n");
    unit.repeat(bytes / unit.len() + 1)
}

/// The outbox's payloads, in id order.
async fn outbox_payloads(t: &TestDb) -> Vec<String> {
    t.db.query_all_raw(Statement::from_string(
        t.db_backend(),
        "SELECT payload FROM sea_orm_cache_outbox ORDER BY id",
    ))
    .await
    .unwrap()
    .into_iter()
    .map(|row| row.try_get::<String>("", "payload").unwrap())
    .collect()
}

/// `SELECT COUNT(*)` on MySQL's `information_schema` with two string parameters.
async fn mysql_count(db: &DatabaseConnection, sql: &str, a: &str, b: &str) -> i64 {
    db.query_one_raw(Statement::from_sql_and_values(
        sea_orm::DbBackend::MySql,
        sql,
        [a.into(), b.into()],
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get::<i64>("", "n")
    .unwrap()
}

/// Indexes named `idx_sea_orm_cache_outbox_key` on the outbox (MySQL): one per column.
async fn mysql_index_columns(db: &DatabaseConnection) -> i64 {
    mysql_count(
        db,
        "SELECT COUNT(*) AS n FROM information_schema.statistics \
         WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ?",
        "sea_orm_cache_outbox",
        "idx_sea_orm_cache_outbox_key",
    )
    .await
}

/// A profile written behind round-trips: acknowledged as an outbox row, applied by the flush.
async fn a_profile_round_trips(db: &DatabaseConnection, user_id: i64) {
    let cache = CacheLayer::builder(db.clone())
        .cached::<profile::Entity>(|c| c.policy(Policy::WriteBehind).write_behind(one_window()))
        .build()
        .await
        .unwrap();
    let profiles = cache.repository::<profile::Entity>().unwrap();
    profiles
        .insert(profile::ActiveModel {
            user_id: Set(user_id),
            display_name: Set(format!("p{user_id}")),
            visits: Set(user_id),
        })
        .await
        .unwrap();
    assert!(profiles.flush().await.unwrap() >= 1);
    let row = profile::Entity::find_by_id(user_id)
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.visits, user_id);
    cache.shutdown().await.unwrap();
}

/// Bug 2: the test database already has the outbox tables (its Migrator made them); the
/// builder's `create_outbox_tables` on two starts and the migration's `up` run again all
/// succeed, and the tables work after each.
async fn creating_the_outbox_tables_again_changes_nothing(t: TestDb) {
    for start in 1..=2 {
        let cache = t
            .builder()
            .create_outbox_tables()
            .cached::<profile::Entity>(|c| c.policy(Policy::WriteBehind))
            .build()
            .await
            .unwrap_or_else(|e| panic!("start {start} with create_outbox_tables: {e}"));
        cache.shutdown().await.unwrap();
        a_profile_round_trips(&t.db, start).await;
    }
    for run in 1..=2 {
        OutboxMigration
            .up(&SchemaManager::new(&t.db))
            .await
            .unwrap_or_else(|e| panic!("OutboxMigration::up run again ({run}): {e}"));
        a_profile_round_trips(&t.db, 10 + run).await;
    }
    sea_orm_cache::outbox::create_tables(&t.db).await.unwrap();
    a_profile_round_trips(&t.db, 20).await;
    if t.backend == Backend::MySql {
        assert_eq!(
            mysql_index_columns(&t.db).await,
            3,
            "one (entity, pk, id) index"
        );
    }
    assert_eq!(t.count("sea_orm_cache_outbox").await, 0);
}

/// Bug 3: a 1 MB model is acknowledged, read back before the flush (from the cache and, by
/// another layer, from the outbox), applied by the flush, and updated to another 1 MB value.
async fn a_megabyte_model_round_trips_through_write_behind(t: TestDb) {
    create_docs(&t.db).await;
    let (cache, docs) = docs_on(&t.db).await;
    let first = big_text(1 << 20, 'a');
    assert!(first.len() >= 1 << 20);
    let written = docs.insert(new_doc("big", &first)).await.unwrap();
    assert_eq!(written.body, first);
    assert_eq!(t.count("sea_orm_cache_outbox").await, 1);
    assert_eq!(
        docs.get("big".to_owned()).await.unwrap().unwrap().body,
        first
    );

    // Another layer has nothing cached: it reads the pending row from the outbox.
    let (other, other_docs) = docs_on(&t.db).await;
    assert_eq!(
        other_docs
            .get("big".to_owned())
            .await
            .unwrap()
            .unwrap()
            .body,
        first,
        "the outbox row holds the whole model"
    );

    assert_eq!(docs.flush().await.unwrap(), 1);
    other.shutdown().await.unwrap();
    assert_eq!(
        table_body(&t.db, "big").await.as_deref(),
        Some(first.as_str())
    );
    assert_eq!(t.count("sea_orm_cache_outbox").await, 0);

    let second = big_text(1 << 20, 'b');
    docs.update(edit_doc("big", &second)).await.unwrap();
    assert_eq!(
        docs.get("big".to_owned()).await.unwrap().unwrap().body,
        second
    );
    cache.shutdown().await.unwrap();
    assert_eq!(
        table_body(&t.db, "big").await.as_deref(),
        Some(second.as_str())
    );
    assert_eq!(t.count("sea_orm_cache_dead_letter").await, 0);

    let (fresh, fresh_docs) = docs_on(&t.db).await;
    let read: Arc<doc::Model> = fresh_docs.get("big".to_owned()).await.unwrap().unwrap();
    assert_eq!(read.body, second);
    fresh.shutdown().await.unwrap();
}

/// Bug 3, the `pk` column: a key of 500 characters (of up to four bytes each) fits the
/// outbox's `pk`; one of 600 does not, and is refused with the typed error before anything
/// is written on the backends whose column has a length (SQLite's text has none: there it
/// round-trips).
async fn a_key_longer_than_the_pk_column_is_refused(t: TestDb) {
    create_docs(&t.db).await;
    let (cache, docs) = docs_on(&t.db).await;
    let fits = "😀".repeat(500);
    docs.insert(new_doc(&fits, "fits")).await.unwrap();

    let long = "k".repeat(600);
    let refused = docs.insert(new_doc(&long, "too long a key")).await;
    if t.backend == Backend::Sqlite {
        refused.unwrap();
    } else {
        match refused {
            Err(Error::OutboxRowTooLarge {
                column: "pk",
                len,
                max,
                ..
            }) => assert!(len > max && max >= 512, "{len} > {max}"),
            other => panic!("a 600-character key must be refused: {other:?}"),
        }
        assert_eq!(
            docs.peek(long.clone()),
            None,
            "a refused write is not cached"
        );
        assert_eq!(
            t.count("sea_orm_cache_outbox").await,
            1,
            "only the key that fits"
        );
    }
    cache.shutdown().await.unwrap();
    assert_eq!(table_body(&t.db, &fits).await.as_deref(), Some("fits"));
    let expected = (t.backend == Backend::Sqlite).then_some("too long a key");
    assert_eq!(table_body(&t.db, &long).await.as_deref(), expected);
}

/// String keys that differ only in case are different keys in the outbox (MySQL: the
/// `utf8mb4_bin` collation): another layer reads each one's own pending value.
async fn keys_differing_in_case_are_different_outbox_keys(t: TestDb) {
    create_docs(&t.db).await;
    let (cache, docs) = docs_on(&t.db).await;
    docs.insert(new_doc("key", "lower")).await.unwrap();
    docs.insert(new_doc("KEY", "upper")).await.unwrap();
    let (other, other_docs) = docs_on(&t.db).await;
    for (id, body) in [("key", "lower"), ("KEY", "upper")] {
        let read = other_docs.get(id.to_owned()).await.unwrap().unwrap();
        assert_eq!(read.body, body, "pending value of {id}");
    }
    other.shutdown().await.unwrap();
    cache.shutdown().await.unwrap();
    assert_eq!(table_body(&t.db, "key").await.as_deref(), Some("lower"));
    assert_eq!(table_body(&t.db, "KEY").await.as_deref(), Some("upper"));
}

crate::backend_tests!(
    creating_the_outbox_tables_again_changes_nothing,
    a_megabyte_model_round_trips_through_write_behind,
    a_key_longer_than_the_pk_column_is_refused,
    keys_differing_in_case_are_different_outbox_keys,
);

/// The outbox tables as the previous version created them on MySQL/MariaDB (`TEXT` payload,
/// `VARCHAR(255)` key, the server's default collation), in place of the current ones.
async fn mysql_old_outbox_tables(db: &DatabaseConnection) {
    for table in ["sea_orm_cache_outbox", "sea_orm_cache_dead_letter"] {
        db.execute_unprepared(&format!("DROP TABLE {table}"))
            .await
            .unwrap();
    }
    let columns = "`entity` varchar(64) NOT NULL, `pk` varchar(255) NOT NULL, \
                   `op` varchar(16) NOT NULL, `payload` text NOT NULL, \
                   `created_at` bigint NOT NULL, `attempts` int NOT NULL DEFAULT 0, \
                   `last_error` text NULL, `available_at` bigint NOT NULL";
    let options = "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci";
    for sql in [
        format!(
            "CREATE TABLE `sea_orm_cache_outbox` (`id` bigint NOT NULL AUTO_INCREMENT \
             PRIMARY KEY, {columns}) {options}"
        ),
        format!(
            "CREATE TABLE `sea_orm_cache_dead_letter` (`id` bigint NOT NULL PRIMARY KEY, \
             {columns}, `failed_at` bigint NOT NULL) {options}"
        ),
        "CREATE INDEX `idx_sea_orm_cache_outbox_key` ON `sea_orm_cache_outbox` \
         (`entity`, `pk`, `id`)"
            .to_owned(),
    ] {
        db.execute_unprepared(&sql).await.unwrap();
    }
}

/// A pool on `url` whose every connection runs with `sql_mode = ''` (non-strict: MariaDB
/// truncates an over-long value with a warning instead of refusing it). SeaORM's own
/// `ConnectOptions::after_connect` runs once for the pool, not per connection, so the hook is
/// sqlx's.
async fn mysql_non_strict_pool(url: &str) -> DatabaseConnection {
    use sea_orm::sqlx::Executor as _;
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(4)
        .min_connections(0)
        .sqlx_logging(false)
        .map_sqlx_mysql_pool_opts(|pool| {
            pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET SESSION sql_mode = ''").await?;
                    Ok(())
                })
            })
        });
    Database::connect(options).await.unwrap()
}

/// Bug 3 under MariaDB's non-strict `sql_mode` with the previous version's tables (`TEXT`
/// payload, `VARCHAR(255)` key), which the layer is built on without upgrading them: a
/// payload or a key text the columns cannot hold is refused with the typed error, so nothing
/// is acknowledged and nothing truncated reaches the outbox; what fits is written whole.
async fn mysql_non_strict_sql_mode_truncates_nothing(t: TestDb) {
    create_docs(&t.db).await;
    mysql_old_outbox_tables(&t.db).await;
    let db = mysql_non_strict_pool(t.url()).await;
    // Every connection of the pool is non-strict (more than the pool holds at once).
    let mut held = Vec::new();
    for _ in 0..4 {
        let txn = sea_orm::TransactionTrait::begin(&db).await.unwrap();
        let mode = txn
            .query_one_raw(Statement::from_string(
                sea_orm::DbBackend::MySql,
                "SELECT @@SESSION.sql_mode AS mode",
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<String>("", "mode")
            .unwrap();
        assert_eq!(mode, "", "the session is non-strict");
        held.push(txn);
    }
    drop(held);

    let (cache, docs) = docs_on(&db).await;
    docs.insert(new_doc("small", "fits")).await.unwrap();
    let large = big_text(100 * 1024, 'x');
    docs.insert(new_doc("large", "before")).await.unwrap();
    let refused = docs.update(edit_doc("large", &large)).await;
    match refused {
        Err(Error::OutboxRowTooLarge {
            column: "payload",
            unit: "bytes",
            len,
            max: 65_535,
            ..
        }) => assert!(len > 65_535),
        other => panic!("a payload over the TEXT column must be refused: {other:?}"),
    }
    let long_key = "k".repeat(300);
    match docs.insert(new_doc(&long_key, "long key")).await {
        Err(Error::OutboxRowTooLarge {
            column: "pk",
            max: 255,
            ..
        }) => {}
        other => panic!("a key over the VARCHAR(255) column must be refused: {other:?}"),
    }
    assert_eq!(
        docs.get("large".to_owned()).await.unwrap().unwrap().body,
        "before",
        "the refused write was not acknowledged"
    );
    assert_eq!(docs.peek(long_key.clone()), None);

    // The outbox holds the acknowledged writes only, each whole.
    assert_eq!(
        outbox_payloads(&t).await,
        [
            r#"{"id":"small","body":"fits"}"#,
            r#"{"id":"large","body":"before"}"#
        ]
    );
    cache.shutdown().await.unwrap();
    assert_eq!(table_body(&t.db, "small").await.as_deref(), Some("fits"));
    assert_eq!(table_body(&t.db, "large").await.as_deref(), Some("before"));
    assert_eq!(table_body(&t.db, &long_key).await, None);
    assert_eq!(t.count("sea_orm_cache_dead_letter").await, 0);
    db.close().await.unwrap();
}

/// Bug 3 on a database the previous version set up: `create_tables` (here through the
/// builder, twice) alters its tables to `LONGTEXT` payloads, a 512-character key and
/// `utf8mb4_bin`, keeps a row it had pending, and then holds a 1 MB model.
async fn mysql_old_outbox_tables_are_upgraded(t: TestDb) {
    create_docs(&t.db).await;
    mysql_old_outbox_tables(&t.db).await;
    // A write the previous version acknowledged and had not applied.
    t.db.execute_unprepared(
        "INSERT INTO sea_orm_cache_outbox \
         (entity, pk, op, payload, created_at, attempts, available_at) \
         VALUES ('docs', '[\"old\"]', 'upsert', '{\"id\":\"old\",\"body\":\"pending\"}', 0, 0, 0)",
    )
    .await
    .unwrap();
    for _ in 0..2 {
        let cache = t.builder().create_outbox_tables().build().await.unwrap();
        cache.shutdown().await.unwrap();
    }
    for table in ["sea_orm_cache_outbox", "sea_orm_cache_dead_letter"] {
        for (column, shape) in [
            ("payload", "data_type = 'longtext'"),
            ("last_error", "data_type = 'longtext'"),
            ("pk", "character_maximum_length = 512"),
            ("entity", "character_maximum_length = 64"),
            ("op", "character_maximum_length = 16"),
        ] {
            let sql = format!(
                "SELECT COUNT(*) AS n FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = ? AND column_name = ? \
                 AND collation_name = 'utf8mb4_bin' AND {shape}"
            );
            let n = mysql_count(&t.db, &sql, table, column).await;
            assert_eq!(n, 1, "{table}.{column}: {shape}, utf8mb4_bin");
        }
        let innodb = mysql_count(
            &t.db,
            "SELECT COUNT(*) AS n FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = ? AND engine = ?",
            table,
            "InnoDB",
        )
        .await;
        assert_eq!(innodb, 1, "{table} is InnoDB");
    }
    assert_eq!(mysql_index_columns(&t.db).await, 3);

    let (cache, docs) = docs_on(&t.db).await;
    assert_eq!(
        docs.get("old".to_owned()).await.unwrap().unwrap().body,
        "pending",
        "the pending row survived the upgrade"
    );
    let big = big_text(1 << 20, 'u');
    docs.insert(new_doc("big", &big)).await.unwrap();
    cache.shutdown().await.unwrap();
    assert_eq!(table_body(&t.db, "old").await.as_deref(), Some("pending"));
    assert_eq!(
        table_body(&t.db, "big").await.as_deref(),
        Some(big.as_str())
    );
}

mod mysql_only {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn mysql_non_strict_sql_mode_truncates_nothing() {
        crate::common::run(
            crate::common::Backend::MySql,
            "non_strict_sql_mode",
            super::mysql_non_strict_sql_mode_truncates_nothing,
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn mysql_old_outbox_tables_are_upgraded() {
        crate::common::run(
            crate::common::Backend::MySql,
            "old_outbox_tables",
            super::mysql_old_outbox_tables_are_upgraded,
        )
        .await
    }
}
