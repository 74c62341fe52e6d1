//! The processes under test: started as children so their CPU time and
//! memory can be read from /proc, apart from the load tool's own.

use anyhow::{bail, Context};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A child process whose stderr log lines are read on a thread.
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Proc {
    pub fn spawn(bin: &Path, args: &[&str], env: &[(&str, String)]) -> anyhow::Result<Self> {
        let mut child = Command::new(bin)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env_remove("HTTP_PROXY")
            .env_remove("HTTPS_PROXY")
            .env_remove("http_proxy")
            .env_remove("https_proxy")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stderr = child.stderr.take().context("stderr")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, lines })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first log line containing `needle`. Failing, the error ends with
    /// the last lines the process wrote (why it did not start).
    pub fn wait_for(&self, needle: &str, limit: Duration) -> anyhow::Result<String> {
        let deadline = std::time::Instant::now() + limit;
        let mut last = std::collections::VecDeque::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(line) => {
                    if last.len() == 5 {
                        last.pop_front();
                    }
                    last.push_back(line);
                }
                Err(e) => {
                    let why = match e {
                        mpsc::RecvTimeoutError::Timeout => format!("within {limit:?}"),
                        mpsc::RecvTimeoutError::Disconnected => "before it exited".to_owned(),
                    };
                    let lines: Vec<String> = last.into_iter().collect();
                    bail!(
                        "no log line containing {needle:?} {why}; its last lines:\n{}",
                        lines.join("\n")
                    )
                }
            }
        }
    }

    /// Asks the process to stop (SIGTERM) and waits, up to `limit`, for it
    /// to exit; answers whether it exited successfully.
    pub fn stop(&mut self, limit: Duration) -> anyhow::Result<bool> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .context("running kill")?;
        anyhow::ensure!(sent.success(), "kill -TERM {} failed", self.pid());
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.success());
            }
            if std::time::Instant::now() >= deadline {
                bail!(
                    "process {} still running {limit:?} after SIGTERM",
                    self.pid()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// CPU time (user + system) and memory, from /proc.
    pub fn usage(&self) -> anyhow::Result<Usage> {
        Usage::of(self.pid())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A process's resource use at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User + system CPU time consumed so far.
    pub cpu: Duration,
    /// Resident memory now, KiB.
    pub rss_kib: u64,
    /// Peak resident memory so far, KiB.
    pub peak_rss_kib: u64,
}

impl Usage {
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
        // Fields after the command name (which may hold spaces) in parentheses.
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .context("stat format")?;
        let fields: Vec<&str> = after.split_whitespace().collect();
        // utime and stime are fields 14 and 15; `after` starts at field 3.
        let ticks: u64 = fields.get(11).context("utime")?.parse::<u64>()?
            + fields.get(12).context("stime")?.parse::<u64>()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(Self {
            cpu: Duration::from_nanos(ticks.saturating_mul(1_000_000_000 / clock_ticks())),
            rss_kib: kib("VmRSS:"),
            peak_rss_kib: kib("VmHWM:"),
        })
    }
}

/// Clock ticks per second for /proc CPU times (`getconf CLK_TCK`, else 100).
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t: &u64| *t > 0)
            .unwrap_or(100)
    })
}

/// The value after `"key":"` in a JSON log line.
pub fn json_field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!("\"{key}\":\""))? + key.len() + 4;
    let end = start + line[start..].find('"')?;
    Some(&line[start..end])
}
