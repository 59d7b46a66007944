//! The repository's TACACS+ test server (`tests/tacacs/server.py`) for the end-to-end tests:
//! started on a port of its own, its events read back, keys and certificates made for it.

use std::io::BufRead;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::{KillOnDrop, TempDir};

/// The shared secret the test server is started with.
pub const KEY: &str = "tacacs-test-key";

/// The test server, killed on drop.
#[derive(Debug)]
pub struct Server {
    _child: KillOnDrop,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its event file.
    pub events: PathBuf,
    _dir: TempDir,
}

/// The test server's command: listening on `listen`, with `rules` (written to `dir`), and its
/// events in `dir/events.jsonl` (what [`read_events`] reads).
pub fn server_command(dir: &Path, listen: &str, rules: &str) -> Command {
    std::fs::write(dir.join("rules.toml"), rules).expect("rules");
    let mut c = Command::new("python3");
    c.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tacacs/server.py"))
        .args(["--listen", listen, "--key", KEY, "--rules"])
        .arg(dir.join("rules.toml"))
        .arg("--events")
        .arg(dir.join("events.jsonl"));
    c
}

impl Server {
    /// Starts it with `rules` and the extra arguments `extra`, on a free port.
    pub fn start(rules: &str, extra: &[&str]) -> Server {
        Server::start_at("127.0.0.1:0", rules, extra)
    }

    /// Starts it listening on `listen` (`HOST:PORT`).
    pub fn start_at(listen: &str, rules: &str, extra: &[&str]) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("sw-tacacs-")
            .tempdir()
            .expect("tempdir");
        let events = dir.path().join("events.jsonl");
        let mut child = server_command(dir.path(), listen, rules)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the TACACS+ test server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("read");
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{line}"));
        Server {
            _child: KillOnDrop(child),
            port,
            events,
            _dir: dir,
        }
    }

    /// Its events of `kind`.
    pub fn events(&self, kind: &str) -> Vec<Value> {
        read_events(&self.events, kind)
    }
}

/// The events of `kind` that a test server wrote to `path`.
pub fn read_events(path: &Path, kind: &str) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == kind)
        .collect()
}

/// A key file (`key` in it, with `mode`) in a temporary directory of its own: the directory
/// (removed when dropped) and the file's path.
pub fn key_file(key: &str, mode: u32) -> (TempDir, PathBuf) {
    let keys = tempfile::Builder::new()
        .prefix("sw-key-")
        .tempdir()
        .expect("tempdir");
    let p = keys.path().join("tacacs.key");
    std::fs::write(&p, format!("{key}\n")).expect("key");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    (keys, p)
}

/// A throwaway CA and a server certificate for `localhost` and 127.0.0.1.
pub fn certificates(dir: &Path) {
    let sh = format!(
        "set -e; cd {d}
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca -keyout ca.key -out ca.pem 2>/dev/null
         openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=localhost -keyout server.key -out server.csr 2>/dev/null
         printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > ext
         openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext -out server.pem 2>/dev/null
         openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=other-ca -keyout other.key -out other.pem 2>/dev/null",
        d = dir.display()
    );
    let st = Command::new("sh")
        .arg("-c")
        .arg(sh)
        .status()
        .expect("openssl");
    assert!(st.success(), "making certificates");
}
