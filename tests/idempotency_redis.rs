//! Safe retries across replicas: two gateways against one emulator, sharing
//! their `request_id` memory through one real redis-server on loopback
//! (tests/common/redis.rs). The emulator's journal proves what reached
//! Graph; Redis itself shows the entries and their expiry.

mod common;

use common::{new_request_id, reason, rename, replayed};

use common::redis::RedisServer;
use common::{config, connect, Client};
use graph_grpc_gateway::budget::redis::{BudgetKey, RedisSettings, RedisStore};
use graph_grpc_gateway::config::{Cloud, Credential, CredentialKind, GraphTarget};
use graph_grpc_gateway::emulator::{
    seed, Emulator, EmulatorOptions, Fault, FaultBody, RunningEmulator,
};
use graph_grpc_gateway::graph::stack::SharedBudget;
use graph_grpc_gateway::idempotency::{Begin, Fingerprint, Idempotency, Key, SharedStore};
use graph_grpc_gateway::methods::Method;
use graph_grpc_gateway::metrics::Metrics;
use graph_grpc_gateway::secret::Secret;
use graph_grpc_gateway::server::Gateway;
use std::time::{Duration, Instant};
use tonic::Code;

/// Longer than anything the tests wait for; reaching it is a failure.
const PATIENCE: Duration = Duration::from_secs(30);
const PASSWORD: &str = "s3cret-idem-pass-4b9e";
const RPC_UPDATE: &str = "UpdateSecurityConfigurationTask";

struct Replica {
    gateway: Gateway,
    client: Client,
}

impl Replica {
    fn metric(&self, series: &str) -> Option<f64> {
        metric(&self.gateway.metrics, series)
    }
}

/// The value of the metric line starting with `series` (name and labels).
fn metric(metrics: &Metrics, series: &str) -> Option<f64> {
    metrics.render().lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// The sum of every series of the store's error counter.
fn store_errors(metrics: &Metrics) -> f64 {
    metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("graph_gateway_idempotency_store_errors_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The emulator both replicas call, requiring the tokens it issues, its
/// journal on.
async fn emulator() -> RunningEmulator {
    let running = Emulator::with_options(EmulatorOptions::default().with_require_auth(true))
        .spawn(common::loopback())
        .await
        .expect("emulator");
    let em = &running.emulator;
    em.set_options(em.options().with_record_requests(true));
    running
}

fn target(em: &RunningEmulator) -> GraphTarget {
    GraphTarget::Graph {
        base_url: em.base_url.parse().expect("url"),
        credential: Box::new(Credential {
            authority_host: format!("http://{}", em.addr).parse().expect("url"),
            tenant_id: "emulator".into(),
            client_id: "graph-grpc-gateway".into(),
            scope: Cloud::Global.scope(),
            kind: CredentialKind::ClientSecret(Secret::new("emulator")),
        }),
    }
}

fn settings(server: &RedisServer, password: Option<&str>) -> RedisSettings {
    RedisSettings {
        url: server.url(),
        password: password.map(str::to_owned),
        timeout: Duration::from_millis(250),
    }
}

/// One replica against `em`, sharing its memory through `redis`; the budget
/// is off (the memory shares the budget's Redis settings all the same).
async fn replica(
    em: &RunningEmulator,
    redis: RedisSettings,
    window: Duration,
    retries: bool,
) -> Replica {
    let mut cfg = config(target(em));
    cfg.graph_stack.budget_store = Some(SharedBudget {
        redis,
        key: BudgetKey {
            tenant: "emulator".into(),
            app: "graph-grpc-gateway".into(),
        },
    });
    cfg.idempotency.window = window;
    if !retries {
        cfg.graph_stack.retry.max_retries = 0;
    }
    let gateway = Gateway::start(cfg).await.expect("gateway starts");
    let client = connect(gateway.grpc_addr).await;
    Replica { gateway, client }
}

/// Two replicas sharing `server`, with the default window.
async fn pair(em: &RunningEmulator, server: &RedisServer) -> (Replica, Replica) {
    let window = Duration::from_secs(600);
    (
        replica(em, settings(server, None), window, true).await,
        replica(em, settings(server, None), window, true).await,
    )
}

/// The PATCHes that reached Graph for the task `id`.
fn patches(em: &RunningEmulator, id: &str) -> usize {
    em.emulator
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH" && r.path_and_query.contains(id))
        .count()
}

async fn raw(server: &RedisServer, password: Option<&str>) -> redis::aio::MultiplexedConnection {
    let url = match password {
        Some(p) => format!("redis://:{p}@127.0.0.1:{}", server.port()),
        None => server.url(),
    };
    redis::Client::open(url)
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection")
}

/// The one entry whose key ends with `request_id`.
async fn entry_key(conn: &mut redis::aio::MultiplexedConnection, request_id: &str) -> String {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("ggw:idem:*:{request_id}"))
        .query_async(conn)
        .await
        .expect("KEYS");
    assert_eq!(keys.len(), 1, "{keys:?}");
    keys.into_iter().next().expect("one key")
}

async fn field(
    conn: &mut redis::aio::MultiplexedConnection,
    key: &str,
    name: &str,
) -> Option<String> {
    redis::cmd("HGET")
        .arg(key)
        .arg(name)
        .query_async(conn)
        .await
        .expect("HGET")
}

/// Polls `state` of `key` until it is `want`, bounded.
async fn until_state(conn: &mut redis::aio::MultiplexedConnection, key: &str, want: &str) {
    let deadline = Instant::now() + PATIENCE;
    while field(conn, key, "state").await.as_deref() != Some(want) {
        assert!(Instant::now() < deadline, "{key} never became {want}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_answered_by_one_replica_is_replayed_by_the_other() {
    let server = RedisServer::start();
    let em = emulator().await;
    let (mut a, mut b) = pair(&em, &server).await;
    let id = new_request_id();
    let first = a
        .client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "renamed on a", &id))
        .await
        .expect("the first call runs on A");
    assert_eq!(replayed(first.metadata()), None);
    let second = b
        .client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "renamed on a", &id))
        .await
        .expect("B answers the duplicate");
    assert_eq!(
        patches(&em, seed::EXAMPLE_TASK_ID),
        1,
        "one PATCH reached Graph"
    );
    assert_eq!(replayed(second.metadata()), Some("true"));
    assert_eq!(second.get_ref(), first.get_ref());
    assert_eq!(
        second.metadata().get("request-id"),
        first.metadata().get("request-id"),
        "B's replay carries Graph's request-id of A's call"
    );
    let replays = format!("graph_gateway_idempotent_replays_total{{rpc=\"{RPC_UPDATE}\"}}");
    assert_eq!(b.metric(&replays), Some(1.0));
    assert_eq!(a.metric(&replays), None);
    for replica in [&a, &b] {
        assert_eq!(
            replica.metric("graph_gateway_idempotency_shared"),
            Some(1.0)
        );
        assert_eq!(store_errors(&replica.gateway.metrics), 0.0);
    }
    // In Redis: answered, expiring within the window.
    let mut conn = raw(&server, None).await;
    let key = entry_key(&mut conn, &id).await;
    assert!(
        key.starts_with(
            "ggw:idem:emulator:graph-grpc-gateway:anonymous:UpdateSecurityConfigurationTask:"
        ),
        "{key}"
    );
    assert_eq!(
        field(&mut conn, &key, "state").await.as_deref(),
        Some("answered")
    );
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 600_000, "{ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_request_under_the_same_id_on_the_other_replica_is_refused() {
    let server = RedisServer::start();
    let em = emulator().await;
    let (mut a, mut b) = pair(&em, &server).await;
    let id = new_request_id();
    a.client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "first", &id))
        .await
        .expect("the first call runs on A");
    let before = em.emulator.requests().len();
    let status = b
        .client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "another", &id))
        .await
        .expect_err("reused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status), "REQUEST_ID_REUSED");
    assert_eq!(em.emulator.requests().len(), before, "nothing sent");
    // The first answer is still what a true repeat on B gets.
    let again = b
        .client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "first", &id))
        .await
        .expect("a true repeat");
    assert_eq!(replayed(again.metadata()), Some("true"));
    assert_eq!(again.get_ref().display_name.as_deref(), Some("first"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_on_the_other_replica_waits_for_the_first_and_gets_its_answer() {
    let server = RedisServer::start();
    let em = emulator().await;
    let (a, b) = pair(&em, &server).await;
    // A's PATCH is applied and its answer held back in Graph.
    em.emulator.push_faults([Fault {
        body: FaultBody::Unchanged,
        ..Fault::new(200)
    }
    .delayed(Duration::from_secs(2))]);
    let id = new_request_id();
    let call = |client: &Client| {
        let mut client = client.clone();
        let request = rename(seed::FIREWALL_TASK_ID, "renamed by both", &id);
        tokio::spawn(async move { client.update_security_configuration_task(request).await })
    };
    let first = call(&a.client);
    tokio::time::timeout(PATIENCE, async {
        while patches(&em, seed::FIREWALL_TASK_ID) == 0 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("A's PATCH reaches Graph");
    let mut conn = raw(&server, None).await;
    let key = entry_key(&mut conn, &id).await;
    assert_eq!(
        field(&mut conn, &key, "state").await.as_deref(),
        Some("running")
    );
    assert!(!first.is_finished(), "A's call is held in Graph");
    let second = call(&b.client);
    let second = second.await.expect("joins").expect("B's duplicate");
    let first = first.await.expect("joins").expect("A's call");
    assert_eq!(patches(&em, seed::FIREWALL_TASK_ID), 1);
    assert_eq!(replayed(first.metadata()), None);
    assert_eq!(replayed(second.metadata()), Some("true"));
    assert_eq!(first.get_ref(), second.get_ref());
    assert_eq!(
        second.get_ref().display_name.as_deref(),
        Some("renamed by both")
    );
    assert_eq!(
        first.metadata().get("request-id"),
        second.metadata().get("request-id")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_one_replica_does_not_remember_runs_again_on_the_other() {
    let server = RedisServer::start();
    let em = emulator().await;
    let window = Duration::from_secs(600);
    let mut a = replica(&em, settings(&server, None), window, false).await;
    let mut b = replica(&em, settings(&server, None), window, false).await;
    // Throttled: nothing happened, so the answer is forgotten.
    em.emulator.push_faults([Fault::new(429)]);
    let id = new_request_id();
    let request = || rename(seed::EXAMPLE_TASK_ID, "after a 429", &id);
    let status = a
        .client
        .update_security_configuration_task(request())
        .await
        .expect_err("throttled on A");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(patches(&em, seed::EXAMPLE_TASK_ID), 1);
    let retry = b
        .client
        .update_security_configuration_task(request())
        .await
        .expect("the retry runs on B");
    assert_eq!(replayed(retry.metadata()), None);
    assert_eq!(patches(&em, seed::EXAMPLE_TASK_ID), 2);
    assert_eq!(retry.get_ref().display_name.as_deref(), Some("after a 429"));
    // B's answer is the one remembered, for A too.
    let again = a
        .client
        .update_security_configuration_task(request())
        .await
        .expect("replayed on A");
    assert_eq!(replayed(again.metadata()), Some("true"));
    assert_eq!(again.get_ref(), retry.get_ref());
    assert_eq!(patches(&em, seed::EXAMPLE_TASK_ID), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_entry_expires_with_the_window_and_the_call_runs_again() {
    let server = RedisServer::start();
    let em = emulator().await;
    let window = Duration::from_secs(1);
    let mut a = replica(&em, settings(&server, None), window, true).await;
    let mut b = replica(&em, settings(&server, None), window, true).await;
    let id = new_request_id();
    let request = || rename(seed::EXAMPLE_TASK_ID, "short-lived", &id);
    a.client
        .update_security_configuration_task(request())
        .await
        .expect("runs on A");
    let mut conn = raw(&server, None).await;
    let key = entry_key(&mut conn, &id).await;
    until_state(&mut conn, &key, "answered").await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 1000, "kept for the window: {ttl}");
    // Gone when the window ends, by Redis's own expiry.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        if exists == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "the entry did not expire");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = b
        .client
        .update_security_configuration_task(request())
        .await
        .expect("runs again on B");
    assert_eq!(replayed(again.metadata()), None);
    assert_eq!(patches(&em, seed::EXAMPLE_TASK_ID), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_entry_is_never_replayed_the_call_runs_and_the_metric_counts_it() {
    let server = RedisServer::start();
    let em = emulator().await;
    let (mut a, mut b) = pair(&em, &server).await;
    let mut conn = raw(&server, None).await;

    // An answer that does not decode.
    let id = new_request_id();
    let request = || rename(seed::EXAMPLE_TASK_ID, "corrupted", &id);
    a.client
        .update_security_configuration_task(request())
        .await
        .expect("runs on A");
    let key = entry_key(&mut conn, &id).await;
    until_state(&mut conn, &key, "answered").await;
    let _: i64 = redis::cmd("HSET")
        .arg(&key)
        .arg("answer")
        .arg(&b"\x01\xff\xff\xff garbage"[..])
        .query_async(&mut conn)
        .await
        .unwrap();
    let rerun = b
        .client
        .update_security_configuration_task(request())
        .await
        .expect("B runs the call");
    assert_eq!(replayed(rerun.metadata()), None);
    assert_eq!(patches(&em, seed::EXAMPLE_TASK_ID), 2);
    assert_eq!(
        b.metric("graph_gateway_idempotency_store_errors_total{reason=\"corrupt\"}"),
        Some(1.0)
    );
    // B's answer replaced it: A's memory still has its own, Redis has B's.
    until_state(&mut conn, &key, "answered").await;

    // Not even a hash: replaced by the call's claim.
    let id = new_request_id();
    let key = key.replace(&key[key.len() - 36..], &id);
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("not an entry")
        .query_async(&mut conn)
        .await
        .unwrap();
    let runs = b
        .client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "over junk", &id))
        .await
        .expect("runs over the junk");
    assert_eq!(replayed(runs.metadata()), None);
    assert_eq!(patches(&em, seed::EXAMPLE_TASK_ID), 3);
    assert_eq!(
        b.metric("graph_gateway_idempotency_store_errors_total{reason=\"corrupt\"}"),
        Some(2.0)
    );
    until_state(&mut conn, &key, "answered").await;
    let again = a
        .client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "over junk", &id))
        .await
        .expect("replayed on A");
    assert_eq!(replayed(again.metadata()), Some("true"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_killed_calls_still_succeed_and_the_metrics_say_so() {
    let mut server = RedisServer::start();
    let em = emulator().await;
    let (mut a, mut b) = pair(&em, &server).await;
    server.kill();
    let id = new_request_id();
    let request = || rename(seed::EXAMPLE_TASK_ID, "without redis", &id);
    let first = a
        .client
        .update_security_configuration_task(request())
        .await
        .expect("A answers without Redis");
    assert_eq!(replayed(first.metadata()), None);
    // A's own memory still replays on A.
    let again = a
        .client
        .update_security_configuration_task(request())
        .await
        .expect("A replays from its memory");
    assert_eq!(replayed(again.metadata()), Some("true"));
    assert_eq!(patches(&em, seed::EXAMPLE_TASK_ID), 1);
    // B cannot see A's answer: it runs the call (the documented cost).
    b.client
        .update_security_configuration_task(request())
        .await
        .expect("B answers without Redis");
    assert_eq!(patches(&em, seed::EXAMPLE_TASK_ID), 2);
    for replica in [&a, &b] {
        assert_eq!(
            replica.metric("graph_gateway_idempotency_shared"),
            Some(0.0)
        );
        assert!(store_errors(&replica.gateway.metrics) >= 1.0);
    }
    // Redis back: each replica's connection is made again on a later call
    // (a first one may still find the old one broken). Calls until both
    // answer through Redis, bounded.
    server.restart();
    let deadline = Instant::now() + PATIENCE;
    for replica in [&mut a, &mut b] {
        loop {
            replica
                .client
                .update_security_configuration_task(rename(
                    seed::FIREWALL_TASK_ID,
                    "probe",
                    &new_request_id(),
                ))
                .await
                .expect("answers while Redis comes back");
            if replica.metric("graph_gateway_idempotency_shared") == Some(1.0) {
                break;
            }
            assert!(Instant::now() < deadline, "sharing did not resume");
        }
    }
    let id = new_request_id();
    a.client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "back", &id))
        .await
        .expect("A runs");
    let replay = b
        .client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "back", &id))
        .await
        .expect("B replays");
    assert_eq!(replayed(replay.metadata()), Some("true"));
    assert_eq!(patches(&em, seed::EXAMPLE_TASK_ID), 3);
    assert_eq!(a.metric("graph_gateway_idempotency_shared"), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_with_a_password_shares_the_memory_and_the_password_is_never_shown() {
    let server = RedisServer::start_with_password(PASSWORD);
    let em = emulator().await;
    let window = Duration::from_secs(600);
    let mut a = replica(&em, settings(&server, Some(PASSWORD)), window, true).await;
    let mut b = replica(&em, settings(&server, Some(PASSWORD)), window, true).await;
    let id = new_request_id();
    let request = || rename(seed::EXAMPLE_TASK_ID, "behind a password", &id);
    a.client
        .update_security_configuration_task(request())
        .await
        .expect("runs on A");
    let replay = b
        .client
        .update_security_configuration_task(request())
        .await
        .expect("replayed on B");
    assert_eq!(replayed(replay.metadata()), Some("true"));
    assert_eq!(patches(&em, seed::EXAMPLE_TASK_ID), 1);
    for replica in [&a, &b] {
        let text = replica.gateway.metrics.render();
        assert!(
            text.contains("graph_gateway_idempotency_shared 1"),
            "{text}"
        );
        assert!(!text.contains(PASSWORD));
        assert_eq!(store_errors(&replica.gateway.metrics), 0.0, "{text}");
    }
    let store = SharedStore::new(
        RedisStore::new(&settings(&server, Some(PASSWORD)), &namespace()).expect("builds"),
        &namespace(),
        window,
        Metrics::default().idempotency_store(),
    );
    assert!(!format!("{store:?}").contains(PASSWORD));
    // The wrong password: the calls still succeed, counted as errors.
    let mut c = replica(&em, settings(&server, Some("wrong")), window, true).await;
    c.client
        .update_security_configuration_task(rename(seed::EXAMPLE_TASK_ID, "c", &new_request_id()))
        .await
        .expect("C answers though Redis refuses it");
    assert_eq!(
        c.metric("graph_gateway_idempotency_store_errors_total{reason=\"unreachable\"}"),
        Some(1.0)
    );
    assert!(!c.gateway.metrics.render().contains(PASSWORD));
}

fn namespace() -> BudgetKey {
    BudgetKey {
        tenant: "tenant-1".into(),
        app: "app-1".into(),
    }
}

/// A leader whose process dies (its runtime gone: no renewal, no goodbye)
/// leaves a claim that runs out with its lease; a duplicate waiting on
/// another replica then runs the call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_of_a_leader_that_died_runs_out_and_a_waiter_leads() {
    let server = RedisServer::start();
    let lease = Duration::from_millis(300);
    let store = |metrics: &Metrics| {
        let redis = RedisStore::new(&settings(&server, None), &namespace()).expect("builds");
        Idempotency::new(Duration::from_secs(600), 100).sharing(
            SharedStore::new(
                redis,
                &namespace(),
                Duration::from_secs(600),
                metrics.idempotency_store(),
            )
            .with_claim_lease(lease),
        )
    };
    let key = Key {
        caller: "patcher".into(),
        method: Method::Update,
        request_id: uuid::Uuid::new_v4(),
    };
    let fingerprint = Fingerprint::of(&rename(seed::EXAMPLE_TASK_ID, "x", ""));
    // The leader, on a runtime of its own, which then goes away with it.
    std::thread::scope(|s| {
        s.spawn(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async {
                let metrics = Metrics::default();
                match store(&metrics).begin(key.clone(), fingerprint).await {
                    Begin::Lead(lease) => std::mem::forget(lease),
                    other => panic!("expected to lead, got {other:?}"),
                }
            });
            drop(runtime);
        });
    });
    let mut conn = raw(&server, None).await;
    let entry = entry_key(&mut conn, &key.request_id.to_string()).await;
    assert_eq!(
        field(&mut conn, &entry, "state").await.as_deref(),
        Some("running")
    );
    let metrics = Metrics::default();
    let waiter = store(&metrics);
    let begun = tokio::time::timeout(PATIENCE, waiter.begin(key.clone(), fingerprint))
        .await
        .expect("the dead leader's claim runs out");
    let Begin::Lead(lease) = begun else {
        panic!("expected to lead, got {begun:?}");
    };
    // The waiter's claim is its own now.
    let token = field(&mut conn, &entry, "token").await;
    assert!(token.is_some());
    lease.forget();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let exists: i64 = redis::cmd("EXISTS")
            .arg(&entry)
            .query_async(&mut conn)
            .await
            .unwrap();
        if exists == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "a forgotten claim is removed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(store_errors(&metrics), 0.0);
}
