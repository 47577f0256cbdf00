//! `orkops-hollow` processes for tests: N hollow nodes against a test master, that join,
//! heartbeat and run their pods in memory; killed on drop if the test did not stop them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{wait_until, Master};

/// A running `orkops-hollow`, killed on drop if the test did not stop it.
pub struct Hollow {
    child: Option<Child>,
    log: PathBuf,
}

impl Hollow {
    pub fn start(m: &Master, nodes: usize, prefix: &str, watch: &str) -> Hollow {
        let log = m.dir.path().join(format!("hollow-{prefix}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_orkops-hollow"));
        cmd.args(["--config", m.config.to_str().unwrap()])
            .args(["--nodes", &nodes.to_string(), "--prefix", prefix])
            .args(["--heartbeat-seconds", "2", "--watch", watch])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
        super::die_with_parent(&mut cmd);
        let mut h = Hollow {
            child: Some(cmd.spawn().unwrap()),
            log,
        };
        wait_until("the hollow nodes to join", Duration::from_secs(120), || {
            if let Ok(Some(st)) = h.child.as_mut().unwrap().try_wait() {
                panic!("orkops-hollow exited with {st}: {}", h.log());
            }
            h.log().contains("hollow nodes ready")
        });
        h
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then the exit status (within 60 s).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        unsafe {
            libc::kill(c.id() as i32, libc::SIGTERM);
        }
        let start = Instant::now();
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            if start.elapsed() > Duration::from_secs(60) {
                let _ = c.kill();
                panic!("orkops-hollow did not stop within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Hollow {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
