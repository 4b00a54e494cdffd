//! Test support: one fresh database per test on each backend, a log of the statements it ran,
//! and `backend_tests!` to run each test body on SQLite, Postgres and MySQL/MariaDB.
//!
//! URLs come from `TEST_POSTGRES_URL` and `TEST_MYSQL_URL` (an admin connection; each test
//! creates its own database next to it and drops it afterwards). When a variable is unset the
//! test prints why and passes, except under `CI`, where it fails.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use migration::{Migrator, MigratorTrait, with_database};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl Backend {
    fn env(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("TEST_POSTGRES_URL"),
            Backend::MySql => Some("TEST_MYSQL_URL"),
        }
    }
}

/// Every statement a test's connection ran, in order.
#[derive(Debug, Default)]
pub struct QueryLog {
    statements: Mutex<Vec<String>>,
}

impl QueryLog {
    fn push(&self, sql: &str) {
        self.statements.lock().unwrap().push(sql.to_owned());
    }

    pub fn clear(&self) {
        self.statements.lock().unwrap().clear();
    }

    pub fn all(&self) -> Vec<String> {
        self.statements.lock().unwrap().clone()
    }

    /// Statements that start with `verb` (SELECT, INSERT, UPDATE, DELETE) and name `table`.
    pub fn count(&self, verb: &str, table: &str) -> usize {
        let quoted = [format!("\"{table}\""), format!("`{table}`")];
        self.statements
            .lock()
            .unwrap()
            .iter()
            .filter(|sql| {
                sql.trim_start().to_ascii_uppercase().starts_with(verb)
                    && quoted.iter().any(|q| sql.contains(q.as_str()))
            })
            .count()
    }

    pub fn selects(&self, table: &str) -> usize {
        self.count("SELECT", table)
    }

    /// INSERT, UPDATE and DELETE statements on `table`.
    pub fn writes(&self, table: &str) -> usize {
        self.count("INSERT", table) + self.count("UPDATE", table) + self.count("DELETE", table)
    }
}

/// One test's database.
#[derive(Clone, Debug)]
pub struct TestDb {
    pub backend: Backend,
    /// Connection whose statements are logged in `log`.
    pub db: DatabaseConnection,
    pub log: Arc<QueryLog>,
    url: String,
    admin_url: Option<String>,
    name: String,
    sqlite_path: Option<std::path::PathBuf>,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn unique_name(test: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let short: String = test.chars().take(28).collect();
    format!(
        "soc_{short}_{}_{}_{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

async fn connect_logged(url: &str) -> (DatabaseConnection, Arc<QueryLog>) {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(8)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    let mut db = Database::connect(options)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"));
    let log = Arc::new(QueryLog::default());
    let sink = log.clone();
    db.set_metric_callback(move |info| sink.push(&info.statement.sql));
    (db, log)
}

impl TestDb {
    /// A fresh database with the example tables, or `None` (with a printed reason) when the
    /// backend's URL is not configured.
    pub async fn create(backend: Backend, test: &str) -> Option<TestDb> {
        let name = unique_name(test);
        let (url, admin_url, sqlite_path) = match backend.env() {
            None => {
                let path = std::env::temp_dir().join(format!("{name}.db"));
                (
                    format!("sqlite://{}?mode=rwc", path.display()),
                    None,
                    Some(path),
                )
            }
            Some(var) => match std::env::var(var) {
                Ok(admin) => {
                    let admin_db = Database::connect(admin.as_str())
                        .await
                        .unwrap_or_else(|e| panic!("{var}={admin}: cannot connect: {e}"));
                    admin_db
                        .execute_unprepared(&format!("CREATE DATABASE {name}"))
                        .await
                        .unwrap_or_else(|e| panic!("creating database {name}: {e}"));
                    admin_db.close().await.ok();
                    (with_database(&admin, &name), Some(admin), None)
                }
                Err(_) => {
                    if std::env::var_os("CI").is_some() {
                        panic!("{var} is not set; CI runs every test against {backend:?}");
                    }
                    eprintln!("skipping {test} on {backend:?}: {var} is not set");
                    return None;
                }
            },
        };
        let (db, log) = connect_logged(&url).await;
        Migrator::up(&db, None).await.expect("migrations");
        log.clear();
        Some(TestDb {
            backend,
            db,
            log,
            url,
            admin_url,
            name,
            sqlite_path,
        })
    }

    /// The database's name on its server (its file's stem on SQLite).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The database's URL, for another process.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// `SELECT COUNT(*)` of `table`.
    pub async fn count(&self, table: &str) -> i64 {
        let row = self
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                self.db_backend(),
                format!("SELECT COUNT(*) AS n FROM {table}"),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get::<i64>("", "n").unwrap()
    }

    /// A layer builder over `db`, whose own connections (the tailer's and the flushers')
    /// log their statements in `log` too.
    pub fn builder(&self) -> sea_orm_cache::CacheLayerBuilder {
        let sink = self.log.clone();
        sea_orm_cache::CacheLayer::builder(self.db.clone())
            .metric_callback(move |info| sink.push(&info.statement.sql))
    }

    /// A second, unlogged connection to the same database.
    pub async fn connect_again(&self) -> DatabaseConnection {
        connect_logged(&self.url).await.0
    }

    pub fn db_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Renames a table, portable across the three backends.
    pub async fn rename_table(&self, from: &str, to: &str) {
        let sql = match self.backend {
            Backend::MySql => format!("RENAME TABLE `{from}` TO `{to}`"),
            _ => format!("ALTER TABLE \"{from}\" RENAME TO \"{to}\""),
        };
        self.db.execute_unprepared(&sql).await.unwrap();
    }

    async fn drop(self) {
        let _ = self.db.close().await;
        if let Some(path) = &self.sqlite_path {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
        if let Some(admin) = &self.admin_url {
            let admin_db = Database::connect(admin.as_str()).await.unwrap();
            let sql = match self.backend {
                Backend::Postgres => format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
                _ => format!("DROP DATABASE IF EXISTS {}", self.name),
            };
            admin_db.execute_unprepared(&sql).await.unwrap();
            admin_db.close().await.ok();
        }
    }
}

/// Runs `body` on a fresh database of `backend`, then drops the database, pass or fail.
pub async fn run<F, Fut>(backend: Backend, test: &str, body: F)
where
    F: FnOnce(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(t) = TestDb::create(backend, test).await else {
        return;
    };
    let outcome = tokio::spawn(body(t.clone())).await;
    t.drop().await;
    if let Err(err) = outcome {
        std::panic::resume_unwind(err.into_panic());
    }
}

/// Declares, for each named `async fn(TestDb)`, one test per backend: `sqlite::name`,
/// `postgres::name` and `mysql::name`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    $crate::common::run($crate::common::Backend::Sqlite, stringify!($name), super::$name).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    $crate::common::run($crate::common::Backend::Postgres, stringify!($name), super::$name).await
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    $crate::common::run($crate::common::Backend::MySql, stringify!($name), super::$name).await
                }
            )*
        }
    };
}

/// Milliseconds since the Unix epoch, for `updated_at`.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Inserts a user straight into the database (not through any cache); returns it.
pub async fn seed_user(db: &DatabaseConnection, n: i64) -> entity::user::Model {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    entity::user::ActiveModel {
        email: Set(format!("user{n}@example.com")),
        name: Set(format!("user {n}")),
        bio: Set(String::new()),
        updated_at: Set(now_ms()),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap()
}

/// Inserts a profile straight into the database; returns it.
pub async fn seed_profile(db: &DatabaseConnection, user_id: i64) -> entity::profile::Model {
    use sea_orm::{ActiveModelTrait, ActiveValue::Set};
    entity::profile::ActiveModel {
        user_id: Set(user_id),
        display_name: Set(format!("profile {user_id}")),
        visits: Set(0),
    }
    .insert(db)
    .await
    .unwrap()
}

/// A layer caching `users` under `policy`, and its repository.
pub async fn users_under(
    t: &TestDb,
    policy: sea_orm_cache::Policy,
) -> (
    sea_orm_cache::CacheLayer,
    sea_orm_cache::Repository<entity::user::Entity>,
) {
    let cache = t
        .builder()
        .cached::<entity::user::Entity>(move |c| c.policy(policy))
        .build()
        .await
        .unwrap();
    let users = cache.repository::<entity::user::Entity>().unwrap();
    (cache, users)
}

/// A `get_or_load` of user `id` whose loader reads the row, reports that it has read, and
/// then holds until released: the way to put an invalidation or a write between a load's
/// read and its fill.
pub struct HeldLoad {
    pub task: tokio::task::JoinHandle<sea_orm_cache::Result<Option<Arc<entity::user::Model>>>>,
    pub has_read: tokio::sync::oneshot::Receiver<()>,
    pub release: tokio::sync::watch::Sender<bool>,
}

pub fn held_load(
    users: &sea_orm_cache::Repository<entity::user::Entity>,
    db: &DatabaseConnection,
    id: i64,
) -> HeldLoad {
    use sea_orm::EntityTrait;
    let (read_done, has_read) = tokio::sync::oneshot::channel();
    let (release, mut gate) = tokio::sync::watch::channel(false);
    let (users, db) = (users.clone(), db.clone());
    let task = tokio::spawn(async move {
        users
            .get_or_load(id, move || async move {
                let row = entity::user::Entity::find_by_id(id).one(&db).await;
                read_done.send(()).unwrap();
                gate.wait_for(|open| *open).await.unwrap();
                row
            })
            .await
    });
    HeldLoad {
        task,
        has_read,
        release,
    }
}

/// Registers derive entity `E` under `policy`, from its `#[derive(Cached)]` settings with
/// `configure` over them: through `.write_behind` for write-behind (it carries the serde codec
/// the outbox needs), through `.cached` otherwise.
pub fn register_under<E>(
    builder: sea_orm_cache::CacheLayerBuilder,
    policy: sea_orm_cache::Policy,
    configure: impl FnOnce(sea_orm_cache::CacheConfig) -> sea_orm_cache::CacheConfig + Send + 'static,
) -> sea_orm_cache::CacheLayerBuilder
where
    E: sea_orm_cache::CacheableEntity + sea_orm_cache::CachedEntity,
    E::Model: serde::Serialize + serde::de::DeserializeOwned,
{
    match policy {
        sea_orm_cache::Policy::WriteBehind => {
            builder.write_behind::<E>(move |_| configure(E::cache_config().policy(policy)))
        }
        _ => builder.cached::<E>(move |c| configure(c.policy(policy))),
    }
}
