//! Shared by the end-to-end tests that run `keel devnet`: start it on free ports, wait for the
//! config it writes, and stop it with a signal so it shuts its anvil down.

// Each test crate compiles this module and uses a part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `keel devnet`. Dropping it sends SIGTERM (the devnet then stops anvil) and waits;
/// SIGKILL only as a last resort.
pub(crate) struct Devnet {
    child: Child,
    /// anvil's port.
    pub(crate) anvil_port: u16,
    /// The relay's port.
    pub(crate) relay_port: u16,
    /// The quote server's port.
    pub(crate) quotes_port: u16,
    /// Where the devnet's stderr goes.
    log_path: std::path::PathBuf,
}

impl Devnet {
    /// Starts `keel devnet` (the binary `keel`) with `args`, writing its config to `config`, and
    /// waits until the config is written.
    pub(crate) fn start(keel: &str, args: &[&str], config: &Path) -> Devnet {
        // Free ports are picked before the devnet binds them, so another test can take one in
        // between: a bind failure is retried on fresh ports, anything else fails the test with
        // the devnet's own error.
        for attempt in 1..=3 {
            match Self::try_start(keel, args, config) {
                Ok(devnet) => return devnet,
                Err(stderr) if attempt < 3 && stderr.contains("in use") => {
                    eprintln!("keel devnet could not bind its ports (attempt {attempt}); retrying");
                }
                Err(stderr) => {
                    panic!("keel devnet exited early; is anvil installed? run `make chain-deps`\n{stderr}")
                }
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// One start; `Err` holds the devnet's stderr when it exits before writing its config.
    fn try_start(keel: &str, args: &[&str], config: &Path) -> Result<Devnet, String> {
        let (anvil_port, relay_port, quotes_port) = (free_port(), free_port(), free_port());
        let log_path = config.with_extension("devnet.log");
        let log = std::fs::File::create(&log_path).expect("create the devnet log");
        let child = Command::new(keel)
            .arg("devnet")
            .args(args)
            .args(["--port", &anvil_port.to_string(), "--relay-port", &relay_port.to_string()])
            .args(["--quotes-port", &quotes_port.to_string(), "--write-config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn keel devnet");
        let mut devnet = Devnet { child, anvil_port, relay_port, quotes_port, log_path: log_path.clone() };
        let t0 = Instant::now();
        while !config.exists() {
            if let Ok(Some(status)) = devnet.child.try_wait() {
                let stderr = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Err(format!("({status}) {stderr}"));
            }
            assert!(t0.elapsed() < Duration::from_secs(90), "keel devnet did not write its config");
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300)); // written in one call; let it settle
        Ok(devnet)
    }
}

impl Devnet {
    /// Whether the devnet is still running: `Err` holds its exit status and the end of its
    /// stderr, for a test to show when something it needed has gone away.
    pub(crate) fn alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            other => {
                let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(30)..].join("\n");
                Err(format!("keel devnet is gone ({other:?}):\n{tail}"))
            }
        }
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free port on 127.0.0.1.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0").local_addr().expect("local addr").port()
}
