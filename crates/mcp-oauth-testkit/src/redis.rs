//! A throwaway `redis-server` for tests: started on a free loopback port with persistence off,
//! waited for until it answers `PING`, and killed when dropped.
//!
//! Shared by the `RedisStore` unit tests (crates/tower-mcp-oauth/src/redis/tests.rs) and
//! crates/tower-mcp-oauth/tests/redis_fleet.rs, so it uses nothing but std and `tempfile`: the
//! layer's unit tests depend on the testkit, so the testkit must not depend on the layer. A missing `redis-server` is a
//! failure with the fix in the message, never a silent skip: `scripts/ensure-redis.sh` installs
//! it.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh server may take to answer `PING`.
const STARTUP_LIMIT: Duration = Duration::from_secs(10);
/// Attempts with a new port, for when another process takes the free port first.
const PORT_ATTEMPTS: usize = 3;

/// A running `redis-server` child process.
pub struct RedisServer {
    child: Child,
    port: u16,
    // Holds the server's working directory and log until the server is gone.
    _dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts a server, panicking with what to do when `redis-server` is not installed.
    pub fn start() -> Self {
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            match Self::try_start() {
                Ok(server) => return server,
                Err(why) => last_failure = why,
            }
        }
        panic!("redis-server did not start: {last_failure}");
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn try_start() -> Result<Self, String> {
        let port = free_port();
        let dir = tempfile::tempdir().map_err(|e| format!("cannot create a directory: {e}"))?;
        let log = dir.path().join("redis.log");
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == ErrorKind::NotFound => panic!(
                "redis-server is not on PATH: run scripts/ensure-redis.sh (it installs Debian's \
                 redis-server package); the Redis tests need a real server and do not skip"
            ),
            Err(e) => return Err(format!("cannot run redis-server: {e}")),
        };
        let mut server = Self {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + STARTUP_LIMIT;
        loop {
            if ping(port) {
                return Ok(server);
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("it exited with {status}; its log:\n{log}"));
            }
            if Instant::now() >= deadline {
                return Err(format!("no answer to PING within {STARTUP_LIMIT:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now (the OS picks it; it may be taken again before the
/// server binds, which `start` retries).
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Whether a server on `port` answers an inline `PING` with `+PONG`.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut reply = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read_exact(&mut reply).is_ok()
        && &reply == b"+PONG\r\n"
}
