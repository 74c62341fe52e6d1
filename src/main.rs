//! `graph-grpc-gateway serve` and `graph-grpc-gateway emulator`.

use clap::Parser;
use graph_grpc_gateway::cli::{Cli, Command, EmulatorArgs};
use graph_grpc_gateway::config::Config;
use graph_grpc_gateway::server::Gateway;
use graph_grpc_gateway::{emulator, telemetry};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            telemetry::init(&args.log);
            let config = match Config::from_args(*args) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("graph-grpc-gateway: {e}");
                    return ExitCode::from(2);
                }
            };
            match serve(config).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = format!("{e:#}"), "stopped with an error");
                    eprintln!("graph-grpc-gateway: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Emulator(args) => {
            telemetry::init(&args.log);
            match run_emulator(&args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("graph-grpc-gateway emulator: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let gateway = Gateway::start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutdown requested; draining in-flight calls");
    // Abandoning calls at the drain bound is still an orderly, requested stop.
    gateway.shutdown().await.map(|_| ())
}

async fn run_emulator(args: &EmulatorArgs) -> anyhow::Result<()> {
    let mut options = emulator::EmulatorOptions::default()
        .with_require_auth(args.require_auth)
        .with_token_lifetime(args.token_lifetime)
        .with_latency(args.latency);
    if args.chaos_percent > 0.0 {
        let mut chaos = emulator::Chaos::new(args.chaos_seed, args.chaos_percent);
        if let Some(retry_after) = &args.chaos_retry_after {
            chaos = chaos.with_retry_after(retry_after.clone());
        }
        options = options.with_chaos(chaos);
    }
    if let Some((requests, per)) = args.tenant_budget {
        options = options.with_tenant_budget(emulator::TenantBudget::new(requests, per));
    }
    if let Some(problem) = options.problem() {
        anyhow::bail!("emulator options: {problem}");
    }
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(base_url = %format!("http://{local}/beta"), ?options, "Graph emulator serving");
    let emulator = emulator::Emulator::with_options(options);
    emulator::serve(listener, emulator, shutdown_signal()).await?;
    Ok(())
}

/// SIGTERM (Kubernetes) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
