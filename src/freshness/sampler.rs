//! The sampler task of one entity: takes the hits the store picked, reads each row by key at
//! once, and judges the hit fresh, stale or discarded; evaluates the budget once per bucket of
//! the window.
//!
//! What a sample judges: whether the hit returned an older version of the row than one
//! committed before it. The row is read as soon as the sample arrives (a queue wait and one
//! query after the hit), so a write committed after the hit rarely reaches the comparison. A
//! row equal to the served value means no newer version had committed when the hit was
//! served: fresh, final. A row that differs means a newer version committed before the read:
//! before the hit (stale), or in the short time since, or it is a write through the layer
//! whose invalidation is on its way. The grace delay is only for telling these apart: a
//! mismatch whose key an invalidation reaches (since the hit, until a grace delay after the
//! read) is discarded, as a write in flight; one that no invalidation explains is stale.
//!
//! One task per sampled entity, reading one row at a time: its database load is at most
//! `max_samples_per_sec` reads per second, whatever the hit rate. The hit side admits at most
//! that many picked hits per clock second (the rest are counted as throttled before they cost
//! a clone or a send), and the task holds what it receives to a token bucket on the layer's
//! clock (bursts of at most a second's worth).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::clock::Clock;
use crate::config::FreshnessConfig;
use crate::error::Result;
use crate::sampler_counters::{SamplerCounters, SamplerTotals};
use crate::stats::bump;
use crate::store::{Sample, SampleQueue, SamplerMessage, Ticket};
use crate::tasks::{Stop, Tasks};

use super::budget::Budget;
use super::report::Freshness;
use super::window::{Outcome, Window};

/// A sample read's future.
pub(crate) type RowRead<'a, M> = Pin<Box<dyn Future<Output = Result<Option<Arc<M>>>> + Send + 'a>>;

/// What the sampler needs from the entity it samples.
pub(crate) trait SampleSource<K, M>: Send + Sync + 'static {
    /// The entity's table name.
    fn name(&self) -> &'static str;
    /// The key's current row (a pending write-behind write wins over the table).
    fn read<'a>(&'a self, key: &'a K) -> RowRead<'a, M>;
    /// Whether the cached row and the database row are the same (the whole row, or the
    /// declared version column).
    fn same(&self, cached: &M, row: &M) -> bool;
    /// Whether the key was written or invalidated since `ticket`.
    fn changed_since(&self, key: &K, ticket: Ticket) -> bool;
    /// The effective TTL now, and setting it.
    fn effective_ttl_ms(&self) -> u64;
    fn set_effective_ttl_ms(&self, ttl_ms: u64);
}

/// The state the task and [`Sampler::report`] share.
#[derive(Debug)]
struct Shared {
    config: FreshnessConfig,
    ttl_ms: u64,
    window: Mutex<Window>,
    counters: Arc<SamplerCounters>,
    over_budget: AtomicBool,
    /// Samples accepted and not yet read; the store's queue adds, the task subtracts.
    waiting: Arc<AtomicUsize>,
}

/// One entity's sampler: the queue the store picks into, and the task's report.
#[derive(Debug)]
pub(crate) struct Sampler<K, M> {
    shared: Arc<Shared>,
    tx: mpsc::Sender<SamplerMessage<K, M>>,
    /// Taken by [`start`](Self::start).
    rx: Mutex<Option<mpsc::Receiver<SamplerMessage<K, M>>>>,
}

impl<K: Send + Sync + 'static, M: Send + Sync + 'static> Sampler<K, M> {
    /// A sampler for `config`, and the queue its store picks into; `None` with a sample
    /// rate of 0.
    pub(crate) fn new(
        config: &FreshnessConfig,
        ttl: Duration,
    ) -> Option<(Self, SampleQueue<K, M>)> {
        if config.sample_rate <= 0.0 {
            return None;
        }
        // Room for every accepted sample and a few settle requests.
        let (tx, rx) = mpsc::channel(config.queue + 16);
        let counters = Arc::new(SamplerCounters::default());
        let waiting = Arc::new(AtomicUsize::new(0));
        let queue = SampleQueue::new(
            config.sample_rate,
            config.queue,
            config.max_samples_per_sec,
            tx.clone(),
            waiting.clone(),
            counters.clone(),
        );
        let shared = Arc::new(Shared {
            window: Mutex::new(Window::new(config.window.as_millis() as u64)),
            config: config.clone(),
            ttl_ms: ttl.as_millis() as u64,
            counters,
            over_budget: AtomicBool::new(false),
            waiting,
        });
        let sampler = Self {
            shared,
            tx,
            rx: Mutex::new(Some(rx)),
        };
        Some((sampler, queue))
    }

    /// Starts the task, owned by `tasks`; it runs until their stop is given (samples not
    /// judged by then are dropped) or `source` is dropped.
    pub(crate) fn start<S: SampleSource<K, M>>(
        &self,
        source: &Arc<S>,
        clock: Clock,
        tasks: &Tasks,
    ) {
        let rx = self
            .rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(rx) = rx {
            let source = Arc::downgrade(source);
            tasks.spawn(run(source, rx, self.shared.clone(), clock, tasks.signal()));
        }
    }

    /// Waits until every sample taken before the call has been read, and every mismatch whose
    /// grace delay is over by the clock judged.
    pub(crate) async fn settle(&self) {
        let (reply, done) = oneshot::channel();
        if self.tx.send(SamplerMessage::Settle(reply)).await.is_ok() {
            let _ = done.await;
        }
    }

    /// The running totals.
    pub(crate) fn totals(&self) -> SamplerTotals {
        self.shared.counters.totals()
    }

    /// The report as of `now_ms`.
    pub(crate) fn report(&self, now_ms: u64, effective_ttl_ms: u64) -> Freshness {
        let shared = &*self.shared;
        let counts = shared
            .window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .totals(now_ms);
        let totals = shared.counters.totals();
        let ms = Duration::from_millis;
        Freshness {
            window: shared.config.window,
            sample_rate: shared.config.sample_rate,
            verified: counts.verified,
            stale: counts.stale,
            discarded: counts.discarded,
            ratio: counts.ratio(),
            interval: counts.interval(),
            stale_age_max: (counts.stale > 0).then(|| ms(counts.stale_age_max_ms)),
            stale_age_mean: (counts.stale > 0).then(|| ms(counts.stale_age_sum_ms / counts.stale)),
            budget: shared.config.budget,
            over_budget: shared.over_budget.load(Ordering::Relaxed),
            breaches: totals.breaches,
            ttl: ms(shared.ttl_ms),
            effective_ttl: ms(effective_ttl_ms),
            dropped: totals.dropped,
            throttled: totals.throttled,
            errors: totals.errors,
            reads: totals.reads,
        }
    }
}

/// Admits at most `per_sec` samples a second on the clock, in bursts of at most a second's.
#[derive(Debug)]
struct TokenBucket {
    per_sec: f64,
    tokens: f64,
    at_ms: u64,
}

impl TokenBucket {
    fn new(per_sec: u32, now_ms: u64) -> Self {
        Self {
            per_sec: f64::from(per_sec),
            tokens: f64::from(per_sec),
            at_ms: now_ms,
        }
    }

    fn take(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.at_ms) as f64 / 1_000.0;
        self.at_ms = self.at_ms.max(now_ms);
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.per_sec);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A mismatched sample waiting out its grace delay for an invalidation of its key.
struct Pending<K, M> {
    due_ms: u64,
    sample: Sample<K, M>,
}

async fn run<K, M, S>(
    source: Weak<S>,
    mut rx: mpsc::Receiver<SamplerMessage<K, M>>,
    shared: Arc<Shared>,
    clock: Clock,
    mut stop: Stop,
) where
    K: Send + Sync + 'static,
    M: Send + Sync + 'static,
    S: SampleSource<K, M>,
{
    let config = &shared.config;
    let grace_ms = config.grace.as_millis() as u64;
    let counters = &*shared.counters;
    let mut tokens = TokenBucket::new(config.max_samples_per_sec, clock.peek_ms());
    let mut reads: VecDeque<Sample<K, M>> = VecDeque::new();
    let mut confirms: VecDeque<Pending<K, M>> = VecDeque::new();
    let mut settles: Vec<oneshot::Sender<()>> = Vec::new();
    let mut budget = Budget::default();
    let bucket_ms = shared
        .window
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .bucket_ms();
    let mut next_evaluation = clock.peek_ms().saturating_add(bucket_ms);
    // A sample holds its place in the queue until its row is read: the queue bounds the reads
    // waiting, and so how long after its hit a row is read. A mismatch then waiting out its
    // grace delay holds none (there are at most `max_samples_per_sec` times the grace delay
    // of them, and a second's burst); were they counted, a run of stale hits would fill the queue and the hits
    // dropped meanwhile would be the ones near stale ones.
    let release = || {
        shared.waiting.fetch_sub(1, Ordering::AcqRel);
    };
    let finish = |outcome: Option<Outcome>, now_ms: u64, budget: &mut Budget| {
        let Some(outcome) = outcome else { return };
        match outcome {
            Outcome::Fresh => {
                bump(&counters.verified);
                budget.observe(false);
            }
            Outcome::Stale { .. } => {
                bump(&counters.verified);
                bump(&counters.stale);
                budget.observe(true);
            }
            Outcome::Discarded => bump(&counters.discarded),
        }
        shared
            .window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .record(now_ms, outcome);
    };
    loop {
        let now = clock.peek_ms();
        if now >= next_evaluation {
            next_evaluation = now.saturating_add(bucket_ms);
            let Some(source) = source.upgrade() else {
                return;
            };
            evaluate(&shared, &mut budget, &*source, now);
            continue;
        }
        // A mismatch whose grace delay is over: stale unless an invalidation explained it.
        if confirms.front().is_some_and(|p| p.due_ms <= now) {
            let Some(Pending { sample, .. }) = confirms.pop_front() else {
                continue;
            };
            let Some(source) = source.upgrade() else {
                return;
            };
            let outcome = if source.changed_since(&sample.key, sample.ticket) {
                Outcome::Discarded
            } else {
                Outcome::Stale {
                    age_bound_ms: sample.hit_ms.saturating_sub(sample.filled_after_ms),
                }
            };
            finish(Some(outcome), now, &mut budget);
            continue;
        }
        if let Some(sample) = reads.pop_front() {
            let Some(source) = source.upgrade() else {
                return;
            };
            bump(&counters.reads);
            let row = source.read(&sample.key).await;
            release();
            let now = clock.peek_ms();
            let same = match (&row, &sample.value) {
                (Err(_), _) => {
                    bump(&counters.errors);
                    finish(None, now, &mut budget);
                    continue;
                }
                (Ok(None), None) => true,
                (Ok(Some(row)), Some(cached)) => source.same(cached, row),
                (Ok(_), _) => false,
            };
            if same {
                // The row had no newer version at the read, so none when the hit was served,
                // whatever was written since.
                finish(Some(Outcome::Fresh), now, &mut budget);
            } else if source.changed_since(&sample.key, sample.ticket) {
                finish(Some(Outcome::Discarded), now, &mut budget);
            } else {
                // A write through the layer invalidates at its commit, another instance's
                // within its poll: give the invalidation a grace delay to arrive.
                confirms.push_back(Pending {
                    due_ms: now.saturating_add(grace_ms),
                    sample,
                });
            }
            continue;
        }
        // Nothing is due: whoever asked to settle is answered.
        for reply in settles.drain(..) {
            let _ = reply.send(());
        }
        let wake_at = confirms
            .front()
            .map_or(next_evaluation, |p| p.due_ms.min(next_evaluation));
        tokio::select! {
            () = stop.given() => return,
            message = rx.recv() => match message {
                None => return,
                Some(SamplerMessage::Settle(reply)) => settles.push(reply),
                Some(SamplerMessage::Sample(sample)) => {
                    if tokens.take(clock.peek_ms()) {
                        reads.push_back(sample);
                    } else {
                        bump(&counters.throttled);
                        release();
                    }
                }
            },
            () = clock.sleep_until(wake_at) => {}
        }
    }
}

/// One evaluation of the budget: the window's figures, a warning per window over it, and the
/// TTL step `ShortenTtl` asks for.
fn evaluate<K, M, S: SampleSource<K, M>>(
    shared: &Shared,
    budget: &mut Budget,
    source: &S,
    now: u64,
) {
    let counts = shared
        .window
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .totals(now);
    let effective = source.effective_ttl_ms();
    let verdict = budget.evaluate(&shared.config, &counts, now, shared.ttl_ms, effective);
    shared.over_budget.store(verdict.over, Ordering::Relaxed);
    if verdict.breach {
        bump(&shared.counters.breaches);
        let (low, high) = counts.interval();
        tracing::warn!(
            entity = source.name(),
            stale = counts.stale,
            verified = counts.verified,
            ratio = counts.ratio(),
            low,
            high,
            budget = shared.config.budget,
            "cache staleness over its budget"
        );
    }
    if let Some(ttl_ms) = verdict.ttl_ms {
        tracing::info!(
            entity = source.name(),
            from_ms = effective,
            to_ms = ttl_ms,
            "effective TTL changed by the staleness budget"
        );
        source.set_effective_ttl_ms(ttl_ms);
    }
}
