//! Turning bytes from a target process into text that is safe in a log line or on a terminal.
//!
//! Arguments and paths are bytes, not UTF-8. [`escape`] keeps printable ASCII (and valid
//! printable UTF-8) as is and writes everything else as `\xNN`, so that a log line stays one
//! line, a `key="value"` field cannot be closed early, and a terminal receives no control
//! sequence. Spaces become `\x20` so that argument boundaries in an escaped argv stay visible.

use std::fmt::Write;

/// Appends the escaped form of `bytes` to `out`.
pub fn escape_into(out: &mut String, bytes: &[u8]) {
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                push_str_escaped(out, s);
                return;
            }
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                // `valid_up_to` guarantees that `good` is UTF-8.
                push_str_escaped(out, std::str::from_utf8(good).unwrap_or(""));
                let n = e.error_len().unwrap_or(bad.len()).max(1).min(bad.len());
                for b in &bad[..n] {
                    let _ = write!(out, "\\x{b:02x}");
                }
                rest = &bad[n..];
            }
        }
    }
}

fn push_str_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            ' ' => out.push_str("\\x20"),
            c if c.is_ascii_graphic() => out.push(c),
            c if !c.is_ascii() && !c.is_control() && !c.is_whitespace() => out.push(c),
            c => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\x{b:02x}");
                }
            }
        }
    }
}

/// The escaped form of `bytes`.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    escape_into(&mut s, bytes);
    s
}

/// The escaped arguments joined by single spaces, cut to at most `max` bytes (on a character
/// boundary) with `...` appended when cut. Returns the text and whether it was cut.
pub fn escape_argv<A: AsRef<[u8]>>(argv: &[A], max: usize) -> (String, bool) {
    let mut out = String::new();
    for (i, a) in argv.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        escape_into(&mut out, a.as_ref());
        if out.len() > max {
            break;
        }
    }
    if out.len() > max {
        let mut cut = max.saturating_sub(3);
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str("...");
        (out, true)
    } else {
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_is_kept_and_the_rest_is_hex() {
        assert_eq!(escape(b"ls"), "ls");
        assert_eq!(escape(b"a b"), "a\\x20b");
        assert_eq!(escape(b"\"q\\"), "\\\"q\\\\");
        assert_eq!(escape(b"\x1b[31m\n"), "\\x1b[31m\\x0a");
        assert_eq!(escape(b"\xff\xfeok"), "\\xff\\xfeok");
        assert_eq!(escape("café".as_bytes()), "café");
        assert_eq!(escape(b"\xc3"), "\\xc3");
        // A Unicode line separator would break a line in some viewers.
        assert_eq!(escape("a\u{2028}".as_bytes()), "a\\xe2\\x80\\xa8");
    }

    #[test]
    fn argv_is_joined_and_bounded_on_a_character_boundary() {
        let (s, cut) = escape_argv(&["ls", "-l", "my file"], 100);
        assert_eq!(s, "ls -l my\\x20file");
        assert!(!cut);
        let long = vec!["é".repeat(100)];
        let (s, cut) = escape_argv(&long, 64);
        assert!(cut);
        assert!(s.len() <= 64 && s.ends_with("..."));
    }
}
