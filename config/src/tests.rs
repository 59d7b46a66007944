//! Unit tests of parsing, merging and every rule form.

use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(&[Source::new("test.toml", text)], &|_| None)
}

fn ok(text: &str) -> Config {
    match parse(text) {
        Ok(c) => c,
        Err(e) => panic!("config should parse: {e}"),
    }
}

fn err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(_) => panic!("config should be refused:\n{text}"),
        Err(e) => e,
    }
}

struct Req {
    user: &'static str,
    groups: Vec<String>,
    target: &'static str,
    service: &'static str,
    exe: Vec<u8>,
    kind: ExeKind,
    loader: bool,
    env: Option<&'static str>,
    traced: bool,
    argv: Vec<Vec<u8>>,
}

fn req(exe: &str, argv: &[&str]) -> Req {
    Req {
        user: "alice",
        groups: vec!["alice".into(), "ops".into()],
        target: "alice",
        service: "sshd",
        exe: exe.as_bytes().to_vec(),
        kind: ExeKind::File,
        loader: false,
        env: None,
        traced: false,
        argv: argv.iter().map(|a| a.as_bytes().to_vec()).collect(),
    }
}

impl Req {
    fn decide(&self, c: &Config) -> Decision {
        c.policy.decide(&Request {
            user: self.user,
            groups: &self.groups,
            target_user: self.target,
            service: self.service,
            exe: &self.exe,
            links: &[],
            kind: self.kind,
            dynamic_loader: self.loader,
            loader_env: self.env,
            traced: self.traced,
            foreign_user_namespace: false,
            untrusted_library_path: None,
            argv: &self.argv,
        })
    }
    fn name(&self, c: &Config) -> String {
        c.policy.decider_name(self.decide(c).by).into_owned()
    }
}

#[test]
fn empty_config_denies_everything_by_default() {
    let c = ok("");
    assert_eq!(c.mode, Mode::Enforce);
    assert_eq!(c.fail_policy, FailPolicy::Closed);
    let d = req("/usr/bin/ls", &["ls"]).decide(&c);
    assert_eq!((d.action, d.by), (Action::Deny, DecidedBy::Default));
}

#[test]
fn builtin_default_decides_logs_and_allows_everything_but_keeps_the_guards() {
    let c = Config::builtin(&|_| None).expect("built-in parses");
    assert_eq!(c.mode, Mode::Enforce);
    assert!(c.policy.rules.is_empty());
    assert_eq!(req("/usr/bin/bash", &["-bash"]).decide(&c).action, Action::Allow);
    assert_eq!(req("/tmp/x/evil", &["evil"]).decide(&c).action, Action::Allow);
    assert_eq!(c.policy.guards, Guards::default());
    let mut r = req("/usr/bin/id", &["id"]);
    r.env = Some("LD_PRELOAD");
    assert_eq!(r.decide(&c).by, DecidedBy::Guard(Guard::LoaderEnv));
}

#[test]
fn the_shipped_example_configuration_refuses_programs_from_temporary_directories() {
    let text = include_str!("../../packaging/config.toml");
    let c = Config::parse(&[Source::new("config.toml", text)], &|_| None).expect("the shipped config parses");
    assert_eq!(c.mode, Mode::Audit);
    let d = req("/tmp/x/evil", &["evil"]).decide(&c);
    assert_eq!(d.action, Action::Deny);
    assert!(d.message.is_some());
    assert_eq!(req("/dev/shm/a", &["a"]).name(&c), "no-exec-from-temp");
    assert_eq!(req("/usr/bin/id", &["id"]).decide(&c).action, Action::Allow);
}

#[test]
fn first_matching_rule_wins() {
    let c = ok(r#"
        default = "allow"
        [[rules]]
        name = "deny-rm"
        exe = "/usr/bin/rm"
        action = "deny"
        [[rules]]
        name = "allow-bin"
        exe = "/usr/bin/"
        action = "allow"
    "#);
    assert_eq!(req("/usr/bin/rm", &["rm"]).name(&c), "deny-rm");
    assert_eq!(req("/usr/bin/ls", &["ls"]).name(&c), "allow-bin");
    assert_eq!(req("/opt/x", &["x"]).decide(&c).by, DecidedBy::Default);
}

#[test]
fn rule_matches_login_user() {
    let c = ok(r#"
        [[rules]]
        users = ["bob", "alice"]
        action = "allow"
    "#);
    assert_eq!(req("/x", &["x"]).decide(&c).action, Action::Allow);
    let mut r = req("/x", &["x"]);
    r.user = "carol";
    assert_eq!(r.decide(&c).action, Action::Deny);
}

#[test]
fn rule_matches_any_group_of_the_login_user() {
    let c = ok(r#"
        [[rules]]
        groups = ["netops", "ops"]
        action = "allow"
    "#);
    assert_eq!(req("/x", &["x"]).decide(&c).action, Action::Allow);
    let mut r = req("/x", &["x"]);
    r.groups = vec!["users".into()];
    assert_eq!(r.decide(&c).action, Action::Deny);
}

#[test]
fn rule_matches_target_user_by_name_or_uid() {
    let c = ok(r##"
        [[rules]]
        target-users = ["root", "#4242"]
        action = "deny"
        [[rules]]
        action = "allow"
    "##);
    let mut r = req("/x", &["x"]);
    assert_eq!(r.decide(&c).action, Action::Allow);
    r.target = "root";
    assert_eq!(r.decide(&c).action, Action::Deny);
    r.target = "#4242";
    assert_eq!(r.decide(&c).action, Action::Deny);
}

#[test]
fn rule_matches_service() {
    let c = ok(r#"
        [[rules]]
        services = ["sudo"]
        action = "authorize"
    "#);
    let mut r = req("/x", &["x"]);
    assert_eq!(r.decide(&c).by, DecidedBy::Default);
    r.service = "sudo";
    assert_eq!(r.decide(&c).action, Action::Authorize);
}

#[test]
fn rule_matches_exe_exact_glob_and_directory() {
    let c = ok(r#"
        [[rules]]
        name = "exact"
        exe = "/usr/sbin/ip"
        action = "allow"
        [[rules]]
        name = "glob"
        exe = ["/usr/bin/git*", "/opt/**"]
        action = "allow"
        [[rules]]
        name = "dir"
        exe = "/usr/local/bin/"
        action = "allow"
    "#);
    assert_eq!(req("/usr/sbin/ip", &["ip"]).name(&c), "exact");
    assert_eq!(req("/usr/bin/git-receive-pack", &["git-receive-pack"]).name(&c), "glob");
    assert_eq!(req("/opt/a/b/c", &["/opt/a/b/c"]).name(&c), "glob");
    assert_eq!(req("/usr/local/bin/tool", &["tool"]).name(&c), "dir");
    assert_eq!(req("/usr/local/bin/sub/tool", &["tool"]).name(&c), "default");
    // An allow names the program under a name: argv[0] is the caller's to choose.
    assert_eq!(req("/usr/sbin/ip", &["renamed"]).name(&c), "default");
    assert_eq!(req("/usr/local/bin/tool", &["t"]).name(&c), "default");
}

#[test]
fn a_deny_holds_whatever_argv0_says_and_an_allow_only_under_its_names() {
    let c = ok(r#"
        default = "allow"
        [[rules]]
        name = "no-id"
        exe = "/usr/bin/id"
        action = "deny"
    "#);
    for argv0 in ["id", "foo", "/x/id", "-id", ""] {
        assert_eq!(req("/usr/bin/id", &[argv0, "-u"]).name(&c), "no-id", "argv[0] {argv0:?}");
    }
    let c = ok(r#"
        [[rules]]
        name = "ls"
        exe = "/usr/bin/ls"
        action = "allow"
    "#);
    assert_eq!(req("/usr/bin/ls", &["ls"]).name(&c), "ls");
    assert_eq!(req("/usr/bin/ls", &["/usr/bin/ls"]).name(&c), "ls");
    assert_eq!(req("/usr/bin/ls", &["-ls"]).name(&c), "ls", "a login shell's dash is not part of the name");
    assert_eq!(req("/usr/bin/ls", &["sl"]).name(&c), "default");
}

#[test]
fn names_keep_a_multi_call_program_to_one_personality() {
    let c = ok(r#"
        default = "allow"
        [[rules]]
        name = "systemctl-as-itself"
        exe = "/usr/bin/systemctl"
        names = ["!systemctl"]
        action = "deny"
    "#);
    for argv0 in ["reboot", "/x/reboot", "xreboot", "telinit", "xinit", "halt", "-reboot"] {
        assert_eq!(req("/usr/bin/systemctl", &[argv0]).name(&c), "systemctl-as-itself", "{argv0}");
    }
    assert_eq!(req("/usr/bin/systemctl", &["systemctl", "status"]).name(&c), "default");
    assert_eq!(req("/usr/bin/systemctl", &["/usr/bin/systemctl"]).name(&c), "default");
    let e = err("[[rules]]\nnames = [\"a/b\"]\naction = \"deny\"\n");
    assert!(only_problem(&e).message.contains("names"), "{e}");
}

#[test]
fn any_arg_denies_a_verb_wherever_it_stands_among_the_options() {
    let c = ok(r#"
        default = "allow"
        [[rules]]
        name = "no-reboot-verbs"
        exe = "/usr/bin/systemctl"
        any-arg = ["{reboot,poweroff,halt,kexec}", "*.target"]
        action = "deny"
    "#);
    for args in [
        &["systemctl", "reboot"][..],
        &["systemctl", "--no-wall", "reboot"],
        &["systemctl", "-i", "--", "poweroff"],
        &["systemctl", "start", "reboot.target"],
        &["xreboot", "status"],
    ] {
        let d = req("/usr/bin/systemctl", args).decide(&c);
        if args[0] == "xreboot" {
            assert_eq!(d.by, DecidedBy::Default, "{args:?}");
        } else {
            assert_eq!(d.action, Action::Deny, "{args:?}");
        }
    }
    assert_eq!(req("/usr/bin/systemctl", &["systemctl", "status", "nginx"]).name(&c), "default");
    let e = err("[[rules]]\nany-arg = []\naction = \"deny\"\n");
    assert!(only_problem(&e).message.contains("empty list"));
}

#[test]
fn rule_matches_per_argument_globs() {
    let c = ok(r#"
        default = "allow"
        [[rules]]
        name = "no-rm-rf-root"
        exe = "/usr/bin/rm"
        args = ["-rf", "/"]
        action = "deny"
        [[rules]]
        name = "git-read-only"
        exe = "/usr/bin/git"
        args = ["{status,log,diff}", "**"]
        action = "allow"
        [[rules]]
        name = "git-other"
        exe = "/usr/bin/git"
        action = "deny"
    "#);
    assert_eq!(req("/usr/bin/rm", &["rm", "-rf", "/"]).name(&c), "no-rm-rf-root");
    assert_eq!(req("/usr/bin/rm", &["rm", "-rf", "/tmp"]).name(&c), "default");
    assert_eq!(req("/usr/bin/git", &["git", "log", "-3"]).name(&c), "git-read-only");
    assert_eq!(req("/usr/bin/git", &["git", "status"]).name(&c), "git-read-only");
    assert_eq!(req("/usr/bin/git", &["git", "push"]).name(&c), "git-other");
    assert_eq!(req("/usr/bin/git", &["git"]).name(&c), "git-other");
}

#[test]
fn rule_matches_regex_over_the_command_line() {
    let c = ok(r#"
        [[rules]]
        name = "ip-link-show"
        cmdline = '^/usr/sbin/ip link show( \S+)?$'
        action = "allow"
    "#);
    assert_eq!(req("/usr/sbin/ip", &["ip", "link", "show", "eth0"]).name(&c), "ip-link-show");
    assert_eq!(req("/usr/sbin/ip", &["ip", "link", "set", "eth0", "down"]).name(&c), "default");
    // The command line starts with the path the program is invoked through, never argv[0].
    assert_eq!(req("/usr/bin/rm", &["/usr/sbin/ip link show", "-rf", "x"]).name(&c), "default");
    // An argument cannot pretend to be two: it is quoted when it holds a space.
    assert_eq!(req("/usr/sbin/ip", &["ip", "link show", "eth0"]).name(&c), "default");
    // A regex over a command line cannot refuse: the option order walks around it.
    let e = err("[[rules]]\ncmdline = 'reboot'\naction = \"deny\"\n");
    assert!(only_problem(&e).message.contains("cannot refuse"), "{e}");
}

#[test]
fn non_utf8_arguments_are_decided() {
    let c = ok(r#"
        default = "allow"
        [[rules]]
        name = "bytes"
        exe = "/bin/echo"
        any-arg = ["a*b"]
        action = "deny"
        [[rules]]
        name = "bytes-re"
        cmdline = '(?-u)\xff'
        action = "allow"
    "#);
    let mut r = req("/bin/echo", &["echo"]);
    r.argv.push(b"a\xffb".to_vec());
    assert_eq!(r.name(&c), "bytes");
    let mut r = req("/bin/true", &["true"]);
    r.argv.push(b"\xff".to_vec());
    assert_eq!(r.name(&c), "bytes-re");
}

#[test]
fn all_conditions_of_a_rule_must_hold() {
    let c = ok(r#"
        [[rules]]
        name = "r"
        users = ["alice"]
        services = ["su"]
        exe = "/usr/bin/id"
        action = "allow"
    "#);
    let mut r = req("/usr/bin/id", &["id"]);
    assert_eq!(r.name(&c), "default");
    r.service = "su";
    assert_eq!(r.name(&c), "r");
}

#[test]
fn guards_refuse_before_rules() {
    let c = ok(r#"
        default = "allow"
    "#);
    let mut r = req("memfd:x", &["x"]);
    r.kind = ExeKind::Memfd;
    assert_eq!(r.decide(&c).by, DecidedBy::Guard(Guard::Memfd));
    r.kind = ExeKind::Deleted;
    assert_eq!(r.decide(&c).by, DecidedBy::Guard(Guard::Deleted));
    r.kind = ExeKind::Foreign;
    assert_eq!(r.decide(&c).by, DecidedBy::Guard(Guard::ForeignMount));
    assert_eq!(c.policy.decider_name(r.decide(&c).by), "guard:foreign-mount");
    let relaxed = ok("default = \"allow\"\n[guards]\nforeign-mount = \"allow\"\n");
    assert_eq!(r.decide(&relaxed).by, DecidedBy::Default, "allowed: decided on the path as seen");
    r.kind = ExeKind::File;
    r.loader = true;
    assert_eq!(r.decide(&c).by, DecidedBy::Guard(Guard::DynamicLoader));
    r.loader = false;
    r.env = Some("LD_PRELOAD");
    assert_eq!(r.decide(&c).by, DecidedBy::Guard(Guard::LoaderEnv));
    r.env = None;
    r.traced = true;
    assert_eq!(r.decide(&c).by, DecidedBy::Guard(Guard::Traced));
    assert_eq!(c.policy.decider_name(r.decide(&c).by), "guard:traced");
}

#[test]
fn guards_can_be_relaxed() {
    let c = ok(r#"
        default = "allow"
        [guards]
        memfd = "allow"
        traced = "allow"
        loader-env = ["LD_PRELOAD", "LD_LIBRARY_PATH"]
    "#);
    let mut r = req("memfd:x", &["x"]);
    r.kind = ExeKind::Memfd;
    r.traced = true;
    assert_eq!(r.decide(&c).action, Action::Allow);
    assert_eq!(c.policy.guards.loader_env, ["LD_PRELOAD", "LD_LIBRARY_PATH"]);
}

#[test]
fn settings_parse() {
    let c = ok(r#"
        mode = "audit"
        fail-policy = "open"
        deny-errno = "EPERM"
        default = "authorize"
        default-message = "ask first"
        [log]
        argv-max = 200
        socket = "/run/log.sock"
        format = "rfc5424"
        audit = "off"
    "#);
    assert_eq!(c.mode, Mode::Audit);
    assert_eq!(c.fail_policy, FailPolicy::Open);
    assert_eq!(c.deny_errno.value, 1);
    assert_eq!(c.policy.default_action, Action::Authorize);
    assert_eq!(c.log.argv_max, 200);
    assert_eq!(c.log.socket, "/run/log.sock");
    assert_eq!(c.log.format, crate::LogFormat::Rfc5424);
    assert_eq!(c.log.audit, crate::AuditRecords::Off);
}

#[test]
fn scope_decides_who_is_supervised() {
    let c = ok(r#"
        [scope]
        users = ["alice"]
        groups = ["ops"]
        services = ["sshd", "su"]
        exempt-users = ["breakglass"]
        exempt-groups = ["emergency"]
    "#);
    let s = &c.scope;
    let g = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(s.check("alice", &g(&[]), "sshd"), ScopeVerdict::Supervised);
    assert_eq!(s.check("bob", &g(&["ops"]), "su"), ScopeVerdict::Supervised);
    assert_eq!(s.check("carol", &g(&["users"]), "sshd"), ScopeVerdict::UserNotInScope);
    assert_eq!(s.check("alice", &g(&[]), "login"), ScopeVerdict::ServiceNotInScope);
    assert_eq!(s.check("breakglass", &g(&["ops"]), "sshd"), ScopeVerdict::ExemptUser);
    assert_eq!(
        s.check("bob", &g(&["ops", "emergency"]), "sshd"),
        ScopeVerdict::ExemptGroup("emergency".into())
    );
    let everyone = ok("");
    assert_eq!(everyone.scope.check("x", &[], "y"), ScopeVerdict::Supervised);
}

#[test]
fn drop_ins_override_settings_and_their_rules_come_first() {
    let main = Source::new(
        "/etc/session-wrapper/config.toml",
        r#"
        mode = "enforce"
        default = "deny"
        [scope]
        exempt-users = ["root"]
        [[rules]]
        name = "base"
        exe = "/usr/sbin/"
        action = "deny"
        "#,
    );
    let a = Source::new(
        "/etc/session-wrapper/config.d/10-netops.toml",
        r#"
        [[rules]]
        name = "netops-ip"
        groups = ["ops"]
        exe = "/usr/sbin/ip"
        action = "allow"
        "#,
    );
    let b = Source::new(
        "/etc/session-wrapper/config.d/20-rollout.toml",
        r#"
        mode = "audit"
        [scope]
        exempt-users = ["breakglass"]
        "#,
    );
    let c = Config::parse(&[main, a, b], &|_| None).expect("valid");
    assert_eq!(c.mode, Mode::Audit);
    assert_eq!(c.scope.exempt_users, ["breakglass"]);
    assert_eq!(c.policy.default_action, Action::Deny);
    let names: Vec<_> = c.policy.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["netops-ip", "base"]);
    assert_eq!(req("/usr/sbin/ip", &["ip"]).name(&c), "netops-ip");
    assert_eq!(c.sources.len(), 3);
}

#[test]
fn unnamed_rules_are_named_by_file_and_line() {
    let c = Config::parse(
        &[Source::new("/etc/x/config.toml", "\n[[rules]]\naction = \"allow\"\n")],
        &|_| None,
    )
    .expect("valid");
    assert_eq!(c.policy.rules[0].name, "config.toml:2");
}

fn only_problem(e: &ConfigError) -> &Problem {
    assert_eq!(e.problems.len(), 1, "{e}");
    &e.problems[0]
}

#[test]
fn syntax_error_is_located() {
    let e = err("mode = \"enforce\"\nthis is not toml\n");
    let p = only_problem(&e);
    assert_eq!((p.location.file.as_str(), p.location.line), ("test.toml", 2));
}

#[test]
fn unknown_key_is_refused_with_its_location() {
    let e = err("[[rules]]\naction = \"allow\"\nexecutable = \"/bin/ls\"\n");
    let p = only_problem(&e);
    assert_eq!((p.location.line, p.location.column), (3, 1));
    assert!(p.message.contains("unknown field"), "{}", p.message);
}

#[test]
fn bad_values_are_located_on_the_value() {
    let e = err("mode = \"strict\"\n");
    let p = only_problem(&e);
    assert_eq!((p.location.line, p.location.column), (1, 8));
    assert!(p.message.contains("enforce"), "{}", p.message);
    let e = err("[[rules]]\naction = \"permit\"\n");
    assert_eq!(only_problem(&e).location.line, 2);
    let e = err("deny-errno = \"EIO\"\n");
    assert!(only_problem(&e).message.contains("EACCES"));
}

#[test]
fn semantic_errors_in_rules_are_located() {
    let e = err("[[rules]]\nexe = [\"/usr/bin/ls\", \"relative/x\"]\naction = \"allow\"\n");
    let p = only_problem(&e);
    assert_eq!((p.location.line, p.location.column), (2, 23));
    let e = err("[[rules]]\ncmdline = '(unclosed'\naction = \"allow\"\n");
    assert!(only_problem(&e).message.contains("invalid cmdline regex"));
    let e = err("[[rules]]\nargs = [\"**\", \"x\"]\naction = \"deny\"\n");
    assert_eq!(only_problem(&e).location.line, 2);
    let e = err("[[rules]]\nusers = []\naction = \"deny\"\n");
    assert!(only_problem(&e).message.contains("empty list"));
    let e = err("[[rules]]\nexe = \"/bin/ls\"\n");
    assert!(only_problem(&e).message.contains("no action"));
    let e = err("[[rules]]\naction = \"allow\"\nmessage = \"hi\"\n");
    assert!(only_problem(&e).message.contains("only shown when a rule denies"));
    let e = err("[[rules]]\nname = \"has space\"\naction = \"allow\"\n");
    assert!(only_problem(&e).message.contains("rule name"));
}

#[test]
fn duplicate_rule_names_are_refused() {
    let e = err("[[rules]]\nname = \"a\"\naction = \"allow\"\n[[rules]]\nname = \"a\"\naction = \"deny\"\n");
    let p = only_problem(&e);
    assert!(p.message.contains("more than once"));
}

#[test]
fn every_problem_of_every_file_is_reported() {
    let a = Source::new("a.toml", "mode = 1\n");
    let b = Source::new("b.toml", "[[rules]]\naction = \"x\"\n[[rules]]\nexe = \"y\"\naction = \"deny\"\n");
    let e = Config::parse(&[a, b], &|_| None).expect_err("invalid");
    let files: Vec<_> = e.problems.iter().map(|p| p.location.file.as_str()).collect();
    assert_eq!(files, ["a.toml", "b.toml", "b.toml"], "{e}");
}

#[test]
fn log_bounds_are_checked() {
    let f = err("[log]\nformat = \"json\"\n");
    assert!(only_problem(&f).message.contains("log.format must be one of"), "{}", only_problem(&f).message);
    let e = err("[log]\nargv-max = 10\n");
    assert!(only_problem(&e).message.contains("argv-max"));
    let e = err("[log]\nsocket = \"dev/log\"\n");
    assert!(only_problem(&e).message.contains("absolute"));
}

#[test]
fn symlinked_pattern_directories_are_resolved_by_the_caller() {
    let canon = |p: &str| (p == "/bin").then(|| "/usr/bin".to_string());
    let c = Config::parse(
        &[Source::new("t", "[[rules]]\nexe = \"/bin/ls\"\naction = \"allow\"\n")],
        &canon,
    )
    .expect("valid");
    assert_eq!(req("/usr/bin/ls", &["ls"]).decide(&c).action, Action::Allow);
}

#[test]
fn tacacs_servers_parse_with_defaults_and_tls() {
    let c = ok(r#"
        [tacacs]
        key-file = "/etc/sw/key"
        timeout-ms = 3000
        cache-ttl-s = 60
        [[tacacs.servers]]
        host = "192.0.2.10"
        [[tacacs.servers]]
        host = "tacacs.example.net"
        tls = { ca-file = "/etc/sw/ca.pem" }
        [[tacacs.servers]]
        host = "2001:db8::1"
        port = 4949
        timeout-ms = 500
        key-file = "/etc/sw/other"
    "#);
    let t = &c.tacacs;
    assert_eq!(t.servers.len(), 3);
    assert_eq!((t.servers[0].port, t.servers[0].timeout), (49, std::time::Duration::from_secs(2)));
    assert_eq!(t.servers[1].port, 300);
    assert!(t.servers[1].tls.is_some());
    assert_eq!(t.servers[2].name(), "[2001:db8::1]:4949");
    assert_eq!(t.timeout, std::time::Duration::from_secs(3));
    assert_eq!(t.cache_ttl, Some(std::time::Duration::from_secs(60)));
    assert_eq!(t.service, "shell");
}

#[test]
fn a_plain_tacacs_server_needs_a_secret() {
    let e = err("[[tacacs.servers]]\nhost = \"192.0.2.1\"\n");
    let p = only_problem(&e);
    assert!(p.message.contains("no key-file"), "{}", p.message);
    assert_eq!(p.location.line, 1);
    // TLS alone is enough.
    ok("[[tacacs.servers]]\nhost = \"h\"\ntls = { ca-file = \"/ca.pem\" }\n");
}

#[test]
fn tacacs_values_are_checked() {
    let e = err("[tacacs]\npriv-lvl = 16\nkey-file = \"relative\"\n");
    assert_eq!(e.problems.len(), 2, "{e}");
    let e = err("[tacacs]\nkey-file = \"/k\"\n[[tacacs.servers]]\nhost = \"h\"\ntls = { ca-file = \"/ca\", client-cert = \"/c\" }\n");
    assert!(only_problem(&e).message.contains("go together"), "{e}");
}

#[test]
fn fallback_rules_decide_when_nobody_answers() {
    let c = ok(r#"
        default = "authorize"
        [[fallback]]
        name = "fallback-ls"
        exe = "/usr/bin/ls"
        action = "allow"
    "#);
    let r = req("/usr/bin/ls", &["ls"]);
    assert_eq!(r.decide(&c).action, Action::Authorize);
    let argv = vec![b"ls".to_vec()];
    let fb = c.policy.decide_fallback(&Request {
        user: "alice", groups: &[], target_user: "alice", service: "sshd",
        exe: b"/usr/bin/ls", links: &[], kind: ExeKind::File, dynamic_loader: false,
        loader_env: None, traced: false, foreign_user_namespace: false,
        untrusted_library_path: None, argv: &argv,
    });
    assert_eq!(fb.map(|(_, d)| d.action), Some(Action::Allow));
    let e = err("[[fallback]]\naction = \"authorize\"\n");
    assert!(only_problem(&e).message.contains("cannot authorize"));
}

#[test]
fn isolation_blocks_parse_and_merge() {
    let c = ok(r#"
        [[isolation]]
        name = "everyone"
        block-syscalls = ["mount", "ptrace", "personality"]
        pids-max = 200
        private-dirs = ["/tmp", "/var/tmp/"]
        [[isolation]]
        name = "contractors"
        groups = ["contractors"]
        memory-max = "512M"
        cpu-max = "25%"
        pids-max = 50
        landlock = { read = ["/"], write = ["/home"], tcp-connect = [443] }
    "#);
    let everyone = c.layers_for("bob", &["users".into()], "sshd");
    assert_eq!(everyone.names, ["everyone"]);
    assert_eq!(everyone.pids_max, Some(200));
    assert_eq!(everyone.private_dirs, ["/tmp", "/var/tmp"]);
    assert!(everyone.block.contains(&Blocked::Syscall("personality".into())));
    assert!(everyone.block.contains(&Blocked::Set(SyscallSet::Mount)));
    let c2 = c.layers_for("eve", &["contractors".into()], "sshd");
    assert_eq!(c2.pids_max, Some(50));
    assert_eq!(c2.memory_max, Some(512 << 20));
    assert_eq!(c2.landlock.len(), 1);
    assert_eq!(c2.landlock[0].tcp_connect.as_deref(), Some(&[443u16][..]));
    assert_eq!(c2.landlock[0].execute, None);
}

#[test]
fn bad_isolation_values_are_located() {
    let e = err("[[isolation]]\nblock-syscalls = [\"Mount!\"]\n");
    assert!(only_problem(&e).message.contains("neither a system call"), "{e}");
    let e = err("[[isolation]]\nblock-syscalls = [\"execve\"]\n");
    assert!(only_problem(&e).message.contains("cannot be blocked"), "{e}");
    let e = err("[[isolation]]\nprivate-dirs = [\"/etc\"]\n");
    assert!(only_problem(&e).message.contains("private-dirs"), "{e}");
    let e = err("[[isolation]]\nmemory-max = \"10K\"\n");
    assert!(only_problem(&e).message.contains("at least 1M"), "{e}");
    let e = err("[[isolation]]\ncpu-max = \"fast\"\n");
    assert!(only_problem(&e).message.contains("cpu-max"), "{e}");
    let e = err("[[isolation]]\nlandlock = { write = [\"home\"] }\n");
    assert_eq!(only_problem(&e).location.line, 2);
}

fn shadowed(text: &str) -> Vec<(String, String)> {
    let c = ok(text);
    let r = &c.policy.rules;
    c.policy.shadowed().into_iter().map(|(i, j)| (r[i].name.clone(), r[j].name.clone())).collect()
}

#[test]
fn a_rule_after_one_that_takes_everything_it_would_is_shadowed() {
    let pair = |a: &str, b: &str| vec![(a.to_owned(), b.to_owned())];
    // The same program, fewer users, an argument condition: never reached.
    assert_eq!(
        shadowed(
            "[[rules]]\nname = \"ops\"\ngroups = [\"ops\", \"dev\"]\nexe = [\"/usr/bin/ls\", \"/usr/bin/cat\"]\naction = \"deny\"\n\
             [[rules]]\nname = \"ops-ls\"\ngroups = [\"ops\"]\nexe = \"/usr/bin/ls\"\nargs = [\"-l\"]\naction = \"allow\"\n"
        ),
        pair("ops-ls", "ops")
    );
    // A directory takes the files in it; a rule without conditions takes everything.
    assert_eq!(
        shadowed("[[rules]]\nname = \"bin\"\nexe = \"/usr/bin/\"\naction = \"allow\"\n[[rules]]\nname = \"ls\"\nexe = \"/usr/bin/ls\"\naction = \"allow\"\n"),
        pair("ls", "bin")
    );
    assert_eq!(
        shadowed("[[rules]]\nname = \"all\"\naction = \"deny\"\n[[rules]]\nname = \"id\"\nusers = [\"a\"]\nexe = \"/usr/bin/id\"\naction = \"allow\"\n"),
        pair("id", "all")
    );
}

#[test]
fn a_rule_that_still_decides_something_is_not_shadowed() {
    for text in [
        // The later rule is for users the earlier one does not name.
        "[[rules]]\nname = \"a\"\nusers = [\"a\"]\nexe = \"/usr/bin/ls\"\naction = \"allow\"\n[[rules]]\nname = \"b\"\nexe = \"/usr/bin/ls\"\naction = \"deny\"\n",
        // The earlier rule has an argument condition the later one lacks.
        "[[rules]]\nname = \"a\"\nexe = \"/usr/bin/ls\"\nargs = [\"-l\"]\naction = \"allow\"\n[[rules]]\nname = \"b\"\nexe = \"/usr/bin/ls\"\naction = \"deny\"\n",
        // An allowance takes a program under its own name only; a denial under any name.
        "[[rules]]\nname = \"a\"\nexe = \"/usr/bin/id\"\naction = \"allow\"\n[[rules]]\nname = \"b\"\nexe = \"/usr/bin/id\"\naction = \"deny\"\n",
        // A file outside the earlier directory.
        "[[rules]]\nname = \"a\"\nexe = \"/usr/bin/\"\naction = \"allow\"\n[[rules]]\nname = \"b\"\nexe = \"/usr/sbin/ip\"\naction = \"allow\"\n",
        // Different argument globs.
        "[[rules]]\nname = \"a\"\nexe = \"/usr/bin/ls\"\nargs = [\"-l\"]\naction = \"allow\"\n[[rules]]\nname = \"b\"\nexe = \"/usr/bin/ls\"\nargs = [\"-a\"]\naction = \"allow\"\n",
    ] {
        assert_eq!(shadowed(text), Vec::<(String, String)>::new(), "{text}");
    }
}
