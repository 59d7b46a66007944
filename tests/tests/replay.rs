//! `session-wrapper replay`: a day of audit-mode decisions recorded from real `su` sessions
//! (through the PAM module, in a private mount namespace, lines from a real syslog socket),
//! decided again under an edited policy; the report names exactly the decisions that change,
//! counts what cannot be decided again, and its exit status gates the change.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use session_wrapper_tests::{require_root, session_wrapper, stdout, ConfigFile, Sandbox};

const T: Duration = Duration::from_secs(90);

/// The policy the day was recorded under: audit mode, `uname` refused, argv cut at 200 bytes.
const RECORDED: &str = r#"
mode = "audit"
default = "allow"

[log]
argv-max = 200

[[rules]]
name = "no-uname"
exe = "/usr/bin/uname"
action = "deny"
"#;

/// The edited policy: `uname` no longer refused, `date` refused to the ops group, `id` as
/// root refused to everyone.
const EDITED: &str = r#"
mode = "enforce"
default = "allow"

[[rules]]
name = "no-root-id"
target-users = ["root"]
exe = "/usr/bin/id"
action = "deny"

[[rules]]
name = "ops-no-date"
groups = ["swops"]
exe = "/usr/bin/date"
action = "deny"
"#;

/// Records the day: alice (in swops, who also runs `id` as root with `sudo`: a nested session)
/// and bob, each in a real `su` session.
fn record_a_day() -> Vec<String> {
    let cfg = ConfigFile::new(RECORDED);
    let mut sb = Sandbox::new();
    let alice = sb.add_user("swralice", 4801);
    let bob = sb.add_user("swrbob", 4802);
    sb.add_group("swops", 4810, &[&alice.name]);
    sb.add_session_module("su", &Sandbox::module_args(&cfg.path(), ""));
    sb.add_sudo(&alice.name, &cfg);
    // One argument of 300 bytes (made by the shell: the script itself stays short).
    let alice_day = "cd /; uname >/dev/null; uname -r >/dev/null; date >/dev/null; id >/dev/null; sudo -n id >/dev/null; /bin/true $(printf %0300d 0); true";
    let out_a = sb.run(&["su", &alice.name, "-c", alice_day], T);
    let out_b = sb.run(
        &[
            "su",
            &bob.name,
            "-c",
            "cd /; uname >/dev/null; date >/dev/null; id >/dev/null; true",
        ],
        T,
    );
    assert!(
        out_a.status.success() && out_b.status.success(),
        "audit mode refuses nothing: {out_a:?} {out_b:?}"
    );
    let lines = sb.log.until_sessions_end(2, T);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" decision=deny rule=no-uname mode=audit ")),
        "{}",
        lines.join("\n")
    );
    lines
}

/// Runs `session-wrapper replay --config CONFIG [ARGS]` on `input` (standard input).
fn replay(config: &ConfigFile, args: &[&str], input: &str) -> (i32, String) {
    let mut child = session_wrapper()
        .args(["replay", "--config"])
        .arg(config.path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("session-wrapper replay");
    // A child that stops reading (a configuration it refuses exits before reading its input)
    // closes the pipe: its exit status and output are the verdict, not our write.
    match child.stdin.take().expect("stdin").write_all(input.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("write lines: {e}"),
        _ => {}
    }
    let out = child.wait_with_output().expect("replay output");
    (
        out.status.code().unwrap_or(-1),
        stdout(&out) + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn a_recorded_day_replayed_against_an_edited_policy_reports_exactly_the_changed_decisions() {
    require_root!();
    let lines = record_a_day();
    // Other programs' lines in the same file are not decisions.
    let mut day = String::from(
        "Dec  3 07:00:00 host sshd[42]: Accepted publickey for alice from 192.0.2.7 port 22 ssh2\n",
    );
    day.push_str(&lines.join("\n"));
    day.push('\n');

    let edited = ConfigFile::new(EDITED);
    let (code, text) = replay(&edited, &["--json"], &day);
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let changes: BTreeSet<(String, String, String, String, String, String, u64)> = v["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("?").to_owned();
            (
                s("from"),
                s("to"),
                s("rule"),
                s("was_rule"),
                s("user"),
                s("program"),
                c["count"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    let want: BTreeSet<_> = [
        (
            "allow",
            "deny",
            "no-root-id",
            "default",
            "swralice",
            "/usr/bin/id",
            1,
        ),
        (
            "allow",
            "deny",
            "ops-no-date",
            "default",
            "swralice",
            "/usr/bin/date",
            1,
        ),
        (
            "deny",
            "allow",
            "default",
            "no-uname",
            "swralice",
            "/usr/bin/uname",
            2,
        ),
        (
            "deny",
            "allow",
            "default",
            "no-uname",
            "swrbob",
            "/usr/bin/uname",
            1,
        ),
    ]
    .into_iter()
    .map(|(a, b, c, d, e, f, n)| {
        (
            a.into(),
            b.into(),
            c.into(),
            d.into(),
            e.into(),
            f.into(),
            n,
        )
    })
    .collect();
    assert_eq!(changes, want, "{text}\n---\n{day}");
    // Each change comes with one of its lines.
    for c in v["changes"].as_array().expect("changes") {
        let example = c["example"]["text"].as_str().unwrap_or("");
        assert!(
            example.contains(&format!(
                " exe=\"{}\" ",
                c["program"].as_str().unwrap_or("?")
            )),
            "{c}"
        );
    }
    // The cut argument vector is counted, with its line, not guessed.
    let undecidable = v["undecidable"].as_object().expect("undecidable");
    assert_eq!(undecidable.len(), 1, "{text}");
    let cut = &undecidable["argv cut to fit the line (argv_truncated=1)"];
    assert_eq!(cut["count"], 1, "{text}");
    assert!(
        cut["example"]["text"]
            .as_str()
            .unwrap_or("")
            .contains("argv=\"/bin/true 0000"),
        "{text}"
    );
    // Two sessions (sudo's joined alice's), every decision accounted for; date and id as root
    // ran and would now be refused: exit 1.
    let decisions = lines.iter().filter(|l| l.contains(" decision=")).count() as u64;
    assert_eq!(v["sessions"], 2, "{text}");
    assert_eq!(v["decisions"].as_u64(), Some(decisions), "{text}");
    assert_eq!(
        v["unchanged"].as_u64().unwrap_or(0) + 5 + 1,
        decisions,
        "{text}"
    );
    assert_eq!(
        (v["refused_that_ran"].as_u64(), v["ok"].as_bool()),
        (Some(2), Some(false)),
        "{text}"
    );
    assert_eq!(code, 1, "{text}");

    // The text report says the same for a person.
    let (code, text) = replay(&edited, &[], &day);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("allow -> deny  1x  rule ops-no-date (was default)  user swralice  program /usr/bin/date\n  e.g. -:"), "{text}");
    assert!(
        text.contains("cannot decide again  1x  argv cut to fit the line (argv_truncated=1)"),
        "{text}"
    );

    // A candidate that only lifts the refusal breaks nothing that ran: exit 0.
    let lifted = ConfigFile::new("mode = \"enforce\"\ndefault = \"allow\"\n");
    let (code, text) = replay(&lifted, &["--json"], &day);
    let v: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(
        (
            code,
            v["ok"].as_bool(),
            v["changes"].as_array().map(Vec::len)
        ),
        (0, Some(true), Some(2)),
        "{text}"
    );

    // A candidate that is not valid is a usage error, not a verdict.
    let broken = ConfigFile::new("default = \"maybe\"\n");
    let (code, text) = replay(&broken, &[], &day);
    assert_eq!(code, 2, "{text}");
}
