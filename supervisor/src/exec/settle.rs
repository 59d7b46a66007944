//! Settling an exec: from the policy's decision and, for an `authorize`, what the backend said
//! (or the fallback rules, or the fail policy) to "it runs" or "it does not", with the fields
//! that say how. Pure: no system call, unit-tested on its own.

use std::time::Duration;

use session_wrapper_config::{Action, Decision, FailPolicy};

use crate::authz::Outcome;
use crate::log::event::text;
use crate::log::{Field, Value};

/// Runs, or does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It runs (in audit mode, a refusal runs too: see the mode).
    Allow,
    /// It is refused.
    Deny,
}

/// How an `authorize` decision was answered.
#[derive(Debug, Clone)]
pub enum Authz {
    /// Not asked: the policy decided alone (or no backend answer is needed).
    Local,
    /// The backend (or the answer cache) answered.
    Asked {
        /// The backend's name for the log (`tacacs`).
        backend: &'static str,
        /// Its name for people (`TACACS+`).
        label: &'static str,
        /// What it said.
        outcome: Outcome,
        /// How long it took.
        elapsed: Duration,
        /// From the cache.
        cached: bool,
    },
    /// No backend is configured.
    NoBackend,
    /// The program is invoked under a name no link gives it: it cannot be named to a backend.
    Unnamed {
        /// That name, escaped.
        name: String,
    },
}

/// A fallback rule that decided an `authorize` nobody answered.
#[derive(Debug, Clone)]
pub struct Fallback {
    /// Its name.
    pub rule: String,
    /// What it decided.
    pub decision: Decision,
}

/// A settled exec.
#[derive(Debug, Clone)]
pub struct Settled {
    /// Runs or not.
    pub verdict: Verdict,
    /// The decision the log names (`rule=` is always the policy's rule; a fallback rule's
    /// action and message, when one decided).
    pub decision: Decision,
    /// Fields for the decision line (`authz=...`).
    pub authz: Vec<Field>,
    /// Why, when it was not simply the rule.
    pub reason: Option<String>,
}

fn field(key: &'static str, value: impl ToString) -> Field {
    Field::new(key, Value::Bare(value.to_string()))
}

fn verdict_of(action: Action) -> Verdict {
    if action == Action::Allow {
        Verdict::Allow
    } else {
        Verdict::Deny
    }
}

/// Settles `decision`: an `allow` or `deny` stands; an `authorize` takes what `authz` says,
/// else the first matching fallback rule (`fallback` finds it), else `fail_policy`.
pub fn settle(
    decision: Decision,
    authz: Authz,
    fallback: impl FnOnce() -> Option<Fallback>,
    fail_policy: FailPolicy,
) -> Settled {
    let plain = |verdict, decision| Settled { verdict, decision, authz: Vec::new(), reason: None };
    match (decision.action, authz) {
        (Action::Allow, _) => plain(Verdict::Allow, decision),
        (Action::Deny, _) => plain(Verdict::Deny, decision),
        (Action::Authorize, Authz::Unnamed { name }) => Settled {
            verdict: Verdict::Deny,
            decision,
            authz: vec![field("authz", "unnamed")],
            reason: Some(format!(
                "invoked as {name}, a name no link in a root-only directory gives this program: the server cannot be told what runs"
            )),
        },
        (Action::Authorize, Authz::Local | Authz::NoBackend) => {
            no_answer(decision, "no TACACS+ server is configured".into(), Some("TACACS+"), fallback, fail_policy)
        }
        (Action::Authorize, Authz::Asked { backend, label, outcome, elapsed, cached }) => {
            let asked = |status: &str, server: &str| {
                vec![
                    field("authz", if cached { "cache" } else { backend }),
                    field("server", server),
                    field("status", status),
                    field("authz_ms", elapsed.as_millis()),
                ]
            };
            match outcome {
                Outcome::Permit { server, status } => {
                    Settled { verdict: Verdict::Allow, decision, authz: asked(status, &server), reason: None }
                }
                Outcome::Deny { server, status, message } => {
                    let mut decision = decision;
                    if !message.is_empty() {
                        decision.message = Some(message);
                    }
                    Settled { verdict: Verdict::Deny, decision, authz: asked(status, &server), reason: None }
                }
                Outcome::Refused { server, status, reason } => {
                    Settled { verdict: Verdict::Deny, decision, authz: asked(status, &server), reason: Some(reason) }
                }
                Outcome::NoAnswer { tried } => {
                    let why = format!("no {label} decision: {}", tried.join("; "));
                    let mut s = no_answer(decision, why, Some(label), fallback, fail_policy);
                    s.authz.push(field("authz_ms", elapsed.as_millis()));
                    s
                }
                Outcome::Unencodable(why) => no_answer(decision, why, None, fallback, fail_policy),
            }
        }
    }
}

/// The fallback rules, then the fail policy, for an `authorize` nobody answered. `outage`:
/// the backend (by its name for people) could not be reached, which is what a refused user is
/// told, rather than that the policy refuses the command.
fn no_answer(
    decision: Decision,
    why: String,
    outage: Option<&str>,
    fallback: impl FnOnce() -> Option<Fallback>,
    fail_policy: FailPolicy,
) -> Settled {
    let unavailable = |then: String, own: Option<String>| -> Option<String> {
        let label = outage?;
        Some(match own {
            Some(m) => format!("central authorization ({label}) is unavailable; {then}: {m}"),
            None => format!("central authorization ({label}) is unavailable; {then}"),
        })
    };
    if let Some(f) = fallback() {
        // The line names the rule that asked (`rule=`) and the fallback rule that decided.
        let mut message = f.decision.message.or(decision.message);
        if f.decision.action != Action::Allow {
            let then = format!("the offline rule {} refuses this command", f.rule);
            message = unavailable(then, message.clone()).or(message);
        }
        let d = Decision { action: f.decision.action, by: decision.by, message };
        return Settled {
            verdict: verdict_of(d.action),
            decision: d,
            authz: vec![field("authz", "fallback"), field("fallback_rule", &f.rule)],
            reason: Some(why),
        };
    }
    let verdict = match fail_policy {
        FailPolicy::Open => Verdict::Allow,
        FailPolicy::Closed => Verdict::Deny,
    };
    let why = format!("{why}; fail-policy {}", fail_policy.as_str());
    let mut decision = decision;
    if verdict == Verdict::Deny {
        let then = "commands that need it are refused until it is back".to_owned();
        decision.message = unavailable(then, decision.message.clone()).or(decision.message);
    }
    Settled { verdict, decision, authz: vec![field("authz", "fail-policy")], reason: Some(why) }
}

/// The `reason` field's value.
pub fn reason_field(reason: &str) -> Field {
    Field::new("reason", Value::Quoted(text(reason)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use session_wrapper_config::DecidedBy;

    fn decision(action: Action) -> Decision {
        Decision { action, by: DecidedBy::Rule(0), message: Some("from the rule".into()) }
    }

    fn asked(outcome: Outcome) -> Authz {
        Authz::Asked { backend: "tacacs", label: "TACACS+", outcome, elapsed: Duration::from_millis(12), cached: false }
    }

    fn rendered(fields: &[Field]) -> String {
        fields
            .iter()
            .map(|f| match &f.value {
                Value::Bare(v) => format!("{}={v}", f.key),
                Value::Quoted(v) => format!("{}=\"{v}\"", f.key),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn allow_and_deny_stand_whatever_else_is_known() {
        let none = || panic!("no fallback is looked at");
        let s = settle(decision(Action::Allow), Authz::NoBackend, none, FailPolicy::Closed);
        assert_eq!((s.verdict, s.authz.len()), (Verdict::Allow, 0));
        let s = settle(decision(Action::Deny), Authz::Local, || None, FailPolicy::Open);
        assert_eq!(s.verdict, Verdict::Deny);
    }

    #[test]
    fn the_backend_decides_an_authorize() {
        let permit = Outcome::Permit { server: "192.0.2.10:49".into(), status: "PASS_ADD" };
        let s = settle(decision(Action::Authorize), asked(permit), || None, FailPolicy::Closed);
        assert_eq!(s.verdict, Verdict::Allow);
        assert_eq!(rendered(&s.authz), "authz=tacacs server=192.0.2.10:49 status=PASS_ADD authz_ms=12");
        let deny = Outcome::Deny { server: "s:49".into(), status: "FAIL", message: "not you".into() };
        let s = settle(decision(Action::Authorize), asked(deny), || None, FailPolicy::Open);
        assert_eq!((s.verdict, s.decision.message.as_deref()), (Verdict::Deny, Some("not you")));
        let follow = Outcome::Refused { server: "s:49".into(), status: "FOLLOW", reason: "deprecated".into() };
        let s = settle(decision(Action::Authorize), asked(follow), || None, FailPolicy::Open);
        assert_eq!((s.verdict, s.reason.as_deref()), (Verdict::Deny, Some("deprecated")));
        assert!(rendered(&s.authz).contains("status=FOLLOW"));
    }

    #[test]
    fn without_an_answer_the_fallback_rules_then_the_fail_policy_decide() {
        let none = Outcome::NoAnswer { tried: vec!["s:49: timed out".into()] };
        let allow = || Some(Fallback { rule: "ro".into(), decision: Decision { action: Action::Allow, by: DecidedBy::Rule(3), message: None } });
        let s = settle(decision(Action::Authorize), asked(none.clone()), allow, FailPolicy::Closed);
        assert_eq!(s.verdict, Verdict::Allow);
        assert_eq!(s.decision.by, DecidedBy::Rule(0), "rule= names the rule that asked");
        assert_eq!(rendered(&s.authz), "authz=fallback fallback_rule=ro authz_ms=12");
        assert_eq!(s.reason.as_deref(), Some("no TACACS+ decision: s:49: timed out"));
        let s = settle(decision(Action::Authorize), asked(none.clone()), || None, FailPolicy::Open);
        assert_eq!((s.verdict, rendered(&s.authz).as_str()), (Verdict::Allow, "authz=fail-policy authz_ms=12"));
        let s = settle(decision(Action::Authorize), asked(none), || None, FailPolicy::Closed);
        assert_eq!(s.verdict, Verdict::Deny);
        assert!(s.reason.as_deref().is_some_and(|r| r.ends_with("; fail-policy closed")));
        let s = settle(decision(Action::Authorize), Authz::NoBackend, || None, FailPolicy::Closed);
        assert_eq!(s.reason.as_deref(), Some("no TACACS+ server is configured; fail-policy closed"));
    }

    #[test]
    fn a_user_refused_for_an_outage_is_told_so_not_that_the_policy_refuses() {
        let none = Outcome::NoAnswer { tried: vec!["s:49: no answer in time".into()] };
        let plain = Decision { action: Action::Authorize, by: DecidedBy::Rule(0), message: None };
        let s = settle(plain.clone(), asked(none.clone()), || None, FailPolicy::Closed);
        assert_eq!(
            s.decision.message.as_deref(),
            Some("central authorization (TACACS+) is unavailable; commands that need it are refused until it is back")
        );
        let deny = || Some(Fallback { rule: "offline".into(), decision: Decision { action: Action::Deny, by: DecidedBy::Rule(1), message: None } });
        let s = settle(plain.clone(), asked(none.clone()), deny, FailPolicy::Open);
        assert_eq!(s.verdict, Verdict::Deny);
        assert_eq!(
            s.decision.message.as_deref(),
            Some("central authorization (TACACS+) is unavailable; the offline rule offline refuses this command")
        );
        // A command that cannot be described is not an outage.
        let s = settle(plain, asked(Outcome::Unencodable("too long".into())), || None, FailPolicy::Closed);
        assert_eq!(s.decision.message, None);
    }

    #[test]
    fn a_program_under_a_name_no_link_gives_it_is_refused_whatever_the_fail_policy() {
        let s = settle(decision(Action::Authorize), Authz::Unnamed { name: "xreboot".into() }, || None, FailPolicy::Open);
        assert_eq!((s.verdict, rendered(&s.authz).as_str()), (Verdict::Deny, "authz=unnamed"));
        assert!(s.reason.as_deref().is_some_and(|r| r.starts_with("invoked as xreboot")));
    }
}
