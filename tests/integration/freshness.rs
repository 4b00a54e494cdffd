//! G10, measured freshness: the staleness sampler reads a sampled hit's row at once and judges
//! it fresh when the row still holds the served value; a mismatch that an invalidation of the
//! key then explains (within the grace delay) is discarded, any other counted stale. It drops
//! (and counts) what it has no room or budget for, and holds the ratio to the entity's
//! inconsistency budget, shortening the effective TTL when asked. Most tests run on the
//! layer's manual clock (the grace delays and windows follow it) and force the order of a hit,
//! a write and the sample's read by holding the pool's connections (the read waits for one);
//! the last two run on real time against an outside writer.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use entity::user;
use sea_orm::ActiveValue::{Set, Unchanged};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, TransactionTrait};
use sea_orm_cache::{
    CacheConfig, CacheLayer, Clock, Coherence, FreshnessConfig, OverBudget, Policy, Repository,
};
use tokio::time::MissedTickBehavior;

use crate::common::*;

const GRACE: Duration = Duration::from_millis(100);

/// A layer caching `users` read-through on `clock`, with the sampler set by `freshness`.
async fn layer(
    t: &TestDb,
    clock: &Clock,
    config: impl FnOnce(CacheConfig) -> CacheConfig + Send + 'static,
) -> (CacheLayer, Repository<user::Entity>) {
    let cache = t
        .builder()
        .clock(clock.clone())
        .coherence(Coherence::off())
        .cached::<user::Entity>(move |c| config(c.policy(Policy::ReadThrough).ttl_jitter(0.0)))
        .build()
        .await
        .unwrap();
    let users = cache.repository::<user::Entity>().unwrap();
    (cache, users)
}

/// Every sample: a big queue, no practical ceiling, a short grace delay.
fn sample_everything() -> FreshnessConfig {
    FreshnessConfig::default()
        .sample_rate(1.0)
        .queue(100_000)
        .max_samples_per_sec(1_000_000)
        .grace(GRACE)
}

/// Lets the sampler judge everything taken so far: the reads, then the grace delay a mismatch
/// waits for an invalidation.
async fn judge(clock: &Clock, users: &Repository<user::Entity>) {
    clock.advance(GRACE);
    users.settle_samples().await;
    clock.advance(GRACE);
    users.settle_samples().await;
}

/// Connections in the test's pool (`common::connect_logged`).
const POOL: usize = 8;

/// Begins `n` plain transactions on the test's pool, holding as many of its connections: with
/// all of them held, a sample's read waits until one is released.
async fn hold(t: &TestDb, n: usize) -> Vec<DatabaseTransaction> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(t.db.begin().await.unwrap());
    }
    held
}

async fn release(held: Vec<DatabaseTransaction>) {
    for txn in held {
        txn.rollback().await.unwrap();
    }
}

/// Writes `name` to user `id` the way an outside program does: not through the layer.
async fn bypass(t: &TestDb, id: i64, name: &str) {
    user::Entity::update_many()
        .col_expr(user::Column::Name, Expr::value(name))
        .filter(user::Column::Id.eq(id))
        .exec(&t.db)
        .await
        .unwrap();
}

/// A small deterministic generator (the test's workload is the same on every run).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// With every write made through the layer, over 10,000 samples none is stale. Each round the
/// samples of its reads are judged fresh; then one key is hit and written through the layer
/// (a repository update or a `CachedConnection` statement) in a transaction that holds the
/// pool's last connection, so that sample's read waits for the commit, finds the written row,
/// and the write's invalidation explains it: discarded, one per round.
async fn writes_through_the_layer_are_never_counted_stale(t: TestDb) {
    let clock = Clock::manual();
    let (cache, users) = layer(&t, &clock, |c| {
        c.ttl(Duration::from_secs(3_600))
            .freshness(sample_everything())
    })
    .await;
    let conn = cache.connection();
    let keys: Vec<i64> = {
        let mut keys = Vec::new();
        for n in 1..=50 {
            keys.push(seed_user(&t.db, n).await.id);
        }
        keys
    };
    let mut rng = Lcg(7);
    const ROUNDS: u64 = 110;
    for round in 0..ROUNDS {
        for _ in 0..2 {
            for &id in &keys {
                users.get(id).await.unwrap().unwrap();
            }
        }
        users.settle_samples().await;
        // Hit, then written while the sample's read waits for a connection.
        let id = keys[rng.below(keys.len() as u64) as usize];
        let held = hold(&t, POOL - 1).await;
        let txn = conn.begin().await.unwrap();
        users.get(id).await.unwrap().unwrap();
        let name = format!("round {round}");
        if round % 2 == 0 {
            users
                .update_with(
                    user::ActiveModel {
                        id: Unchanged(id),
                        name: Set(name),
                        ..Default::default()
                    },
                    &txn,
                )
                .await
                .unwrap();
        } else {
            user::Entity::update_many()
                .col_expr(user::Column::Name, Expr::value(name))
                .filter(user::Column::Id.eq(id))
                .exec(&txn)
                .await
                .unwrap();
        }
        txn.commit().await.unwrap();
        release(held).await;
        judge(&clock, &users).await;
    }
    let report = users.freshness().unwrap();
    assert!(report.verified >= 10_000, "{report:?}");
    assert_eq!(report.stale, 0, "{report:?}");
    assert_eq!(
        report.discarded, ROUNDS,
        "the samples read after a write: {report:?}"
    );
    assert_eq!((report.dropped, report.throttled, report.errors), (0, 0, 0));
    assert_eq!(report.ratio, 0.0);
    assert!(report.nines().is_infinite());
    assert!(report.nines_at_least() > 3.0, "{report:?}");
}

/// With 1% of writes bypassing the layer, the sampler, sampling three hits in four, measures a
/// ratio whose confidence interval holds the true ratio, which the test computes from its own
/// record of the table: a hit is stale when it returned another name than the row held.
///
/// The interval is a binomial one; the sample is three quarters of a finite population of
/// hits, whose spread is half the binomial's, so the truth falls outside with odds of about
/// one in 10,000 (which hits are picked depends on the worker thread each read ran on).
async fn bypassing_writes_are_measured_within_the_interval(t: TestDb) {
    let clock = Clock::manual();
    let (_cache, users) = layer(&t, &clock, |c| {
        c.ttl(Duration::from_secs(30))
            .freshness(sample_everything().sample_rate(0.75))
    })
    .await;
    let mut table: HashMap<i64, String> = HashMap::new();
    let mut keys = Vec::new();
    for n in 1..=100 {
        let u = seed_user(&t.db, n).await;
        table.insert(u.id, u.name);
        keys.push(u.id);
    }
    let mut rng = Lcg(42);
    let (mut writes, mut bypassed, mut stale_reads) = (0, 0, 0);
    let hits_before = users.stats().hits;
    for round in 0..40 {
        for w in 0..50 {
            let id = keys[rng.below(keys.len() as u64) as usize];
            let name = format!("{round}.{w}");
            writes += 1;
            if round % 2 == 0 && w == 0 {
                bypassed += 1;
                bypass(&t, id, &name).await;
            } else {
                users
                    .update(user::ActiveModel {
                        id: Unchanged(id),
                        name: Set(name.clone()),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
            table.insert(id, name);
        }
        for _ in 0..500 {
            let id = keys[rng.below(keys.len() as u64) as usize];
            let got = users.get(id).await.unwrap().unwrap();
            stale_reads += u64::from(got.name != table[&id]);
        }
        // Nothing is written until the samples are judged: each is compared with the row
        // as it was at its hit.
        judge(&clock, &users).await;
        clock.advance(Duration::from_secs(1));
    }
    assert_eq!(bypassed * 100, writes, "1% of writes bypass the layer");
    let hits = users.stats().hits - hits_before;
    let truth = stale_reads as f64 / hits as f64;
    let report = users.freshness().unwrap();
    eprintln!(
        "true ratio {truth:.5} ({stale_reads} of {hits} hits); sampler {:.5} in ({:.5}, {:.5}) over {} samples",
        report.ratio, report.interval.0, report.interval.1, report.verified
    );
    assert!(stale_reads > 0, "bypassing writes left stale entries");
    assert!(
        report.verified * 3 > hits,
        "about half the hits sampled: {report:?}"
    );
    assert_eq!(
        report.discarded, 0,
        "nothing was written while samples waited"
    );
    assert!(
        report.interval.0 <= truth && truth <= report.interval.1,
        "true ratio {truth} outside the sampler's interval {:?}",
        report.interval
    );
    assert!(
        report
            .stale_age_max
            .is_some_and(|age| age <= Duration::from_secs(30))
    );
}

/// A sample's row is read at once: when it holds the served value the hit was fresh, whatever
/// is written after. A mismatch is discarded when an invalidation of the key explains it (a
/// write through the layer between the hit and the read, or one whose invalidation arrives
/// within the grace delay after the read), and counted stale when none does.
async fn a_mismatch_an_invalidation_explains_is_discarded(t: TestDb) {
    let clock = Clock::manual();
    let (cache, users) = layer(&t, &clock, |c| c.freshness(sample_everything())).await;
    let id = seed_user(&t.db, 1).await.id;
    let counted = |users: &Repository<user::Entity>| {
        let r = users.freshness().unwrap();
        (r.verified, r.stale, r.discarded)
    };
    let rename = |name: &str| user::ActiveModel {
        id: Unchanged(id),
        name: Set(name.to_owned()),
        ..Default::default()
    };

    // Read before a write through the layer: fresh, and stays so.
    users.get(id).await.unwrap(); // the miss
    users.get(id).await.unwrap(); // the hit sampled
    users.settle_samples().await;
    users.update(rename("after the read")).await.unwrap();
    judge(&clock, &users).await;
    assert_eq!(counted(&users), (1, 0, 0));

    // Written through the layer between the hit and the read (the read waits for the
    // connection the write's transaction holds): the read finds the new row, the write's
    // invalidation explains it.
    users.get(id).await.unwrap(); // a miss: loads the new row
    let held = hold(&t, POOL - 1).await;
    let txn = cache.connection().begin().await.unwrap();
    users.get(id).await.unwrap(); // the hit sampled
    users
        .update_with(rename("between the hit and the read"), &txn)
        .await
        .unwrap();
    txn.commit().await.unwrap();
    release(held).await;
    judge(&clock, &users).await;
    assert_eq!(counted(&users), (1, 0, 1));

    // Changed elsewhere before the hit, which serves the old row; the read finds the
    // mismatch, then an invalidation of the key arrives within the grace delay: a write in
    // flight, discarded.
    users.get(id).await.unwrap(); // a miss
    bypass(&t, id, "elsewhere").await;
    users.get(id).await.unwrap(); // the hit sampled
    users.settle_samples().await;
    assert_eq!(counted(&users), (1, 0, 1), "waiting for the grace delay");
    users.invalidate(id);
    clock.advance(GRACE);
    users.settle_samples().await;
    assert_eq!(counted(&users), (1, 0, 2));

    // The same with nothing reaching the layer: stale.
    users.get(id).await.unwrap(); // a miss
    bypass(&t, id, "elsewhere again").await;
    users.get(id).await.unwrap(); // the hit sampled
    judge(&clock, &users).await;
    assert_eq!(counted(&users), (2, 1, 2));
    let report = users.freshness().unwrap();
    assert_eq!(report.ratio, 0.5);
    assert_eq!(report.reads, 4, "every sample is read");
}

/// A full queue drops the sample and counts it, and the read is answered all the same; the
/// ceiling on samples per second drops (and counts) what is past it.
async fn a_full_queue_or_the_ceiling_drops_and_counts(t: TestDb) {
    let clock = Clock::manual();
    let (_cache, users) = layer(&t, &clock, |c| c.freshness(sample_everything().queue(8))).await;
    let id = seed_user(&t.db, 1).await.id;
    users.get(id).await.unwrap(); // the miss
    // The reads wait for a connection while the hits come.
    let held = hold(&t, POOL).await;
    for _ in 0..50 {
        assert_eq!(users.get(id).await.unwrap().unwrap().id, id);
    }
    let report = users.freshness().unwrap();
    assert_eq!(
        report.dropped, 42,
        "8 wait for their read, the rest are dropped: {report:?}"
    );
    release(held).await;
    judge(&clock, &users).await;
    assert_eq!(users.freshness().unwrap().verified, 8);

    // A ceiling of 5 a second: 5 of 50 pass at once, 5 more a second later.
    let clock = Clock::manual();
    let (_cache, users) = layer(&t, &clock, |c| {
        c.freshness(sample_everything().max_samples_per_sec(5))
    })
    .await;
    users.get(id).await.unwrap();
    for _ in 0..50 {
        users.get(id).await.unwrap();
    }
    users.settle_samples().await;
    assert_eq!(users.freshness().unwrap().throttled, 45);
    clock.advance(Duration::from_secs(1));
    for _ in 0..50 {
        users.get(id).await.unwrap();
    }
    judge(&clock, &users).await;
    let report = users.freshness().unwrap();
    assert_eq!(
        (report.verified, report.throttled, report.dropped),
        (10, 90, 0)
    );
    assert_eq!(report.reads, 10, "one read per admitted sample");
}

/// Stale entries served past a 5% budget: with `shorten_ttl` the effective TTL halves at the
/// next evaluation (dropping the entries that would outlive it), the ratio comes back within
/// budget, and the TTL is restored step by step; with `warn` the same workload stays over.
async fn over_budget_shortens_the_ttl_until_the_ratio_is_back(t: TestDb) {
    let mut keys = Vec::new();
    for n in 1..=20 {
        keys.push(seed_user(&t.db, n).await.id);
    }
    for action in [OverBudget::ShortenTtl, OverBudget::Warn] {
        let clock = Clock::manual();
        let (_cache, users) = layer(&t, &clock, move |c| {
            c.ttl(Duration::from_secs(64))
                .staleness_budget(Some(0.05))
                .on_over_budget(action)
                .freshness(
                    sample_everything()
                        .budget(Some(0.05))
                        .on_over_budget(action)
                        .window(Duration::from_secs(10))
                        .min_ttl(Duration::from_secs(1)),
                )
        })
        .await;
        for &id in &keys {
            users.get(id).await.unwrap();
        }
        for &id in &keys {
            bypass(&t, id, &format!("{action:?} changed elsewhere")).await;
        }
        // One round a second: every key read, the samples judged, the next second begins
        // (the budget is evaluated once a bucket, a tenth of the window).
        let round = |users: Repository<user::Entity>, clock: Clock, keys: Vec<i64>| async move {
            for &id in &keys {
                users.get(id).await.unwrap();
            }
            judge(&clock, &users).await;
            clock.advance(Duration::from_millis(800));
            users.settle_samples().await;
            users.freshness().unwrap()
        };
        let first = round(users.clone(), clock.clone(), keys.clone()).await;
        assert_eq!((first.verified, first.stale), (20, 20));
        assert!(first.over_budget, "{first:?}");
        assert_eq!(first.breaches, 1);
        let mut report = first;
        let mut lowest = report.effective_ttl;
        // 12 more rounds: the first round's bucket has left the 10 s window.
        for _ in 0..12 {
            report = round(users.clone(), clock.clone(), keys.clone()).await;
            lowest = lowest.min(report.effective_ttl);
        }
        match action {
            OverBudget::ShortenTtl => {
                assert_eq!(lowest, Duration::from_secs(32), "halved once: {report:?}");
                assert!(
                    users.stats().expired >= 20,
                    "the stale entries were dropped"
                );
                assert!(!report.over_budget, "back within budget: {report:?}");
                assert!(report.interval.0 <= 0.05);
                assert!(
                    report.effective_ttl > lowest,
                    "restored step by step: {report:?}"
                );
                assert_eq!(report.breaches, 1, "over once: {report:?}");
            }
            _ => {
                assert_eq!(lowest, Duration::from_secs(64));
                assert!(report.over_budget, "still over: {report:?}");
                assert!(report.stale >= 100 && report.stale == report.verified);
                // Over at 1 s and still over a window later, at 11 s: one warning each.
                assert_eq!(report.breaches, 2, "one warning per window: {report:?}");
            }
        }
    }
}

/// The real-time workload: `KEYS` users read through (TTL 5 s), an outside program updating
/// random ones so each key is written every `write_every` on average.
const KEYS: usize = 200;
const TTL: Duration = Duration::from_secs(5);
/// How long readers and the writer run, on real time.
const RUN: Duration = Duration::from_secs(10);
/// Reads a second, over two reader tasks.
const READS_PER_SEC: u64 = 1_000;

/// The share of hits that returned a version older than one committed before the read began,
/// recorded by the test, and the sampler's estimate of it, on real time: readers hit `KEYS`
/// users (read-through, TTL 5 s less up to 10% jitter) while an outside program (a second plain connection, no
/// triggers, so no invalidation ever reaches the layer) sets random users' `updated_at` to the
/// next version of that key, each key every `write_every` on average.
///
/// The truth: the writer publishes, per key, the version it is about to send and, once the
/// database acknowledged it, the version committed; a reader loads the committed version
/// before its read begins, so a hit that returns an older one is stale for certain. (A hit
/// returning a version older than one merely sent is counted apart: its write may have
/// committed just before or after the read began; the test checks those are a few.) Misses
/// load the row and are never stale, so the truth is stale reads over the layer's hits.
///
/// Every hit is sampled (`sample_rate` 1.0, no ceiling in the way); a sampled hit is dropped
/// only when the sampler's queue of reads is full, which picks hits regardless of their
/// staleness (the queue is short, so that a backlog cannot delay a read long after its hit).
/// With `n` samples of `h` hits at a stale share `p`, the estimate's standard error relative to
/// `p` is `sqrt((1 - p) / (n p) * (1 - n / h))`: at the 50 s workload (`p` near 5%, about
/// 10,000 hits) under 4.5% with half the hits sampled (the test asserts at least that many),
/// so the 0.8x-1.25x window is more than four standard errors wide on either side; at 5 s
/// (`p` near 35%) far more. Runs seen: few dropped, 1.00x-1.01x on all three backends; on a
/// machine loaded until a third of the samples were dropped (the drops bunch in time, so the
/// spread is wider than the formula's), 0.94x-1.10x; before the sampler read rows at once,
/// 1.6x-1.8x (50 s) and 1.4x (5 s).
async fn estimate_tracks_outside_writes(t: TestDb, write_every: Duration) {
    // Reading the row only after the grace delay, the estimate ran high by the writes of that
    // delay; reading it at once, it does not depend on the delay. 2 s (a deployment whose
    // instances poll the log once a second might set it) shows the difference clearly.
    const GRACE_REAL: Duration = Duration::from_secs(2);
    let cache = t
        .builder()
        .coherence(Coherence::off())
        .cached::<user::Entity>(|c| {
            c.policy(Policy::ReadThrough)
                .ttl(TTL)
                // The default 10%: keys filled together do not all reload together (a burst of
                // loads that would hold up the sampler's reads at one phase of the entries' life).
                .ttl_jitter(0.1)
                .freshness(
                    FreshnessConfig::default()
                        .sample_rate(1.0)
                        .grace(GRACE_REAL)
                        .max_samples_per_sec(1_000_000)
                        // Bounds how long after its hit a row is read: 32 reads.
                        .queue(32)
                        .window(Duration::from_secs(600)),
                )
        })
        .build()
        .await
        .unwrap();
    let users = cache.repository::<user::Entity>().unwrap();
    let outside = t.connect_again().await;

    let mut ids = Vec::new();
    let mut first = Vec::new();
    for n in 1..=KEYS as i64 {
        let u = seed_user(&t.db, n).await;
        ids.push(u.id);
        first.push(u.updated_at);
    }
    let ids = Arc::new(ids);
    // Per key: the version the writer is sending, and the last one the database acknowledged.
    let sent: Arc<Vec<AtomicI64>> = Arc::new(first.iter().map(|&v| AtomicI64::new(v)).collect());
    let committed: Arc<Vec<AtomicI64>> =
        Arc::new(first.iter().map(|&v| AtomicI64::new(v)).collect());

    let hits_before = users.stats().hits;
    let until = tokio::time::Instant::now() + RUN;
    let writer = {
        let (ids, sent, committed) = (ids.clone(), sent.clone(), committed.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(write_every / KEYS as u32);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut rng = Lcg(11);
            let mut writes = 0_u64;
            while tick.tick().await < until {
                let i = rng.below(KEYS as u64) as usize;
                let version = sent[i].load(SeqCst) + 1;
                sent[i].store(version, SeqCst);
                user::Entity::update_many()
                    .col_expr(user::Column::UpdatedAt, Expr::value(version))
                    .filter(user::Column::Id.eq(ids[i]))
                    .exec(&outside)
                    .await
                    .unwrap();
                committed[i].store(version, SeqCst);
                writes += 1;
            }
            writes
        })
    };
    let readers: Vec<_> = (0..2_u64)
        .map(|r| {
            let (users, ids) = (users.clone(), ids.clone());
            let (sent, committed) = (sent.clone(), committed.clone());
            tokio::spawn(async move {
                let mut tick =
                    tokio::time::interval(Duration::from_micros(2_000_000 / READS_PER_SEC));
                tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
                let mut rng = Lcg(100 + r);
                // (reads, stale for certain, stale if a write in flight had committed)
                let mut counts = (0_u64, 0_u64, 0_u64);
                while tick.tick().await < until {
                    let i = rng.below(KEYS as u64) as usize;
                    let before_committed = committed[i].load(SeqCst);
                    let before_sent = sent[i].load(SeqCst);
                    let got = users.get(ids[i]).await.unwrap().unwrap().updated_at;
                    counts.0 += 1;
                    counts.1 += u64::from(got < before_committed);
                    counts.2 += u64::from(got < before_sent);
                }
                counts
            })
        })
        .collect();
    let mut reads = (0, 0, 0);
    for reader in readers {
        let (n, stale, maybe) = reader.await.unwrap();
        reads = (reads.0 + n, reads.1 + stale, reads.2 + maybe);
    }
    let writes = writer.await.unwrap();
    let hits = users.stats().hits - hits_before;
    let (_, stale_hits, maybe_stale_hits) = reads;

    // Every hit was picked; wait until each is judged, dropped or throttled. A mismatch is
    // judged a grace delay (real time) after its read: this polls across that delay.
    let mut report = users.freshness().unwrap();
    for _ in 0..20 {
        users.settle_samples().await;
        report = users.freshness().unwrap();
        let accounted =
            report.verified + report.discarded + report.errors + report.dropped + report.throttled;
        if accounted >= hits {
            break;
        }
        tokio::time::sleep(GRACE_REAL / 2).await;
    }
    let truth = stale_hits as f64 / hits as f64;
    let estimate = report.ratio;
    let n = report.verified as f64;
    let se = (truth * (1.0 - truth) / n * (1.0 - n / hits as f64).max(0.0)).sqrt();
    eprintln!(
        "writes every {write_every:?}: {writes} writes, {} reads, {hits} hits, {stale_hits} stale \
         for certain (+{} maybe); truth {:.4}, estimate {:.4} ({:.3}x, standard error {:.4}) over \
         {} samples ({} stale, {} discarded, {} dropped, {} throttled, {} errors)",
        reads.0,
        maybe_stale_hits - stale_hits,
        truth,
        estimate,
        estimate / truth,
        se,
        report.verified,
        report.stale,
        report.discarded,
        report.dropped,
        report.throttled,
        report.errors,
    );
    cache.shutdown().await.unwrap();
    assert!(
        stale_hits >= 100,
        "the outside writes left too few stale hits to judge: {stale_hits}"
    );
    assert!(
        (maybe_stale_hits - stale_hits) * 20 <= stale_hits,
        "hits racing a write are a few: {maybe_stale_hits} vs {stale_hits}"
    );
    assert!(
        (0.8..=1.25).contains(&(estimate / truth)),
        "estimate {estimate:.4} is {:.3}x the truth {truth:.4} ({} samples of {hits} hits)",
        estimate / truth,
        report.verified,
    );
    assert_eq!(report.errors, 0);
    assert!(
        report.verified * 2 >= hits,
        "half the hits judged at least, for the window to be 4 standard errors wide: {report:?}"
    );
}

/// Each key written from outside every ~50 s: about 5% of hits stale.
async fn estimate_tracks_outside_writes_every_50s(t: TestDb) {
    estimate_tracks_outside_writes(t, Duration::from_secs(50)).await;
}

/// Each key written from outside every ~5 s: about a third of hits stale.
async fn estimate_tracks_outside_writes_every_5s(t: TestDb) {
    estimate_tracks_outside_writes(t, Duration::from_secs(5)).await;
}

crate::backend_tests!(
    writes_through_the_layer_are_never_counted_stale,
    bypassing_writes_are_measured_within_the_interval,
    a_mismatch_an_invalidation_explains_is_discarded,
    a_full_queue_or_the_ceiling_drops_and_counts,
    over_budget_shortens_the_ttl_until_the_ratio_is_back,
    estimate_tracks_outside_writes_every_50s,
    estimate_tracks_outside_writes_every_5s,
);
