//! Every primary-key type SeaORM accepts, one entity per type (tables made here from the
//! entity with `Schema::create_table_from_entity`):
//! - `two_instances`: two layers (default coherence) on one database; A holds every row
//!   (100, or all the type has), B updates one; A still holds every other row and the
//!   updated one is gone: the log row's key text named exactly that key.
//! - `trigger_text`: with the entity's triggers installed, a plain connection (an outside
//!   writer) inserts every row; each trigger-written log row carries byte for byte the
//!   layer's `key_text` of its key, and decodes back to that key; then an outside UPDATE of
//!   one row drops exactly that row from a layer that holds them all.
//!
//! The layers read the log with `catch_up`, so each step is forced, not timed.

use std::fmt::Debug;
use std::time::Duration;

use sea_orm::prelude::{
    ChronoDateTimeUtc, ChronoDateTimeWithTimeZone, Date, DateTime, Decimal, Time, TimeDate,
    TimeDateTime, TimeDateTimeWithTimeZone, TimeTime, Uuid,
};
use sea_orm::sea_query::IntoValueTuple;
use sea_orm::sea_query::value::prelude::{chrono, time};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DbBackend, EntityTrait, IdenStatic, IntoActiveModel,
    Iterable, PrimaryKeyToColumn, Schema, Statement, Value,
};
use sea_orm_cache::{
    CacheLayer, CacheableEntity, Capture, Coherence, KeyOf, Policy, key_from_text, key_text,
    triggers,
};

use crate::common::*;

/// A key value of each type, `SPACE` of them distinct.
trait Sample: Clone + Debug + PartialEq + Send + Sync + 'static {
    /// How many distinct values `sample` gives (at most 100 are used).
    const SPACE: u32 = 100;
    /// The `i`-th value, `i < SPACE`.
    fn sample(i: u32) -> Self;
}

macro_rules! sample_int {
    ($($t:ty),*) => {$(
        impl Sample for $t {
            // The top of the type.
            fn sample(i: u32) -> Self {
                <$t>::MAX - <$t>::try_from(i).unwrap()
            }
        }
    )*};
}
sample_int!(i8, i16, i32, i64, u8, u16, u32);

impl Sample for u64 {
    // Postgres and SQLite store it in a signed 64-bit column.
    fn sample(i: u32) -> Self {
        i64::MAX as u64 - u64::from(i) * 3
    }
}

impl Sample for String {
    fn sample(i: u32) -> Self {
        format!("k\"{i}\\ é,\n[x] 'q'")
    }
}

impl Sample for bool {
    const SPACE: u32 = 2;
    fn sample(i: u32) -> Self {
        i == 1
    }
}

impl Sample for Vec<u8> {
    fn sample(i: u32) -> Self {
        vec![0, 255, i as u8, 0x7f, 10]
    }
}

impl Sample for Uuid {
    fn sample(i: u32) -> Self {
        Uuid::from_u128(0x67e5_5044_10b1_426f_9247_bb68_0e5f_e000 + u128::from(i) * 0x1_0001)
    }
}

impl Sample for Decimal {
    // 20 digits, 4 after the point; trailing zeros in some (1.5000 is 1.5).
    fn sample(i: u32) -> Self {
        Decimal::new(
            i64::from(i) * 1_234_567 - 50_000_000 + 10_000 * i64::from(i % 3),
            4,
        )
    }
}

/// Microseconds in `i`'s time of day: whole seconds for some, tenths for others, full
/// microseconds for the rest.
fn micros(i: u32) -> u32 {
    match i % 3 {
        0 => 0,
        1 => 500_000,
        _ => 123_456 + i,
    }
}

impl Sample for Date {
    fn sample(i: u32) -> Self {
        Date::from_ymd_opt(1999, 12, 31).unwrap() + chrono::Duration::days(i64::from(i) * 37)
    }
}

impl Sample for Time {
    fn sample(i: u32) -> Self {
        Time::from_hms_micro_opt(i % 24, (i * 7) % 60, (i * 13) % 60, micros(i)).unwrap()
    }
}

impl Sample for DateTime {
    fn sample(i: u32) -> Self {
        Date::sample(i).and_time(Time::sample(i))
    }
}

impl Sample for ChronoDateTimeUtc {
    fn sample(i: u32) -> Self {
        DateTime::sample(i).and_utc()
    }
}

impl Sample for ChronoDateTimeWithTimeZone {
    // Offsets other than UTC: the key is the instant.
    fn sample(i: u32) -> Self {
        let offset = chrono::FixedOffset::east_opt(((i % 5) as i32 - 2) * 3600 + 1800).unwrap();
        DateTime::sample(i).and_utc().with_timezone(&offset)
    }
}

fn time_of(date: Date) -> TimeDate {
    use chrono::Datelike as _;
    TimeDate::from_calendar_date(
        date.year(),
        time::Month::try_from(date.month() as u8).unwrap(),
        date.day() as u8,
    )
    .unwrap()
}

impl Sample for TimeDate {
    fn sample(i: u32) -> Self {
        time_of(Date::sample(i))
    }
}

impl Sample for TimeTime {
    fn sample(i: u32) -> Self {
        TimeTime::from_hms_micro(
            (i % 24) as u8,
            ((i * 7) % 60) as u8,
            ((i * 13) % 60) as u8,
            micros(i),
        )
        .unwrap()
    }
}

impl Sample for TimeDateTime {
    fn sample(i: u32) -> Self {
        TimeDateTime::new(TimeDate::sample(i), TimeTime::sample(i))
    }
}

impl Sample for TimeDateTimeWithTimeZone {
    fn sample(i: u32) -> Self {
        let offset =
            time::UtcOffset::from_whole_seconds(((i % 5) as i32 - 2) * 3600 + 1800).unwrap();
        TimeDateTime::sample(i).assume_utc().to_offset(offset)
    }
}

impl<A: Sample, B: Sample> Sample for (A, B) {
    const SPACE: u32 = B::SPACE;
    fn sample(i: u32) -> Self {
        (A::sample(i % A::SPACE), B::sample(i))
    }
}

impl<A: Sample, B: Sample, C: Sample> Sample for (A, B, C) {
    const SPACE: u32 = C::SPACE;
    fn sample(i: u32) -> Self {
        (
            A::sample(i % A::SPACE),
            B::sample(i % B::SPACE),
            C::sample(i),
        )
    }
}

/// String and integer `ActiveEnum`s.
#[allow(unreachable_pub)] // `pub` as entities are written; the module is private.
mod enums {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
    pub enum Color {
        #[sea_orm(string_value = "red")]
        Red,
        #[sea_orm(string_value = "green \"g\"")]
        Green,
        #[sea_orm(string_value = "blue")]
        Blue,
        #[sea_orm(string_value = "é")]
        Accent,
    }

    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
    #[sea_orm(rs_type = "i32", db_type = "Integer")]
    pub enum Level {
        #[sea_orm(num_value = -1)]
        Low,
        #[sea_orm(num_value = 0)]
        Mid,
        #[sea_orm(num_value = 7)]
        High,
    }
}

impl Sample for enums::Color {
    const SPACE: u32 = 4;
    fn sample(i: u32) -> Self {
        use sea_orm::Iterable;
        Self::iter().nth(i as usize).unwrap()
    }
}

impl Sample for enums::Level {
    const SPACE: u32 = 3;
    fn sample(i: u32) -> Self {
        use sea_orm::Iterable;
        Self::iter().nth(i as usize).unwrap()
    }
}

/// An entity keyed by `$ty` in `$module`, table `$table`; `$attr` is added to the key's
/// `#[sea_orm(..)]`.
macro_rules! keyed {
    ($module:ident, $table:literal, $ty:ty $(, $attr:meta)?) => {
        #[allow(unreachable_pub)] // `pub` as entities are written; the module is private.
        mod $module {
            #[allow(unused_imports)]
            use super::enums::*;
            #[allow(unused_imports)]
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key, auto_increment = false $(, $attr)?)]
                pub id: $ty,
                pub name: String,
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
    ($module:ident, $table:literal, $a:ty, $b:ty) => {
        #[allow(unreachable_pub)] // `pub` as entities are written; the module is private.
        mod $module {
            #[allow(unused_imports)]
            use super::enums::*;
            #[allow(unused_imports)]
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key, auto_increment = false)]
                pub a: $a,
                #[sea_orm(primary_key, auto_increment = false)]
                pub b: $b,
                pub name: String,
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
    ($module:ident, $table:literal, $a:ty, $b:ty, $c:ty) => {
        #[allow(unreachable_pub)] // `pub` as entities are written; the module is private.
        mod $module {
            #[allow(unused_imports)]
            use super::enums::*;
            #[allow(unused_imports)]
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key, auto_increment = false)]
                pub a: $a,
                #[sea_orm(primary_key, auto_increment = false)]
                pub b: $b,
                #[sea_orm(primary_key, auto_increment = false)]
                pub c: $c,
                pub name: String,
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

keyed!(k_i8, "k_i8", i8);
keyed!(k_i16, "k_i16", i16);
keyed!(k_i32, "k_i32", i32);
keyed!(k_i64, "k_i64", i64);
keyed!(k_u8, "k_u8", u8);
keyed!(k_u16, "k_u16", u16);
keyed!(k_u32, "k_u32", u32);
keyed!(k_u64, "k_u64", u64);
keyed!(k_string, "k_string", String);
keyed!(k_bool, "k_bool", bool);
keyed!(
    k_bytes,
    "k_bytes",
    Vec<u8>,
    column_type = "VarBinary(StringLen::N(32))"
);
keyed!(k_uuid, "k_uuid", Uuid);
keyed!(
    k_decimal,
    "k_decimal",
    Decimal,
    column_type = "Decimal(Some((20, 4)))"
);
keyed!(k_date, "k_date", Date);
keyed!(k_time, "k_time", Time);
keyed!(k_datetime, "k_datetime", DateTime);
keyed!(k_datetime_utc, "k_datetime_utc", ChronoDateTimeUtc);
keyed!(k_datetime_tz, "k_datetime_tz", ChronoDateTimeWithTimeZone);
keyed!(k_time_date, "k_time_date", TimeDate);
keyed!(k_time_time, "k_time_time", TimeTime);
keyed!(k_time_datetime, "k_time_datetime", TimeDateTime);
keyed!(k_time_offset, "k_time_offset", TimeDateTimeWithTimeZone);
keyed!(k_color, "k_color", Color);
keyed!(k_level, "k_level", Level);
keyed!(k_uuid_date, "k_uuid_date", Uuid, Date);
keyed!(k_color_utc, "k_color_utc", Color, ChronoDateTimeUtc);
keyed!(
    k_bool_decimal_str,
    "k_bool_decimal_str",
    bool,
    Decimal,
    String
);

/// Creates `E`'s table. MariaDB/MySQL's `time`, `datetime` and `timestamp` keep whole
/// seconds unless told a precision, and a bare `decimal` is `decimal(10,0)`: those key
/// columns get microseconds and four decimals, as an application whose keys carry them
/// declares in its own schema.
async fn create_table<E: EntityTrait>(t: &TestDb) {
    let backend = t.db_backend();
    let statement = Schema::new(backend).create_table_from_entity(E::default());
    t.db.execute(&statement).await.unwrap();
    if backend == DbBackend::MySql {
        let table = E::default().table_name().to_owned();
        let sql = format!("SHOW COLUMNS FROM `{table}`");
        let rows =
            t.db.query_all_raw(Statement::from_string(backend, sql))
                .await
                .unwrap();
        for row in rows {
            let field: String = row.try_get("", "Field").unwrap();
            let kind: String = row.try_get("", "Type").unwrap();
            let precise = match kind.as_str() {
                "time" | "datetime" | "timestamp" => format!("{kind}(6)"),
                "decimal(10,0)" => "decimal(20,4)".to_owned(),
                _ => continue,
            };
            let sql = format!("ALTER TABLE `{table}` MODIFY `{field}` {precise} NOT NULL");
            t.db.execute_unprepared(&sql).await.unwrap();
        }
    }
}

/// Whether SeaORM's driver for `t`'s backend stores `E`'s key at all: sqlx-postgres has no
/// unsigned integers ("u8 unsupported by sqlx-postgres") and binds `i8` as `"char"`, which a
/// `smallint` column refuses; sqlx-sqlite has no `u64`. Such a key is no key on that
/// backend, so there is nothing to test.
fn stores_key<E: EntityTrait>(t: &TestDb) -> bool {
    use sea_orm::sea_query::ArrayType;
    let unsupported = E::PrimaryKey::iter().any(|key| {
        let ty = <E::Model as sea_orm::ModelTrait>::get_value_type(key.into_column());
        match t.db_backend() {
            DbBackend::Postgres => matches!(
                ty,
                ArrayType::TinyInt
                    | ArrayType::TinyUnsigned
                    | ArrayType::SmallUnsigned
                    | ArrayType::Unsigned
                    | ArrayType::BigUnsigned
            ),
            DbBackend::Sqlite => ty == ArrayType::BigUnsigned,
            _ => false,
        }
    });
    if unsupported {
        eprintln!(
            "{}: SeaORM's {:?} driver stores no such key",
            E::default().table_name(),
            t.db_backend()
        );
    }
    !unsupported
}

/// The `name` column of `E`.
fn name_column<E: EntityTrait>() -> E::Column {
    E::Column::iter()
        .find(|c| c.as_str() == "name")
        .expect("a name column")
}

/// `E`'s row with key `key`, named "seed".
fn new_row<E: EntityTrait>(key: &KeyOf<E>) -> E::ActiveModel
where
    KeyOf<E>: Clone,
{
    let mut am = E::ActiveModel::default();
    for (pk, value) in E::PrimaryKey::iter().zip(key.clone().into_value_tuple()) {
        am.set(pk.into_column(), value);
    }
    am.set(name_column::<E>(), "seed".into());
    am
}

/// `E`'s row with key `key` as the database holds it, renamed to `name` (the key unchanged).
async fn renamed<E: CacheableEntity>(
    db: &impl ConnectionTrait,
    key: &KeyOf<E>,
    name: &str,
) -> E::ActiveModel {
    let model = E::find_by_id(key.clone())
        .one(db)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{key:?} is in the table"));
    let mut am = model.into_active_model();
    am.set(name_column::<E>(), name.into());
    am
}

fn keys<E: EntityTrait>() -> Vec<KeyOf<E>>
where
    KeyOf<E>: Sample,
{
    (0..KeyOf::<E>::SPACE.min(100))
        .map(KeyOf::<E>::sample)
        .collect()
}

async fn insert_all<E: EntityTrait>(db: &impl ConnectionTrait, keys: &[KeyOf<E>])
where
    KeyOf<E>: Clone,
    E::ActiveModel: Send,
{
    for key in keys {
        E::insert(new_row::<E>(key))
            .exec_without_returning(db)
            .await
            .unwrap_or_else(|e| panic!("inserting {key:?}: {e}"));
    }
}

/// A layer on its own connection to `t`'s database caching `E` read-through, reading the
/// log only when told to.
async fn instance<E: CacheableEntity>(t: &TestDb, capture: Capture) -> CacheLayer {
    let by_hand = Coherence::on()
        .poll_interval(Duration::from_secs(3600))
        .listen(false);
    let mut builder = CacheLayer::builder(t.connect_again().await).coherence(by_hand);
    if capture == Capture::Triggers {
        builder = builder.install_triggers();
    }
    builder
        .entity::<E>(move |c| c.policy(Policy::ReadThrough).capture(capture))
        .build()
        .await
        .unwrap()
}

/// A holds every row; B (or `outside`) changes `keys[1]`; A, after reading the log, holds
/// every other row and not that one.
async fn check_one_key_dropped<E>(
    a: &CacheLayer,
    keys: &[KeyOf<E>],
    write: impl AsyncFnOnce(&KeyOf<E>),
) where
    E: CacheableEntity,
{
    let repo = a.repository::<E>().unwrap();
    a.catch_up().await.unwrap(); // the inserts' own log rows, if any
    for key in keys {
        assert!(
            repo.get(key.clone()).await.unwrap().is_some(),
            "{key:?} loads"
        );
    }
    for key in keys {
        assert!(
            repo.peek(key.clone()).is_some(),
            "{key:?} cached before the write"
        );
    }
    let changed = &keys[1];
    write(changed).await;
    a.catch_up().await.unwrap();
    let held: Vec<&KeyOf<E>> = keys
        .iter()
        .filter(|k| repo.peek((*k).clone()).is_some())
        .collect();
    assert!(
        !held.contains(&changed),
        "A still holds the changed key {changed:?}"
    );
    assert_eq!(
        held.len(),
        keys.len() - 1,
        "A holds {} of the {} other rows",
        held.len(),
        keys.len() - 1
    );
}

async fn two_instances<E>(t: TestDb)
where
    E: CacheableEntity,
    KeyOf<E>: Sample,
{
    if !stores_key::<E>(&t) {
        return;
    }
    create_table::<E>(&t).await;
    let keys = keys::<E>();
    insert_all::<E>(&t.db, &keys).await;
    let a = instance::<E>(&t, Capture::Layer).await;
    let b = instance::<E>(&t, Capture::Layer).await;
    let repo_b = b.repository::<E>().unwrap();
    check_one_key_dropped::<E>(&a, &keys, async |key| {
        let am = renamed::<E>(&t.db, key, "changed by B").await;
        repo_b.update(am).await.unwrap();
    })
    .await;
    // The write reached the database, and A reloads it.
    let repo_a = a.repository::<E>().unwrap();
    let model = repo_a.get(keys[1].clone()).await.unwrap().unwrap();
    let name = sea_orm::ModelTrait::get(&*model, name_column::<E>());
    assert_eq!(name, Value::from("changed by B"));
}

async fn trigger_text<E>(t: TestDb)
where
    E: CacheableEntity,
    KeyOf<E>: Sample,
{
    if !stores_key::<E>(&t) {
        return;
    }
    create_table::<E>(&t).await;
    let table = E::default().table_name().to_owned();
    let a = instance::<E>(&t, Capture::Triggers).await;
    let keys = keys::<E>();
    // An outside writer: a plain connection, no layer.
    insert_all::<E>(&t.db, &keys).await;
    let backend = t.db_backend();
    let rows =
        t.db.query_all_raw(Statement::from_sql_and_values(
            backend,
            match backend {
                DbBackend::Postgres => {
                    "SELECT pk FROM sea_orm_cache_invalidation WHERE entity = $1 ORDER BY id"
                }
                _ => "SELECT pk FROM sea_orm_cache_invalidation WHERE entity = ? ORDER BY id",
            },
            [table.clone().into()],
        ))
        .await
        .unwrap();
    assert_eq!(rows.len(), keys.len(), "one log row per inserted row");
    for (row, key) in rows.iter().zip(&keys) {
        let text: String = row.try_get("", "pk").unwrap();
        assert_eq!(
            text,
            key_text(key.clone().into_value_tuple()),
            "the trigger's text for {key:?}"
        );
        assert_eq!(&key_from_text::<E>(&text).unwrap(), key, "{text} decodes");
    }
    check_one_key_dropped::<E>(&a, &keys, async |key| {
        let am = renamed::<E>(&t.db, key, "changed outside").await;
        E::update(am).exec(&t.db).await.unwrap();
    })
    .await;
    triggers::uninstall::<E, _>(&t.db).await.unwrap();
}

macro_rules! key_type_tests {
    ($($name:ident: $entity:ident),* $(,)?) => {
        mod two_instances {
            $(
                async fn $name(t: $crate::common::TestDb) {
                    super::two_instances::<super::$entity::Entity>(t).await
                }
            )*
            $crate::backend_tests!($($name),*);
        }
        mod trigger_text {
            $(
                async fn $name(t: $crate::common::TestDb) {
                    super::trigger_text::<super::$entity::Entity>(t).await
                }
            )*
            $crate::backend_tests!($($name),*);
        }
    };
}

key_type_tests!(
    i8: k_i8,
    i16: k_i16,
    i32: k_i32,
    i64: k_i64,
    u8: k_u8,
    u16: k_u16,
    u32: k_u32,
    u64: k_u64,
    string: k_string,
    bool: k_bool,
    bytes: k_bytes,
    uuid: k_uuid,
    decimal: k_decimal,
    chrono_date: k_date,
    chrono_time: k_time,
    chrono_datetime: k_datetime,
    chrono_datetime_utc: k_datetime_utc,
    chrono_datetime_fixed_offset: k_datetime_tz,
    time_date: k_time_date,
    time_time: k_time_time,
    time_primitive_datetime: k_time_datetime,
    time_offset_datetime: k_time_offset,
    string_enum: k_color,
    integer_enum: k_level,
    uuid_and_date: k_uuid_date,
    string_enum_and_utc: k_color_utc,
    bool_decimal_and_string: k_bool_decimal_str,
);

keyed!(k_float, "k_float", f64);

/// A key type without a key text (a float) is refused by the triggers with a typed error.
#[test]
fn triggers_refuse_a_key_type_without_a_key_text() {
    let err = triggers::for_entity::<k_float::Entity>().unwrap_err();
    assert!(
        matches!(&err, sea_orm_cache::Error::InvalidConfig { source, .. } if source.setting == "capture"),
        "{err}"
    );
}

/// A log row whose key text names no key of its entity (not a UUID; an enum value that is
/// no variant) drops that entity whole on the reading instance, is counted, and panics
/// nothing; the next row with a good text invalidates one key again.
async fn undecodable_key_texts_drop_the_entity_and_are_counted(t: TestDb) {
    create_table::<k_uuid::Entity>(&t).await;
    create_table::<k_color::Entity>(&t).await;
    let uuids = keys::<k_uuid::Entity>();
    let colors = keys::<k_color::Entity>();
    insert_all::<k_uuid::Entity>(&t.db, &uuids).await;
    insert_all::<k_color::Entity>(&t.db, &colors).await;
    let by_hand = Coherence::on()
        .poll_interval(Duration::from_secs(3600))
        .listen(false);
    let a = CacheLayer::builder(t.connect_again().await)
        .coherence(by_hand)
        .entity::<k_uuid::Entity>(|c| c.policy(Policy::ReadThrough))
        .entity::<k_color::Entity>(|c| c.policy(Policy::ReadThrough))
        .build()
        .await
        .unwrap();
    let (repo_u, repo_c) = (
        a.repository::<k_uuid::Entity>().unwrap(),
        a.repository::<k_color::Entity>().unwrap(),
    );
    let fill = async || {
        for key in &uuids {
            repo_u.get(*key).await.unwrap().unwrap();
        }
        for key in &colors {
            repo_c.get(*key).await.unwrap().unwrap();
        }
    };
    let log = async |entity: &str, pk: &str| {
        let sql = format!(
            "INSERT INTO sea_orm_cache_invalidation (entity, pk, origin, created_at) \
             VALUES ('{entity}', '{pk}', 'by hand', 0)"
        );
        t.db.execute_unprepared(&sql).await.unwrap();
        a.catch_up().await.unwrap();
    };
    let held_u = || uuids.iter().filter(|k| repo_u.peek(**k).is_some()).count();
    let held_c = || colors.iter().filter(|k| repo_c.peek(**k).is_some()).count();

    fill().await;
    log("k_uuid", r#"["not a uuid"]"#).await;
    assert_eq!((held_u(), held_c()), (0, colors.len()));
    assert_eq!(a.coherence_stats().undecodable_keys, 1);

    fill().await;
    log("k_color", r#"["purple"]"#).await;
    assert_eq!((held_u(), held_c()), (uuids.len(), 0));
    assert_eq!(a.coherence_stats().undecodable_keys, 2);

    fill().await;
    let one = key_text(uuids[3].into_value_tuple());
    log("k_uuid", &one).await;
    assert_eq!(held_u(), uuids.len() - 1);
    assert!(repo_u.peek(uuids[3]).is_none());
    assert_eq!(a.coherence_stats().undecodable_keys, 2);
}

mod undecodable {
    use super::undecodable_key_texts_drop_the_entity_and_are_counted;
    crate::backend_tests!(undecodable_key_texts_drop_the_entity_and_are_counted);
}
