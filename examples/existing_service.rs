//! An existing JSON HTTP service over SeaORM, and the same service with the cache added.
//!
//! Run it with:
//!
//! ```text
//! cargo run --example existing_service              # with the cache, on 127.0.0.1:3000
//! cargo run --example existing_service -- --plain   # the service as it was, without it
//!
//! curl -i -X POST localhost:3000/users -H 'content-type: application/json' \
//!      -d '{"email": "ada@example.com", "name": "Ada"}'
//! curl -i localhost:3000/users/1
//! curl -i -X PATCH localhost:3000/users/1 -H 'content-type: application/json' -d '{"name": "Ada L."}'
//! curl -i -X DELETE localhost:3000/users/1
//! curl -i localhost:3000/metrics                    # the cache's figures, for Prometheus
//! ```
//!
//! It uses an in-memory SQLite database unless `SEA_ORM_CACHE_EXAMPLE_URL` names a Postgres or
//! MySQL/MariaDB server: it then keeps its rows in a database of its own there,
//! `sea_orm_cache_existing_service` (created with the example tables if missing), never in the
//! database the URL names, and refuses to start if its own holds tables it did not create
//! (`migration::example_database`). `DATABASE_URL` is not read: it often names a developer's
//! own database. `ADDR` sets the address to listen on.
//!
//! Its entity is `entity_plain::users`, written as `sea-orm-cli generate entity` writes it, in
//! a crate that does not depend on sea-orm-cache: the layer caches it without
//! `#[derive(Cached)]`.
//!
//! [`plain`] is the service written the usual way: handlers take the `DatabaseConnection` and
//! query it. [`cached`] is the same service with the cache: the handlers take the
//! `Repository` of `users` instead and read and write through it, so reads are answered from
//! the cache and writes invalidate what they change. The README shows the diff between the
//! two modules; `tests/existing_service.rs` drives both over HTTP and checks that diff.
//! [`metrics_endpoint`] adds `GET /metrics` to the cached service: the cache's figures in
//! Prometheus' text format.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use entity_plain::users as user;
use sea_orm::ActiveValue::{NotSet, Set, Unchanged};
use sea_orm::{DatabaseConnection, DbErr};
use sea_orm_cache::{CacheLayer, Policy};
use serde::Deserialize;

/// The service as it was written, without a cache.
pub(crate) mod plain {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use entity_plain::users as user;
    use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait};

    use super::{ApiError, NewUser, UserChanges};

    /// `POST /users`, `GET`, `PATCH` and `DELETE /users/{id}`.
    pub(crate) fn router(db: DatabaseConnection) -> Router {
        Router::new()
            .route("/users", post(create_user))
            .route(
                "/users/{id}",
                get(get_user).patch(update_user).delete(delete_user),
            )
            .with_state(db)
    }

    async fn get_user(
        State(db): State<DatabaseConnection>,
        Path(id): Path<i64>,
    ) -> Result<Response, ApiError> {
        let user = user::Entity::find_by_id(id).one(&db).await?;
        Ok(Json(user.ok_or(ApiError::NotFound)?).into_response())
    }

    async fn create_user(
        State(db): State<DatabaseConnection>,
        Json(new): Json<NewUser>,
    ) -> Result<Response, ApiError> {
        let user = new.into_active_model().insert(&db).await?;
        Ok((StatusCode::CREATED, Json(user)).into_response())
    }

    async fn update_user(
        State(db): State<DatabaseConnection>,
        Path(id): Path<i64>,
        Json(changes): Json<UserChanges>,
    ) -> Result<Response, ApiError> {
        let user = changes.into_active_model(id).update(&db).await?;
        Ok(Json(user).into_response())
    }

    async fn delete_user(
        State(db): State<DatabaseConnection>,
        Path(id): Path<i64>,
    ) -> Result<StatusCode, ApiError> {
        let deleted = user::Entity::delete_by_id(id).exec(&db).await?;
        Ok(if deleted.rows_affected > 0 {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::NOT_FOUND
        })
    }
}

/// The same service with the cache added.
pub(crate) mod cached {
    use axum::extract::{Path, State};
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::{get, post};
    use axum::{Json, Router};
    use entity_plain::users as user;
    use sea_orm::DbErr;
    use sea_orm_cache::{CacheLayer, Repository};

    use super::{ApiError, NewUser, UserChanges};

    /// `POST /users`, `GET`, `PATCH` and `DELETE /users/{id}`.
    pub(crate) fn router(cache: &CacheLayer) -> sea_orm_cache::Result<Router> {
        Ok(Router::new()
            .route("/users", post(create_user))
            .route(
                "/users/{id}",
                get(get_user).patch(update_user).delete(delete_user),
            )
            .with_state(cache.repository::<user::Entity>()?))
    }

    async fn get_user(
        State(users): State<Repository<user::Entity>>,
        Path(id): Path<i64>,
    ) -> Result<Response, ApiError> {
        let user = users.get(id).await?;
        Ok(Json(user.ok_or(ApiError::NotFound)?).into_response())
    }

    async fn create_user(
        State(users): State<Repository<user::Entity>>,
        Json(new): Json<NewUser>,
    ) -> Result<Response, ApiError> {
        let user = users.insert(new.into_active_model()).await?;
        Ok((StatusCode::CREATED, Json(user)).into_response())
    }

    async fn update_user(
        State(users): State<Repository<user::Entity>>,
        Path(id): Path<i64>,
        Json(changes): Json<UserChanges>,
    ) -> Result<Response, ApiError> {
        let user = users.update(changes.into_active_model(id)).await?;
        Ok(Json(user).into_response())
    }

    async fn delete_user(
        State(users): State<Repository<user::Entity>>,
        Path(id): Path<i64>,
    ) -> Result<StatusCode, ApiError> {
        let deleted = users.delete(id).await?;
        Ok(if deleted {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::NOT_FOUND
        })
    }

    impl From<sea_orm_cache::Error> for ApiError {
        fn from(err: sea_orm_cache::Error) -> Self {
            DbErr::from(err).into()
        }
    }
}

/// `GET /metrics` for the cached service: the layer's metrics (`sea_orm_cache_*`, see
/// `CacheLayer::publish_metrics`) in Prometheus' text format, through
/// `metrics-exporter-prometheus`'s recorder, which this module installs (without the
/// exporter's own HTTP listener: the service's router serves the text).
pub(crate) mod metrics_endpoint {
    use std::sync::OnceLock;

    use axum::Router;
    use axum::extract::State;
    use axum::http::header;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
    use sea_orm_cache::CacheLayer;

    /// `GET /metrics`. Installs the process's Prometheus recorder if it is not installed yet.
    pub(crate) fn router(cache: &CacheLayer) -> Router {
        recorder();
        Router::new()
            .route("/metrics", get(render))
            .with_state(cache.clone())
    }

    /// The process's recorder. A process has one global recorder, installed once: routers
    /// built again (the tests build several services in one process) share it.
    fn recorder() -> &'static PrometheusHandle {
        static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
        HANDLE.get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .expect("no other metrics recorder is installed")
        })
    }

    /// Publishes the layer's figures as of now, then renders every metric.
    async fn render(State(cache): State<CacheLayer>) -> impl IntoResponse {
        let recorder = recorder();
        cache.publish_metrics();
        (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            recorder.render(),
        )
    }
}

/// The body of `POST /users`.
#[derive(Debug, Deserialize)]
pub(crate) struct NewUser {
    email: String,
    name: String,
    #[serde(default)]
    bio: String,
}

impl NewUser {
    fn into_active_model(self) -> user::ActiveModel {
        user::ActiveModel {
            id: NotSet,
            email: Set(self.email),
            name: Set(self.name),
            bio: Set(self.bio),
            updated_at: Set(now_ms()),
        }
    }
}

/// The body of `PATCH /users/{id}`: the fields to change.
#[derive(Debug, Deserialize)]
pub(crate) struct UserChanges {
    name: Option<String>,
    bio: Option<String>,
}

impl UserChanges {
    fn into_active_model(self, id: i64) -> user::ActiveModel {
        user::ActiveModel {
            id: Unchanged(id),
            email: NotSet,
            name: self.name.map_or(NotSet, Set),
            bio: self.bio.map_or(NotSet, Set),
            updated_at: Set(now_ms()),
        }
    }
}

/// What a handler fails with.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// No such user: 404.
    NotFound,
    /// The database failed: 500.
    Db(DbErr),
}

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        match err {
            DbErr::RecordNotFound(_) | DbErr::RecordNotUpdated => ApiError::NotFound,
            other => ApiError::Db(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not found".to_owned()),
            ApiError::Db(err) => (StatusCode::INTERNAL_SERVER_ERROR, err.to_string()),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// Milliseconds since the Unix epoch.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The example's own database on the server `url` names (or `url` itself on SQLite), with the
/// example tables created if missing; see `migration::open_example_database`.
pub(crate) async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    migration::open_example_database(url, "sea_orm_cache_existing_service").await
}

/// The cache layer of the cached service: `users`, read-through, registered without a derive
/// (its entity crate does not know about the cache). `GET /metrics` publishes the figures
/// when it is scraped, so the layer's background publishing is off.
pub(crate) async fn cache_layer(db: DatabaseConnection) -> sea_orm_cache::Result<CacheLayer> {
    CacheLayer::builder(db)
        .entity::<user::Entity>(|c| c.policy(Policy::ReadThrough).ttl(Duration::from_secs(300)))
        .metrics_interval(None)
        .build()
        .await
}

#[allow(dead_code)] // `tests/existing_service.rs` includes this file and has its own main.
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url =
        std::env::var(migration::EXAMPLE_URL_VAR).unwrap_or_else(|_| "sqlite::memory:".to_owned());
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let db = connect(&url).await?;
    let (app, cache) = if std::env::args().any(|arg| arg == "--plain") {
        (plain::router(db), None)
    } else {
        let cache = cache_layer(db).await?;
        let app = cached::router(&cache)?.merge(metrics_endpoint::router(&cache));
        (app, Some(cache))
    };
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let mode = if cache.is_some() { "with" } else { "without" };
    println!(
        "listening on http://{} ({mode} the cache)",
        listener.local_addr()?
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    if let Some(cache) = cache {
        cache.shutdown().await?; // applies pending write-behind writes
    }
    Ok(())
}
