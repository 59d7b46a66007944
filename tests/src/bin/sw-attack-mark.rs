//! The "forbidden" program of the attack tests: if it ever runs, it leaves evidence.
//!
//! It writes `win.<pid>` (its argv and what `/proc/self/exe` says) into `$SW_WIN_DIR`, or,
//! without that variable, into `wins/` beside its own file; prints `FORBIDDEN-RAN` and exits
//! 66. A test that finds a `win.*` file or exit code 66 has found an unauthorized image that
//! ran.

use std::path::PathBuf;

fn main() {
    let pid = std::process::id();
    let exe = std::fs::read_link("/proc/self/exe").unwrap_or_default();
    let args: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("SW_WIN_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Some(parent) = exe.parent() {
        dirs.push(parent.join("wins"));
    }
    for d in dirs {
        let text = format!("exe={} argv={args:?}\n", exe.display());
        if std::fs::write(d.join(format!("win.{pid}")), text).is_ok() {
            break;
        }
    }
    println!("FORBIDDEN-RAN exe={}", exe.display());
    std::process::exit(66)
}
