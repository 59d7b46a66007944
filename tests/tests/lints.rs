//! `session-wrapper check-config`'s lints about the policy itself, each triggered by a policy
//! that has the problem and silent on the same policy without it: a rule that can never match
//! (a rule checked before it takes every command it would), a pattern naming a file that does
//! not exist, a rule that allows a directory (or a file in one) a user can write into. Lints
//! warn: the configuration stays valid (exit 0).

use std::os::unix::fs::PermissionsExt;

use session_wrapper_tests::{require_root, session_wrapper, stderr, stdout, ConfigFile};

/// check-config's exit status, text and JSON on `policy`.
fn check_config(policy: &str) -> (i32, String, serde_json::Value) {
    let cfg = ConfigFile::new(policy);
    let out = session_wrapper()
        .args(["check-config", "--config"])
        .arg(cfg.path())
        .output()
        .expect("check-config");
    let text = stdout(&out) + &stderr(&out);
    let json = session_wrapper()
        .args(["check-config", "--json", "--config"])
        .arg(cfg.path())
        .output()
        .expect("check-config --json");
    let v: serde_json::Value =
        serde_json::from_slice(&json.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&json)));
    (out.status.code().unwrap_or(-1), text, v)
}

/// The warnings of the JSON answer about rule `name`.
fn warnings(v: &serde_json::Value, rule: &str) -> Vec<String> {
    v["system"]
        .as_array()
        .expect("system checks")
        .iter()
        .filter(|c| c["check"] == format!("rule {rule}") && c["status"] == "warn")
        .map(|c| c["detail"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn a_rule_that_can_never_match_is_named_with_the_rule_before_it() {
    let shadowing = "default = \"deny\"\n\
        [[rules]]\nname = \"ops-tools\"\ngroups = [\"ops\", \"dev\"]\nexe = \"/usr/bin/\"\naction = \"allow\"\n\
        [[rules]]\nname = \"ops-ls-long\"\ngroups = [\"ops\"]\nexe = \"/usr/bin/ls\"\nargs = [\"-l\"]\naction = \"allow\"\n";
    let (code, text, v) = check_config(shadowing);
    assert_eq!(code, 0, "{text}");
    let w = warnings(&v, "ops-ls-long");
    assert_eq!(w.len(), 1, "{text}");
    assert!(
        w[0].starts_with("can never match: rule ops-tools (")
            && w[0].ends_with(":2:1), checked before it, matches every command it does"),
        "{text}"
    );
    assert!(text.contains("WARN  rule ops-ls-long"), "{text}");
    // In the other order both rules decide something: no warning.
    let reordered = "default = \"deny\"\n\
        [[rules]]\nname = \"ops-ls-long\"\ngroups = [\"ops\"]\nexe = \"/usr/bin/ls\"\nargs = [\"-l\"]\naction = \"allow\"\n\
        [[rules]]\nname = \"ops-tools\"\ngroups = [\"ops\", \"dev\"]\nexe = \"/usr/bin/\"\naction = \"allow\"\n";
    let (code, text, v) = check_config(reordered);
    assert_eq!(code, 0, "{text}");
    assert!(!text.contains("can never match"), "{text}");
    assert!(
        warnings(&v, "ops-ls-long").is_empty() && warnings(&v, "ops-tools").is_empty(),
        "{text}"
    );
}

#[test]
fn a_pattern_naming_a_file_that_does_not_exist_is_named() {
    let policy = |exe: &str| {
        format!(
            "[[rules]]\nname = \"tools\"\nexe = [\"/usr/bin/ls\", \"{exe}\"]\naction = \"allow\"\n"
        )
    };
    let (code, text, v) = check_config(&policy("/usr/bin/no-such-program-sw"));
    assert_eq!(code, 0, "{text}");
    assert_eq!(
        warnings(&v, "tools"),
        vec!["/usr/bin/no-such-program-sw names /usr/bin/no-such-program-sw, which does not exist on this system".to_owned()],
        "{text}"
    );
    let (_, text, v) = check_config(&policy("/usr/no-such-dir-sw/**"));
    assert_eq!(
        warnings(&v, "tools"),
        vec![
            "/usr/no-such-dir-sw/** names /usr/no-such-dir-sw, which does not exist on this system"
                .to_owned()
        ],
        "{text}"
    );
    let (code, text, v) = check_config(&policy("/usr/bin/cat"));
    assert_eq!(code, 0, "{text}");
    assert!(
        warnings(&v, "tools").is_empty() && !text.contains("does not exist"),
        "{text}"
    );
}

#[test]
fn a_rule_allowing_a_directory_a_user_can_write_into_names_the_user() {
    require_root!();
    // Outside /tmp (which everyone can write into): a directory nobody owns, and one root owns.
    let theirs = tempfile::Builder::new()
        .prefix("sw-lint-")
        .tempdir_in("/var/lib")
        .expect("tempdir");
    std::fs::write(theirs.path().join("tool"), "#!/bin/sh\n").expect("tool");
    for p in [theirs.path().to_path_buf(), theirs.path().join("tool")] {
        nix::unistd::chown(&p, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
    }
    let ours = tempfile::Builder::new()
        .prefix("sw-lint-")
        .tempdir_in("/var/lib")
        .expect("tempdir");
    std::fs::set_permissions(ours.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(ours.path().join("tool"), "#!/bin/sh\n").expect("tool");
    let policy = |dir: &std::path::Path, action: &str| {
        format!(
            "[[rules]]\nname = \"dir\"\nusers = [\"a\"]\nexe = \"{d}/\"\naction = \"{action}\"\n\
             [[rules]]\nname = \"file\"\nusers = [\"b\"]\nexe = \"{d}/tool\"\naction = \"{action}\"\n",
            d = dir.display()
        )
    };
    let (code, text, v) = check_config(&policy(theirs.path(), "allow"));
    assert_eq!(code, 0, "{text}");
    for rule in ["dir", "file"] {
        let w = warnings(&v, rule);
        assert!(
            w.iter()
                .any(|w| w.contains("user nobody") && w.contains("whatever is put there runs")),
            "{rule}: {text}"
        );
    }
    // The same rules on a directory only root can change, or refusing rather than allowing: silent.
    let (_, text, v) = check_config(&policy(ours.path(), "allow"));
    assert!(
        warnings(&v, "dir").is_empty() && warnings(&v, "file").is_empty(),
        "{text}"
    );
    let (_, text, v) = check_config(&policy(theirs.path(), "deny"));
    assert!(
        warnings(&v, "dir").is_empty() && warnings(&v, "file").is_empty(),
        "{text}"
    );
}
