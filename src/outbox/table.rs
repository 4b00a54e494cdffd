//! The outbox and dead-letter tables (DESIGN section 5): their schema, for users' own
//! migrators and for `CacheLayerBuilder::create_outbox_tables`, and the SeaORM entities the
//! writer and flusher use.

use sea_orm::sea_query::Iden;
use sea_orm::sea_query::{ColumnDef, Index, IndexCreateStatement, Table, TableCreateStatement};
use sea_orm::{DeriveIden, Value};

/// Name of the outbox table.
pub const OUTBOX_TABLE: &str = "sea_orm_cache_outbox";
/// Name of the dead-letter table.
pub const DEAD_LETTER_TABLE: &str = "sea_orm_cache_dead_letter";

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

fn common_columns(table: &mut TableCreateStatement) {
    table
        .col(ColumnDef::new(Col::Entity).string_len(64).not_null())
        .col(ColumnDef::new(Col::Pk).string_len(255).not_null())
        .col(ColumnDef::new(Col::Op).string_len(16).not_null())
        .col(ColumnDef::new(Col::Payload).text().not_null())
        .col(ColumnDef::new(Col::CreatedAt).big_integer().not_null())
        .col(
            ColumnDef::new(Col::Attempts)
                .integer()
                .not_null()
                .default(0),
        )
        .col(ColumnDef::new(Col::LastError).text().null())
        .col(ColumnDef::new(Col::AvailableAt).big_integer().not_null());
}

/// `CREATE TABLE IF NOT EXISTS` for the outbox and the dead-letter table.
///
/// ```text
/// // in a sea-orm-migration `MigrationTrait::up`:
/// for table in sea_orm_cache::outbox::tables() {
///     manager.create_table(table).await?;
/// }
/// for index in sea_orm_cache::outbox::indexes() {
///     manager.create_index(index).await?;
/// }
/// ```
pub fn tables() -> Vec<TableCreateStatement> {
    let mut outbox = Table::create();
    outbox.table(Name(OUTBOX_TABLE)).if_not_exists().col(
        ColumnDef::new(Col::Id)
            .big_integer()
            .not_null()
            .auto_increment()
            .primary_key(),
    );
    common_columns(&mut outbox);

    let mut dead = Table::create();
    dead.table(Name(DEAD_LETTER_TABLE)).if_not_exists().col(
        ColumnDef::new(Col::Id)
            .big_integer()
            .not_null()
            .primary_key(),
    );
    common_columns(&mut dead);
    dead.col(ColumnDef::new(Col::FailedAt).big_integer().not_null());
    vec![outbox, dead]
}

/// The outbox's `(entity, pk, id)` index: finding a key's pending writes, oldest first.
pub fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        Index::create()
            .name("idx_sea_orm_cache_outbox_key")
            .table(Name(OUTBOX_TABLE))
            .col(Col::Entity)
            .col(Col::Pk)
            .col(Col::Id)
            .if_not_exists()
            .to_owned(),
    ]
}

/// A primary key as the outbox's `pk` text: a JSON array of its values.
pub(crate) fn key_text(values: impl IntoIterator<Item = Value>) -> String {
    let parts: Vec<String> = values
        .into_iter()
        .map(|value| match value {
            Value::TinyInt(Some(v)) => v.to_string(),
            Value::SmallInt(Some(v)) => v.to_string(),
            Value::Int(Some(v)) => v.to_string(),
            Value::BigInt(Some(v)) => v.to_string(),
            Value::TinyUnsigned(Some(v)) => v.to_string(),
            Value::SmallUnsigned(Some(v)) => v.to_string(),
            Value::Unsigned(Some(v)) => v.to_string(),
            Value::BigUnsigned(Some(v)) => v.to_string(),
            Value::String(Some(s)) => serde_json::Value::String(s).to_string(),
            // Any other key type: its debug form, stable for one value.
            other => serde_json::Value::String(format!("{other:?}")).to_string(),
        })
        .collect();
    format!("[{}]", parts.join(","))
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
