//! `#[derive(Cached)]` and serde configuration: the derive's defaults, every `#[cache(...)]`
//! setting, the builder and a config file overriding the derive, and misuse failing to compile
//! with a readable message (`tests/ui/*.rs`, expected messages in `tests/ui/*.stderr`).

#![allow(clippy::unwrap_used)] // Tests unwrap: a failure is the report.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Schema};
use sea_orm_cache::{
    CacheConfig, CacheLayer, CachedEntity, Capture, Error, FreshnessConfig, OverBudget, Policy,
    WriteBehindConfig,
};

/// An entity with `#[derive(Cached)]` and no `#[cache(...)]`.
mod plain {
    use sea_orm::entity::prelude::*;
    use sea_orm_cache::Cached;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Cached)]
    #[sea_orm(table_name = "plain_rows")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) id: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// An entity that sets every setting, none to its default value.
mod everything {
    use sea_orm::entity::prelude::*;
    use sea_orm_cache::Cached;

    #[derive(
        Clone, Debug, PartialEq, DeriveEntityModel, Cached, serde::Serialize, serde::Deserialize,
    )]
    #[sea_orm(table_name = "everything_rows")]
    #[cache(
        policy = "write_behind",
        ttl = "1h30m",
        ttl_jitter = "25%",
        capacity = 123_456,
        negative_ttl = "30s",
        stale_if_error = "1m",
        write_behind(batch = 64, max_delay = "250ms", max_pending = 7_000),
        staleness_budget = "0.01%",
        on_over_budget = "shorten_ttl",
        sample_rate = 0.05,
        max_samples_per_sec = 20,
        version_column = "name",
        capture = "triggers"
    )]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) id: i64,
        pub(crate) name: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Cache-aside with negative caching, in two attributes; the behaviour tests override it.
mod aside {
    use sea_orm::entity::prelude::*;
    use sea_orm_cache::Cached;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Cached)]
    #[sea_orm(table_name = "aside_rows")]
    #[cache(policy = "cache_aside", ttl_jitter = 0.0)]
    #[cache(negative_ttl = "1h", ttl = "10m")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) id: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The shortest TTL the layer keeps (its expiry is in milliseconds), declared with the derive
/// with the shortened-TTL action, whose floor (`freshness.min_ttl`) is left to follow it.
mod short_ttl {
    use sea_orm::entity::prelude::*;
    use sea_orm_cache::Cached;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel, Cached)]
    #[sea_orm(table_name = "aside_rows")]
    #[cache(ttl = "1ms", on_over_budget = "shorten_ttl", staleness_budget = "1%")]
    pub(crate) struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub(crate) id: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub(crate) enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

#[test]
fn derive_without_settings_gives_the_defaults() {
    assert_eq!(plain::Entity::cache_config(), CacheConfig::default());
}

#[test]
fn every_setting_is_parsed_into_the_config() {
    let config = everything::Entity::cache_config();
    let expected = CacheConfig::default()
        .policy(Policy::WriteBehind)
        .ttl(Duration::from_secs(90 * 60))
        .ttl_jitter(0.25)
        .capacity(123_456)
        .negative_ttl(Some(Duration::from_secs(30)))
        .stale_if_error(Some(Duration::from_secs(60)))
        .write_behind(
            WriteBehindConfig::default()
                .batch(64)
                .max_delay(Duration::from_millis(250))
                .max_pending(7_000),
        )
        .staleness_budget(Some(0.0001))
        .on_over_budget(OverBudget::ShortenTtl)
        .freshness(
            FreshnessConfig::default()
                .budget(Some(0.0001))
                .on_over_budget(OverBudget::ShortenTtl)
                .sample_rate(0.05)
                .max_samples_per_sec(20)
                .version_column(Some("name".to_owned())),
        )
        .capture(Capture::Triggers);
    assert_eq!(config, expected);
}

#[test]
fn settings_may_span_attributes_and_jitter_may_be_a_fraction() {
    let config = aside::Entity::cache_config();
    assert_eq!(config.policy, Policy::CacheAside);
    assert_eq!(config.ttl_jitter, 0.0);
    assert_eq!(config.negative_ttl, Some(Duration::from_secs(3_600)));
    assert_eq!(config.ttl, Duration::from_secs(600));
    assert_eq!(config.capacity, CacheConfig::default().capacity);
}

#[test]
fn example_entities_declare_their_policies() {
    use entity::{membership, post, profile, user};
    assert_eq!(user::Entity::cache_config(), CacheConfig::default());
    assert_eq!(post::Entity::cache_config().policy, Policy::CacheAside);
    assert_eq!(profile::Entity::cache_config().policy, Policy::WriteBehind);
    assert_eq!(
        membership::Entity::cache_config().policy,
        Policy::WriteThrough
    );
}

async fn db_with_aside_table() -> DatabaseConnection {
    let db = Database::connect("sqlite::memory:").await.unwrap();
    let schema = Schema::new(db.get_database_backend());
    db.execute(&schema.create_table_from_entity(aside::Entity))
        .await
        .unwrap();
    db
}

#[tokio::test]
async fn the_builder_starts_from_the_derive_and_overrides_it() {
    let db = db_with_aside_table().await;

    // Registered as is: the derive's cache-aside policy holds, so `get` needs a loader.
    let cache = CacheLayer::builder(db.clone())
        .cached::<aside::Entity>(|c| c)
        .build()
        .await
        .unwrap();
    let rows = cache.repository::<aside::Entity>().unwrap();
    assert_eq!(rows.config(), &aside::Entity::cache_config());
    assert!(matches!(
        rows.get(1).await,
        Err(Error::LoaderRequired { .. })
    ));

    // The builder's policy wins; the derive's negative TTL is kept.
    let cache = CacheLayer::builder(db)
        .cached::<aside::Entity>(|c| c.policy(Policy::ReadThrough))
        .build()
        .await
        .unwrap();
    let rows = cache.repository::<aside::Entity>().unwrap();
    assert_eq!(rows.config().policy, Policy::ReadThrough);
    assert_eq!(rows.config().negative_ttl, Some(Duration::from_secs(3_600)));
    assert_eq!(rows.get(1).await.unwrap(), None);
    assert_eq!(rows.get(1).await.unwrap(), None);
    let stats = rows.stats();
    assert_eq!((stats.loads, stats.negative_hits), (1, 1)); // absence was cached
}

#[tokio::test]
async fn a_config_read_with_serde_wins_over_the_derive() {
    let db = db_with_aside_table().await;
    let file = r#"{ "aside_rows": { "policy": "read_through", "ttl": "2m" } }"#;
    let mut file: serde_json::Map<String, serde_json::Value> = serde_json::from_str(file).unwrap();
    let section = file.remove("aside_rows").unwrap();

    // A whole configuration: what the file leaves out takes `CacheConfig::default()`, not
    // the derive's value.
    let loaded: CacheConfig = serde_json::from_value(section.clone()).unwrap();
    let cache = CacheLayer::builder(db.clone())
        .entity_config::<aside::Entity>(loaded.clone())
        .build()
        .await
        .unwrap();
    let rows = cache.repository::<aside::Entity>().unwrap();
    assert_eq!(rows.config(), &loaded);
    assert_eq!(rows.config().ttl, Duration::from_secs(120));
    assert_eq!(rows.config().negative_ttl, None);
    assert_eq!(rows.get(1).await.unwrap(), None);
    assert_eq!(rows.get(1).await.unwrap(), None);
    assert_eq!((rows.stats().loads, rows.stats().negative_hits), (2, 0));

    // Over the derive: what the file leaves out keeps the derive's value.
    let overlaid = aside::Entity::cache_config().overlay(section).unwrap();
    let cache = CacheLayer::builder(db)
        .entity_config::<aside::Entity>(overlaid)
        .build()
        .await
        .unwrap();
    let rows = cache.repository::<aside::Entity>().unwrap();
    assert_eq!(rows.config().policy, Policy::ReadThrough);
    assert_eq!(rows.config().ttl, Duration::from_secs(120));
    assert_eq!(rows.config().ttl_jitter, 0.0);
    assert_eq!(rows.config().negative_ttl, Some(Duration::from_secs(3_600)));
}

#[test]
fn serde_reads_every_setting() {
    let config: CacheConfig = serde_json::from_str(
        r#"{
            "policy": "write_behind",
            "ttl": "1h30m",
            "ttl_jitter": "25%",
            "capacity": 123456,
            "negative_ttl": "30s",
            "stale_if_error": "1m",
            "write_behind": { "batch": 64, "max_delay": "250ms", "max_pending": 7000 },
            "staleness_budget": "0.01%",
            "on_over_budget": "shorten_ttl",
            "capture": "triggers",
            "freshness": { "sample_rate": "5%", "max_samples_per_sec": 20, "version_column": "name" }
        }"#,
    )
    .unwrap();
    assert_eq!(config, everything::Entity::cache_config());
}

#[test]
fn serde_fills_what_is_left_out_with_defaults() {
    let config: CacheConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(config, CacheConfig::default());
    let config: CacheConfig =
        serde_json::from_str(r#"{ "write_behind": { "max_delay": "1s" } }"#).unwrap();
    assert_eq!(
        config.write_behind,
        WriteBehindConfig::default().max_delay(Duration::from_secs(1))
    );
    let policy: Policy = serde_json::from_str(r#""cache_aside""#).unwrap();
    assert_eq!(policy, Policy::CacheAside);
}

#[test]
fn serde_reads_jitter_and_optional_durations_in_each_form() {
    let read = |json: &str| serde_json::from_str::<CacheConfig>(json).unwrap();
    assert_eq!(read(r#"{ "ttl_jitter": 0.5 }"#).ttl_jitter, 0.5);
    assert_eq!(read(r#"{ "ttl_jitter": "0.5" }"#).ttl_jitter, 0.5);
    assert_eq!(read(r#"{ "ttl_jitter": "12.5%" }"#).ttl_jitter, 0.125);
    assert_eq!(read(r#"{ "ttl_jitter": 0 }"#).ttl_jitter, 0.0);
    assert_eq!(
        read(r#"{ "ttl": "1500ms" }"#).ttl,
        Duration::from_millis(1_500)
    );
    assert_eq!(
        read(r#"{ "ttl": "2d" }"#).ttl,
        Duration::from_secs(2 * 86_400)
    );
    assert_eq!(
        read(r#"{ "ttl": "250us" }"#).ttl,
        Duration::from_micros(250)
    );

    // A missing section (`null`) changes nothing.
    let file: serde_json::Value = serde_json::from_str(r#"{ "other": {} }"#).unwrap();
    let derived = aside::Entity::cache_config();
    assert_eq!(derived.clone().overlay(&file["users"]).unwrap(), derived);

    // `null` and "off" turn an optional duration off, over a configuration that has one.
    for off in [
        r#"{ "negative_ttl": null }"#,
        r#"{ "negative_ttl": "off" }"#,
    ] {
        let value: serde_json::Value = serde_json::from_str(off).unwrap();
        assert_eq!(derived.clone().overlay(value).unwrap().negative_ttl, None);
    }
}

#[test]
fn serde_refuses_malformed_settings_with_a_readable_message() {
    let error = |json: &str| {
        serde_json::from_str::<CacheConfig>(json)
            .unwrap_err()
            .to_string()
    };
    assert!(
        error(r#"{ "policy": "read_trough" }"#)
            .contains("unknown policy `read_trough`; did you mean `read_through`?"),
    );
    assert!(error(r#"{ "policy": "WriteBehind" }"#).contains("did you mean `write_behind`?"));
    assert!(error(r#"{ "ttl": "5 minutes" }"#).contains("invalid duration `5 minutes`"));
    assert!(error(r#"{ "ttl": "5" }"#).contains("invalid duration `5`"));
    assert!(error(r#"{ "ttl": "m" }"#).contains("invalid duration `m`"));
    assert!(error(r#"{ "ttl": "" }"#).contains("invalid duration ``"));
    assert!(error(r#"{ "ttl": "99999999999999999999999h" }"#).contains("too long"));
    assert!(error(r#"{ "ttl_jitter": "150%" }"#).contains("between 0% and 100%"));
    assert!(error(r#"{ "ttl_jitter": -0.1 }"#).contains("between 0% and 100%"));
    assert!(error(r#"{ "capacity": 0 }"#).contains("must be at least 1"));
    assert!(error(r#"{ "write_behind": { "batch": 0 } }"#).contains("must be at least 1"));
    assert!(error(r#"{ "tll": "5m" }"#).contains("unknown field `tll`"));
    assert!(error(r#"{ "write_behind": { "delay": "5m" } }"#).contains("unknown field `delay`"));
    assert!(error(r#"{ "staleness_budget": "2%%" }"#).contains("invalid staleness_budget"));
    assert!(error(r#"{ "on_over_budget": "shorten" }"#).contains("did you mean `shorten_ttl`?"));
    assert!(
        error(r#"{ "freshness": { "sample_rate": 2 } }"#)
            .contains("sample_rate must be between 0% and 100%")
    );
    assert!(error(r#"{ "freshness": { "grace": "soon" } }"#).contains("invalid duration"));
}

#[test]
fn serde_reads_the_sampler_settings() {
    let read = |json: &str| serde_json::from_str::<CacheConfig>(json).unwrap();
    let config = read(
        r#"{ "freshness": { "sample_rate": 0.01, "grace": "2s", "queue": 64, "window": "1m",
             "budget": 0.001, "on_over_budget": "shorten_ttl", "min_ttl": "5s",
             "max_samples_per_sec": 7, "version_column": "version" } }"#,
    );
    assert_eq!(
        config.freshness,
        FreshnessConfig::default()
            .sample_rate(0.01)
            .grace(Duration::from_secs(2))
            .queue(64)
            .window(Duration::from_secs(60))
            .budget(Some(0.001))
            .on_over_budget(OverBudget::ShortenTtl)
            .min_ttl(Duration::from_secs(5))
            .max_samples_per_sec(7)
            .version_column(Some("version".to_owned()))
    );
    // `null` and "off" turn a budget off.
    let budgeted = CacheConfig::default().staleness_budget(Some(0.01));
    for off in [
        r#"{ "staleness_budget": null }"#,
        r#"{ "staleness_budget": "off" }"#,
    ] {
        let value: serde_json::Value = serde_json::from_str(off).unwrap();
        assert_eq!(
            budgeted.clone().overlay(value).unwrap().freshness.budget,
            None
        );
    }
}

#[test]
fn misuse_does_not_compile() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}

/// TTLs from 1 ms to 1 h, none of the sampler's settings touched: the defaults derived from
/// the TTL (`freshness.min_ttl`) follow it, so every one builds, set with the builder, with a
/// serde config and with the derive. (A 200 ms TTL was refused: "`freshness.min_ttl` must be
/// longer than zero and at most the ttl (200ms), got 1s".)
#[tokio::test]
async fn ttls_from_one_millisecond_to_one_hour_build() {
    let db = db_with_aside_table().await;
    let ms = Duration::from_millis;
    for ttl in [
        ms(1),
        ms(2),
        ms(50),
        ms(200),
        ms(999),
        ms(1_000),
        ms(60_000),
        ms(3_600_000),
    ] {
        let built = |config: CacheConfig| {
            let db = db.clone();
            async move {
                let cache = CacheLayer::builder(db)
                    .entity_config::<aside::Entity>(config)
                    .build()
                    .await
                    .unwrap_or_else(|e| panic!("ttl {ttl:?} refused: {e}"));
                let rows = cache.repository::<aside::Entity>().unwrap();
                assert_eq!(rows.config().ttl, ttl);
                assert_eq!(rows.config().freshness.min_ttl_for(ttl), ttl.min(ms(1_000)));
            }
        };
        built(CacheConfig::default().ttl(ttl)).await;
        // The shortened-TTL action too, whose floor is the setting that was refused.
        built(
            CacheConfig::default()
                .ttl(ttl)
                .staleness_budget(Some(0.01))
                .on_over_budget(OverBudget::ShortenTtl),
        )
        .await;
        // Through the builder's closure over the derive's defaults.
        let cache = CacheLayer::builder(db.clone())
            .entity::<aside::Entity>(move |c| c.ttl(ttl))
            .build()
            .await
            .unwrap_or_else(|e| panic!("ttl {ttl:?} refused by .entity: {e}"));
        assert_eq!(
            cache.repository::<aside::Entity>().unwrap().config().ttl,
            ttl
        );
        // A config file, whole and over the derive.
        let json = serde_json::json!({ "ttl": format!("{}ms", ttl.as_millis()) });
        let loaded: CacheConfig = serde_json::from_value(json.clone()).unwrap();
        built(loaded).await;
        built(aside::Entity::cache_config().overlay(json).unwrap()).await;
    }
    // Declared with the derive.
    let cache = CacheLayer::builder(db)
        .cached::<short_ttl::Entity>(|c| c)
        .build()
        .await
        .unwrap();
    let config = cache
        .repository::<short_ttl::Entity>()
        .unwrap()
        .config()
        .clone();
    assert_eq!(
        (config.ttl, config.freshness.min_ttl_for(config.ttl)),
        (ms(1), ms(1))
    );
}

/// A `min_ttl` the user set is still checked against the TTL, and a TTL below the clock's
/// millisecond is refused with a typed error naming it.
#[tokio::test]
async fn a_min_ttl_set_longer_than_the_ttl_and_a_sub_millisecond_ttl_are_refused() {
    let db = db_with_aside_table().await;
    let refused = |config: CacheConfig| {
        let db = db.clone();
        async move {
            match CacheLayer::builder(db)
                .entity_config::<aside::Entity>(config)
                .build()
                .await
            {
                Err(Error::InvalidConfig { source, .. }) => source.setting,
                Err(other) => panic!("expected InvalidConfig, got {other}"),
                Ok(_) => panic!("expected InvalidConfig, built"),
            }
        }
    };
    let ms = Duration::from_millis;
    let set_min = CacheConfig::default()
        .ttl(ms(200))
        .map_freshness(|f| f.min_ttl(ms(201)));
    assert_eq!(refused(set_min).await, "freshness.min_ttl");
    let zero_min = CacheConfig::default().map_freshness(|f| f.min_ttl(Duration::ZERO));
    assert_eq!(refused(zero_min).await, "freshness.min_ttl");
    let sub_ms = CacheConfig::default().ttl(Duration::from_micros(500));
    assert_eq!(refused(sub_ms).await, "ttl");
}
