//! `graph-grpc-gateway serve` and `graph-grpc-gateway emulator`.

use clap::Parser;
use graph_grpc_gateway::cli::{Cli, Command};
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
            match run_emulator(args.addr).await {
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

async fn run_emulator(addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(base_url = %format!("http://{local}/beta"), "Graph emulator serving");
    emulator::serve(listener, emulator::Emulator::new(), shutdown_signal()).await?;
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
