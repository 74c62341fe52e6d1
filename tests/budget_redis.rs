//! The shared budget store (src/budget/redis.rs) against a real
//! redis-server on loopback (tests/common/redis.rs): the sliding-window
//! logs, two stores sharing one budget, re-stamping, leases, and what the
//! store says when Redis is killed, stalled or asks for a password.

mod common;

use common::redis::RedisServer;
use graph_grpc_gateway::budget::redis::{
    lease_member, BudgetKey, Held, Lease, Limits, RedisSettings, RedisStore, StoreError, Take,
};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PASSWORD: &str = "s3cret-budget-pass-7f1c";

fn key() -> BudgetKey {
    BudgetKey {
        tenant: format!("tenant-{}", uuid::Uuid::new_v4()),
        app: "app-1".into(),
    }
}

fn settings(url: String) -> RedisSettings {
    RedisSettings {
        url,
        password: None,
        timeout: Duration::from_secs(2),
    }
}

fn store(server: &RedisServer, key: &BudgetKey) -> RedisStore {
    RedisStore::new(&settings(server.url()), key).expect("store builds")
}

/// A store of a new budget, and that budget's two keys.
fn store_and_keys(server: &RedisServer) -> (RedisStore, [String; 2]) {
    let k = key();
    (store(server, &k), k.redis_keys())
}

fn limits(requests: u32, writes: u32, window: Duration) -> Limits {
    Limits {
        requests,
        writes,
        window,
    }
}

fn member() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A raw connection to inspect the logs.
async fn raw(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

/// The server's clock in ms.
async fn server_ms(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(conn).await.expect("TIME");
    secs * 1000 + micros / 1000
}

/// Waits until the server's clock has passed `ms` (polling TIME).
async fn until_server_passes(conn: &mut redis::aio::MultiplexedConnection, ms: u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while server_ms(conn).await <= ms {
        assert!(Instant::now() < deadline, "the server's clock did not move");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Retries `take` until it answers, failing after `limit`.
async fn until_answers(store: &RedisStore, limits: Limits, limit: Duration) -> Take {
    let deadline = Instant::now() + limit;
    loop {
        match store.take(false, limits, &member()).await {
            Ok(take) => return take,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the store did not come back: {e}"),
        }
    }
}

fn wait_of(take: Take) -> Duration {
    match take {
        Take::Wait(wait) => wait,
        Take::Granted => panic!("expected Wait, got Granted"),
    }
}

#[tokio::test]
async fn grants_exactly_the_limit_in_a_window_then_asks_to_wait() {
    let server = RedisServer::start();
    let (store, [requests, writes]) = store_and_keys(&server);
    let window = Duration::from_secs(20);
    let limits = limits(5, 5, window);
    let first = Instant::now();
    for i in 0..5 {
        assert_eq!(
            store.take(false, limits, &member()).await.expect("take"),
            Take::Granted,
            "token {i}"
        );
    }
    let wait = wait_of(store.take(false, limits, &member()).await.expect("take"));
    // The oldest entry leaves the window 20 s after it was taken: at most a
    // window, and no less than what is left of it since the first take.
    let since = first.elapsed() + Duration::from_millis(5);
    assert!(wait <= window, "wait {wait:?} longer than the window");
    assert!(
        wait + since >= window,
        "wait {wait:?} too short ({since:?} since the first take)"
    );
    // A refused take adds nothing: still exactly five entries.
    let mut conn = raw(&server).await;
    let count: u64 = redis::cmd("ZCARD")
        .arg(&requests)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 5);
    let count: u64 = redis::cmd("ZCARD")
        .arg(&writes)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 0, "reads take no write token");
}

#[tokio::test]
async fn a_write_needs_room_in_both_budgets() {
    let server = RedisServer::start();
    let window = Duration::from_secs(20);

    // The request budget full: a write waits though the write budget has room.
    let (store_a, [_, writes]) = store_and_keys(&server);
    let l = limits(3, 10, window);
    for _ in 0..3 {
        assert_eq!(
            store_a.take(false, l, &member()).await.unwrap(),
            Take::Granted
        );
    }
    let wait = wait_of(store_a.take(true, l, &member()).await.unwrap());
    assert!(wait > Duration::ZERO && wait <= window);
    let mut conn = raw(&server).await;
    let count: u64 = redis::cmd("ZCARD")
        .arg(&writes)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 0, "the refused write took no write token");

    // The write budget full: writes wait, reads are still granted.
    let store_b = store(&server, &key());
    let l = limits(10, 2, window);
    for _ in 0..2 {
        assert_eq!(
            store_b.take(true, l, &member()).await.unwrap(),
            Take::Granted
        );
    }
    let wait = wait_of(store_b.take(true, l, &member()).await.unwrap());
    assert!(wait > Duration::ZERO && wait <= window);
    for _ in 0..8 {
        assert_eq!(
            store_b.take(false, l, &member()).await.unwrap(),
            Take::Granted
        );
    }
    // Now both are full; reads wait too.
    wait_of(store_b.take(false, l, &member()).await.unwrap());
    wait_of(store_b.take(true, l, &member()).await.unwrap());
}

#[tokio::test]
async fn entries_leave_after_the_window_and_the_wait_says_when() {
    let server = RedisServer::start();
    let (store, [requests, _]) = store_and_keys(&server);
    let window = Duration::from_millis(300);
    let l = limits(2, 2, window);
    assert_eq!(store.take(true, l, &member()).await.unwrap(), Take::Granted);
    assert_eq!(store.take(true, l, &member()).await.unwrap(), Take::Granted);
    let wait = wait_of(store.take(true, l, &member()).await.unwrap());
    assert!(wait <= window);
    // Waiting the returned time is the behaviour under test: then there is
    // room again (one token, as the first two were taken together).
    tokio::time::sleep(wait).await;
    assert_eq!(store.take(true, l, &member()).await.unwrap(), Take::Granted);
    // And once both first tokens have left, the budget is back to two.
    let mut last = store.take(true, l, &member()).await.unwrap();
    if let Take::Wait(wait) = last {
        tokio::time::sleep(wait).await;
        last = store.take(true, l, &member()).await.unwrap();
    }
    assert_eq!(last, Take::Granted);
    wait_of(store.take(true, l, &member()).await.unwrap());
    // The keys expire a little past the window: an idle budget leaves nothing.
    let mut conn = raw(&server).await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&requests)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 1300, "ttl {ttl}");
}

#[tokio::test]
async fn two_stores_share_one_budget() {
    let server = RedisServer::start();
    let shared = key();
    let replica_a = store(&server, &shared);
    let replica_b = store(&server, &shared);
    let other = store(&server, &key());
    let l = limits(10, 4, Duration::from_secs(20));
    let mut granted = 0;
    for i in 0..20 {
        let replica = if i % 2 == 0 { &replica_a } else { &replica_b };
        if replica.take(true, l, &member()).await.unwrap() == Take::Granted {
            granted += 1;
        }
    }
    assert_eq!(granted, 4, "the write budget is shared, not per store");
    wait_of(replica_a.take(true, l, &member()).await.unwrap());
    wait_of(replica_b.take(true, l, &member()).await.unwrap());
    // Another tenant's budget is its own.
    assert_eq!(other.take(true, l, &member()).await.unwrap(), Take::Granted);
}

#[tokio::test]
async fn every_answer_says_how_full_both_shared_logs_are() {
    let server = RedisServer::start();
    let shared = key();
    let replica_a = store(&server, &shared);
    let replica_b = store(&server, &shared);
    let l = limits(10, 3, Duration::from_secs(20));
    for _ in 0..2 {
        replica_a.take(true, l, &member()).await.unwrap();
    }
    replica_a.take(false, l, &member()).await.unwrap();
    // B sees A's tokens: 3 requests (one a read), 2 writes, then its own.
    let (take, used) = replica_b.take_counted(true, l, &member()).await.unwrap();
    assert_eq!(take, Take::Granted);
    assert_eq!((used.requests, used.writes), (4, 3));
    let (take, used) = replica_b.take_counted(true, l, &member()).await.unwrap();
    assert!(matches!(take, Take::Wait(_)), "{take:?}");
    assert_eq!((used.requests, used.writes), (4, 3), "a refusal counts too");
    let (take, used) = replica_b.take_counted(false, l, &member()).await.unwrap();
    assert_eq!(take, Take::Granted);
    assert_eq!(
        (used.requests, used.writes),
        (5, 3),
        "a read reads the write log"
    );
}

#[tokio::test]
async fn a_replica_puts_its_tokens_back_once_and_only_those_still_in_the_window() {
    let server = RedisServer::start();
    let shared = key();
    let replica_a = store(&server, &shared);
    let replica_b = store(&server, &shared);
    let window = Duration::from_secs(20);
    let l = limits(10, 5, window);
    let taken = member();
    replica_a.take(true, l, &taken).await.unwrap();
    // The server restarts empty.
    let mut conn = raw(&server).await;
    let () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    let tokens = [
        Held {
            member: Arc::from(taken.as_str()),
            age: Duration::from_secs(3),
            write: true,
        },
        Held {
            member: Arc::from("spent-alone"),
            age: Duration::from_secs(1),
            write: false,
        },
        Held {
            member: Arc::from("long-gone"),
            age: window + Duration::from_secs(1),
            write: true,
        },
    ];
    replica_a.restore(window, &tokens).await.unwrap();
    // Twice changes nothing: a token the store holds keeps its entry.
    replica_a.restore(window, &tokens).await.unwrap();
    let (_, used) = replica_b.take_counted(true, l, &member()).await.unwrap();
    assert_eq!(
        (used.requests, used.writes),
        (3, 2),
        "A's two tokens, then B's"
    );
    let [requests, writes] = shared.redis_keys();
    let now = server_ms(&mut conn).await;
    let score: f64 = redis::cmd("ZSCORE")
        .arg(&writes)
        .arg(&taken)
        .query_async(&mut conn)
        .await
        .unwrap();
    let age = now as f64 - score;
    assert!(
        (2900.0..=3500.0).contains(&age),
        "stamped its age ago: {age}"
    );
    let read: Option<f64> = redis::cmd("ZSCORE")
        .arg(&writes)
        .arg("spent-alone")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(read, None, "a read's token is not a write");
    let card: u64 = redis::cmd("ZCARD")
        .arg(&requests)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(card, 3);
}

#[tokio::test]
async fn release_restamps_the_token_with_the_time_of_the_answer() {
    let server = RedisServer::start();
    let (store, [requests, writes]) = store_and_keys(&server);
    let mut conn = raw(&server).await;
    let window = Duration::from_secs(2);
    let l = limits(1, 1, window);
    let token = member();
    assert_eq!(store.take(true, l, &token).await.unwrap(), Take::Granted);
    let taken: u64 = redis::cmd("ZSCORE")
        .arg(&requests)
        .arg(&token)
        .query_async(&mut conn)
        .await
        .unwrap();

    // The answer comes back a second after the token was taken.
    until_server_passes(&mut conn, taken + 1000).await;
    store.release(true, &token).await.expect("release");
    for log in [&requests, &writes] {
        let stamped: u64 = redis::cmd("ZSCORE")
            .arg(log)
            .arg(&token)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            stamped > taken + 1000,
            "{log}: {stamped} not re-stamped (taken at {taken})"
        );
    }
    // The window now counts from the answer: more than the second left of
    // the window counted from the take.
    let wait = wait_of(store.take(true, l, &member()).await.unwrap());
    assert!(wait > Duration::from_secs(1), "{wait:?}");

    // A member that was never granted is not added by a release.
    store.release(true, &member()).await.expect("release");
    let count: u64 = redis::cmd("ZCARD")
        .arg(&requests)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn a_token_given_back_frees_at_once_for_every_store() {
    let server = RedisServer::start();
    let k = key();
    let first = store(&server, &k);
    let other = store(&server, &k);
    let l = limits(1, 1, Duration::from_secs(3600));
    let token = member();
    assert_eq!(first.take(true, l, &token).await.unwrap(), Take::Granted);
    assert!(
        matches!(other.take(true, l, &member()).await.unwrap(), Take::Wait(_)),
        "the one token is held"
    );
    first.give_back(&token).await.unwrap();
    assert_eq!(
        other.take(true, l, &member()).await.unwrap(),
        Take::Granted,
        "given back: free at once for another replica"
    );
}

#[tokio::test]
async fn a_lease_takes_up_to_n_tokens_in_one_call() {
    let server = RedisServer::start();
    let (store, [requests, writes]) = store_and_keys(&server);
    let mut conn = raw(&server).await;
    let l = limits(100, 7, Duration::from_secs(20));
    let lease = member();
    assert_eq!(
        store.take_lease(true, l, &lease, 5).await.unwrap(),
        Lease::Granted(5)
    );
    // Two left: a lease of five gets two.
    let second = member();
    assert_eq!(
        store.take_lease(true, l, &second, 5).await.unwrap(),
        Lease::Granted(2)
    );
    assert!(matches!(
        store.take_lease(true, l, &member(), 5).await.unwrap(),
        Lease::Wait(_)
    ));
    assert!(matches!(
        store.take(true, l, &member()).await.unwrap(),
        Take::Wait(_)
    ));
    let count: u64 = redis::cmd("ZCARD")
        .arg(&writes)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(count, 7);
    // Each leased token is named and can be released on its own.
    for i in 0..2 {
        let name = lease_member(&second, i);
        let score: Option<u64> = redis::cmd("ZSCORE")
            .arg(&requests)
            .arg(&name)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(score.is_some(), "{name} logged");
        store.release(true, &name).await.expect("release");
    }
    let absent: Option<u64> = redis::cmd("ZSCORE")
        .arg(&requests)
        .arg(lease_member(&second, 2))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(absent, None, "only the granted tokens are logged");
    // A lease of one is named like a lease's first token.
    let single = member();
    let reads = limits(100, 7, Duration::from_secs(20));
    assert_eq!(
        store.take_lease(false, reads, &single, 1).await.unwrap(),
        Lease::Granted(1)
    );
    let score: Option<u64> = redis::cmd("ZSCORE")
        .arg(&requests)
        .arg(lease_member(&single, 0))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(score.is_some());
}

#[tokio::test]
async fn a_killed_server_is_an_error_and_the_same_store_works_after_a_restart() {
    let mut server = RedisServer::start();
    let store = store(&server, &key());
    let l = limits(100, 100, Duration::from_secs(20));
    assert_eq!(
        store.take(false, l, &member()).await.unwrap(),
        Take::Granted
    );

    server.kill();
    // The open connection is gone, then every new one is refused.
    for _ in 0..3 {
        match store.take(false, l, &member()).await {
            Err(StoreError::Unreachable(_)) => {}
            other => panic!("expected Unreachable, got {other:?}"),
        }
    }
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unreachable(_))
    ));

    // A store built while Redis is down builds (start-up does not wait).
    let late = RedisStore::new(&settings(server.url()), &key()).expect("builds without Redis");
    assert!(matches!(
        late.take(false, l, &member()).await,
        Err(StoreError::Unreachable(_))
    ));

    server.restart();
    // The same store reconnects by itself (its script reloaded into the new
    // server's empty cache).
    assert_eq!(
        until_answers(&store, l, Duration::from_secs(10)).await,
        Take::Granted
    );
    store.ping().await.expect("ping after restart");
    assert_eq!(
        until_answers(&late, l, Duration::from_secs(10)).await,
        Take::Granted
    );
}

#[tokio::test]
async fn a_stalled_server_times_out() {
    let mut server = RedisServer::start();
    let mut s = settings(server.url());
    s.timeout = Duration::from_millis(300);
    let store = RedisStore::new(&s, &key()).unwrap();
    let l = limits(100, 100, Duration::from_secs(20));
    assert_eq!(store.take(true, l, &member()).await.unwrap(), Take::Granted);

    server.pause();
    assert_eq!(
        store.take(true, l, &member()).await,
        Err(StoreError::Timeout)
    );
    assert_eq!(
        store.release(true, &member()).await,
        Err(StoreError::Timeout)
    );
    assert_eq!(store.ping().await, Err(StoreError::Timeout));
    // A new connection to a stalled server times out too (the kernel
    // accepts it; the server never answers the handshake).
    let fresh = RedisStore::new(&s, &key()).unwrap();
    assert_eq!(
        fresh.take(true, l, &member()).await,
        Err(StoreError::Timeout)
    );

    server.resume();
    assert_eq!(
        until_answers(&store, l, Duration::from_secs(10)).await,
        Take::Granted
    );
    assert_eq!(
        until_answers(&fresh, l, Duration::from_secs(10)).await,
        Take::Granted
    );
}

fn assert_secret_free(error: &StoreError) {
    for text in [error.to_string(), format!("{error:?}")] {
        assert!(!text.contains(PASSWORD), "password in {text:?}");
        assert!(!text.contains("wrong-"), "password in {text:?}");
    }
}

#[tokio::test]
async fn the_password_is_required_and_never_shown() {
    let server = RedisServer::start_with_password(PASSWORD);
    let k = key();
    let l = limits(100, 100, Duration::from_secs(20));

    // No password: refused.
    let none = RedisStore::new(&settings(server.url()), &k).unwrap();
    let error = none.take(false, l, &member()).await.expect_err("NOAUTH");
    assert_eq!(error, StoreError::Unreachable("authentication refused"));
    assert_secret_free(&error);

    // A wrong password: refused, and not shown.
    let wrong = RedisSettings {
        password: Some(format!("wrong-{PASSWORD}")),
        ..settings(server.url())
    };
    let store = RedisStore::new(&wrong, &k).unwrap();
    for _ in 0..2 {
        let error = store
            .take(false, l, &member())
            .await
            .expect_err("WRONGPASS");
        assert!(matches!(error, StoreError::Unreachable(_)), "{error:?}");
        assert_secret_free(&error);
    }
    assert!(!format!("{wrong:?} {store:?}").contains(PASSWORD));

    // The right one, from the setting.
    let right = RedisSettings {
        password: Some(PASSWORD.into()),
        ..settings(server.url())
    };
    let store = RedisStore::new(&right, &k).unwrap();
    assert_eq!(
        store.take(false, l, &member()).await.unwrap(),
        Take::Granted
    );
    store.ping().await.unwrap();

    // The setting overrides a (wrong) password in the URL...
    let url_wrong = format!("redis://:wrong-{PASSWORD}@127.0.0.1:{}", server.port());
    let overridden = RedisSettings {
        password: Some(PASSWORD.into()),
        ..settings(url_wrong.clone())
    };
    let store = RedisStore::new(&overridden, &k).unwrap();
    assert_eq!(
        store.take(false, l, &member()).await.unwrap(),
        Take::Granted
    );
    // ...and without the setting the URL's own is used.
    let store = RedisStore::new(&settings(url_wrong), &k).unwrap();
    let error = store
        .take(false, l, &member())
        .await
        .expect_err("the URL's wrong password");
    assert_secret_free(&error);
    let url_right = format!("redis://:{PASSWORD}@127.0.0.1:{}", server.port());
    let store = RedisStore::new(&settings(url_right), &k).unwrap();
    assert_eq!(
        store.take(false, l, &member()).await.unwrap(),
        Take::Granted
    );
}

#[tokio::test]
async fn a_bad_url_is_refused_without_showing_the_password() {
    for url in [
        format!("http://:{PASSWORD}@127.0.0.1:6379"),
        format!("redis://:{PASSWORD}@127.0.0.1:6379/#insecure"),
        format!("rediss://:{PASSWORD}@127.0.0.1:6379/#insecure"),
        format!("redis://:{PASSWORD}@127.0.0.1:99999"),
        format!("redis://:{PASSWORD}@127.0.0.1:6379/not-a-db"),
        format!("redis://:{PASSWORD}@127.0.0.1:6379/?{PASSWORD}=1"),
        format!("redis://:{PASSWORD}@127.0.0.1:6379/?protocol={PASSWORD}"),
        format!("unix:///tmp/{PASSWORD}.sock"),
        format!("redis//:{PASSWORD}@127.0.0.1"),
        format!(":{PASSWORD}"),
        String::new(),
    ] {
        let s = RedisSettings {
            password: Some(PASSWORD.into()),
            ..settings(url.clone())
        };
        let message = s.check().expect_err(&url.replace(PASSWORD, "***"));
        assert!(!message.contains(PASSWORD), "{message}");
        assert!(!message.is_empty());
        let error = RedisStore::new(&s, &key()).expect_err("refused");
        assert!(matches!(error, StoreError::Config(_)));
        assert_secret_free(&error);
        assert!(!format!("{s:?}").contains(PASSWORD));
    }
}

#[tokio::test]
async fn rediss_urls_build_with_rustls_and_fail_cleanly_against_plain_redis() {
    let server = RedisServer::start();
    let s = settings(format!("rediss://127.0.0.1:{}", server.port()));
    s.check().expect("rediss:// is accepted");
    let store = RedisStore::new(&s, &key()).expect("builds with TLS");
    // The server speaks plain RESP: the TLS handshake fails, as an error.
    let l = limits(100, 100, Duration::from_secs(20));
    let error = store
        .take(false, l, &member())
        .await
        .expect_err("no TLS on this server");
    assert!(
        matches!(error, StoreError::Unreachable(_) | StoreError::Timeout),
        "{error:?}"
    );
    for url in [
        "rediss://redis.example.com",
        "rediss://user@redis.example.com:6380/2",
        "redis://[::1]:6379/0?protocol=resp3",
    ] {
        settings(url.into())
            .check()
            .unwrap_or_else(|e| panic!("{url}: {e}"));
    }
}

/// Two replicas' budgets, pacing through one Redis: together they take no
/// more than the shared limit, and with Redis killed neither fails a call
/// (each falls back to its local share, visible in its metrics) until Redis
/// is back and sharing resumes.
#[tokio::test]
async fn two_replicas_pace_through_one_redis_and_fall_back_to_their_share_while_it_is_down() {
    use graph_grpc_gateway::budget::{Budget, BudgetSettings, Caller, Lane, Mode, Rate, Store};
    use graph_grpc_gateway::metrics::Metrics;
    use std::sync::Arc;

    let mut server = RedisServer::start();
    let k = key();
    let hour = Duration::from_secs(3600);
    let settings_for = || BudgetSettings {
        requests: Rate::new(1000, hour),
        writes: Rate::new(6, hour),
        local_share_percent: 50.0,
    };
    let mut replicas = Vec::new();
    for _ in 0..2 {
        let mut s = settings(server.url());
        s.timeout = Duration::from_millis(250);
        let store: Arc<dyn Store> = Arc::new(RedisStore::new(&s, &k).expect("store builds"));
        let metrics = Arc::new(Metrics::default());
        replicas.push((
            Budget::new(settings_for(), Some(store), metrics.clone()),
            metrics,
        ));
    }
    let caller = Caller::default();
    let soon = || tokio::time::Instant::now() + Duration::from_millis(500);
    // Six shared write tokens, taken alternately; the seventh is refused on
    // either replica, unsent, inside its deadline.
    for i in 0..6 {
        let (budget, _) = &replicas[i % 2];
        drop(
            budget
                .acquire(&caller, Lane::Write, soon())
                .await
                .expect("shared room"),
        );
    }
    for (budget, _) in &replicas {
        let refused = budget
            .acquire(&caller, Lane::Write, soon())
            .await
            .expect_err("the shared budget is spent");
        assert!(refused.retry_after > Duration::from_secs(1), "{refused:?}");
        assert_eq!(budget.mode(), Mode::Shared);
    }
    // Redis dies: reads still go on both, from each replica's share.
    server.kill();
    for (budget, metrics) in &replicas {
        drop(
            budget
                .acquire(&caller, Lane::Read, soon())
                .await
                .expect("a read from the local share"),
        );
        assert_eq!(budget.mode(), Mode::Fallback);
        let text = metrics.render();
        assert!(text.contains("graph_gateway_budget_shared 0"), "{text}");
        assert!(
            text.contains("graph_gateway_budget_fallbacks_total"),
            "{text}"
        );
    }
    server.restart();
    // The probe finds it again (once a second): poll the mode, bounded.
    let until = Instant::now() + Duration::from_secs(10);
    for (budget, metrics) in &replicas {
        while budget.mode() != Mode::Shared {
            assert!(Instant::now() < until, "sharing did not resume");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(metrics.render().contains("graph_gateway_budget_shared 1"));
    }
}
