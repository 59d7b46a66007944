//! What collectors read: lines under 8 KiB that a standard logfmt parser takes apart field for
//! field, journald's native entries and RFC 5424 structured data, one message and one count
//! per refused command.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use session_wrapper_config::text::{logfmt_pairs, unescape, unescape_argv};
use session_wrapper_tests::lines::{count, find, word_after};
use session_wrapper_tests::{require_root, scratch, stderr, workspace_root, ConfigFile, Syslog, Wrapped};

const WAIT: Duration = Duration::from_secs(30);

/// The text of a syslog line, after its `session-wrapper[PID]: ` header.
fn message(line: &str) -> &str {
    line.split_once("]: ").map_or(line, |(_, m)| m)
}

/// Each text parsed by the `logfmt` package from PyPI.
fn logfmt(texts: &[&str]) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let mut child = Command::new(workspace_root().join("tests/logfmt/parse.sh"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("tests/logfmt/parse.sh");
    let mut input = child.stdin.take().expect("stdin");
    for t in texts {
        writeln!(input, "{t}").expect("write");
    }
    drop(input);
    let out = child.wait_with_output().expect("parse.sh");
    assert!(out.status.success(), "parse.sh failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json").as_object().cloned().expect("object"))
        .collect()
}

/// A directory whose path is about `len` characters long, with every character a logfmt
/// parser could stumble on in its names.
fn deep_dir(base: &Path, len: usize) -> PathBuf {
    let mut p = base.to_path_buf();
    let mut i = 0;
    while p.as_os_str().len() < len {
        let name = format!("d{i} sp a=b \"q\" 100% back\\slash é \u{1b}[1m");
        let mut bytes = name.into_bytes();
        bytes.push(0xff);
        p.push(std::ffi::OsStr::from_bytes(&bytes));
        i += 1;
    }
    std::fs::create_dir_all(&p).expect("deep directory");
    p
}

#[test]
fn every_line_of_a_session_in_a_3000_character_directory_is_whole_and_parses_field_for_field() {
    require_root!();
    let dir = scratch();
    let cwd = deep_dir(dir.path(), 3000);
    let cfg = ConfigFile::new("default = \"allow\"\n[[rules]]\nname = \"no-id\"\nexe = \"/usr/bin/id\"\naction = \"deny\"\n");
    let log = Syslog::new();
    let args: [&[u8]; 6] = [b"/usr/bin/printf", b"%s|", b"a b", b"c\"d=e", b"g\\h", b"\xff"];
    let script = "/usr/bin/printf '%s|' 'a b' 'c\"d=e' 'g\\h' \"$(printf '\\377\\n')\"; /usr/bin/id; true";
    let mut cmd = Wrapped::new(&log).config(cfg.path()).command(&["/bin/sh", "-c", script]);
    let out = cmd.current_dir(&cwd).output().expect("run");
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = log.until_session_end(WAIT);
    for l in &lines {
        assert!(l.len() <= 8192, "a datagram of {} bytes: {l}", l.len());
    }
    let texts: Vec<&str> = lines.iter().map(|l| message(l)).collect();
    let parsed = logfmt(&texts);
    assert_eq!(parsed.len(), texts.len());
    for (text, theirs) in texts.iter().zip(&parsed) {
        let ours = logfmt_pairs(text);
        assert_eq!(ours.len(), theirs.len(), "field count: {text}\n{theirs:?}");
        for (k, v) in &ours {
            assert_eq!(theirs.get(*k).and_then(|x| x.as_str()), Some(*v), "field {k} of {text}");
        }
    }
    // The values come back exactly: the working directory and each argument.
    let printf = find(&lines, "path=\"/usr/bin/printf\"");
    let i = lines.iter().position(|l| l == printf).expect("printf line");
    let theirs = &parsed[i];
    let field = |k: &str| theirs.get(k).and_then(|x| x.as_str()).unwrap_or_else(|| panic!("no {k} in {theirs:?}"));
    assert_eq!(unescape(field("cwd")), cwd.as_os_str().as_bytes());
    assert_eq!(unescape_argv(field("argv")), args.iter().map(|a| a.to_vec()).collect::<Vec<_>>());
    assert!(!printf.contains("_truncated="), "{printf}");
    let id = find(&lines, "path=\"/usr/bin/id\"");
    assert!(message(id).starts_with(&format!("session={} decision=deny rule=no-id mode=enforce ", field("session"))), "{id}");
}

#[test]
fn a_line_that_cannot_fit_loses_the_end_of_its_longest_values_never_the_decision() {
    require_root!();
    let cfg = ConfigFile::new("default = \"allow\"\n[log]\nargv-max = 65536\n[[rules]]\nname = \"no-printf\"\nexe = \"/usr/bin/printf\"\naction = \"deny\"\n");
    let log = Syslog::new();
    let long = "x".repeat(20_000);
    let out = Wrapped::new(&log).config(cfg.path()).run(&["/bin/sh", "-c", &format!("/usr/bin/printf {long}; true")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = log.until_session_end(WAIT);
    let deny = find(&lines, "path=\"/usr/bin/printf\"");
    assert!(deny.len() <= 8192, "{} bytes", deny.len());
    for f in [" decision=deny ", " rule=no-printf ", " argv_truncated=1 ", " errno=EACCES "] {
        assert!(deny.contains(f), "{f} missing from {deny}");
    }
}

#[test]
fn a_command_refused_twice_by_a_path_search_is_one_message_and_one_count() {
    require_root!();
    let same = std::fs::canonicalize("/bin/id").ok() == std::fs::canonicalize("/usr/bin/id").ok();
    if !same {
        session_wrapper_tests::skip("one_refusal_per_command", "/bin and /usr/bin are not merged here");
        return;
    }
    let cfg = ConfigFile::new("default = \"allow\"\n[[rules]]\nname = \"no-id\"\nexe = \"/usr/bin/id\"\naction = \"deny\"\n");
    let log = Syslog::new();
    let out = Wrapped::new(&log).config(cfg.path()).as_nobody().run(&["/bin/sh", "-c", "PATH=/usr/bin:/bin; id; echo rc=$?"]);
    let err = stderr(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("rc=126"), "{err}");
    assert_eq!(err.matches("session-wrapper: ").count(), 1, "one message:\n{err}");
    let lines = log.until_session_end(WAIT);
    assert_eq!(count(&lines, " decision=deny "), 2, "{}", lines.join("\n"));
    let repeat = find(&lines, " repeat=1 ");
    assert!(repeat.contains("path=\"/bin/id\"") && repeat.contains(" message=repeat "), "{repeat}");
    let end = find(&lines, "event=session-end");
    assert_eq!(word_after(end, " refused="), Some("1"), "{end}");
}

#[test]
fn journal_format_makes_every_field_a_journal_field() {
    require_root!();
    let cfg = ConfigFile::new("default = \"allow\"\n[log]\nformat = \"journal\"\n[[rules]]\nname = \"no-id\"\nexe = \"/usr/bin/id\"\naction = \"deny\"\n");
    let log = Syslog::new();
    let out = Wrapped::new(&log).config(cfg.path()).run(&["/bin/sh", "-c", "/usr/bin/id; true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let entries = log.until_session_end(WAIT);
    let deny = find(&entries, "SESSION_WRAPPER_DECISION=deny");
    let fields: Vec<&str> = deny.lines().collect();
    for f in [
        "SYSLOG_IDENTIFIER=session-wrapper",
        "SYSLOG_FACILITY=10",
        "PRIORITY=5",
        "SESSION_WRAPPER_EVENT=decision",
        "SESSION_WRAPPER_RULE=no-id",
        "SESSION_WRAPPER_EXE=/usr/bin/id",
        "SESSION_WRAPPER_ERRNO=EACCES",
    ] {
        assert!(fields.contains(&f), "{f} missing from:\n{deny}");
    }
    let message = fields.iter().find_map(|l| l.strip_prefix("MESSAGE=")).expect("MESSAGE");
    assert!(message.contains(" decision=deny rule=no-id ") && message.contains(" path=\"/usr/bin/id\" "), "{message}");
    let start = find(&entries, "SESSION_WRAPPER_EVENT=session-start");
    assert!(start.contains("\nPRIORITY=6\n"), "{start}");
}

#[test]
fn rfc_5424_carries_every_field_as_structured_data() {
    require_root!();
    let cfg = ConfigFile::new("default = \"allow\"\n[log]\nformat = \"rfc5424\"\n");
    let log = Syslog::new();
    let out = Wrapped::new(&log).config(cfg.path()).run(&["/usr/bin/true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines = log.until_session_end(WAIT);
    let ran = find(&lines, " decision [session-wrapper@32473 ");
    assert!(ran.starts_with("<86>1 20"), "{ran}");
    for f in ["decision=\"allow\"", "exe=\"/usr/bin/true\"", "result=\"exec\""] {
        assert!(ran.contains(f), "{f} missing from {ran}");
    }
}
