//! A real `redis-server` (Debian's, from scripts/tools.sh) on a free loopback
//! port, one per test, with no persistence, killed on drop.
//!
//! The server is found on PATH, else in `.cache/tools/bin` (where
//! scripts/tools.sh puts it). Redis has no `--port 0`, so a port is picked by
//! binding a listener and releasing it; a start that loses that port to
//! another process is retried on a new one. Readiness is a PING answered
//! (polled against a deadline), never a sleep. Only std is used, so a bench
//! can include this file too.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a start may take before the test fails.
const START_LIMIT: Duration = Duration::from_secs(10);
/// Starts retried on a new port when the picked one was taken meanwhile.
const PORT_ATTEMPTS: usize = 5;

/// A running (or killed, or paused) redis-server of this test.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    password: Option<String>,
    dir: PathBuf,
    paused: bool,
}

impl RedisServer {
    /// The redis-server binary, or `None` when neither PATH nor
    /// `.cache/tools/bin` has one.
    pub fn binary() -> Option<PathBuf> {
        let on_path = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("redis-server"))
                .find(|candidate| is_executable(candidate))
        });
        on_path.or_else(|| {
            let cached =
                Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/tools/bin/redis-server");
            is_executable(&cached).then_some(cached)
        })
    }

    /// A server without a password.
    pub fn start() -> Self {
        Self::launch(None)
    }

    /// A server that requires `password` (`requirepass`).
    pub fn start_with_password(password: &str) -> Self {
        Self::launch(Some(password.to_owned()))
    }

    fn launch(password: Option<String>) -> Self {
        let dir = std::env::temp_dir().join(format!("gw-redis-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("redis temp dir");
        let mut server = Self {
            child: None,
            port: 0,
            password,
            dir,
            paused: false,
        };
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            server.port = free_port();
            match server.spawn() {
                Ok(()) => return server,
                Err(Failure::PortTaken(log)) => last = log,
                Err(Failure::Other(log)) => panic!("redis-server did not start:\n{log}"),
            }
        }
        panic!("redis-server found no free port in {PORT_ATTEMPTS} attempts:\n{last}");
    }

    /// `redis://127.0.0.1:<port>`, without the password.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILL, as a crash: no shutdown, open connections reset.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// Starts the server again on the same port (after [`RedisServer::kill`],
    /// or killing it first). Its data is gone, as after a crash without
    /// persistence.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_LIMIT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The old socket's port may linger a moment; keep the port:
                // clients were told this one.
                Err(Failure::PortTaken(_)) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(Failure::PortTaken(log) | Failure::Other(log)) => {
                    panic!("redis-server did not restart on port {}:\n{log}", self.port)
                }
            }
        }
    }

    /// SIGSTOP: the server keeps its socket (connections and the kernel's
    /// accept queue stay open) but answers nothing, as a stalled Redis does.
    pub fn pause(&mut self) {
        if let Some(child) = &self.child {
            signal(child, "-STOP");
            self.paused = true;
        }
    }

    /// SIGCONT after [`RedisServer::pause`]: the queued commands run.
    pub fn resume(&mut self) {
        if let Some(child) = &self.child {
            signal(child, "-CONT");
            self.paused = false;
        }
    }

    /// Whether the server answers PING now (authenticating first when it has
    /// a password).
    pub fn answers_ping(&self) -> bool {
        probe(self.port, self.password.as_deref(), Duration::from_secs(1))
    }

    fn config_file(&self) -> PathBuf {
        let mut conf = format!(
            "port {port}\nbind 127.0.0.1\nsave \"\"\nappendonly no\ndir {dir}\nlogfile {dir}/redis.log\n\
             daemonize no\nprotected-mode yes\n",
            port = self.port,
            dir = self.dir.display(),
        );
        if let Some(password) = &self.password {
            // A file, not the command line: keeps the password out of `ps`.
            conf.push_str(&format!("requirepass \"{password}\"\n"));
        }
        let path = self.dir.join("redis.conf");
        std::fs::write(&path, conf).expect("write redis.conf");
        path
    }

    fn spawn(&mut self) -> Result<(), Failure> {
        let binary = Self::binary().unwrap_or_else(|| {
            panic!("redis-server not found on PATH or in .cache/tools/bin: run scripts/tools.sh")
        });
        let log = self.dir.join("redis.log");
        let _ = std::fs::remove_file(&log);
        let conf = self.config_file();
        let mut child = Command::new(binary)
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server spawns");
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Ok(Some(_)) = child.try_wait() {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(if text.contains("Address already in use") {
                    Failure::PortTaken(text)
                } else {
                    Failure::Other(text)
                });
            }
            if probe(
                self.port,
                self.password.as_deref(),
                Duration::from_millis(200),
            ) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(Failure::Other(format!(
                    "no PONG within {START_LIMIT:?}\n{text}"
                )));
            }
            // A refused connection returns at once; do not spin on it.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

enum Failure {
    PortTaken(String),
    Other(String),
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// A port nobody listens on now (bound, then released).
fn free_port() -> u16 {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

fn signal(child: &Child, which: &str) {
    let status = Command::new("kill")
        .args([which, &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill {which} failed");
}

/// Sends (AUTH and) PING in RESP and waits for `+PONG`.
fn probe(port: u16, password: Option<&str>, limit: Duration) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, limit) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(limit));
    let _ = stream.set_write_timeout(Some(limit));
    let mut request = Vec::new();
    if let Some(password) = password {
        request.extend_from_slice(
            format!("*2\r\n$4\r\nAUTH\r\n${}\r\n{password}\r\n", password.len()).as_bytes(),
        );
    }
    request.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
    if stream.write_all(&request).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 256];
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
        let text = String::from_utf8_lossy(&answer);
        if text.contains("+PONG\r\n") {
            return true;
        }
        // Still loading, or the password refused: not ready.
        if text.starts_with('-') || text.contains("\r\n-") {
            return false;
        }
    }
    false
}
