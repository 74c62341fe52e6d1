//! The `lease` measurement: what the shared budget's Redis round trips
//! cost, one token per round trip ([`RedisStore::take`], what the gateway
//! does for every Graph request) against a lease of several tokens in one
//! round trip ([`RedisStore::take_lease`]).
//!
//! Each row takes `--tokens` write tokens (a token of both logs, as an
//! Update does) from a redis-server of its own budget key, on `concurrency`
//! tasks sharing one connection manager, as a gateway's calls do. The
//! limits are far above what is taken, so every take is granted; the window
//! is short so the logs hold a few thousand entries, about what Intune's
//! budget holds, rather than growing through the run. Reported: tokens per
//! second, and the redis-server's CPU time (from /proc) and the load tool's
//! own per token.

use super::procs::Usage;
use super::redis_server::RedisServer;
use crate::budget::redis::{BudgetKey, Lease, Limits, RedisSettings, RedisStore, Take};
use anyhow::{bail, Context};
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `graph-grpc-gateway-load lease`.
#[derive(Debug, Clone, clap::Args)]
pub struct LeaseArgs {
    /// Tokens taken per row.
    #[arg(long, default_value_t = 40_000)]
    pub tokens: u64,
    /// Tokens per round trip to compare (1: one `take` per token).
    #[arg(long, value_delimiter = ',', default_value = "1,4,8,16")]
    pub leases: Vec<u32>,
    /// Tasks taking tokens at once, per row.
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub concurrency: Vec<usize>,
    /// The redis-server binary (default: PATH's, else .cache/tools/bin's).
    #[arg(long)]
    pub redis_server: Option<PathBuf>,
}

/// The budget's window in this measurement: short, so the logs stay small.
const WINDOW: Duration = Duration::from_millis(100);

struct Row {
    lease: u32,
    concurrency: usize,
    tokens: u64,
    round_trips: u64,
    elapsed: Duration,
    redis_cpu: Duration,
    own_cpu: Duration,
}

impl Row {
    fn per_token_us(&self, cpu: Duration) -> f64 {
        cpu.as_secs_f64() * 1e6 / self.tokens.max(1) as f64
    }
}

pub async fn run(args: &LeaseArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.tokens > 0
            && !args.leases.is_empty()
            && args.leases.iter().all(|&k| k > 0)
            && !args.concurrency.is_empty()
            && args.concurrency.iter().all(|&c| c > 0),
        "--tokens, --leases and --concurrency must be positive"
    );
    let redis = RedisServer::start(args.redis_server.as_deref())?;
    let settings = RedisSettings {
        url: redis.url.clone(),
        password: None,
        timeout: Duration::from_secs(5),
    };
    let mut rows = Vec::new();
    for &concurrency in &args.concurrency {
        for &lease in &args.leases {
            let key = BudgetKey {
                tenant: format!("lease-{}", uuid::Uuid::new_v4().simple()),
                app: "load".into(),
            };
            let store = RedisStore::new(&settings, &key).context("the store")?;
            // Connect (and load the script) before the clock starts.
            store.ping().await.context("Redis answers")?;
            rows.push(measure(&store, &redis, args.tokens, lease, concurrency).await?);
        }
    }
    print!("{}", render(&rows, &redis.url));
    Ok(())
}

async fn measure(
    store: &RedisStore,
    redis: &RedisServer,
    tokens: u64,
    lease: u32,
    concurrency: usize,
) -> anyhow::Result<Row> {
    let limits = Limits {
        requests: 1_000_000_000,
        writes: 1_000_000_000,
        window: WINDOW,
    };
    let left = Arc::new(AtomicU64::new(tokens));
    let round_trips = Arc::new(AtomicU64::new(0));
    let redis_before = redis.proc.usage()?.cpu;
    let own_before = Usage::of(std::process::id())?.cpu;
    let started = Instant::now();
    let mut handles = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let (store, left, round_trips) = (store.clone(), left.clone(), round_trips.clone());
        handles.push(tokio::spawn(async move {
            let mut n = 0u64;
            // Claim a lease's worth of what is left, then take it.
            while left
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |l| {
                    l.checked_sub(u64::from(lease).min(l)).filter(|_| l > 0)
                })
                .is_ok()
            {
                let member = format!("{worker}:{n}");
                n += 1;
                round_trips.fetch_add(1, Ordering::Relaxed);
                let granted = if lease == 1 {
                    matches!(store.take(true, limits, &member).await?, Take::Granted)
                } else {
                    matches!(
                        store.take_lease(true, limits, &member, lease).await?,
                        Lease::Granted(k) if k == lease
                    )
                };
                if !granted {
                    bail!("a take was not granted in full: the limits are too low");
                }
            }
            Ok(())
        }));
    }
    for h in handles {
        h.await??;
    }
    let elapsed = started.elapsed();
    Ok(Row {
        lease,
        concurrency,
        tokens,
        round_trips: round_trips.load(Ordering::Relaxed),
        elapsed,
        redis_cpu: redis.proc.usage()?.cpu.saturating_sub(redis_before),
        own_cpu: Usage::of(std::process::id())?
            .cpu
            .saturating_sub(own_before),
    })
}

fn render(rows: &[Row], url: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "lease: write tokens (both logs) from one redis-server ({url}), window {WINDOW:?}, every take granted\n"
    );
    let _ = writeln!(
        out,
        "| tokens per round trip | concurrency | tokens | round trips | tokens/s | Redis CPU µs/token | load tool CPU µs/token | Redis CPU vs 1 per trip |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let base = rows
            .iter()
            .find(|b| b.lease == 1 && b.concurrency == r.concurrency)
            .map(|b| b.per_token_us(b.redis_cpu));
        let ratio = base.map_or_else(
            || "-".to_owned(),
            |b| format!("{:.2}x", r.per_token_us(r.redis_cpu) / b),
        );
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {} |",
            r.lease,
            r.concurrency,
            r.tokens,
            r.round_trips,
            r.tokens as f64 / r.elapsed.as_secs_f64(),
            r.per_token_us(r.redis_cpu),
            r.per_token_us(r.own_cpu),
            ratio,
        );
    }
    out
}
