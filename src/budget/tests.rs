//! The budget's pacing, on tokio's paused clock: time moves only when every
//! task waits, so a window of 20 s passes in no real time and each
//! assertion sees exactly what the pacing decided.

use super::*;
use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;

const W: Duration = Duration::from_secs(20);

fn budget(writes: u32, requests: u32) -> Arc<Budget> {
    Arc::new(Budget::new(
        BudgetSettings {
            requests: Rate::new(requests, W),
            writes: Rate::new(writes, W),
            local_share_percent: 100.0,
        },
        None,
        Arc::new(Metrics::default()),
    ))
}

fn caller(name: &str, weight: u32) -> Caller {
    Caller {
        name: Arc::from(name),
        weight,
    }
}

fn far() -> Instant {
    Instant::now() + Duration::from_secs(3600)
}

#[tokio::test(start_paused = true)]
async fn the_window_holds_at_most_the_limit_and_frees_a_window_after_each_answer() {
    let b = budget(3, 100);
    let c = caller("a", 1);
    let t0 = Instant::now();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(b.acquire(&c, Lane::Write, far()).await.expect("room"));
    }
    // The fourth waits: answers come back at t0 + 1 s.
    tokio::time::advance(Duration::from_secs(1)).await;
    held.clear();
    let fourth = b
        .acquire(&c, Lane::Write, far())
        .await
        .expect("its turn comes");
    assert_eq!(
        Instant::now() - t0,
        Duration::from_secs(1) + W,
        "a window after the first answer"
    );
    drop(fourth);
}

#[tokio::test(start_paused = true)]
async fn a_call_whose_turn_is_past_its_deadline_is_refused_at_once_with_the_time_it_could_run() {
    let b = budget(2, 100);
    let c = caller("a", 1);
    let t0 = Instant::now();
    let g1 = b.acquire(&c, Lane::Write, far()).await.expect("room");
    let g2 = b.acquire(&c, Lane::Write, far()).await.expect("room");
    drop((g1, g2));
    let refused = b
        .acquire(&c, Lane::Write, t0 + Duration::from_secs(5))
        .await
        .expect_err("no token before the deadline");
    assert_eq!(Instant::now(), t0, "refused without waiting");
    assert_eq!(refused.lane, Lane::Write);
    assert_eq!(refused.retry_after, W, "the earliest a token frees");
}

#[tokio::test(start_paused = true)]
async fn reads_never_wait_behind_writes() {
    let b = budget(1, 100);
    let c = caller("a", 1);
    let write = b.acquire(&c, Lane::Write, far()).await.expect("room");
    let waiting_write = {
        let b = b.clone();
        let c = c.clone();
        tokio::spawn(async move {
            b.acquire(&c, Lane::Write, far())
                .await
                .map(|_| Instant::now())
        })
    };
    tokio::task::yield_now().await;
    let t0 = Instant::now();
    for _ in 0..10 {
        drop(
            b.acquire(&c, Lane::Read, far())
                .await
                .expect("a read has its own lane"),
        );
    }
    assert_eq!(Instant::now(), t0, "reads went at once");
    drop(write);
    let at = waiting_write.await.expect("joins").expect("its turn");
    assert!(at >= t0 + W, "the write waited for the write budget");
}

#[tokio::test(start_paused = true)]
async fn a_flooding_caller_does_not_starve_one_that_writes_now_and_then() {
    let b = budget(5, 1000);
    let served: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    // Spend the window, so every later call waits its turn.
    let flood = caller("flood", 1);
    for _ in 0..5 {
        drop(b.acquire(&flood, Lane::Write, far()).await.expect("room"));
    }
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (b, served, flood) = (b.clone(), served.clone(), flood.clone());
        tasks.push(tokio::spawn(async move {
            let _g = b.acquire(&flood, Lane::Write, far()).await.expect("turn");
            served.lock().expect("lock").push("flood");
        }));
        tokio::task::yield_now().await;
    }
    let quiet = caller("quiet", 1);
    let (b2, served2) = (b.clone(), served.clone());
    tasks.push(tokio::spawn(async move {
        let _g = b2.acquire(&quiet, Lane::Write, far()).await.expect("turn");
        served2.lock().expect("lock").push("quiet");
    }));
    for t in tasks {
        t.await.expect("joins");
    }
    let order = served.lock().expect("lock").clone();
    let quiet_at = order.iter().position(|s| *s == "quiet").expect("served");
    assert!(
        quiet_at <= 1,
        "the occasional caller went first or second, not after 20 floods: {order:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn weights_share_a_busy_budget_in_proportion() {
    let b = budget(10, 1000);
    let counts: Arc<Mutex<HashMap<&'static str, usize>>> = Arc::default();
    let heavy = caller("heavy", 3);
    let light = caller("light", 1);
    for _ in 0..10 {
        drop(b.acquire(&light, Lane::Write, far()).await.expect("room"));
    }
    let mut tasks = Vec::new();
    for (who, c) in [("heavy", heavy), ("light", light)] {
        for _ in 0..40 {
            let (b, counts, c) = (b.clone(), counts.clone(), c.clone());
            tasks.push(tokio::spawn(async move {
                let _g = b.acquire(&c, Lane::Write, far()).await.expect("turn");
                *counts.lock().expect("lock").entry(who).or_default() += 1;
            }));
        }
    }
    tokio::task::yield_now().await;
    // Two windows' worth of turns: 20 tokens.
    tokio::time::sleep(W * 2 + Duration::from_millis(1)).await;
    let counts = counts.lock().expect("lock").clone();
    assert_eq!(counts.values().sum::<usize>(), 20, "{counts:?}");
    assert_eq!(
        counts.get("heavy"),
        Some(&15),
        "3:1 of 20 turns: {counts:?}"
    );
    for t in tasks {
        t.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn a_waiter_that_gives_up_leaves_its_turn_to_the_next() {
    let b = budget(1, 100);
    let c = caller("a", 1);
    drop(b.acquire(&c, Lane::Write, far()).await.expect("room"));
    let t0 = Instant::now();
    // Its turn (t0 + W) is past its deadline only by the estimate's
    // reckoning of a queue ahead; with none ahead it is admitted to wait.
    let quitter = {
        let (b, c) = (b.clone(), c.clone());
        tokio::spawn(async move { b.acquire(&c, Lane::Write, far()).await })
    };
    tokio::task::yield_now().await;
    quitter.abort();
    let next = b
        .acquire(&c, Lane::Write, far())
        .await
        .expect("the freed turn");
    assert_eq!(Instant::now(), t0 + W);
    drop(next);
}

#[tokio::test(start_paused = true)]
async fn a_429_lowers_the_pace_and_it_recovers() {
    let b = budget(10, 1000);
    b.throttled(Lane::Write);
    let c = caller("a", 1);
    let t0 = Instant::now();
    for _ in 0..5 {
        drop(
            b.acquire(&c, Lane::Write, far())
                .await
                .expect("half the budget"),
        );
    }
    assert_eq!(Instant::now(), t0);
    let refused = b
        .acquire(&c, Lane::Write, t0 + Duration::from_secs(1))
        .await
        .expect_err("paced at 5");
    assert_eq!(refused.retry_after, W);
    tokio::time::advance(W).await;
    // One quiet window: 5 + 1.
    let text = {
        b.refresh_metrics();
        b.inner.metrics.render()
    };
    assert!(
        text.contains("graph_gateway_budget_limit{budget=\"writes\"} 6"),
        "{text}"
    );
    assert!(
        text.contains(
            "graph_gateway_budget_pace_changes_total{budget=\"writes\",direction=\"down\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("graph_gateway_budget_refused_total{budget=\"writes\"} 1"),
        "{text}"
    );
}

/// A shared store that answers from a script of `up` / `down`.
struct FakeStore {
    up: AtomicBool,
    taken: AtomicUsize,
    given_back: AtomicUsize,
    limit: usize,
    /// Tokens other replicas hold in the shared window.
    others: std::sync::atomic::AtomicU32,
    /// What the budget put back on its return.
    restored: Mutex<Vec<store::Held>>,
}

impl Store for FakeStore {
    fn take(
        &self,
        _write: bool,
        _limits: Limits,
        _member: Arc<str>,
    ) -> store::StoreFuture<Result<store::Answer, StoreDown>> {
        let answer = if !self.up.load(Ordering::Acquire) {
            Err(StoreDown("unreachable"))
        } else {
            let taken = self.taken.fetch_add(1, Ordering::AcqRel);
            let granted = taken < self.limit;
            let held = u32::try_from(taken.min(self.limit) + usize::from(granted)).unwrap_or(0);
            Ok(store::Answer {
                take: if granted {
                    Take::Granted
                } else {
                    Take::Wait(W)
                },
                used: store::Used {
                    requests: held + self.others.load(Ordering::Acquire),
                    writes: held + self.others.load(Ordering::Acquire),
                },
            })
        };
        Box::pin(async move { answer })
    }

    fn release(
        &self,
        _write: bool,
        _member: Arc<str>,
    ) -> store::StoreFuture<Result<(), StoreDown>> {
        Box::pin(async { Ok(()) })
    }

    fn give_back(&self, _member: Arc<str>) -> store::StoreFuture<Result<(), StoreDown>> {
        self.given_back.fetch_add(1, Ordering::AcqRel);
        Box::pin(async { Ok(()) })
    }

    fn restore(
        &self,
        _window: Duration,
        tokens: Vec<store::Held>,
    ) -> store::StoreFuture<Result<(), StoreDown>> {
        self.restored.lock().expect("lock").extend(tokens);
        Box::pin(async { Ok(()) })
    }

    fn ping(&self) -> store::StoreFuture<Result<(), StoreDown>> {
        let up = self.up.load(Ordering::Acquire);
        Box::pin(async move {
            if up {
                Ok(())
            } else {
                Err(StoreDown("unreachable"))
            }
        })
    }
}

/// A budget of `writes` per window shared through a [`FakeStore`] that
/// answers, where other replicas hold `others` tokens; `share` percent of
/// it is this replica's alone when the store does not answer.
fn shared(writes: u32, share: f64, others: u32) -> (Arc<FakeStore>, Budget) {
    let store = Arc::new(FakeStore {
        up: AtomicBool::new(true),
        taken: AtomicUsize::new(0),
        given_back: AtomicUsize::new(0),
        limit: 1000,
        others: std::sync::atomic::AtomicU32::new(others),
        restored: Mutex::default(),
    });
    let b = Budget::new(
        BudgetSettings {
            requests: Rate::new(1000, W),
            writes: Rate::new(writes, W),
            local_share_percent: share,
        },
        Some(store.clone()),
        Arc::new(Metrics::default()),
    );
    (store, b)
}

#[tokio::test(start_paused = true)]
async fn without_the_store_a_replica_spends_its_local_share_and_returns_when_it_answers() {
    let (store, b) = shared(9, 100.0 / 3.0, 0);
    let c = caller("a", 1);
    drop(
        b.acquire(&c, Lane::Write, far())
            .await
            .expect("from the store"),
    );
    assert_eq!(b.mode(), Mode::Shared);
    store.up.store(false, Ordering::Release);
    // The store is down: the call still goes, from the local share (3 of 9,
    // one of them already spent through the store).
    let t0 = Instant::now();
    drop(
        b.acquire(&c, Lane::Write, far())
            .await
            .expect("local share"),
    );
    assert_eq!(b.mode(), Mode::Fallback);
    drop(
        b.acquire(&c, Lane::Write, far())
            .await
            .expect("local share"),
    );
    assert_eq!(Instant::now(), t0, "no call waited for the dead store");
    let refused = b
        .acquire(&c, Lane::Write, t0 + Duration::from_secs(1))
        .await
        .expect_err("share spent");
    assert!(refused.retry_after > Duration::from_secs(1));
    b.refresh_metrics();
    let text = b.inner.metrics.render();
    assert!(text.contains("graph_gateway_budget_shared 0"), "{text}");
    assert!(
        text.contains("graph_gateway_budget_fallbacks_total{reason=\"unreachable\"} 1"),
        "{text}"
    );
    // Back up: the probe finds it within a second and sharing resumes,
    // after putting back this replica's three tokens of the window (the
    // store may have restarted empty; it never saw the two spent alone).
    store.up.store(true, Ordering::Release);
    tokio::time::sleep(PROBE_INTERVAL * 2).await;
    assert_eq!(b.mode(), Mode::Shared);
    let restored = store.restored.lock().expect("lock").clone();
    assert_eq!(restored.len(), 3, "{restored:?}");
    assert!(
        restored.iter().all(|t| t.write && t.age < W),
        "{restored:?}"
    );
    let names: std::collections::HashSet<_> = restored.iter().map(|t| &t.member).collect();
    assert_eq!(names.len(), 3, "each token under its own name");
    let before = store.taken.load(Ordering::Acquire);
    drop(
        b.acquire(&c, Lane::Write, far())
            .await
            .expect("from the store again"),
    );
    assert_eq!(store.taken.load(Ordering::Acquire), before + 1);
}

#[tokio::test(start_paused = true)]
async fn a_token_given_back_frees_at_once_and_a_used_one_holds_its_window() {
    let b = budget(1, 100);
    let used = b.try_acquire(Lane::Write).expect("room");
    drop(used);
    assert!(
        b.try_acquire(Lane::Write).is_none(),
        "a used token stays in the window"
    );
    let b = budget(1, 100);
    let unsent = b.try_acquire(Lane::Write).expect("room");
    unsent.give_back();
    let again = b
        .try_acquire(Lane::Write)
        .expect("the token given back is free again");
    drop(again);
}

#[tokio::test(start_paused = true)]
async fn a_shared_token_given_back_leaves_the_store_and_a_used_one_stays() {
    let (store, b) = shared(9, 100.0, 0);
    let c = caller("a", 1);
    drop(
        b.acquire(&c, Lane::Write, far())
            .await
            .expect("from the store"),
    );
    b.acquire(&c, Lane::Write, far())
        .await
        .expect("from the store")
        .give_back();
    // The release and the give-back run on their own tasks.
    for _ in 0..1000 {
        if store.given_back.load(Ordering::Acquire) > 0 {
            break;
        }
        tokio::task::yield_now().await;
    }
    assert_eq!(store.taken.load(Ordering::Acquire), 2);
    assert_eq!(store.given_back.load(Ordering::Acquire), 1);
}

#[tokio::test(start_paused = true)]
async fn a_replica_that_loses_the_store_counts_what_the_others_spent_in_its_window() {
    // Other replicas hold 7 of 9 writes; this one takes the 8th through
    // the store, and then the store stops answering.
    let (store, b) = shared(9, 100.0 / 3.0, 7);
    let c = caller("a", 1);
    let t0 = Instant::now();
    drop(
        b.acquire(&c, Lane::Write, far())
            .await
            .expect("from the store"),
    );
    store.up.store(false, Ordering::Release);
    tokio::time::advance(Duration::from_secs(1)).await;
    // Its local share is 3, and it spent only 1 itself: but the window it
    // last saw held 8 of 9, so the share would overspend it. It waits
    // until what the store counted has left the window.
    let refused = b
        .acquire(&c, Lane::Write, Instant::now() + Duration::from_secs(5))
        .await
        .expect_err("the shared window is still full");
    assert_eq!(b.mode(), Mode::Fallback);
    assert_eq!(
        refused.retry_after,
        t0 + W - Instant::now(),
        "free a window after the store last counted"
    );
    tokio::time::advance(refused.retry_after).await;
    for _ in 0..3 {
        drop(
            b.acquire(&c, Lane::Write, Instant::now() + Duration::from_secs(5))
                .await
                .expect("the local share, once the window has passed"),
        );
    }
    b.acquire(&c, Lane::Write, Instant::now() + Duration::from_secs(5))
        .await
        .expect_err("no more than the local share");
}

#[tokio::test(start_paused = true)]
async fn a_turn_that_leaves_too_little_time_for_the_request_is_refused_unsent() {
    let b = budget(1, 100);
    let c = caller("a", 1);
    let t0 = Instant::now();
    drop(b.acquire(&c, Lane::Write, far()).await.expect("room"));
    // The next token frees at t0 + W. A deadline 100 ms after it would
    // leave the request 100 ms: refused at once, with the time it could
    // run.
    let refused = b
        .acquire(&c, Lane::Write, t0 + W + Duration::from_millis(100))
        .await
        .expect_err("too little time left after its turn");
    assert_eq!(Instant::now(), t0, "refused without waiting");
    assert_eq!(refused.retry_after, W);
    // Two seconds after its turn: it waits and goes, with time to spare.
    let grant = b
        .acquire(&c, Lane::Write, t0 + W + Duration::from_secs(2))
        .await
        .expect("its turn leaves time for the request");
    assert_eq!(Instant::now(), t0 + W);
    drop(grant);
}

#[test]
fn the_time_kept_for_the_request_is_a_fifth_of_what_is_left_within_bounds() {
    let now = Instant::now();
    let ms = Duration::from_millis;
    assert_eq!(send_by(now + ms(2500), now), now + ms(2000));
    assert_eq!(send_by(now + ms(100), now), now + ms(50), "at least 50 ms");
    assert_eq!(send_by(now + ms(30), now), now, "never before now");
    assert_eq!(
        send_by(now + Duration::from_secs(60), now),
        now + Duration::from_secs(59),
        "at most 1 s"
    );
    assert_eq!(send_by(now, now + ms(5)), now + ms(5), "a deadline past");
}

#[tokio::test(start_paused = true)]
async fn a_batch_takes_a_token_per_item_and_keeps_none_it_cannot_use() {
    let b = budget(3, 10);
    let c = caller("a", 1);
    let two_writes_a_read = Cost {
        reads: 1,
        writes: 2,
    };
    let grants = b
        .acquire_cost(&c, two_writes_a_read, far())
        .await
        .expect("room for all three");
    assert_eq!(grants.len(), 3);
    b.refresh_metrics();
    let text = b.inner.metrics.render();
    assert!(
        text.contains("graph_gateway_budget_tokens_left{budget=\"writes\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("graph_gateway_budget_tokens_left{budget=\"requests\"} 7"),
        "{text}"
    );
    grants.into_iter().for_each(Grant::give_back);
    // Five writes do not fit in three: refused, and the three it could
    // have held stay free.
    let five = Cost {
        reads: 0,
        writes: 5,
    };
    let t0 = Instant::now();
    b.acquire_cost(&c, five, t0 + Duration::from_secs(1))
        .await
        .expect_err("more than the window holds");
    assert!(b.try_acquire_cost(five).is_none());
    let three = b
        .try_acquire_cost(Cost {
            reads: 0,
            writes: 3,
        })
        .expect("nothing was kept by the refused batch");
    assert_eq!(three.len(), 3);
}
