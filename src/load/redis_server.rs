//! A redis-server of the load tool's own, on a free loopback port, without
//! persistence, killed when dropped: the budget shared by gateway replicas,
//! and the lease measurement. Started as a child [`Proc`] so its CPU time
//! can be read from /proc.

use super::procs::Proc;
use anyhow::Context;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Starts retried on a new port when the picked one was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;
const START_LIMIT: Duration = Duration::from_secs(20);

pub struct RedisServer {
    pub proc: Proc,
    pub url: String,
}

/// The redis-server to run: `PATH`'s, else the one scripts/tools.sh puts
/// under `.cache/tools/bin` of this source tree.
pub fn default_binary() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("redis-server"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let cached = Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/tools/bin/redis-server");
        cached.is_file().then_some(cached)
    })
}

impl RedisServer {
    /// Starts `binary` (or [`default_binary`]) and waits for its
    /// "Ready to accept connections" log line.
    pub fn start(binary: Option<&Path>) -> anyhow::Result<Self> {
        let binary = match binary {
            Some(b) => b.to_owned(),
            None => default_binary()
                .context("redis-server is neither on PATH nor in .cache/tools/bin (run scripts/tools.sh, or pass --redis-server)")?,
        };
        let dir = std::env::temp_dir();
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            // Redis has no port 0: bind one, let it go, and hand it over.
            let port = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?
                .local_addr()?
                .port();
            let port_text = port.to_string();
            let args = [
                "--port",
                &port_text,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                dir.to_str().context("temp dir is not UTF-8")?,
                // The log on stderr, where Proc reads lines.
                "--logfile",
                "/dev/stderr",
            ];
            let proc = Proc::spawn(&binary, &args, &[])?;
            match proc.wait_for("Ready to accept connections", START_LIMIT) {
                Ok(_) => {
                    return Ok(Self {
                        proc,
                        url: format!("redis://127.0.0.1:{port}"),
                    })
                }
                // It exits when the port was taken meanwhile: try another.
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
            .context("starting redis-server")
    }
}
