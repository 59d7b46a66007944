//! Turning bytes from a target process into text that is safe in a log line or on a terminal,
//! and back.
//!
//! Arguments and paths are bytes, not UTF-8. The log lines are logfmt (`key=value`, a value in
//! double quotes when it holds a space), and every logfmt parser must read a value back
//! exactly, including the simplest ones that know no backslash escape. So the escaping uses
//! no backslash: [`escape`] keeps printable text (ASCII and printable UTF-8, spaces included)
//! and writes as `%XX` (RFC 3986 percent-encoding, upper-case hex) every byte that is not
//! printable, not UTF-8, or one of `"`, `\` and `%`. A line stays one line, a quoted value
//! cannot be closed early, and a terminal receives no control sequence. [`escape_word`] also
//! encodes the space and `=`, for a value written without quotes and for each argument of an
//! argv, so that argument boundaries survive: split the argv on spaces, then [`unescape`] each
//! argument.

use std::fmt::Write;

/// How a value will be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// Inside double quotes: spaces and `=` are kept.
    Quoted,
    /// A word: spaces and `=` are encoded too.
    Word,
}

/// Appends the escaped form of `bytes` to `out`.
fn escape_into(out: &mut String, bytes: &[u8], context: Context) {
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_str_escaped(out, s, context);
                return;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // `valid_up_to` guarantees that `good` is UTF-8.
                push_str_escaped(out, std::str::from_utf8(good).unwrap_or(""), context);
                let n = e.error_len().unwrap_or(bad.len()).max(1).min(bad.len());
                for b in &bad[..n] {
                    let _ = write!(out, "%{b:02X}");
                }
                rest = &bad[n..];
            }
        }
    }
}

fn push_str_escaped(out: &mut String, s: &str, context: Context) {
    for c in s.chars() {
        let kept = match c {
            '"' | '\\' | '%' => false,
            ' ' | '=' => context == Context::Quoted,
            c if c.is_ascii_graphic() => true,
            c => !c.is_ascii() && !c.is_control() && !c.is_whitespace(),
        };
        if kept {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
}

/// The escaped form of `bytes`, for a value in double quotes (spaces kept).
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    escape_into(&mut s, bytes, Context::Quoted);
    s
}

/// The escaped form of `bytes` as one word: spaces and `=` encoded too.
pub fn escape_word(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    escape_into(&mut s, bytes, Context::Word);
    s
}

/// The bytes an escaped text stands for: every `%XX` decoded. A `%` not followed by two hex
/// digits is kept as it is (the escaping never writes one).
pub fn unescape(text: &str) -> Vec<u8> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// `text` cut to at most `max` bytes, on a character boundary and never inside a `%XX`, with
/// `...` appended when cut. Returns the text and whether it was cut.
pub fn bound(mut text: String, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text, false);
    }
    let mut cut = max.saturating_sub(3);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    // A `%` in one of the two bytes before the cut starts an escape the cut would split.
    if let Some(p) = text[..cut].bytes().rev().take(2).position(|b| b == b'%') {
        cut -= p + 1;
    }
    text.truncate(cut);
    text.push_str("...");
    (text, true)
}

/// Each argument as a word ([`escape_word`]), joined by single spaces, cut to at most `max`
/// bytes ([`bound`]). Returns the text and whether it was cut.
pub fn escape_argv<A: AsRef<[u8]>>(argv: &[A], max: usize) -> (String, bool) {
    let mut out = String::new();
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        escape_into(&mut out, a.as_ref(), Context::Word);
        if out.len() > max {
            break;
        }
    }
    bound(out, max)
}

/// The arguments of an escaped argv ([`escape_argv`], not cut).
pub fn unescape_argv(text: &str) -> Vec<Vec<u8>> {
    if text.is_empty() {
        return Vec::new();
    }
    text.split(' ').map(unescape).collect()
}

/// The `(key, value)` pairs of a logfmt line as this project writes it, in order: a value in
/// double quotes may hold spaces (never a quote: [`escape`] encodes it), values are returned as
/// written (still escaped, without their quotes). Words without `=` (a syslog header) are
/// skipped.
pub fn logfmt_pairs(line: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find(|c: char| c != ' ') {
        rest = &rest[start..];
        let word_end = rest.find([' ', '=']).unwrap_or(rest.len());
        let (key, after) = rest.split_at(word_end);
        let Some(value) = after.strip_prefix('=') else {
            rest = after;
            continue;
        };
        let (v, next) = match value.strip_prefix('"') {
            Some(q) => q.split_once('"').unwrap_or((q, "")),
            None => value.split_once(' ').unwrap_or((value, "")),
        };
        out.push((key, v));
        rest = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_is_kept_and_the_rest_is_percent_encoded() {
        assert_eq!(escape(b"ls"), "ls");
        assert_eq!(escape(b"a b=c"), "a b=c");
        assert_eq!(escape_word(b"a b=c"), "a%20b%3Dc");
        assert_eq!(escape(b"\"q\\%"), "%22q%5C%25");
        assert_eq!(escape(b"\x1b[31m\n"), "%1B[31m%0A");
        assert_eq!(escape(b"\xff\xfeok"), "%FF%FEok");
        assert_eq!(escape("café".as_bytes()), "café");
        assert_eq!(escape(b"\xc3"), "%C3");
        // A Unicode line separator would break a line in some viewers.
        assert_eq!(escape("a\u{2028}".as_bytes()), "a%E2%80%A8");
    }

    #[test]
    fn escaping_is_undone_exactly() {
        let samples: [&[u8]; 6] = [b"plain", b"a b=c", b"\"q\\%", b"\x1b[31m\n\t", b"\xff\xfe\x00ok", "café\u{2028}".as_bytes()];
        for s in samples {
            assert_eq!(unescape(&escape(s)), s, "{s:?}");
            assert_eq!(unescape(&escape_word(s)), s, "{s:?}");
        }
        assert_eq!(unescape("100% sure"), b"100% sure");
    }

    #[test]
    fn logfmt_lines_come_apart_in_order() {
        let line = "<86>Dec  2 20:13:49 session-wrapper[7]: session=01 decision=deny cwd=\"/a b=c\" argv=\"x y\" empty=\"\" n=3";
        assert_eq!(
            logfmt_pairs(line),
            vec![("session", "01"), ("decision", "deny"), ("cwd", "/a b=c"), ("argv", "x y"), ("empty", ""), ("n", "3")]
        );
    }

    #[test]
    fn argv_boundaries_survive() {
        let argv: Vec<&[u8]> = vec![b"printf", b"%s\n", b"my file", b"", b"a=b"];
        let (s, cut) = escape_argv(&argv, 100);
        assert_eq!(s, "printf %25s%0A my%20file  a%3Db");
        assert!(!cut);
        assert_eq!(unescape_argv(&s), argv);
    }

    #[test]
    fn bounds_fall_on_a_character_and_never_inside_an_escape() {
        let long = vec!["é".repeat(100)];
        let (s, cut) = escape_argv(&long, 64);
        assert!(cut);
        assert!(s.len() <= 64 && s.ends_with("..."));
        for max in 4..30 {
            let (s, cut) = bound(escape(b"\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c"), max);
            assert!(cut && s.len() <= max, "{max}: {s}");
            let body = s.trim_end_matches("...");
            assert!(body.len() % 3 == 0 && body.bytes().step_by(3).all(|b| b == b'%'), "{max}: {s}");
        }
    }
}
