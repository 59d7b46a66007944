//! `session-wrapper explain --json`: the decision, the rule and where it is written, the real
//! file and the links the program is invoked through, the `#!` interpreter a decision is
//! about; and the text form saying the same.

use session_wrapper_tests::{session_wrapper, stdout, write_executable, ConfigFile};

const POLICY: &str = "default = \"allow\"\n\n\
    [[rules]]\nname = \"systemctl-as-itself-only\"\nexe = \"/usr/bin/systemctl\"\nnames = [\"!systemctl\"]\naction = \"deny\"\nmessage = \"reboots go through the change process\"\n\n\
    [[rules]]\nname = \"no-dash\"\nexe = \"/usr/bin/dash\"\nnames = [\"sh\"]\naction = \"deny\"\n";

fn explain(cfg: &ConfigFile, json: bool, command: &[&str]) -> (i32, String) {
    let mut c = session_wrapper();
    c.args(["explain", "--config"])
        .arg(cfg.path())
        .args(["--user", "root", "--service", "sudo"]);
    if json {
        c.arg("--json");
    }
    let out = c.arg("--").args(command).output().expect("explain");
    (out.status.code().unwrap_or(-1), stdout(&out))
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn explain_json_gives_the_decision_the_rule_and_what_really_runs() {
    let cfg = ConfigFile::new(POLICY);
    let (code, text) = explain(&cfg, true, &["reboot"]);
    assert_eq!(code, 0, "{text}");
    let v = json(&text);
    assert_eq!(v["decision"], "deny", "{v}");
    assert_eq!(v["rule"], "systemctl-as-itself-only", "{v}");
    assert_eq!(v["decided_by"], "rule", "{v}");
    assert_eq!(
        v["rule_origin"],
        format!("{}:3:1", cfg.path().display()),
        "{v}"
    );
    assert_eq!(v["message"], "reboots go through the change process", "{v}");
    assert_eq!(
        (v["real_file"].as_str(), v["invoked_as"].as_str()),
        (Some("/usr/bin/systemctl"), Some("reboot")),
        "{v}"
    );
    assert_eq!(v["links"], serde_json::json!(["/usr/sbin/reboot"]), "{v}");
    assert_eq!(
        (
            v["user"].as_str(),
            v["service"].as_str(),
            v["target_user"].as_str()
        ),
        (Some("root"), Some("sudo"), Some("root")),
        "{v}"
    );
    // The text form says the same.
    let (_, text) = explain(&cfg, false, &["reboot"]);
    assert!(
        text.contains("decision: DENY by rule \"systemctl-as-itself-only\""),
        "{text}"
    );

    // Under its own name, nothing matches: the default decides.
    let v = json(&explain(&cfg, true, &["systemctl", "status"]).1);
    assert_eq!(
        (
            v["decision"].as_str(),
            v["rule"].as_str(),
            v["decided_by"].as_str()
        ),
        (Some("allow"), Some("default"), Some("default")),
        "{v}"
    );
    assert!(v.get("rule_origin").is_none(), "{v}");

    // A script is decided as the script, and refused when its interpreter is.
    let dir = tempfile::tempdir().expect("tempdir");
    let script = write_executable(&dir.path().join("job"), "#!/bin/sh\ntrue\n");
    let v = json(&explain(&cfg, true, &[&script]).1);
    assert_eq!(
        (v["decision"].as_str(), v["rule"].as_str()),
        (Some("deny"), Some("no-dash")),
        "{v}"
    );
    assert_eq!(v["about_interpreter"], "/usr/bin/dash", "{v}");
    assert_eq!(
        v["interpreters"],
        serde_json::json!(["/usr/bin/dash"]),
        "{v}"
    );

    // A program that cannot run: the reason, exit 1.
    let (code, text) = explain(&cfg, true, &["/nonexistent/prog"]);
    assert_eq!(code, 1, "{text}");
    assert!(
        json(&text)["error"]
            .as_str()
            .unwrap_or("")
            .starts_with("cannot be run: ENOENT"),
        "{text}"
    );
}
