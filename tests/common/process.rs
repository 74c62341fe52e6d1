//! The real binary as a child process, for tests of the command line.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_graph-grpc-gateway");

/// `serve --emulator` on loopback ports the kernel picks, then `extra`.
pub fn serve_emulator<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "serve",
        "--emulator",
        "--grpc-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    args
}

/// A running `graph-grpc-gateway` whose stderr log lines arrive on `lines`.
pub struct Running {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    /// Every line the process wrote to the captured streams, in order,
    /// whether or not it was taken from `lines`.
    pub transcript: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Starts the binary with `args` and a clean Azure environment.
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_with_env(args, &[])
    }

    /// Starts the binary with `args`, a clean Azure and proxy environment,
    /// then `env`.
    pub fn spawn_with_env(args: &[&str], env: &[(&str, String)]) -> Self {
        Self::start(args, env, false)
    }

    /// As [`Running::spawn_with_env`], capturing stdout as well as stderr.
    pub fn spawn_capturing_stdout(args: &[&str], env: &[(&str, String)]) -> Self {
        Self::start(args, env, true)
    }

    fn start(args: &[&str], env: &[(&str, String)], with_stdout: bool) -> Self {
        let mut cmd = Command::new(BIN);
        let stdout = if with_stdout {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        cmd.args(args).stdout(stdout).stderr(Stdio::piped());
        for var in [
            "AZURE_TENANT_ID",
            "AZURE_CLIENT_ID",
            "AZURE_CLIENT_SECRET",
            "AZURE_CLIENT_SECRET_FILE",
            "AZURE_CLIENT_CERTIFICATE_PATH",
            "AZURE_FEDERATED_TOKEN_FILE",
            "AZURE_AUTHORITY_HOST",
            "GRAPH_CLOUD",
            "GRAPH_BASE_URL",
            "GATEWAY_GRPC_ADDR",
            "GATEWAY_ADMIN_ADDR",
            "GATEWAY_PLAINTEXT",
            "GATEWAY_ALLOW_UNAUTHENTICATED",
            "GATEWAY_POLICY_FILE",
            "GATEWAY_TLS_CERT_FILE",
            "GATEWAY_TLS_KEY_FILE",
            "GATEWAY_TLS_CLIENT_CA_FILE",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "NO_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "no_proxy",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        let mut child = cmd.spawn().expect("binary starts");
        let (tx, lines) = mpsc::channel();
        let transcript = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped");
        forward(stderr, tx.clone(), transcript.clone());
        if let Some(stdout) = child.stdout.take() {
            forward(stdout, tx, transcript.clone());
        }
        Self {
            child,
            lines,
            transcript,
        }
    }

    /// Stops the process (SIGTERM, then SIGKILL if it has not exited within
    /// `limit`) and returns everything it wrote.
    pub fn finish(mut self, limit: Duration) -> String {
        // It may have exited already; then there is nothing to signal.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + limit;
        while self.child.try_wait().ok().flatten().is_none() {
            if std::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                break;
            }
            // Drains the channel while waiting, so the readers never block.
            let _ = self.lines.recv_timeout(Duration::from_millis(20));
        }
        let _ = self.child.wait();
        // The readers end at the pipes' end of file: wait for them to flush.
        while self.lines.recv_timeout(limit).is_ok() {}
        self.transcript.lock().expect("lock").join("\n")
    }

    /// Waits for a log line containing `needle` (the process's own signal
    /// that it reached that point), failing after `limit`.
    pub fn wait_for_line(&self, needle: &str, limit: Duration) -> String {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(e) => panic!("no log line containing {needle:?}: {e}"),
            }
        }
    }

    /// Sends SIGTERM, as Kubernetes does.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends each line of `stream` to `tx` and appends it to `transcript`; bytes
/// that are not UTF-8 are kept, replaced, rather than ending the capture.
fn forward(
    stream: impl Read + Send + 'static,
    tx: mpsc::Sender<String>,
    transcript: Arc<Mutex<Vec<String>>>,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let text = String::from_utf8_lossy(&line).trim_end().to_owned();
            line.clear();
            transcript.lock().expect("lock").push(text.clone());
            // The receiver may be gone; the transcript still keeps the line.
            let _ = tx.send(text);
        }
    });
}

/// Runs `f` on `gw` off the async runtime (its log reader blocks).
pub async fn blocking<T: Send + 'static>(
    gw: Running,
    f: impl FnOnce(&Running) -> T + Send + 'static,
) -> (Running, T) {
    tokio::task::spawn_blocking(move || {
        let out = f(&gw);
        (gw, out)
    })
    .await
    .expect("joined")
}

/// An emulator process and a gateway process in front of it over HTTP.
pub struct GatewayProcesses {
    pub emulator: Running,
    /// The emulator's root URL (Graph's routes are under `/beta`).
    pub emulator_url: String,
    pub gateway: Running,
    pub grpc_addr: String,
    /// `http://` and the admin port.
    pub admin_url: String,
}

/// A string field of a JSON log line.
pub fn log_field(line: &str, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(line).expect("json log line");
    v[name].as_str().expect(name).to_owned()
}

/// A gateway's environment on loopback: app `client` of `tenant` with
/// `secret`, Entra ID and Graph both at the emulator at `emulator_url`,
/// plaintext gRPC and no caller policy (said out loud).
pub fn loopback_gateway_env(
    emulator_url: &str,
    tenant: &str,
    client: &str,
    secret: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("AZURE_TENANT_ID", tenant.to_owned()),
        ("AZURE_CLIENT_ID", client.to_owned()),
        ("AZURE_CLIENT_SECRET", secret.to_owned()),
        ("AZURE_AUTHORITY_HOST", emulator_url.to_owned()),
        ("GRAPH_BASE_URL", format!("{emulator_url}/beta")),
        ("GATEWAY_PLAINTEXT", "true".to_owned()),
        ("GATEWAY_ALLOW_UNAUTHENTICATED", "true".to_owned()),
    ]
}

/// Spawns `serve` on free loopback ports with JSON log lines, `serve_args`
/// and `env`; [`wait_serving`] waits for it.
pub fn spawn_gateway(serve_args: &[&str], env: &[(&str, String)]) -> Running {
    let mut args = vec![
        "serve",
        "--grpc-addr",
        "127.0.0.1:0",
        "--admin-addr",
        "127.0.0.1:0",
        "--log-format",
        "json",
    ];
    args.extend_from_slice(serve_args);
    Running::spawn_with_env(&args, env)
}

/// Waits up to `patience` for `gateway` to serve: its gRPC address and
/// its admin URL (`http://` and the port).
pub fn wait_serving(gateway: &Running, patience: Duration) -> (String, String) {
    let line = gateway.wait_for_line("graph-grpc-gateway serving", patience);
    (
        log_field(&line, "grpc_addr"),
        format!("http://{}", log_field(&line, "admin_addr")),
    )
}

/// Starts `emulator` on a loopback port with `emulator_args`, then `serve`
/// against it (plaintext gRPC, no caller policy, JSON log lines, retries
/// 10 ms apart) with `secret` as the client secret, `env` and `serve_args`.
/// Blocks until both serve.
pub fn emulator_and_gateway(
    emulator_args: &[&str],
    secret: &str,
    env: Vec<(&'static str, String)>,
    serve_args: &[&str],
) -> GatewayProcesses {
    const PATIENCE: Duration = Duration::from_secs(60);
    let mut args = vec!["emulator", "--addr", "127.0.0.1:0"];
    args.extend_from_slice(emulator_args);
    let emulator = Running::spawn(&args);
    let line = emulator.wait_for_line("Graph emulator serving", PATIENCE);
    let emulator_url = log_field(&line, "base_url")
        .trim_end_matches("/beta")
        .to_owned();
    let mut all = loopback_gateway_env(
        &emulator_url,
        "11111111-1111-1111-1111-111111111111",
        "22222222-2222-2222-2222-222222222222",
        secret,
    );
    all.push(("GRAPH_RETRY_BASE_DELAY", "10ms".to_owned()));
    all.extend(env);
    let gateway = spawn_gateway(serve_args, &all);
    let (grpc_addr, admin_url) = wait_serving(&gateway, PATIENCE);
    GatewayProcesses {
        emulator,
        emulator_url,
        grpc_addr,
        admin_url,
        gateway,
    }
}

/// [`emulator_and_gateway`] from async code, and a gRPC client connected
/// to the gateway.
pub async fn emulator_gateway_and_client(
    emulator_args: &'static [&'static str],
    secret: &'static str,
    env: Vec<(&'static str, String)>,
    serve_args: &'static [&'static str],
) -> (GatewayProcesses, super::Client) {
    let started = tokio::task::spawn_blocking(move || {
        emulator_and_gateway(emulator_args, secret, env, serve_args)
    })
    .await
    .expect("started");
    let client = super::Client::connect(format!("http://{}", started.grpc_addr))
        .await
        .expect("connects");
    (started, client)
}
