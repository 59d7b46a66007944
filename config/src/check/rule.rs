//! Each `[[rules]]` and `[[fallback]]` rule: from [`RawRule`], as written, to a compiled
//! [`Rule`] of the policy. Every condition a rule has is compiled by a function of its own
//! below, which reports its problems at the value's position.
//!
//! # Adding a rule condition
//! A condition is a key of a rule that must hold for the rule to match. Adding one touches
//! three places, in this order:
//! 1. `raw.rs`: the key, as a field of [`RawRule`] (`Option<Spanned<...>>`, so that drop-ins can
//!    leave it out and problems can be located; the field `foo_bar` is the key `foo-bar`).
//! 2. This module: a `compile_*` function that turns the written value into what the policy
//!    matches on (reporting every problem with [`Checker::problem`] at the value's offset),
//!    called from [`check_rule`], whose result goes in the `Rule` it builds.
//! 3. `policy.rs`: the field of [`Rule`] (an `Option`: `None` matches anything) and one more
//!    `&& self.foo_bar.as_ref().is_none_or(...)` line in `Rule::matches`.
//!
//! A pattern type with its own parser belongs in `pattern.rs`, with a variant of
//! [`PatternError`] for each way it can be written wrong. Then add a test
//! to `tests.rs` and describe the key in `docs/admin-guide.md` and the man page
//! `session-wrapper.toml(5)`.

use regex::bytes::{Regex, RegexBuilder};
use toml::Spanned;

use crate::raw::{self, OneOrMany, RawRule};
use crate::{Action, AnyArg, ArgsPattern, Canonicalize, ExePattern, Location, NamePattern, PatternError, Rule};

use super::{valid_block_name, Checker};

/// The largest compiled `cmdline` regex, in bytes.
const CMDLINE_SIZE_LIMIT: usize = 1 << 20;

/// One `[[rules]]` rule.
pub(crate) fn check_rule(raw: Spanned<RawRule>, ck: &mut Checker<'_>, canon: Canonicalize<'_>) -> Option<Rule> {
    let start = raw.span().start;
    let origin = ck.at(start);
    let r = raw.into_inner();
    let mark = ck.mark();
    let name = rule_name(r.name, &origin, ck);
    let action = rule_action(r.action.as_ref(), start, &name, ck);
    if let (Some(Action::Allow), Some(m)) = (action, &r.message) {
        ck.problem(m.span().start, "a message is only shown when a rule denies; remove it");
    }
    let exe = r.exe.map(|e| compile_exe(e, canon, ck));
    let args = r.args.and_then(|a| compile_args(a, ck));
    let names = r.names.and_then(|a| compile_names(a, ck));
    let any_arg = r.any_arg.and_then(|a| compile_any_arg(a, ck));
    let cmdline = r.cmdline.and_then(|c| compile_cmdline(&c, action, ck));
    let users = ck.names(r.users, "users");
    let groups = ck.names(r.groups, "groups");
    let target_users = ck.names(r.target_users, "target-users");
    let services = ck.names(r.services, "services");
    if ck.found_since(mark) {
        return None;
    }
    Some(Rule {
        name,
        origin,
        users,
        groups,
        target_users,
        services,
        exe,
        names,
        args,
        any_arg,
        cmdline,
        action: action?,
        message: r.message.map(Spanned::into_inner),
    })
}

/// One `[[fallback]]` rule: a rule that cannot `authorize`, since it decides when no
/// authorization server answers.
pub(crate) fn check_fallback(raw: Spanned<RawRule>, ck: &mut Checker<'_>, canon: Canonicalize<'_>) -> Option<Rule> {
    let start = raw.span().start;
    let rule = check_rule(raw, ck, canon)?;
    if rule.action == Action::Authorize {
        ck.problem(
            start,
            format!("fallback rule {:?} cannot authorize: it decides when no server answers", rule.name),
        );
        return None;
    }
    Some(rule)
}

/// `name`, by default `FILE:LINE`.
fn rule_name(name: Option<Spanned<String>>, origin: &Location, ck: &mut Checker<'_>) -> String {
    match name {
        Some(n) => {
            if !valid_block_name(n.get_ref()) {
                ck.problem(
                    n.span().start,
                    format!(
                        "rule name {:?} must be 1-64 characters of letters, digits, `.`, `_`, `:`, `-`",
                        n.get_ref()
                    ),
                );
            }
            n.into_inner()
        }
        None => format!("{}:{}", ck.file_base(), origin.line),
    }
}

/// `action`, which every rule must have; a missing one is reported at the rule's start.
fn rule_action(action: Option<&Spanned<String>>, start: usize, name: &str, ck: &mut Checker<'_>) -> Option<Action> {
    match action {
        Some(a) => ck.choice(a, "action", Action::parse, "\"allow\", \"deny\", \"authorize\""),
        None => {
            ck.problem(start, format!("rule {name:?} has no action (allow, deny or authorize)"));
            None
        }
    }
}

/// The value of a pattern compiled, or its problem reported at `offset`.
fn located<T>(compiled: Result<T, PatternError>, offset: usize, ck: &mut Checker<'_>) -> Option<T> {
    compiled.map_err(|e| ck.problem(offset, e)).ok()
}

/// A list of strings with the offset of the list.
fn strings(list: Spanned<Vec<Spanned<String>>>) -> (usize, Vec<String>) {
    let offset = list.span().start;
    (offset, list.into_inner().into_iter().map(Spanned::into_inner).collect())
}

/// A list of strings that must not be empty: as an `or` of conditions, an empty one would
/// match nothing.
fn non_empty_strings(
    list: Spanned<Vec<Spanned<String>>>,
    key: &str,
    ck: &mut Checker<'_>,
) -> Option<(usize, Vec<String>)> {
    let (offset, written) = strings(list);
    if written.is_empty() {
        ck.problem(offset, format!("`{key}` is an empty list, which matches nothing; remove the key to match any"));
        return None;
    }
    Some((offset, written))
}

/// `exe`: one executable pattern or a list; each bad pattern is reported at its own position.
fn compile_exe(value: Spanned<OneOrMany>, canon: Canonicalize<'_>, ck: &mut Checker<'_>) -> Vec<ExePattern> {
    let (offset, list) = raw::exe_patterns(value);
    if list.is_empty() {
        ck.problem(offset, "`exe` is an empty list, which matches nothing; remove the key to match any");
    }
    list.into_iter()
        .filter_map(|p| located(ExePattern::new(p.get_ref(), canon), p.span().start, ck))
        .collect()
}

/// `args`: per-argument globs (an empty list matches a command without arguments).
fn compile_args(list: Spanned<Vec<Spanned<String>>>, ck: &mut Checker<'_>) -> Option<ArgsPattern> {
    let (offset, written) = strings(list);
    located(ArgsPattern::new(&written), offset, ck)
}

/// `names`: globs on the name the program is invoked as.
fn compile_names(list: Spanned<Vec<Spanned<String>>>, ck: &mut Checker<'_>) -> Option<NamePattern> {
    let (offset, written) = non_empty_strings(list, "names", ck)?;
    located(NamePattern::new(&written), offset, ck)
}

/// `any-arg`: globs of which one must match some argument.
fn compile_any_arg(list: Spanned<Vec<Spanned<String>>>, ck: &mut Checker<'_>) -> Option<AnyArg> {
    let (offset, written) = non_empty_strings(list, "any-arg", ck)?;
    located(AnyArg::new(&written), offset, ck)
}

/// `cmdline`: a regular expression over the command line, which a rule that denies may not
/// use.
fn compile_cmdline(c: &Spanned<String>, action: Option<Action>, ck: &mut Checker<'_>) -> Option<Regex> {
    if action == Some(Action::Deny) {
        ck.problem(
            c.span().start,
            "`cmdline` cannot refuse: a regular expression over a command line is walked around by option order, quoting and aliases; refuse with `exe` (a link such as /usr/sbin/reboot names a mode of its target) and `any-arg`, or allow only what is needed",
        );
    }
    RegexBuilder::new(c.get_ref())
        .size_limit(CMDLINE_SIZE_LIMIT)
        .build()
        .map_err(|e| {
            let first = e.to_string().lines().last().unwrap_or("").trim().to_owned();
            ck.problem(c.span().start, format!("invalid cmdline regex: {first}"));
        })
        .ok()
}
