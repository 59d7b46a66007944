//! `session-wrapper replay`: recorded decisions decided again under a candidate policy.
//!
//! The input is the decision lines the supervisor wrote (syslog files such as
//! `/var/log/auth.log`, `journalctl -o cat`, the raw datagrams of the syslog socket): logfmt
//! with percent-encoding, read back with the configuration crate's own parser
//! ([`logfmt_pairs`], [`unescape`], [`unescape_argv`]). A session's `event=session-start` line
//! gives its PAM service and the login user's groups; each decision line gives the rest of the
//! exec's [`Request`]: the target user, the real file (`exe`), the links it is invoked through
//! (`links`), the argument vector and the guards whose facts held (`facts`). The request goes
//! to the candidate's [`session_wrapper_config::Policy::decide`], the same evaluation the
//! supervisor makes.
//!
//! What a line does not hold is never guessed: an argument vector cut to fit the line
//! (`argv_truncated=1`), a missing field, a session whose start is not in the input, groups
//! the candidate needs but the line does not give, a `#!` script the candidate allows (its
//! interpreter's arguments are not in the line) are counted under the reason, with an example.
//!
//! This module is pure: it reads no file and asks nothing of the system (the groups of
//! `--groups-now` come in through [`Replay::new`]).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use session_wrapper_config::text::{logfmt_pairs, unescape, unescape_argv};
use session_wrapper_config::{Action, Config, ExeKind, Guard, Request};

use crate::log::format::SD_ID;

/// Looks up the groups a user has now (`--groups-now`).
pub type GroupsNow<'a> = &'a dyn Fn(&str) -> Option<Vec<String>>;

/// Where a line comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Example {
    /// The file (`-` for stdin).
    pub source: String,
    /// Its line number, from 1.
    pub line: usize,
    /// The line as read.
    pub text: String,
}

/// What a session's start line says.
#[derive(Debug, Clone)]
struct SessionStart {
    service: String,
    groups: Option<Vec<String>>,
}

/// One kind of change: the decision as recorded, the decision now, the rule that decides now
/// and the one that decided then, the login user and the program.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct ChangeKey {
    /// `allow` or `deny`, as recorded.
    pub from: String,
    /// `allow`, `deny` or `authorize`, under the candidate.
    pub to: String,
    /// The rule that decides under the candidate (`default`, `guard:NAME`).
    pub rule: String,
    /// The rule that decided then.
    pub was_rule: String,
    /// The login user.
    pub user: String,
    /// The real file (escaped as in the line).
    pub program: String,
}

/// A group of lines: how many, and the first.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Counted {
    /// How many lines.
    pub count: usize,
    /// The first of them.
    pub example: Example,
}

/// What replaying gave.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    /// Decision lines read.
    pub decisions: usize,
    /// Sessions whose start was read.
    pub sessions: usize,
    /// Decided again with the same outcome.
    pub unchanged: usize,
    /// Decided again with another outcome, grouped.
    #[serde(serialize_with = "changes_as_list")]
    pub changes: BTreeMap<ChangeKey, Counted>,
    /// Lines that cannot be decided again, by reason.
    pub undecidable: BTreeMap<String, Counted>,
    /// Execs that ran (allowed, or decided in audit mode) which the candidate denies.
    pub refused_that_ran: usize,
    /// Of those, the ones that were denied in audit mode already (unchanged denials).
    pub still_denied_in_audit: usize,
}

fn changes_as_list<S: serde::Serializer>(
    m: &BTreeMap<ChangeKey, Counted>,
    s: S,
) -> Result<S::Ok, S::Error> {
    #[derive(serde::Serialize)]
    struct Change<'a> {
        #[serde(flatten)]
        key: &'a ChangeKey,
        count: usize,
        example: &'a Example,
    }
    s.collect_seq(m.iter().map(|(key, c)| Change {
        key,
        count: c.count,
        example: &c.example,
    }))
}

impl Report {
    /// Changed execs, all groups together.
    pub fn changed(&self) -> usize {
        self.changes.values().map(|c| c.count).sum()
    }

    /// Lines that could not be decided again.
    pub fn undecided(&self) -> usize {
        self.undecidable.values().map(|c| c.count).sum()
    }

    /// Whether nothing that ran would be refused: `replay`'s exit status 0.
    pub fn ok(&self) -> bool {
        self.refused_that_ran == 0
    }
}

/// Decides recorded lines again, one at a time, in the order they were logged.
pub struct Replay<'a> {
    candidate: &'a Config,
    groups_now: Option<GroupsNow<'a>>,
    sessions: HashMap<String, SessionStart>,
    report: Report,
}

impl std::fmt::Debug for Replay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("report", &self.report)
            .finish_non_exhaustive()
    }
}

/// Why a line cannot be decided again.
type Why = String;

impl<'a> Replay<'a> {
    /// A replay against `candidate`; with `groups_now`, the login users' groups are those it
    /// gives rather than those recorded.
    pub fn new(candidate: &'a Config, groups_now: Option<GroupsNow<'a>>) -> Self {
        Replay {
            candidate,
            groups_now,
            sessions: HashMap::new(),
            report: Report::default(),
        }
    }

    /// Reads one line. Lines that are not the supervisor's (other programs in auth.log) are
    /// skipped.
    pub fn line(&mut self, source: &str, number: usize, text: &str) {
        // An RFC 5424 line carries the fields as structured data, where `]` is written `\]`
        // (the escaping of the values never writes a backslash of its own).
        let fields = if text.contains(&format!("[{SD_ID} ")) {
            Cow::Owned(text.replace("\\]", "]"))
        } else {
            Cow::Borrowed(text)
        };
        let pairs = logfmt_pairs(&fields);
        let field = |k: &str| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        let Some(session) = field("session") else {
            return;
        };
        if field("event") == Some("session-start") {
            let start = SessionStart {
                service: field("service").map(text_of).unwrap_or_default(),
                groups: field("groups").map(|g| {
                    unescape_argv(g)
                        .iter()
                        .map(|g| String::from_utf8_lossy(g).into_owned())
                        .collect()
                }),
            };
            self.sessions.insert(session.to_owned(), start);
            self.report.sessions += 1;
            return;
        }
        let Some(recorded) = field("decision") else {
            return;
        };
        self.report.decisions += 1;
        let example = Example {
            source: source.to_owned(),
            line: number,
            text: text.to_owned(),
        };
        match self.decide(session, &field) {
            Err(why) => count(self.report.undecidable.entry(why), example),
            Ok((to, rule)) => {
                let ran = recorded == "allow" || field("mode") == Some("audit");
                let ran = ran && !matches!(field("result"), Some("killed" | "died"));
                if to == Action::Deny && ran {
                    self.report.refused_that_ran += 1;
                    if recorded == "deny" {
                        self.report.still_denied_in_audit += 1;
                    }
                }
                let was_rule = field("rule").unwrap_or("-");
                if to.as_str() == recorded || (to == Action::Authorize && rule == was_rule) {
                    self.report.unchanged += 1;
                    return;
                }
                let key = ChangeKey {
                    from: recorded.to_owned(),
                    to: to.as_str().to_owned(),
                    rule,
                    was_rule: was_rule.to_owned(),
                    user: field("user").unwrap_or("-").to_owned(),
                    program: field("exe").unwrap_or("-").to_owned(),
                };
                count(self.report.changes.entry(key), example);
            }
        }
    }

    /// The candidate's decision of one decision line, and the rule that makes it.
    fn decide<'f>(
        &self,
        session: &str,
        field: &dyn Fn(&str) -> Option<&'f str>,
    ) -> Result<(Action, String), Why> {
        let need = |k: &str| field(k).ok_or_else(|| format!("no {k}= field"));
        for k in ["exe", "argv", "links", "user", "target"] {
            if field(&format!("{k}_truncated")) == Some("1") {
                return Err(format!("{k} cut to fit the line ({k}_truncated=1)"));
            }
        }
        let user = text_of(need("user")?);
        let target = text_of(need("target")?);
        let exe = unescape(need("exe")?);
        let argv = unescape_argv(need("argv")?);
        let argc: usize = need("argc")?
            .parse()
            .map_err(|_| "argc= is not a number".to_owned())?;
        if argv.len() != argc {
            return Err("argv= does not hold argc arguments".to_owned());
        }
        let links = field("links").map(unescape_argv).unwrap_or_default();
        let mut facts = Vec::new();
        for f in field("facts").into_iter().flat_map(|f| f.split(',')) {
            facts.push(Guard::parse(f).ok_or_else(|| format!("unknown fact {f:?} in facts="))?);
        }
        let start = self
            .sessions
            .get(session)
            .ok_or_else(|| "its session's start line is not in the input".to_owned())?;
        let groups = match (self.groups_now, &start.groups) {
            (Some(now), _) => now(&user).ok_or_else(|| "the user does not exist now (--groups-now)".to_owned())?,
            (None, Some(g)) => g.clone(),
            (None, None) if self.candidate.policy.uses_groups() => {
                return Err("the candidate's rules test groups, and its session-start line has none (--groups-now looks them up)".into())
            }
            (None, None) => Vec::new(),
        };
        let fact = |g: Guard| facts.contains(&g);
        let kind = if fact(Guard::Memfd) {
            ExeKind::Memfd
        } else if fact(Guard::Deleted) {
            ExeKind::Deleted
        } else if fact(Guard::ForeignMount) {
            ExeKind::Foreign
        } else {
            ExeKind::File
        };
        let req = Request {
            user: &user,
            groups: &groups,
            target_user: &target,
            service: &start.service,
            exe: &exe,
            links: &links,
            kind,
            dynamic_loader: fact(Guard::DynamicLoader),
            // The environment is not in the line: a variable the recording configuration's
            // list named was set, and is taken as one the candidate's list names too (unless
            // it names none).
            loader_env: (fact(Guard::LoaderEnv)
                && !self.candidate.policy.guards.loader_env.is_empty())
            .then_some("(recorded)"),
            traced: fact(Guard::Traced),
            foreign_user_namespace: fact(Guard::UserNamespaces),
            untrusted_library_path: fact(Guard::LibraryPath).then_some("(recorded)"),
            argv: &argv,
        };
        let d = self.candidate.policy.decide(&req);
        if d.action != Action::Deny && field("interpreter").is_some() {
            return Err("a #! script the candidate does not deny: its interpreter's arguments are not in the line".into());
        }
        Ok((
            d.action,
            self.candidate.policy.decider_name(d.by).into_owned(),
        ))
    }

    /// What the lines gave.
    pub fn finish(self) -> Report {
        self.report
    }
}

/// An escaped word or text as a string (names are UTF-8 in practice; anything else is kept
/// escaped as it was written).
fn text_of(v: &str) -> String {
    String::from_utf8(unescape(v)).unwrap_or_else(|_| v.to_owned())
}

fn count<K: Ord>(entry: std::collections::btree_map::Entry<'_, K, Counted>, example: Example) {
    entry
        .and_modify(|c| c.count += 1)
        .or_insert(Counted { count: 1, example });
}

/// The report as text: a summary line, each change with its count and an example, each reason
/// a line could not be decided again.
pub fn render(report: &Report, candidate: &str) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "replayed {} decisions of {} sessions against {candidate}: {} unchanged, {} changed, {} cannot be decided again",
        report.decisions,
        report.sessions,
        report.unchanged,
        report.changed(),
        report.undecided()
    );
    for (k, c) in &report.changes {
        let _ = writeln!(
            out,
            "{} -> {}  {}x  rule {} (was {})  user {}  program {}",
            k.from, k.to, c.count, k.rule, k.was_rule, k.user, k.program
        );
        let _ = writeln!(
            out,
            "  e.g. {}:{}: {}",
            c.example.source, c.example.line, c.example.text
        );
    }
    for (why, c) in &report.undecidable {
        let _ = writeln!(out, "cannot decide again  {}x  {why}", c.count);
        let _ = writeln!(
            out,
            "  e.g. {}:{}: {}",
            c.example.source, c.example.line, c.example.text
        );
    }
    if report.ok() {
        let _ = writeln!(out, "ok: nothing that ran would be refused");
    } else {
        let _ = writeln!(
            out,
            "NOT ok: {} execs that ran would be refused ({} of them already denied in audit mode)",
            report.refused_that_ran, report.still_denied_in_audit
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_wrapper_config::Source;

    /// A merged-/usr system where `reboot` is systemctl.
    fn config(text: &str) -> Config {
        let canon = |p: &str| (p == "/usr/sbin/reboot").then(|| "/usr/bin/systemctl".to_owned());
        Config::parse(&[Source::new("candidate.toml", text)], &canon).expect("config")
    }

    const START: &str = "<86>Dec  3 07:00:00 session-wrapper[9]: session=0a event=session-start user=alice uid=1001 service=su groups=\"alice ops\" rhost=- tty=- leader=5 mode=audit config=\"/c\" isolation=-";

    fn decision(decision: &str, rule: &str, exe: &str, argv: &str, extra: &str) -> String {
        let argc = argv.split(' ').count();
        format!("session=0a decision={decision} rule={rule} mode=audit user=alice uid=1001 target=alice pid=7 ppid=6 tty=- cwd=\"/\" path=\"{exe}\" exe=\"{exe}\"{extra} argc={argc} argv=\"{argv}\" latency_us=3 result=exec")
    }

    fn replay(candidate: &str, lines: &[String]) -> Report {
        let c = config(candidate);
        let mut r = Replay::new(&c, None);
        r.line("day.log", 1, START);
        for (i, l) in lines.iter().enumerate() {
            r.line("day.log", i + 2, l);
        }
        r.finish()
    }

    #[test]
    fn changes_are_grouped_by_rule_user_and_program_with_counts() {
        let lines = [
            decision("allow", "default", "/usr/bin/ls", "ls /", ""),
            decision("allow", "default", "/usr/bin/ls", "ls -l", ""),
            decision("deny", "no-tmp", "/tmp/tool", "/tmp/tool", ""),
            decision("allow", "default", "/usr/bin/id", "id", ""),
        ];
        let r = replay(
            "default = \"allow\"\n[[rules]]\nname = \"no-ls\"\nexe = \"/usr/bin/ls\"\naction = \"deny\"\n",
            &lines,
        );
        assert_eq!(r.decisions, 4);
        assert_eq!(r.unchanged, 1);
        let got: Vec<(String, String, String, usize)> = r
            .changes
            .iter()
            .map(|(k, c)| {
                (
                    k.from.clone() + "->" + &k.to,
                    k.rule.clone(),
                    k.program.clone(),
                    c.count,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "allow->deny".into(),
                    "no-ls".into(),
                    "/usr/bin/ls".into(),
                    2
                ),
                (
                    "deny->allow".into(),
                    "default".into(),
                    "/tmp/tool".into(),
                    1
                ),
            ]
        );
        assert_eq!(r.refused_that_ran, 2);
        assert!(!r.ok());
        assert_eq!(r.changes.values().next().map(|c| c.example.line), Some(2));
    }

    #[test]
    fn rfc_5424_lines_are_read_from_their_structured_data() {
        let c = config("default = \"allow\"\n[[rules]]\nname = \"no-ls\"\nexe = \"/usr/bin/ls\"\nargs = [\"a]\"]\naction = \"deny\"\n");
        let mut r = Replay::new(&c, None);
        r.line("-", 1, "<86>1 2026-12-03T07:00:00+00:00 host session-wrapper 9 session-start [session-wrapper@32473 session=\"0a\" user=\"alice\" service=\"su\" groups=\"alice\"] event=session-start");
        r.line("-", 2, "<86>1 2026-12-03T07:00:01+00:00 host session-wrapper 9 decision [session-wrapper@32473 session=\"0a\" decision=\"allow\" rule=\"default\" mode=\"audit\" user=\"alice\" target=\"alice\" exe=\"/usr/bin/ls\" argc=\"2\" argv=\"ls a\\]\"] decision=allow rule=default");
        let r = r.finish();
        assert_eq!((r.sessions, r.decisions, r.changed()), (1, 1, 1), "{r:?}");
        assert_eq!(
            r.changes.keys().next().map(|k| k.rule.as_str()),
            Some("no-ls")
        );
    }

    #[test]
    fn what_a_line_does_not_hold_is_counted_never_guessed() {
        let mut cut = decision("allow", "default", "/usr/bin/ls", "ls aaaa...", "");
        cut.push_str(" argv_truncated=1");
        let lines = [
            cut,
            decision("allow", "default", "/usr/bin/ls", "ls", "")
                .replace("session=0a", "session=0b"),
            decision(
                "allow",
                "default",
                "/usr/local/bin/s",
                "s",
                " interpreter=\"/usr/bin/bash\"",
            ),
            decision("allow", "default", "/usr/bin/ls", "ls", "")
                .replace(" exe=\"/usr/bin/ls\"", ""),
        ];
        let r = replay("default = \"allow\"\n", &lines);
        assert_eq!(r.undecided(), 4, "{r:?}");
        assert_eq!(r.changed() + r.unchanged, 0);
        let reasons: Vec<&str> = r.undecidable.keys().map(String::as_str).collect();
        assert_eq!(
            reasons,
            vec![
                "a #! script the candidate does not deny: its interpreter's arguments are not in the line",
                "argv cut to fit the line (argv_truncated=1)",
                "its session's start line is not in the input",
                "no exe= field",
            ]
        );
        assert!(r.ok());
    }

    #[test]
    fn recorded_groups_links_and_facts_are_what_the_candidate_decides_on() {
        let lines = [
            decision(
                "allow",
                "default",
                "/usr/bin/systemctl",
                "reboot",
                " links=\"/usr/sbin/reboot\"",
            ),
            decision("deny", "guard:traced", "/usr/bin/id", "id", " facts=traced"),
            decision("allow", "default", "/usr/bin/id", "id -u", ""),
        ];
        let r = replay(
            "default = \"allow\"\n[guards]\ntraced = \"allow\"\n\
             [[rules]]\nname = \"no-reboot\"\nexe = \"/usr/sbin/reboot\"\naction = \"deny\"\n\
             [[rules]]\nname = \"ops-no-id\"\ngroups = [\"ops\"]\nexe = \"/usr/bin/id\"\nargs = [\"-u\"]\naction = \"deny\"\n",
            &lines,
        );
        let got: Vec<(String, String)> = r
            .changes
            .keys()
            .map(|k| (k.from.clone() + "->" + &k.to, k.rule.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("allow->deny".into(), "no-reboot".into()),
                ("allow->deny".into(), "ops-no-id".into()),
                ("deny->allow".into(), "default".into())
            ]
        );
        // Without groups in the start line, a candidate testing groups cannot decide.
        let c = config("[[rules]]\ngroups = [\"ops\"]\naction = \"allow\"\n");
        let mut r = Replay::new(&c, None);
        r.line("-", 1, &START.replace(" groups=\"alice ops\"", ""));
        r.line("-", 2, &lines[2]);
        assert_eq!(r.finish().undecided(), 1);
        let now = |_: &str| Some(vec!["ops".to_owned()]);
        let mut r = Replay::new(&c, Some(&now));
        r.line("-", 1, &START.replace(" groups=\"alice ops\"", ""));
        r.line("-", 2, &lines[2]);
        let r = r.finish();
        assert_eq!((r.undecided(), r.changed()), (0, 0), "{r:?}");
    }
}
