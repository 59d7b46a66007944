//! `session-wrapper self-test` and `check-config` against this machine, as root: every layer
//! of a configuration that uses them all is proven; a layer broken on purpose (the cgroup
//! hierarchy hidden in a private mount namespace) makes both exit 1 naming it.

use std::process::Command;

use session_wrapper_tests::{bin, require_root, stderr, stdout, ConfigFile};

const ALL_LAYERS: &str = "default = \"allow\"\n\
[[isolation]]\n\
name = \"everything\"\n\
block-syscalls = [\"ptrace\", \"mount\", \"raw-sockets\", \"packet-sockets\", \"namespaces\", \"keyctl\", \"bpf\", \"personality\"]\n\
memory-max = \"128M\"\n\
pids-max = 64\n\
cpu-max = \"30%\"\n\
private-dirs = [\"/tmp\", \"/var/tmp\"]\n\
landlock = { write = [\"/dev\", \"/tmp\", \"/run\"], tcp-connect = [22] }\n";

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_str(stdout(out).trim()).unwrap_or_else(|e| panic!("{e}: {}{}", stdout(out), stderr(out)))
}

/// `session-wrapper self-test --comprehensive --json` with the configuration `cfg`.
fn comprehensive_self_test(cfg: &ConfigFile) -> std::process::Output {
    session_wrapper_tests::session_wrapper()
        .args(["self-test", "--comprehensive", "--json", "--config"])
        .arg(cfg.path())
        .output()
        .expect("self-test")
}

fn status_of<'a>(v: &'a serde_json::Value, layer: &str, check: &str) -> &'a str {
    v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["layer"] == layer && c["check"] == check)
        .and_then(|c| c["status"].as_str())
        .unwrap_or_else(|| panic!("no check {layer}/{check} in {v}"))
}

#[test]
fn self_test_proves_every_layer_of_a_full_configuration() {
    require_root!();
    let cfg = ConfigFile::new(ALL_LAYERS);
    let out = comprehensive_self_test(&cfg);
    let v = json(&out);
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(out.status.code(), Some(0));
    for (layer, check) in [
        ("session", "refused exec"),
        ("session", "own listener"),
        ("session", "x32 system calls"),
        ("session", "argument swap raced against the check"),
        ("session", "user namespace of one's own (mounts over the loader and libraries)"),
        ("session", "library search path in a directory others can write"),
        ("isolation everything", "blocks ptrace"),
        ("isolation everything", "blocks raw-sockets"),
        ("isolation everything", "blocks namespaces"),
        ("isolation everything", "blocks personality"),
        ("isolation everything", "memory-max holds (OOM kill)"),
        ("isolation everything", "pids-max holds (fork until refused)"),
        ("isolation everything", "cpu-max holds (spin, measure)"),
        ("isolation everything", "private /tmp"),
        ("isolation everything", "private /var/tmp"),
        ("isolation everything", "landlock refuses a write outside"),
        ("isolation everything", "landlock refuses a TCP connect"),
    ] {
        assert_eq!(status_of(&v, layer, check), "pass", "{layer}/{check}: {v}");
    }
    // The readable form names the same checks.
    let out = session_wrapper_tests::session_wrapper().args(["self-test", "--config"]).arg(cfg.path()).output().expect("self-test");
    let text = stdout(&out);
    assert!(text.contains("isolation everything") && text.contains("result: ok"), "{text}");
}

/// Runs `session-wrapper ARGS` in a private mount namespace where the cgroup hierarchies are
/// hidden under an empty tmpfs: the limits cannot be applied there.
fn without_cgroups(args: &[&str]) -> std::process::Output {
    let script = format!(
        "mount --make-rprivate / && mount -t tmpfs none /sys/fs/cgroup && exec {} \"$@\"",
        bin("session-wrapper").display()
    );
    Command::new("unshare").args(["-m", "sh", "-c", &script, "sh"]).args(args).env_remove("LD_LIBRARY_PATH").output().expect("unshare")
}

#[test]
fn a_layer_broken_on_purpose_makes_self_test_and_check_config_fail_naming_it() {
    require_root!();
    let cfg = ConfigFile::new("default = \"allow\"\n[[isolation]]\nname = \"limits\"\npids-max = 50\nblock-syscalls = [\"mount\"]\n");
    let path = cfg.path().display().to_string();
    let out = without_cgroups(&["self-test", "--json", "--config", &path]);
    assert_eq!(out.status.code(), Some(1), "{}{}", stdout(&out), stderr(&out));
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(status_of(&v, "system", "cgroup pids"), "fail");
    assert_eq!(status_of(&v, "isolation limits", "session start"), "fail");
    // The session layer itself (policy) still works, and says so.
    assert_eq!(status_of(&v, "session", "refused exec"), "pass");
    let out = without_cgroups(&["self-test", "--config", &path]);
    let text = stdout(&out);
    assert!(text.contains("result: FAIL") && text.contains("isolation limits: session start"), "{text}");
    assert!(text.contains("pids controller is not available"), "{text}");

    let out = without_cgroups(&["check-config", "--config", &path]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("controller not available: sessions under limits are refused"), "{}", stdout(&out));
    let out = without_cgroups(&["check-config", "--json", "--config", &path]);
    let v = json(&out);
    assert_eq!((v["valid"].as_bool(), v["ok"].as_bool()), (Some(true), Some(false)), "{v}");
    // On the machine itself, the same configuration is enforceable.
    let out = session_wrapper_tests::session_wrapper().args(["check-config", "--config", &path]).output().expect("check-config");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn self_test_reports_user_namespaces_held_by_default_and_open_when_the_configuration_allows_them() {
    require_root!();
    for (text, want) in [("default = \"allow\"\n", "pass"), ("default = \"allow\"\n[guards]\nuser-namespaces = \"allow\"\n", "warn")] {
        let cfg = ConfigFile::new(text);
        let v = json(&comprehensive_self_test(&cfg));
        assert_eq!(status_of(&v, "session", "user namespace of one's own (mounts over the loader and libraries)"), want, "{text}: {v}");
        assert_eq!(v["ok"], true, "an opted-in class is a warning, not a failure: {v}");
    }
}
