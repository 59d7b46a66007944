//! Every example policy of the documentation is a claim, and is checked here: every TOML example
//! in README.md, docs/admin-guide.md, the man page session-wrapper.toml(5) and the package's
//! configuration parses; the admin guide's roles (section 5) are run in real `su` and `sudo`
//! sessions, where what they are meant to allow runs and what they are meant to refuse, the
//! walk-arounds of the threat model included, is refused; and the documented policies pass the
//! test cases shipped with them (`session-wrapper test`: `packaging/config.test.toml`,
//! `docs/examples/*.test.toml`).

use std::time::Duration;

use session_wrapper_config::{Config, Source};
use session_wrapper_tests::{require_root, session_wrapper, stderr, stdout, workspace_root, ConfigFile, Sandbox};

const T: Duration = Duration::from_secs(90);

/// The fenced ```toml blocks of a Markdown file, each with the paragraph before it (which
/// names the file a drop-in goes in).
fn markdown_toml(file: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(workspace_root().join(file)).expect("read");
    let mut out = Vec::new();
    let mut block: Option<(String, String)> = None;
    let mut before = String::new();
    for line in text.lines() {
        match &mut block {
            Some((_, body)) if line.starts_with("```") => {
                let (b, body) = (before.clone(), std::mem::take(body));
                out.push((b, body));
                block = None;
                before.clear();
            }
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None if line.trim() == "```toml" => block = Some((String::new(), String::new())),
            None if line.trim().is_empty() => before.push('\n'),
            None => {
                if before.ends_with('\n') {
                    before.clear();
                }
                before.push_str(line);
                before.push(' ');
            }
        }
    }
    out
}

/// The `.EX`/`.EE` blocks of a man page that are TOML (not log lines), de-roffed.
fn man_toml(file: &str) -> Vec<String> {
    let text = std::fs::read_to_string(workspace_root().join(file)).expect("read");
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    for line in text.lines() {
        match &mut block {
            Some(body) if line == ".EE" => {
                let b = std::mem::take(body);
                if !b.contains("event=") {
                    out.push(b);
                }
                block = None;
            }
            Some(body) => {
                let l = line.replace("\\-", "-").replace("\\(aq", "'").replace("\\(dq", "\"").replace("\\e", "\\").replace("\\&", "");
                body.push_str(&l);
                body.push('\n');
            }
            None if line == ".EX" => block = Some(String::new()),
            None => {}
        }
    }
    out
}

fn parses(name: &str, text: &str) {
    if let Err(e) = Config::parse(&[Source::new(name, text)], &|_| None) {
        panic!("the example in {name} does not parse:\n{e}\n---\n{text}");
    }
}

#[test]
fn every_toml_example_in_the_documentation_parses() {
    let mut n = 0;
    for file in ["README.md", "docs/admin-guide.md"] {
        for (before, body) in markdown_toml(file) {
            parses(&format!("{file} (after {before:?})"), &body);
            n += 1;
        }
    }
    for body in man_toml("docs/man/session-wrapper.toml.5") {
        parses("session-wrapper.toml(5)", &body);
        n += 1;
    }
    parses("packaging/config.toml", &std::fs::read_to_string(workspace_root().join("packaging/config.toml")).expect("read"));
    assert!(n >= 12, "found only {n} examples: the extraction is broken");
}

/// The admin guide's drop-ins (10-base, 20-readonly, 30-netops, 40-root), in enforce mode.
fn guide_roles() -> ConfigFile {
    let cfg = ConfigFile::new("# the drop-ins of docs/admin-guide.md, section 5\n");
    let mut found = 0;
    for (before, body) in markdown_toml("docs/admin-guide.md") {
        let Some(name) = ["10-base.toml", "20-readonly.toml", "30-netops.toml", "40-root.toml"].into_iter().find(|n| before.contains(n)) else {
            continue;
        };
        cfg.drop_in(name, &body.replace("mode = \"audit\"", "mode = \"enforce\""));
        found += 1;
    }
    assert_eq!(found, 4, "the guide's four drop-ins");
    cfg
}

/// The decision line of the exec whose argv is exactly `argv`, as `target`.
fn decision<'a>(lines: &'a [String], argv: &str, target: &str) -> &'a str {
    lines
        .iter()
        .find(|l| l.contains(&format!(" argv=\"{argv}\" ")) && l.contains(&format!(" target={target} ")))
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no decision for argv={argv:?} as {target}:\n{}", lines.join("\n")))
}

fn expect(lines: &[String], argv: &str, target: &str, verdict: &str, rule: &str) {
    let l = decision(lines, argv, target);
    assert!(
        l.contains(&format!(" decision={verdict} ")) && l.contains(&format!(" rule={rule} ")),
        "{argv} as {target}: want {verdict} by {rule}, got: {l}"
    );
}

#[test]
fn the_admin_guides_roles_hold_in_real_su_and_sudo_sessions() {
    require_root!();
    let cfg = guide_roles();
    let mut sb = Sandbox::new();
    let alice = sb.add_user("swalice", 4701);
    let bob = sb.add_user("swbob", 4702);
    let carol = sb.add_user("swcarol", 4703);
    sb.add_group("netops", 4710, &[&alice.name]);
    sb.add_group("readonly", 4711, &[&bob.name]);
    sb.etc_file(
        "/etc/sudoers",
        &format!("Defaults !lecture\nDefaults secure_path=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\nroot ALL=(ALL) ALL\n{} ALL=(ALL) NOPASSWD: ALL\n{} ALL=(ALL) NOPASSWD: ALL\n", alice.name, bob.name),
        0o440,
    );
    sb.add_session_module("su", &Sandbox::module_args(&cfg.path(), ""));
    let alice_script = "ls / >/dev/null; echo case=ls rc=$?\n\
        sudo -n ip link show >/dev/null; echo case=ip rc=$?\n\
        sudo -n systemctl status ssh >/dev/null 2>&1; echo case=status rc=$?\n\
        sudo -n systemctl restart nginx >/dev/null 2>&1; echo case=restart rc=$?\n\
        sudo -n systemctl restart debug-shell; echo case=debug-shell rc=$?\n\
        sudo -n systemctl --no-wall reboot; echo case=option-first rc=$?\n\
        sudo -n systemctl start reboot.target; echo case=target rc=$?\n\
        sudo -n reboot; echo case=reboot rc=$?\n\
        sudo -n /usr/sbin//reboot; echo case=reboot-spelled rc=$?\n\
        sudo -n -i true; echo case=root-shell rc=$?\n\
        sudo -n bash -c 'exec -a xreboot /usr/bin/systemctl'; echo case=renamed rc=$?\n";
    let out = sb.run(&["su", "-", &alice.name, "-c", alice_script], T);
    let bob_script = "systemctl status ssh >/dev/null 2>&1; echo case=status rc=$?\n\
        systemctl restart ssh; echo case=restart rc=$?\n\
        bash -c 'exec -a reboot /usr/bin/systemctl status'; echo case=renamed rc=$?\n\
        ip link show >/dev/null; echo case=ip-show rc=$?\n\
        ip link set lo down; echo case=ip-set rc=$?\n\
        sudo -n id; echo case=sudo rc=$?\n";
    let out_b = sb.run(&["su", "-", &bob.name, "-c", bob_script], T);
    let out_c = sb.run(&["su", "-", &carol.name, "-c", "ls /; echo case=ls rc=$?; id -u >/dev/null; echo case=id rc=$?"], T);
    let lines = sb.log.until_sessions_end(3, T);
    let show = format!(
        "alice:\n{}{}\nbob:\n{}{}\ncarol:\n{}{}",
        stdout(&out),
        stderr(&out),
        stdout(&out_b),
        stderr(&out_b),
        stdout(&out_c),
        stderr(&out_c)
    );
    eprintln!("{show}");
    let (a, b, c) = (alice.name.as_str(), bob.name.as_str(), carol.name.as_str());
    // alice, netops: the system's programs as herself; as root, only her role's.
    expect(&lines, "ls /", a, "allow", "netops");
    expect(&lines, "ip link show", "root", "allow", "netops-root-network");
    expect(&lines, "systemctl status ssh", "root", "allow", "netops-root-systemctl-status");
    expect(&lines, "systemctl restart nginx", "root", "allow", "netops-root-restart");
    expect(&lines, "systemctl restart debug-shell", "root", "deny", "nothing-else-as-root");
    expect(&lines, "systemctl --no-wall reboot", "root", "deny", "root-no-power-verbs");
    expect(&lines, "systemctl start reboot.target", "root", "deny", "root-no-power-verbs");
    expect(&lines, "reboot", "root", "deny", "root-systemctl-as-itself-only");
    expect(&lines, "/usr/sbin//reboot", "root", "deny", "root-systemctl-as-itself-only");
    expect(&lines, "-bash --login -c true", "root", "deny", "nothing-else-as-root");
    expect(&lines, "bash -c exec%20-a%20xreboot%20/usr/bin/systemctl", "root", "deny", "nothing-else-as-root");
    // bob, readonly: looks, touches nothing, gets no root.
    expect(&lines, "systemctl status ssh", b, "allow", "readonly-systemctl");
    expect(&lines, "systemctl restart ssh", b, "deny", "default");
    expect(&lines, "reboot status", b, "deny", "default");
    expect(&lines, "ip link show", b, "allow", "readonly-ip");
    expect(&lines, "ip link set lo down", b, "deny", "default");
    expect(&lines, "sudo -n id", b, "deny", "default");
    // carol, no role: her login works, nothing else.
    expect(&lines, "ls /", c, "deny", "default");
    expect(&lines, "id -u", c, "allow", "login-scripts");
    // What the users saw: a refused command is refused (126 from a shell, 1 from sudo).
    for (text, case, rc) in [
        (stdout(&out), "debug-shell", "1"),
        (stdout(&out), "option-first", "1"),
        (stdout(&out), "reboot", "1"),
        (stdout(&out_b), "restart", "126"),
        (stdout(&out_b), "renamed", "126"),
        (stdout(&out_b), "ip-set", "126"),
        (stdout(&out_c), "ls", "126"),
    ] {
        assert!(text.contains(&format!("case={case} rc={rc}\n")), "{case}: want rc={rc}\n{show}");
    }
    assert!(stdout(&out).contains("case=ip rc=0\n"), "{show}");
    assert!(stdout(&out_b).contains("case=ip-show rc=0\n"), "{show}");
}

#[test]
fn the_man_pages_roles_example_holds_in_real_su_and_sudo_sessions() {
    require_root!();
    let example = man_toml("docs/man/session-wrapper.toml.5")
        .into_iter()
        .find(|b| b.contains("operators-systemctl-as-itself"))
        .expect("the roles example of session-wrapper.toml(5)");
    let cfg = ConfigFile::new(&example);
    let mut sb = Sandbox::new();
    let dave = sb.add_user("swdave", 4721);
    let erin = sb.add_user("swerin", 4722);
    sb.add_group("netops", 4720, &[&dave.name]);
    sb.etc_file(
        "/etc/sudoers",
        &format!("Defaults !lecture\nDefaults secure_path=\"/usr/sbin:/usr/bin:/sbin:/bin\"\nroot ALL=(ALL) ALL\n{} ALL=(ALL) NOPASSWD: ALL\n", dave.name),
        0o440,
    );
    sb.add_session_module("su", &Sandbox::module_args(&cfg.path(), ""));
    let dave_script = "cd /; ls / >/dev/null; cp --version >/dev/null; systemctl --no-wall reboot; \
        bash -c 'exec -a reboot /usr/bin/systemctl'; sudo -n id; true";
    let out_d = sb.run(&["su", "-", &dave.name, "-c", dave_script], T);
    let out_e = sb.run(&["su", "-", &erin.name, "-c", "cd /; ls / >/dev/null; cp --version >/dev/null; /usr/bin/git status >/dev/null 2>&1; /usr/bin/git push >/dev/null 2>&1; true"], T);
    let lines = sb.log.until_sessions_end(2, T);
    eprintln!("{}{}{}{}", stdout(&out_d), stderr(&out_d), stdout(&out_e), stderr(&out_e));
    let (d, e) = (dave.name.as_str(), erin.name.as_str());
    expect(&lines, "ls /", d, "allow", "read-only-tools");
    expect(&lines, "cp --version", d, "allow", "operators");
    expect(&lines, "systemctl --no-wall reboot", d, "deny", "operators-no-power-verbs");
    expect(&lines, "reboot", d, "deny", "operators-systemctl-as-itself");
    expect(&lines, "id", "root", "deny", "nothing-as-root");
    expect(&lines, "ls /", e, "allow", "read-only-tools");
    expect(&lines, "cp --version", e, "deny", "default");
    expect(&lines, "/usr/bin/git status", e, "allow", "git-read-only");
    expect(&lines, "/usr/bin/git push", e, "deny", "default");
}

/// Runs `session-wrapper test [--config CONFIG] CASES`: its exit status and output.
fn policy_test(config: Option<&std::path::Path>, cases: &std::path::Path) -> (i32, String) {
    let mut c = session_wrapper();
    c.arg("test");
    if let Some(p) = config {
        c.arg("--config").arg(p);
    }
    let out = c.arg(cases).output().expect("session-wrapper test");
    (out.status.code().unwrap_or(-1), stdout(&out) + &stderr(&out))
}

/// Every case of `cases` holds against `config`, and there are `n` of them.
fn all_cases_hold(config: Option<&std::path::Path>, cases: &str, n: usize) {
    let (code, text) = policy_test(config, &workspace_root().join(cases));
    assert_eq!(code, 0, "{cases}:\n{text}");
    assert!(text.contains(&format!("result: {n} cases, 0 failed\n")), "{cases}:\n{text}");
    assert_eq!(text.matches("\nok ").count(), n, "{cases}:\n{text}");
}

#[test]
fn the_documented_policies_pass_their_shipped_test_cases() {
    // The package's example policy: the case file names it (config = "config.toml").
    all_cases_hold(None, "packaging/config.test.toml", 6);
    // README's denylist, as README writes it.
    let readme = markdown_toml("README.md")
        .into_iter()
        .map(|(_, body)| body)
        .find(|b| b.contains("systemctl-as-itself-only"))
        .expect("README's systemctl denylist");
    let cfg = ConfigFile::new(&readme);
    all_cases_hold(Some(&cfg.path()), "docs/examples/readme-systemctl.test.toml", 6);
    // The admin guide's roles, as the guide writes its drop-ins.
    let roles = guide_roles();
    all_cases_hold(Some(&roles.path()), "docs/examples/admin-guide-roles.test.toml", 18);
}

#[test]
fn a_failing_policy_test_names_the_rule_that_decided_and_exits_1() {
    let cfg = ConfigFile::new("default = \"allow\"\n\n[[rules]]\nname = \"no-id\"\nexe = \"/usr/bin/id\"\naction = \"deny\"\n");
    let cases = ConfigFile::new(
        "[[case]]\nname = \"id runs\"\nuser = \"alice\"\ncommand = [\"id\"]\nexpect = \"allow\"\n\n\
         [[case]]\nuser = \"alice\"\ncommand = [\"ls\"]\nexpect = \"allow\"\nrule = \"default\"\n\n\
         [[case]]\nuser = \"alice\"\ncommand = [\"ls\"]\nexpect = \"allow\"\nrule = \"ls-rule\"\n",
    );
    let (code, text) = policy_test(Some(&cfg.path()), &cases.path());
    assert_eq!(code, 1, "{text}");
    let config = cfg.path().display().to_string();
    assert!(text.contains(&format!("FAIL    1. id runs: want allow, got deny by no-id (at {config}:3:1)\n")), "{text}");
    assert!(text.contains("ok      2. ls: allow by default\n"), "{text}");
    assert!(text.contains("FAIL    3. ls: want allow by ls-rule, got allow by default\n"), "{text}");
    assert!(text.contains("result: 3 cases, 2 failed\n"), "{text}");
    // A case file that is not one is a usage error.
    let broken = ConfigFile::new("[[case]]\nuser = \"alice\"\ncommand = [\"ls\"]\nexpect = \"maybe\"\n");
    let (code, text) = policy_test(Some(&cfg.path()), &broken.path());
    assert_eq!(code, 2, "{text}");
}
