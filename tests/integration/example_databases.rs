//! The examples never drop, alter or write a table they did not create (issue 20 item 4): a
//! URL pointing at a developer's database leaves it as it was.

use migration::open_example_database;
use sea_orm::{ConnectionTrait, Database, EntityTrait};

use crate::common::*;

/// Makes the test's database look like a developer's own: a `users` table (the name the
/// examples use too) holding their row, and no record of the examples' migrations.
async fn a_developers_database(t: &TestDb) -> entity::user::Model {
    t.db.execute_unprepared("DELETE FROM seaql_migrations")
        .await
        .unwrap();
    seed_user(&t.db, 7).await
}

/// The developer's row and tables are as they were.
async fn left_alone(t: &TestDb, row: &entity::user::Model) {
    let users = entity::user::Entity::find().all(&t.db).await.unwrap();
    assert_eq!(
        users,
        vec![row.clone()],
        "the developer's users table is untouched"
    );
    assert_eq!(
        t.count("seaql_migrations").await,
        0,
        "no migration recorded there"
    );
}

/// A name for the example's database on the test's server, unique to this run.
fn scratch_name(t: &TestDb) -> String {
    // Identifiers are at most 63 bytes on Postgres: keep the test database name's unique tail.
    let name = format!("{}_ex", t.name());
    name[name.len().saturating_sub(60)..].to_owned()
}

/// Drops the example's database `name` on the test's server.
async fn drop_scratch(t: &TestDb, name: &str) {
    let sql = match t.backend {
        Backend::Postgres => format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
        _ => format!("DROP DATABASE IF EXISTS `{name}`"),
    };
    t.db.execute_unprepared(&sql).await.unwrap();
}

/// The quickstart, pointed at a developer's database: on a server it runs in a database of
/// its own beside it; a SQLite file that holds their tables is refused. Either way their
/// tables and rows are as they were (the quickstart used to run `Migrator::down` there,
/// dropping their `users`).
async fn the_quickstart_leaves_a_developers_database_alone(t: TestDb) {
    let row = a_developers_database(&t).await;
    if t.backend == Backend::Sqlite {
        let err = open_example_database(t.url(), "quickstart")
            .await
            .expect_err("a file holding someone else's tables is refused");
        assert!(err.to_string().contains("users"), "{err}");
    } else {
        let name = scratch_name(&t);
        let outcome = tokio::spawn({
            let url = t.url().to_owned();
            let name = name.clone();
            async move {
                let db = open_example_database(&url, &name).await.unwrap();
                crate::quickstart_example::quickstart(&db)
                    .await
                    .map_err(|e| e.to_string())
                    .unwrap();
                // Run twice, as a developer would: the second run starts from its own
                // tables again.
                crate::quickstart_example::quickstart(&db)
                    .await
                    .map_err(|e| e.to_string())
                    .unwrap();
                db.close().await.unwrap();
            }
        })
        .await;
        drop_scratch(&t, &name).await;
        outcome.unwrap();
    }
    left_alone(&t, &row).await;
}

/// The example's own database, found holding a table the examples did not create, is
/// refused before anything is written: the table keeps its row.
async fn an_example_database_holding_other_tables_is_refused(t: TestDb) {
    let (db, name) = if t.backend == Backend::Sqlite {
        (t.db.clone(), "quickstart".to_owned())
    } else {
        let name = scratch_name(&t);
        let create = match t.backend {
            Backend::Postgres => format!("CREATE DATABASE \"{name}\""),
            _ => format!("CREATE DATABASE `{name}`"),
        };
        t.db.execute_unprepared(&create).await.unwrap();
        let url = t.url().replacen(t.name(), &name, 1);
        (Database::connect(url).await.unwrap(), name)
    };
    db.execute_unprepared("CREATE TABLE invoices (id INT PRIMARY KEY)")
        .await
        .unwrap();
    db.execute_unprepared("INSERT INTO invoices (id) VALUES (1)")
        .await
        .unwrap();
    let err = open_example_database(t.url(), &name)
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("invoices"), "{err}");
    let count = db
        .query_one_raw(sea_orm::Statement::from_string(
            t.db_backend(),
            "SELECT COUNT(*) AS n FROM invoices",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(count, 1);
    if t.backend != Backend::Sqlite {
        db.close().await.unwrap();
        drop_scratch(&t, &name).await;
    }
}

crate::backend_tests!(
    the_quickstart_leaves_a_developers_database_alone,
    an_example_database_holding_other_tables_is_refused,
);
