//! The outbox and dead-letter tables (DESIGN section 5): their schema, created by
//! [`create_tables`] (for users' own migrators and for
//! `CacheLayerBuilder::create_outbox_tables`), the capacities of their text columns, and the
//! SeaORM entities the writer and flusher use.

use sea_orm::sea_query::{
    Alias, ColumnDef, Expr, Iden, Index, IndexCreateStatement, Table, TableCreateStatement,
};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, DbErr, DeriveIden, Statement};

/// Name of the outbox table.
pub const OUTBOX_TABLE: &str = "sea_orm_cache_outbox";
/// Name of the dead-letter table.
pub const DEAD_LETTER_TABLE: &str = "sea_orm_cache_dead_letter";
/// Name of the outbox's `(entity, pk, id)` index.
const OUTBOX_INDEX: &str = "idx_sea_orm_cache_outbox_key";
/// Characters of the `pk` column. On MySQL/MariaDB (utf8mb4, 4 bytes a character) the
/// `(entity, pk, id)` index is 64 * 4 + 512 * 4 + 8 bytes, under InnoDB's 3072-byte limit.
const PK_CHARS: u64 = 512;
/// MySQL/MariaDB's character set and collation for the tables: every character a model's
/// JSON can hold, and keys compared byte for byte (`"A"` and `"a"` are different keys).
const MYSQL_CHARSET: &str = "utf8mb4";
const MYSQL_COLLATION: &str = "utf8mb4_bin";

#[derive(DeriveIden)]
enum Col {
    Id,
    Entity,
    Pk,
    Op,
    Payload,
    CreatedAt,
    Attempts,
    LastError,
    AvailableAt,
    FailedAt,
}

struct Name(&'static str);

impl Iden for Name {
    fn unquoted(&self) -> &str {
        self.0
    }
}

/// A column of any length of text: `LONGTEXT` on MySQL/MariaDB (its `TEXT` holds 64 KiB),
/// `TEXT` elsewhere.
fn long_text(column: &mut ColumnDef, backend: DbBackend) -> &mut ColumnDef {
    match backend {
        DbBackend::MySql => column.custom(Alias::new("longtext")),
        _ => column.text(),
    }
}

fn common_columns(table: &mut TableCreateStatement, backend: DbBackend) {
    table
        .col(ColumnDef::new(Col::Entity).string_len(64).not_null())
        .col(
            ColumnDef::new(Col::Pk)
                .string_len(PK_CHARS as u32)
                .not_null(),
        )
        .col(ColumnDef::new(Col::Op).string_len(16).not_null())
        .col(long_text(&mut ColumnDef::new(Col::Payload), backend).not_null())
        .col(ColumnDef::new(Col::CreatedAt).big_integer().not_null())
        .col(
            ColumnDef::new(Col::Attempts)
                .integer()
                .not_null()
                .default(0),
        )
        .col(long_text(&mut ColumnDef::new(Col::LastError), backend).null())
        .col(ColumnDef::new(Col::AvailableAt).big_integer().not_null());
    if backend == DbBackend::MySql {
        table
            .engine("InnoDB")
            .character_set(MYSQL_CHARSET)
            .collate(MYSQL_COLLATION);
    }
}

/// `CREATE TABLE IF NOT EXISTS` for the outbox and the dead-letter table on `backend`.
fn tables(backend: DbBackend) -> Vec<TableCreateStatement> {
    let mut outbox = Table::create();
    outbox.table(Name(OUTBOX_TABLE)).if_not_exists().col(
        ColumnDef::new(Col::Id)
            .big_integer()
            .not_null()
            .auto_increment()
            .primary_key(),
    );
    common_columns(&mut outbox, backend);

    let mut dead = Table::create();
    dead.table(Name(DEAD_LETTER_TABLE)).if_not_exists().col(
        ColumnDef::new(Col::Id)
            .big_integer()
            .not_null()
            .primary_key(),
    );
    common_columns(&mut dead, backend);
    dead.col(ColumnDef::new(Col::FailedAt).big_integer().not_null());
    vec![outbox, dead]
}

/// The outbox's `(entity, pk, id)` index: finding a key's pending writes, oldest first.
/// (`IF NOT EXISTS` is not emitted for MySQL/MariaDB: [`create_tables`] asks
/// `information_schema` there.)
fn outbox_index() -> IndexCreateStatement {
    Index::create()
        .name(OUTBOX_INDEX)
        .table(Name(OUTBOX_TABLE))
        .col(Col::Entity)
        .col(Col::Pk)
        .col(Col::Id)
        .if_not_exists()
        .to_owned()
}

/// Creates the outbox and dead-letter tables and the outbox's index where they do not exist,
/// and the invalidation log that instances share (`sea_orm_cache_invalidation`, see
/// [`Coherence`](crate::Coherence)), and upgrades tables an older version created; running it
/// again changes nothing. Every
/// backend gets its own DDL: on MySQL/MariaDB the tables are InnoDB, `utf8mb4` with the
/// `utf8mb4_bin` collation, with `LONGTEXT` payloads and a `VARCHAR(512)` key.
///
/// `CacheLayerBuilder::create_outbox_tables` calls it at build; in a sea-orm-migration
/// `MigrationTrait::up` (`sea_orm_cache::migration::OutboxMigration`, feature `migration`,
/// does this):
///
/// ```text
/// sea_orm_cache::outbox::create_tables(manager.get_connection()).await
/// ```
///
/// On MySQL/MariaDB, whose `CREATE INDEX` has no `IF NOT EXISTS`, the index is created only
/// if `information_schema.statistics` does not list it, and tables created by an older
/// version (`TEXT` payloads, which hold 64 KiB, a `VARCHAR(255)` key, another character set
/// or collation, another engine) are altered to the current columns; the
/// columns are read from `information_schema.columns` and a table already current is left
/// alone. Postgres and SQLite tables from an older version are left as they are (`TEXT`
/// there holds any payload; an older Postgres `pk` column holds 255 characters, and a longer
/// key is refused with `Error::OutboxRowTooLarge`).
///
/// # Errors
/// The database's error if a statement fails.
pub async fn create_tables<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    let backend = db.get_database_backend();
    crate::coherence::create_table(db).await?;
    for table in tables(backend) {
        db.execute(&table).await?;
    }
    if backend != DbBackend::MySql {
        // Postgres and SQLite honour `IF NOT EXISTS`.
        db.execute(&outbox_index()).await?;
        return Ok(());
    }
    for table in [OUTBOX_TABLE, DEAD_LETTER_TABLE] {
        upgrade_mysql_table(db, table).await?;
    }
    if !mysql_index_exists(db).await?
        && let Err(err) = db.execute(&outbox_index()).await
        // Another process may have created it since the look-up: only then is it done.
        && !mysql_index_exists(db).await?
    {
        return Err(err);
    }
    Ok(())
}

/// Whether the outbox's index exists in the current MySQL/MariaDB database.
async fn mysql_index_exists<C: ConnectionTrait>(db: &C) -> Result<bool, DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT COUNT(*) AS n FROM information_schema.statistics \
             WHERE table_schema = DATABASE() AND table_name = ? AND index_name = ?",
            [OUTBOX_TABLE.into(), OUTBOX_INDEX.into()],
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get::<i64>("", "n")? > 0,
        None => false,
    })
}

/// One text column of a table, as MySQL/MariaDB's `information_schema.columns` has it.
struct MySqlColumn {
    name: String,
    data_type: String,
    max_chars: Option<i64>,
    charset: Option<String>,
    collation: Option<String>,
}

/// Alters `table` (created by an older version) to the current engine, character set,
/// collation and text columns, if any of them differs; does nothing otherwise.
async fn upgrade_mysql_table<C: ConnectionTrait>(db: &C, table: &str) -> Result<(), DbErr> {
    let engine = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT ENGINE AS engine FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = ?",
            [table.into()],
        ))
        .await?
        .map(|row| row.try_get::<Option<String>>("", "engine"))
        .transpose()?
        .flatten();
    let columns = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT COLUMN_NAME AS name, DATA_TYPE AS data_type, \
             CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED) AS max_chars, \
             CHARACTER_SET_NAME AS charset, COLLATION_NAME AS collation \
             FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = ? \
             AND COLUMN_NAME IN ('entity', 'pk', 'op', 'payload', 'last_error')",
            [table.into()],
        ))
        .await?
        .into_iter()
        .map(|row| {
            Ok(MySqlColumn {
                name: row.try_get("", "name")?,
                data_type: row.try_get("", "data_type")?,
                max_chars: row.try_get("", "max_chars")?,
                charset: row.try_get("", "charset")?,
                collation: row.try_get("", "collation")?,
            })
        })
        .collect::<Result<Vec<_>, DbErr>>()?;
    let mut current = engine
        .as_deref()
        .is_none_or(|e| e.eq_ignore_ascii_case("InnoDB"));
    let mut pk_chars = PK_CHARS;
    for column in &columns {
        let text = column.charset.as_deref() == Some(MYSQL_CHARSET)
            && column.collation.as_deref() == Some(MYSQL_COLLATION);
        let shape = match column.name.as_str() {
            "payload" | "last_error" => column.data_type.eq_ignore_ascii_case("longtext"),
            "pk" => {
                let chars = column.max_chars.unwrap_or(0).max(0) as u64;
                // Never narrow a key column someone widened.
                pk_chars = pk_chars.max(chars);
                column.data_type.eq_ignore_ascii_case("varchar") && chars >= PK_CHARS
            }
            _ => true,
        };
        current &= text && shape;
    }
    if current {
        return Ok(());
    }
    let text = format!("CHARACTER SET {MYSQL_CHARSET} COLLATE {MYSQL_COLLATION}");
    db.execute_unprepared(&format!(
        "ALTER TABLE `{table}` ENGINE=InnoDB, DEFAULT {text}, \
         MODIFY `entity` VARCHAR(64) {text} NOT NULL, \
         MODIFY `pk` VARCHAR({pk_chars}) {text} NOT NULL, \
         MODIFY `op` VARCHAR(16) {text} NOT NULL, \
         MODIFY `payload` LONGTEXT {text} NOT NULL, \
         MODIFY `last_error` LONGTEXT {text} NULL"
    ))
    .await?;
    Ok(())
}

/// How much one text column holds: characters and bytes (`None`: no limit known).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Capacity {
    /// Characters (MySQL counts code points, as `str::chars` does).
    pub(crate) chars: Option<u64>,
    /// Bytes of the value in UTF-8 (the tables' character set).
    pub(crate) bytes: Option<u64>,
}

impl Capacity {
    /// The tighter of two capacities.
    fn min(self, other: Capacity) -> Capacity {
        let min = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Capacity {
            chars: min(self.chars, other.chars),
            bytes: min(self.bytes, other.bytes),
        }
    }
}

/// What an outbox row's `pk` and `payload` may hold: the smaller of the outbox's and the
/// dead-letter table's column (a row must fit both, the dead-letter table too).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RowCapacity {
    /// The `pk` column.
    pub(crate) pk: Capacity,
    /// The `payload` column.
    pub(crate) payload: Capacity,
}

/// Reads the capacities of the tables' `pk` and `payload` columns from
/// `information_schema.columns` (MySQL/MariaDB and Postgres). SQLite does not limit text, so
/// nothing is read there.
pub(crate) async fn row_capacity<C: ConnectionTrait>(db: &C) -> Result<RowCapacity, DbErr> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::MySql => {
            "SELECT COLUMN_NAME AS name, \
             CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED) AS max_chars, \
             CAST(CHARACTER_OCTET_LENGTH AS SIGNED) AS max_bytes \
             FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name IN (?, ?) \
             AND COLUMN_NAME IN ('pk', 'payload')"
        }
        DbBackend::Postgres => {
            "SELECT column_name::text AS name, \
             character_maximum_length::bigint AS max_chars, \
             character_octet_length::bigint AS max_bytes \
             FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name IN ($1, $2) \
             AND column_name IN ('pk', 'payload')"
        }
        _ => return Ok(RowCapacity::default()),
    };
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [OUTBOX_TABLE.into(), DEAD_LETTER_TABLE.into()],
        ))
        .await?;
    let mut capacity = RowCapacity::default();
    for row in rows {
        let name: String = row.try_get("", "name")?;
        let limit = |n: Option<i64>| n.map(|n| n.max(0) as u64);
        let column = Capacity {
            chars: limit(row.try_get("", "max_chars")?),
            bytes: limit(row.try_get("", "max_bytes")?),
        };
        match name.as_str() {
            "pk" => capacity.pk = capacity.pk.min(column),
            "payload" => capacity.payload = capacity.payload.min(column),
            _ => {}
        }
    }
    Ok(capacity)
}

/// The outbox table as a SeaORM entity.
#[allow(missing_docs, unreachable_pub)]
pub(crate) mod outbox_row {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sea_orm_cache_outbox")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub entity: String,
        pub pk: String,
        pub op: String,
        #[sea_orm(column_type = "Text")]
        pub payload: String,
        pub created_at: i64,
        pub attempts: i32,
        #[sea_orm(column_type = "Text", nullable)]
        pub last_error: Option<String>,
        pub available_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The dead-letter table as a SeaORM entity.
#[allow(missing_docs, unreachable_pub)]
pub(crate) mod dead_letter_row {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sea_orm_cache_dead_letter")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: i64,
        pub entity: String,
        pub pk: String,
        pub op: String,
        #[sea_orm(column_type = "Text")]
        pub payload: String,
        pub created_at: i64,
        pub attempts: i32,
        #[sea_orm(column_type = "Text", nullable)]
        pub last_error: Option<String>,
        pub available_at: i64,
        pub failed_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Largest number of bind parameters one statement uses.
pub(super) const MAX_PARAMS: usize = 30_000;

/// `pk IN (pks)`, on Postgres as one JSON parameter (a statement whose text does not change with the list's length, prepared once per connection).
pub(super) fn pks_in(backend: DbBackend, pks: &[String]) -> Result<Expr, DbErr> {
    if backend != DbBackend::Postgres {
        return Ok(outbox_row::Column::Pk.is_in(pks.iter().cloned()));
    }
    let json = serde_json::to_string(pks)
        .map_err(|err| DbErr::Custom(format!("encoding outbox keys: {err}")))?;
    Ok(Expr::cust_with_values(
        r#""pk" IN (SELECT value FROM json_array_elements_text($1::json))"#,
        [json],
    ))
}
