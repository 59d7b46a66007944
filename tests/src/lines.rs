//! Reading what the tests collect: the supervisor's log lines (`key=value` words after a
//! syslog header) and the `key=value` lines the attack programs print.

use std::collections::HashMap;

/// The first line containing `needle`; panics, showing every line, when there is none.
pub fn find<'a>(lines: &'a [String], needle: &str) -> &'a String {
    lines
        .iter()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{}", lines.join("\n")))
}

/// Every line containing `needle`.
pub fn lines_with<'a>(lines: &'a [String], needle: &str) -> Vec<&'a String> {
    lines.iter().filter(|l| l.contains(needle)).collect()
}

/// How many lines contain `needle`.
pub fn count(lines: &[String], needle: &str) -> usize {
    lines_with(lines, needle).len()
}

/// The decision lines (those with `decision=`) among `lines`.
pub fn decisions(lines: &[String]) -> Vec<&String> {
    lines.iter().filter(|l| l.contains(" decision=")).collect()
}

/// The word that follows `marker` in `line` (up to the next space): the value of a field when
/// `marker` is ` key=`.
pub fn word_after<'a>(line: &'a str, marker: &str) -> Option<&'a str> {
    line.split(marker).nth(1).and_then(|r| r.split(' ').next())
}

/// The pid in `session-wrapper[PID]:` of a supervisor line.
pub fn supervisor_pid(line: &str) -> i32 {
    line.split("session-wrapper[")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no supervisor pid in {line}"))
}

/// The `key=value` fields of a line (logfmt, as `session_wrapper_config::text::logfmt_pairs`
/// takes it apart), values as written (still escaped). Words without `=` (a syslog header)
/// are skipped.
pub fn fields(line: &str) -> HashMap<String, String> {
    session_wrapper_config::text::logfmt_pairs(line).into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The number in field `k` of [`fields`]; panics when there is none.
pub fn num(f: &HashMap<String, String>, k: &str) -> u64 {
    f.get(k).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("no numeric field {k} in {f:?}"))
}

/// The lines of `text` that start with `key=`, as a map from their `key` field to their
/// `value` field (empty when missing): `results(out, "case", "outcome")` for the
/// `case=NAME outcome=OUTCOME` lines of an attack program.
pub fn results(text: &str, key: &str, value: &str) -> HashMap<String, String> {
    let start = format!("{key}=");
    text.lines()
        .filter(|l| l.starts_with(&start))
        .map(|l| {
            let f = fields(l);
            (f.get(key).cloned().unwrap_or_default(), f.get(value).cloned().unwrap_or_default())
        })
        .collect()
}
