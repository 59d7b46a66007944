//! `session-wrapper test`: a policy's test cases. Each case is a login user (with the groups
//! it is given), a PAM service, a target user and a command; it expects a decision and, if it
//! says so, the rule that makes it. Each command is decided exactly as `session-wrapper
//! explain` decides it, through the supervisor's own path: the program found in `PATH`, its
//! real file, the links it is invoked through and its `#!` chain worked out on this system
//! ([`plan_command`]), then [`crate::exec::decide::decide_plan`].
//!
//! A case file:
//! ```toml
//! config = "config.toml"      # optional, relative to this file; --config overrides it
//!
//! [[case]]
//! name = "operators restart nginx as root"
//! user = "alice"
//! groups = ["netops"]         # the login user's groups (none are looked up)
//! service = "sudo"            # default "sshd"
//! target-user = "root"        # default: the user
//! command = ["systemctl", "restart", "nginx"]
//! expect = "allow"            # allow, deny or authorize
//! rule = "netops-root-restart"   # optional
//! # exe = "/tmp/tool"         # the real file, for a program this system does not have
//! ```

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use session_wrapper_config::{Action, Config, DecidedBy, Decision, ExeKind};

use crate::exec::decide::{self, DecidedOn, Subject};
use crate::sys::exefile::Loaders;
use crate::sys::resolve::{self, Asker, ExecPlan};
use crate::sys::users::LoginUser;

/// A case file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CaseFile {
    /// The configuration the cases are about, relative to the case file.
    pub config: Option<PathBuf>,
    /// The cases.
    #[serde(default)]
    pub case: Vec<Case>,
}

/// One case.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Case {
    /// What it is about.
    pub name: Option<String>,
    /// The login user.
    pub user: String,
    /// The login user's groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The PAM service.
    #[serde(default = "default_service")]
    pub service: String,
    /// The effective user at the exec.
    pub target_user: Option<String>,
    /// The command and its arguments; the program is found in `PATH` unless it has a `/`.
    pub command: Vec<String>,
    /// The real file that runs, for a program that is not on this system (`/tmp/tool`): then
    /// nothing is looked up (no links, no `#!` chain).
    pub exe: Option<String>,
    /// The expected decision.
    pub expect: Expect,
    /// The rule expected to make it (`default`, `guard:NAME`).
    pub rule: Option<String>,
}

fn default_service() -> String {
    "sshd".into()
}

/// An expected decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[allow(missing_docs)]
pub enum Expect {
    Allow,
    Deny,
    Authorize,
}

impl Expect {
    fn action(self) -> Action {
        match self {
            Expect::Allow => Action::Allow,
            Expect::Deny => Action::Deny,
            Expect::Authorize => Action::Authorize,
        }
    }
}

impl CaseFile {
    /// Reads and parses a case file.
    ///
    /// # Errors
    /// The file cannot be read, or is not a case file (with the line and column).
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let file: CaseFile =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if file.case.is_empty() {
            return Err(format!("{}: no [[case]]", path.display()));
        }
        if let Some(c) = file.case.iter().find(|c| c.command.is_empty()) {
            return Err(format!(
                "{}: case {:?} has an empty command",
                path.display(),
                c.name
            ));
        }
        Ok(file)
    }
}

/// The program `name` runs: `name` itself when it has a slash, else the first file of that
/// name in `$PATH` (default `/usr/bin:/bin`), as a shell finds it; `name` when there is none.
pub fn find_program(name: &OsString) -> OsString {
    if name.as_bytes().contains(&b'/') {
        return name.clone();
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map_or_else(|| name.clone(), PathBuf::into_os_string)
}

/// What an exec of `program` with `argv` by this process would run, as the supervisor works
/// it out: the file, its `#!` interpreters, the links it was reached through.
///
/// # Errors
/// The errno of a lookup, or of a `#!` line the kernel refuses.
pub fn plan_command(program: &OsString, argv: &[Vec<u8>]) -> Result<ExecPlan, nix::errno::Errno> {
    let me = Asker {
        tid: nix::unistd::gettid().as_raw(),
    };
    let tgid = std::process::id() as i32;
    let mut plan = resolve::resolve(me, tgid, None, program.as_bytes(), 0).and_then(|named| {
        resolve::plan(
            me,
            tgid,
            named,
            program.as_bytes().to_vec(),
            argv,
            &mut resolve::HeadCache::default(),
        )
    })?;
    plan.find_links(
        &crate::sys::trust::LinkFinder::new(None),
        program.as_bytes(),
        argv,
    );
    Ok(plan)
}

/// What one case gave.
#[derive(Debug)]
pub struct Outcome {
    /// The case's number in its file, from 1.
    pub number: usize,
    /// Whether it holds.
    pub ok: bool,
    /// One line about it.
    pub text: String,
}

/// The name of whoever decided, with where the rule is written.
fn decider(config: &Config, d: &Decision) -> (String, String) {
    let name = config.policy.decider_name(d.by).into_owned();
    let at = match d.by {
        DecidedBy::Rule(i) => config
            .policy
            .rules
            .get(i)
            .map(|r| format!(" (at {})", r.origin))
            .unwrap_or_default(),
        _ => String::new(),
    };
    (name, at)
}

/// Runs every case of `file` against `config`.
pub fn run(config: &Config, file: &CaseFile) -> Vec<Outcome> {
    let loaders = Loaders::discover();
    file.case
        .iter()
        .enumerate()
        .map(|(i, case)| run_case(config, &loaders, i + 1, case))
        .collect()
}

/// Decides case `number` and compares the decision with what it expects.
fn run_case(config: &Config, loaders: &Loaders, number: usize, case: &Case) -> Outcome {
    let label = case.name.clone().unwrap_or_else(|| case.command.join(" "));
    let argv: Vec<Vec<u8>> = case.command.iter().map(|a| a.as_bytes().to_vec()).collect();
    let (d, about) = match decide_case(config, loaders, case, &argv) {
        Ok(decided) => decided,
        Err(why) => {
            return Outcome {
                number,
                ok: false,
                text: format!("{label}: {why}"),
            }
        }
    };
    let (rule, at) = decider(config, &d);
    let got = format!("{} by {rule}{at}{about}", d.action.as_str());
    let ok = d.action == case.expect.action() && case.rule.as_ref().is_none_or(|r| *r == rule);
    let text = if ok {
        format!("{label}: {got}")
    } else {
        let want_rule = case.rule.as_ref().map(|r| format!(" by {r}")).unwrap_or_default();
        format!("{label}: want {}{want_rule}, got {got}", case.expect.action().as_str())
    };
    Outcome { number, ok, text }
}

/// The decision on a case, with what it was about when that is not the program itself (its
/// `#!` interpreter); an error when the command cannot be run here.
fn decide_case(config: &Config, loaders: &Loaders, case: &Case, argv: &[Vec<u8>]) -> Result<(Decision, String), String> {
    let user = LoginUser {
        name: case.user.clone(),
        uid: 0,
        gid: 0,
        gids: Vec::new(),
        groups: case.groups.clone(),
        uid_name: None,
    };
    let target = case.target_user.clone().unwrap_or_else(|| case.user.clone());
    let who = Subject {
        user: &user,
        service: &case.service,
        target_user: &target,
        loader_env: None,
        untrusted_library_path: None,
        traced: false,
        foreign_user_namespace: false,
    };
    if let Some(exe) = &case.exe {
        let file = decide::File {
            path: exe.as_bytes(),
            id: (0, 0),
            kind: ExeKind::File,
            links: &[],
        };
        return Ok((decide::decide_file(config, loaders, &who, file, argv), String::new()));
    }
    let program = find_program(&OsString::from(&case.command[0]));
    let plan = plan_command(&program, argv).map_err(|e| format!("{} cannot be run here: {e}", program.to_string_lossy()))?;
    Ok(match decide::decide_plan(config, loaders, &who, &plan, argv) {
        (d, DecidedOn::Named) => (d, String::new()),
        (d, DecidedOn::Interpreter(i)) => {
            let interpreter = String::from_utf8_lossy(&plan.interpreters[i].file.real_path);
            (d, format!(" about its #! interpreter {interpreter}"))
        }
    })
}

/// The outcomes as text, one line each, then a summary.
pub fn render(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    for o in outcomes {
        out.push_str(&format!(
            "{:<5} {:>3}. {}\n",
            if o.ok { "ok" } else { "FAIL" },
            o.number,
            o.text
        ));
    }
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    out.push_str(&format!(
        "result: {} cases, {failed} failed\n",
        outcomes.len()
    ));
    out
}
