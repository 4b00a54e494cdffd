//! G4: every SeaORM write path through `cache.connection()` invalidates what it touched, by
//! key where the statement names the key, or every entry of the entity where it does not.

use std::time::Duration;

use entity::{post, user};
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, ModelTrait,
    QueryFilter, Statement, TryIntoModel,
};
use sea_orm_cache::{CacheLayer, Policy, Repository};

use crate::common::*;

/// Users 1, 2 and 3, each cached; negative entries on.
async fn three_cached_users(
    t: &TestDb,
) -> (CacheLayer, Repository<user::Entity>, Vec<user::Model>) {
    let mut seeded = Vec::new();
    for n in 1..=3 {
        seeded.push(seed_user(&t.db, n).await);
    }
    let cache = t
        .builder()
        .cached::<user::Entity>(|c| {
            c.policy(Policy::ReadThrough)
                .negative_ttl(Some(Duration::from_secs(600)))
        })
        .build()
        .await
        .unwrap();
    let users = cache.repository::<user::Entity>().unwrap();
    for u in &seeded {
        users.get(u.id).await.unwrap();
    }
    (cache, users, seeded)
}

/// Which of `users` are still cached.
fn cached(users: &Repository<user::Entity>, seeded: &[user::Model]) -> Vec<bool> {
    seeded.iter().map(|u| users.peek(u.id).is_some()).collect()
}

fn new_user(id: Option<i64>, n: i64) -> user::ActiveModel {
    user::ActiveModel {
        id: id.map_or(sea_orm::ActiveValue::NotSet, Set),
        email: Set(format!("new{n}@example.com")),
        name: Set(format!("new {n}")),
        bio: Set(String::new()),
        updated_at: Set(0),
    }
}

/// Service code written against any SeaORM connection, unchanged.
async fn rename_user<C: ConnectionTrait>(db: &C, id: i64, name: &str) -> user::Model {
    let mut am: user::ActiveModel = user::Entity::find_by_id(id)
        .one(db)
        .await
        .unwrap()
        .unwrap()
        .into();
    am.name = Set(name.to_owned());
    am.save(db).await.unwrap().try_into_model().unwrap()
}

/// ActiveModel insert, update, save and delete, and `Model::delete`, by key.
async fn active_model_writes_invalidate_their_key(t: TestDb) {
    let (cache, users, seeded) = three_cached_users(&t).await;
    let conn = cache.connection();

    user::ActiveModel {
        id: Unchanged(seeded[0].id),
        name: Set("updated".into()),
        ..Default::default()
    }
    .update(&conn)
    .await
    .unwrap();
    assert_eq!(cached(&users, &seeded), [false, true, true]);
    assert_eq!(
        users.get(seeded[0].id).await.unwrap().unwrap().name,
        "updated"
    );

    let saved = rename_user(&conn, seeded[1].id, "saved").await;
    assert_eq!(cached(&users, &seeded), [true, false, true]);
    assert_eq!(users.get(saved.id).await.unwrap().as_deref(), Some(&saved));

    seeded[2].clone().delete(&conn).await.unwrap();
    assert_eq!(cached(&users, &seeded), [true, true, false]);
    assert_eq!(users.get(seeded[2].id).await.unwrap(), None);

    // A database-assigned key: the next id was cached as "no such row".
    assert_eq!(users.get(4).await.unwrap(), None);
    let inserted = new_user(None, 4).insert(&conn).await.unwrap();
    assert_eq!(inserted.id, 4);
    assert_eq!(
        users.get(4).await.unwrap().as_deref(),
        Some(&inserted),
        "negative entry cleared"
    );
    assert_eq!(cached(&users, &seeded), [true, true, false]);
}

/// `insert_many`, `update_many`, `delete_many` and `delete_by_id`: by key where the filter
/// names keys, else the whole entity.
async fn bulk_writes_invalidate_by_key_or_entity(t: TestDb) {
    let (cache, users, seeded) = three_cached_users(&t).await;
    let conn = cache.connection();

    assert_eq!(users.get(10).await.unwrap(), None);
    assert_eq!(users.get(11).await.unwrap(), None);
    user::Entity::insert_many([new_user(Some(10), 10), new_user(Some(11), 11)])
        .exec(&conn)
        .await
        .unwrap();
    assert_eq!(
        users.get(10).await.unwrap().unwrap().id,
        10,
        "negative entry cleared"
    );
    assert_eq!(users.get(11).await.unwrap().unwrap().id, 11);
    assert_eq!(cached(&users, &seeded), [true, true, true]);

    user::Entity::update_many()
        .col_expr(user::Column::Bio, Expr::value("by key"))
        .filter(user::Column::Id.is_in([seeded[0].id, seeded[1].id]))
        .exec(&conn)
        .await
        .unwrap();
    assert_eq!(cached(&users, &seeded), [false, false, true]);
    assert_eq!(
        users.get(seeded[0].id).await.unwrap().unwrap().bio,
        "by key"
    );
    users.get(seeded[1].id).await.unwrap();

    user::Entity::update_many()
        .col_expr(user::Column::Bio, Expr::value("by name"))
        .filter(user::Column::Name.eq(seeded[2].name.clone()))
        .exec(&conn)
        .await
        .unwrap();
    assert_eq!(
        cached(&users, &seeded),
        [false, false, false],
        "not by key: every entry"
    );
    assert_eq!(
        users.get(seeded[2].id).await.unwrap().unwrap().bio,
        "by name"
    );
    for u in &seeded {
        users.get(u.id).await.unwrap();
    }

    user::Entity::delete_many()
        .filter(user::Column::Id.eq(seeded[2].id))
        .exec(&conn)
        .await
        .unwrap();
    assert_eq!(cached(&users, &seeded), [true, true, false]);
    user::Entity::delete_by_id(seeded[1].id)
        .exec(&conn)
        .await
        .unwrap();
    assert_eq!(cached(&users, &seeded), [true, false, false]);
    assert_eq!(users.get(seeded[1].id).await.unwrap(), None);
}

/// Raw SQL: `execute_unprepared` and a `Statement` with values invalidate the keys they name,
/// the whole entity when they name none, and nothing for tables that are not cached.
async fn raw_sql_invalidates_the_tables_it_names(t: TestDb) {
    let (cache, users, seeded) = three_cached_users(&t).await;
    let conn = cache.connection();
    let (q, p1, p2) = match t.db_backend() {
        DbBackend::Postgres => ("\"", "$1", "$2"),
        DbBackend::MySql => ("`", "?", "?"),
        _ => ("\"", "?", "?"),
    };

    conn.execute_unprepared(&format!(
        "UPDATE {q}users{q} SET {q}name{q} = 'raw' WHERE {q}id{q} = {}",
        seeded[0].id
    ))
    .await
    .unwrap();
    assert_eq!(cached(&users, &seeded), [false, true, true]);
    assert_eq!(users.get(seeded[0].id).await.unwrap().unwrap().name, "raw");

    conn.execute_raw(Statement::from_sql_and_values(
        t.db_backend(),
        format!("UPDATE {q}users{q} SET {q}bio{q} = {p1} WHERE {q}id{q} = {p2}"),
        ["bound".into(), seeded[1].id.into()],
    ))
    .await
    .unwrap();
    assert_eq!(cached(&users, &seeded), [true, false, true]);
    assert_eq!(users.get(seeded[1].id).await.unwrap().unwrap().bio, "bound");

    conn.execute_unprepared(&format!("UPDATE {q}posts{q} SET {q}title{q} = 'x'"))
        .await
        .unwrap();
    assert_eq!(
        cached(&users, &seeded),
        [true, true, true],
        "posts is not cached"
    );

    conn.execute_unprepared(&format!("UPDATE {q}users{q} SET {q}bio{q} = 'all'"))
        .await
        .unwrap();
    assert_eq!(cached(&users, &seeded), [false, false, false]);

    // A sea-query statement built by hand goes the same way.
    for u in &seeded {
        users.get(u.id).await.unwrap();
    }
    let stmt = Query::delete()
        .from_table(user::Entity)
        .and_where(user::Column::Id.eq(seeded[2].id))
        .to_owned();
    conn.execute(&stmt).await.unwrap();
    assert_eq!(cached(&users, &seeded), [true, true, false]);
    let _ = post::Entity::find().all(&conn).await.unwrap();
}

crate::backend_tests!(
    active_model_writes_invalidate_their_key,
    bulk_writes_invalidate_by_key_or_entity,
    raw_sql_invalidates_the_tables_it_names,
);
