//! What the supervisor learns from an executable file before the kernel runs it: whether it is
//! a `#!` script (and which interpreter the kernel will start), and whether it is the system's
//! dynamic loader run as a program.
//!
//! The `#!` parsing follows the kernel's `binfmt_script`: only the first 256 bytes count; the
//! interpreter is the first word after `#!`, and everything after it on the line, trimmed, is
//! one optional argument. The kernel then runs `interpreter [arg] script argv[1..]`.
//!
//! The dynamic loader is recognised by identity (device and inode) among the loaders this
//! system has: the one named by `/bin/sh`'s `PT_INTERP` and the usual glibc and musl paths.
//! A copy of the loader elsewhere is just another executable, decided by the rules like any
//! other: to run a copy, the policy must already allow executing files the user wrote.

use std::io;
use std::os::unix::fs::MetadataExt;

/// The kernel's `BINPRM_BUF_SIZE`: how much of a file the kernel reads to find `#!`.
pub const BINPRM_BUF_SIZE: usize = 256;

/// A parsed `#!` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shebang {
    /// The interpreter path as written.
    pub interpreter: Vec<u8>,
    /// The optional single argument.
    pub arg: Option<Vec<u8>>,
}

/// How the head of a file reads to the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptHead {
    /// Not a `#!` script.
    NotScript,
    /// A script and its interpreter.
    Script(Shebang),
    /// Starts with `#!` but the kernel refuses it (`ENOEXEC`): no interpreter, or an
    /// interpreter name longer than the buffer.
    Invalid,
}

fn is_blank(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Parses the first bytes of a file as the kernel's `binfmt_script` does. `head` is the start
/// of the file; a file shorter than the kernel's buffer reads as padded with NULs.
pub fn parse_script_head(head: &[u8]) -> ScriptHead {
    let mut buf = [0u8; BINPRM_BUF_SIZE];
    let n = head.len().min(BINPRM_BUF_SIZE);
    buf[..n].copy_from_slice(&head[..n]);
    if !buf.starts_with(b"#!") {
        return ScriptHead::NotScript;
    }
    // The kernel NUL-terminates at the newline, or at the last byte of the buffer when there
    // is none; then only a NUL-terminated string counts.
    let line_end = match buf.iter().position(|&b| b == b'\n') {
        Some(n) => n,
        None => {
            // No newline: refuse a possibly truncated interpreter name, i.e. one not followed
            // by a blank or a NUL inside the buffer.
            let last = BINPRM_BUF_SIZE - 1;
            let Some(start) = buf[2..last].iter().position(|&b| !is_blank(b)).map(|i| i + 2)
            else {
                return ScriptHead::Invalid;
            };
            if !buf[start..last].iter().any(|&b| is_blank(b) || b == 0) {
                return ScriptHead::Invalid;
            }
            last
        }
    };
    let line = &buf[2..line_end];
    let line = &line[..line.iter().position(|&b| b == 0).unwrap_or(line.len())];
    let line = trim_blanks(line);
    let end = line.iter().position(|&b| is_blank(b)).unwrap_or(line.len());
    let (interp, rest) = line.split_at(end);
    if interp.is_empty() {
        return ScriptHead::Invalid;
    }
    let rest = trim_blanks(rest);
    let arg = (!rest.is_empty()).then(|| rest.to_vec());
    ScriptHead::Script(Shebang { interpreter: interp.to_vec(), arg })
}

fn trim_blanks(s: &[u8]) -> &[u8] {
    let a = s.iter().position(|&b| !is_blank(b)).unwrap_or(s.len());
    let z = s.iter().rposition(|&b| !is_blank(b)).map_or(a, |i| i + 1);
    &s[a..z]
}

/// The argument vector the kernel builds for a script run through `shebang`:
/// `interpreter [arg] filename argv[1..]`, where `filename` is the path passed to exec.
pub fn script_argv(shebang: &Shebang, filename: &[u8], argv: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(argv.len() + 2);
    out.push(shebang.interpreter.clone());
    if let Some(a) = &shebang.arg {
        out.push(a.clone());
    }
    out.push(filename.to_vec());
    out.extend(argv.iter().skip(1).cloned());
    out
}

/// The dynamic loaders of this system, by device and inode.
#[derive(Debug, Clone, Default)]
pub struct Loaders {
    ids: Vec<(u64, u64)>,
    paths: Vec<String>,
}

const KNOWN_LOADERS: &[&str] = &[
    "/lib64/ld-linux-x86-64.so.2",
    "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "/lib/ld-linux.so.2",
    "/lib/i386-linux-gnu/ld-linux.so.2",
    "/usr/lib/i386-linux-gnu/ld-linux.so.2",
    "/libx32/ld-linux-x32.so.2",
    "/lib/ld-musl-x86_64.so.1",
    "/lib/ld-musl-i386.so.1",
];

/// The `PT_INTERP` of an ELF file, if it has one.
///
/// # Errors
/// When the file cannot be read or is not ELF.
pub fn elf_interpreter(path: &str) -> io::Result<Option<String>> {
    let file = std::fs::File::open(path)?;
    let bad = |e: elf::ParseError| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
    let mut stream =
        elf::ElfStream::<elf::endian::AnyEndian, _>::open_stream(file).map_err(bad)?;
    let Some(ph) = stream.segments().iter().find(|p| p.p_type == elf::abi::PT_INTERP).copied()
    else {
        return Ok(None);
    };
    if ph.p_filesz > 4096 {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "PT_INTERP too long"));
    }
    let data = stream.segment_data(&ph).map_err(bad)?;
    let name = data.split(|&b| b == 0).next().unwrap_or(&[]);
    Ok(Some(String::from_utf8_lossy(name).into_owned()))
}

impl Loaders {
    /// Finds the loaders on this system.
    pub fn discover() -> Self {
        let mut candidates: Vec<String> = KNOWN_LOADERS.iter().map(|s| s.to_string()).collect();
        for prog in ["/bin/sh", "/usr/bin/env"] {
            if let Ok(Some(interp)) = elf_interpreter(prog) {
                candidates.push(interp);
            }
        }
        let mut out = Loaders::default();
        for c in candidates {
            if let Ok(m) = std::fs::metadata(&c) {
                let id = (m.dev(), m.ino());
                if !out.ids.contains(&id) {
                    out.ids.push(id);
                    out.paths.push(c);
                }
            }
        }
        out
    }

    /// Whether the file with this device and inode is one of the loaders.
    pub fn contains(&self, dev: u64, ino: u64) -> bool {
        self.ids.contains(&(dev, ino))
    }

    /// The loader paths found (one per distinct file).
    pub fn paths(&self) -> &[String] {
        &self.paths
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(i: &str, a: Option<&str>) -> ScriptHead {
        ScriptHead::Script(Shebang {
            interpreter: i.as_bytes().to_vec(),
            arg: a.map(|a| a.as_bytes().to_vec()),
        })
    }

    #[test]
    fn shebang_lines_parse_like_the_kernel() {
        assert_eq!(parse_script_head(b"#!/bin/sh\necho"), script("/bin/sh", None));
        assert_eq!(parse_script_head(b"#! /usr/bin/env  python3 -u \n"), script("/usr/bin/env", Some("python3 -u")));
        assert_eq!(parse_script_head(b"#!/bin/sh\t-e\n"), script("/bin/sh", Some("-e")));
        assert_eq!(parse_script_head(b"\x7fELF..."), ScriptHead::NotScript);
        assert_eq!(parse_script_head(b"#!\n"), ScriptHead::Invalid);
        assert_eq!(parse_script_head(b"#!   \n"), ScriptHead::Invalid);
        // A short file is padded with NULs, so no newline is needed.
        assert_eq!(parse_script_head(b"#!/bin/sh"), script("/bin/sh", None));
        assert_eq!(parse_script_head(b"#!/bin/sh -x"), script("/bin/sh", Some("-x")));
        assert_eq!(parse_script_head(b"#!/bin/a\0b\n"), script("/bin/a", None));
    }

    #[test]
    fn only_the_first_256_bytes_count() {
        let mut long = b"#!/".to_vec();
        long.extend(std::iter::repeat_n(b'x', 300));
        assert_eq!(parse_script_head(&long), ScriptHead::Invalid);
        let mut arg_cut = b"#!/bin/sh ".to_vec();
        arg_cut.extend(std::iter::repeat_n(b'a', 400));
        match parse_script_head(&arg_cut) {
            // The kernel cuts at the buffer's last byte: 253 bytes of line after "#!".
            ScriptHead::Script(s) => assert_eq!(s.arg.map(|a| a.len()), Some(253 - 8)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn script_argv_is_interpreter_arg_filename_rest() {
        let s = Shebang { interpreter: b"/bin/sh".to_vec(), arg: Some(b"-e".to_vec()) };
        let argv = vec![b"x".to_vec(), b"1".to_vec()];
        assert_eq!(
            script_argv(&s, b"./x", &argv),
            vec![b"/bin/sh".to_vec(), b"-e".to_vec(), b"./x".to_vec(), b"1".to_vec()]
        );
    }

    #[test]
    fn this_system_has_a_loader_and_sh_uses_it() {
        let l = Loaders::discover();
        let interp = elf_interpreter("/bin/sh").expect("readable").expect("dynamic");
        let m = std::fs::metadata(&interp).expect("loader exists");
        assert!(l.contains(m.dev(), m.ino()), "{interp} in {:?}", l.paths());
        let sh = std::fs::metadata("/bin/sh").expect("sh");
        assert!(!l.contains(sh.dev(), sh.ino()));
    }
}
