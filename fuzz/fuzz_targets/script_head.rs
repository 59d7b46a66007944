//! The `#!` parser (what the kernel's binfmt_script would run) and the log/terminal escaping,
//! on arbitrary bytes: no panic; escaped text is one line without control characters.
#![no_main]
use libfuzzer_sys::fuzz_target;
use session_wrapper::sys::exefile::{parse_script_head, ScriptHead};
use session_wrapper_config::text::{escape, escape_argv};

fuzz_target!(|data: &[u8]| {
    if let ScriptHead::Script(s) = parse_script_head(data) {
        assert!(!s.interpreter.is_empty());
        assert!(!s.interpreter.iter().any(|&b| b == 0 || b == b'\n' || b == b' ' || b == b'\t'));
    }
    let e = escape(data);
    assert!(!e.chars().any(|c| c.is_control() || c == ' ' || c == '"' && !e.contains("\\\"")));
    let argv: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    let (t, _) = escape_argv(&argv, 64);
    assert!(t.len() <= 64 || argv.is_empty());
});
