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
