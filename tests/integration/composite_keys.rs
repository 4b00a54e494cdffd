//! Every repository operation with a composite primary key `(org_id, user_id)`, under each
//! policy.

use std::time::Duration;

use entity::membership;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::{DatabaseConnection, EntityTrait};
use sea_orm_cache::{Policy, WriteBehindConfig};

use crate::common::*;

const POLICIES: [Policy; 4] = [
    Policy::CacheAside,
    Policy::ReadThrough,
    Policy::WriteThrough,
    Policy::WriteBehind,
];

async fn in_table(db: &DatabaseConnection, key: (i64, i64)) -> Option<membership::Model> {
    membership::Entity::find_by_id(key).one(db).await.unwrap()
}

async fn every_operation_works_with_a_composite_key(t: TestDb) {
    for (n, policy) in POLICIES.into_iter().enumerate() {
        let org = n as i64 + 1;
        let cache = register_under::<membership::Entity>(t.builder(), policy, |c| {
            c.write_behind(WriteBehindConfig::default().max_delay(Duration::from_secs(3600)))
        })
        .build()
        .await
        .unwrap();
        let members = cache.repository::<membership::Entity>().unwrap();
        let read = |key: (i64, i64)| {
            let members = members.clone();
            let db = t.db.clone();
            async move {
                match policy {
                    Policy::CacheAside => members
                        .get_or_load(key, || membership::Entity::find_by_id(key).one(&db))
                        .await
                        .unwrap(),
                    _ => members.get(key).await.unwrap(),
                }
            }
        };

        let a = members
            .insert(membership::ActiveModel {
                org_id: Set(org),
                user_id: Set(1),
                role: Set("member".into()),
            })
            .await
            .unwrap();
        let b = members
            .insert(membership::ActiveModel {
                org_id: Set(org),
                user_id: Set(2),
                role: Set("owner".into()),
            })
            .await
            .unwrap();
        assert_eq!(read((org, 1)).await.as_deref(), Some(&*a), "{policy:?}");
        assert_eq!(read((org, 2)).await.as_deref(), Some(&*b), "{policy:?}");
        assert_ne!(a, b);

        let updated = members
            .update(membership::ActiveModel {
                org_id: Unchanged(org),
                user_id: Unchanged(1),
                role: Set("admin".into()),
            })
            .await
            .unwrap();
        assert_eq!(updated.role, "admin");
        assert_eq!(read((org, 1)).await.unwrap().role, "admin", "{policy:?}");
        assert_eq!(read((org, 2)).await.unwrap().role, "owner", "{policy:?}");

        members.invalidate((org, 1));
        assert_eq!(members.peek((org, 1)), None);
        assert_eq!(read((org, 1)).await.unwrap().role, "admin", "{policy:?}");

        assert!(members.delete((org, 2)).await.unwrap(), "{policy:?}");
        assert_eq!(read((org, 2)).await, None, "{policy:?}");
        members.flush().await.unwrap();
        assert_eq!(in_table(&t.db, (org, 1)).await.as_ref(), Some(&*updated));
        assert_eq!(in_table(&t.db, (org, 2)).await, None, "{policy:?}");

        if policy != Policy::CacheAside {
            members.invalidate_all();
            let rows = members
                .get_many([(org, 1), (org, 2), (org, 3)])
                .await
                .unwrap();
            assert_eq!(
                rows.iter().map(|r| r.is_some()).collect::<Vec<_>>(),
                [true, false, false],
                "{policy:?}"
            );
        }
        members.invalidate_all();
        assert_eq!(
            members.warm(membership::Entity::find()).await.unwrap(),
            n + 1
        );
        assert_eq!(
            members.peek((org, 1)).as_deref(),
            Some(&*updated),
            "{policy:?}"
        );
        cache.shutdown().await.unwrap();
    }
}

crate::backend_tests!(every_operation_works_with_a_composite_key);
