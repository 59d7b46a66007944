//! Patterns for the executable and for the arguments of a command.
//!
//! The executable is matched on its resolved real path, as bytes. A pattern is one of:
//! - an exact path: `/usr/bin/ls`;
//! - a directory, written with a trailing `/`: `/usr/bin/` matches every file directly in it,
//!   not in its subdirectories (as in sudoers);
//! - a glob, when it contains `*`, `?`, `[` or `{`: `*` and `?` never cross a `/`, `**` does.
//!
//! A symlinked directory in a pattern (`/bin` on a merged-`/usr` system) is resolved when the
//! policy is compiled, so `/bin/ls` also matches the real `/usr/bin/ls`. The last component of
//! an exact path is not resolved: a rule names the file that really runs.

use globset::{Candidate, GlobBuilder, GlobMatcher};

/// Turns an absolute directory path into its canonical form, if it has one. Supplied by the
/// caller because resolving paths is a filesystem operation and this crate makes none.
pub type Canonicalize<'a> = &'a dyn Fn(&str) -> Option<String>;

/// How one written executable pattern matches.
#[derive(Debug, Clone)]
enum ExeMatcher {
    Exact(Vec<u8>),
    /// Directory with a trailing `/`.
    Dir(Vec<u8>),
    Glob(GlobMatcher),
}

impl ExeMatcher {
    fn matches(&self, path: &[u8]) -> bool {
        match self {
            ExeMatcher::Exact(p) => p == path,
            ExeMatcher::Dir(d) => {
                path.len() > d.len() && path.starts_with(d) && !path[d.len()..].contains(&b'/')
            }
            ExeMatcher::Glob(g) => g.is_match_candidate(&Candidate::from_bytes(path)),
        }
    }
}

/// An executable pattern as written, with the matchers it compiles to.
#[derive(Debug, Clone)]
pub struct ExePattern {
    written: String,
    matchers: Vec<ExeMatcher>,
}

const GLOB_META: &[char] = &['*', '?', '[', '{'];

fn is_glob(s: &str) -> bool {
    s.contains(GLOB_META)
}

fn exe_glob(pattern: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("invalid glob {pattern:?}: {}", e.kind()))
}

/// Splits `path` into its longest leading directory without glob characters and the rest.
fn literal_dir_prefix(path: &str) -> (&str, &str) {
    let first_meta = path.find(GLOB_META).unwrap_or(path.len());
    let cut = path[..first_meta].rfind('/').unwrap_or(0);
    (&path[..cut], &path[cut..])
}

impl ExePattern {
    /// Compiles a written pattern.
    ///
    /// # Errors
    /// A message when the pattern is not absolute, not canonical or not a valid glob.
    pub fn new(written: &str, canonicalize: Canonicalize<'_>) -> Result<Self, String> {
        if !written.starts_with('/') {
            return Err(format!("executable pattern {written:?} must be an absolute path"));
        }
        if written.contains('\0') {
            return Err("executable pattern contains a NUL byte".to_owned());
        }
        let body = written.trim_end_matches('/');
        if body.split('/').skip(1).any(|c| c.is_empty() || c == "." || c == "..")
            && written != "/"
        {
            return Err(format!(
                "executable pattern {written:?} is not canonical (no empty, `.` or `..` components)"
            ));
        }
        let mut forms = vec![written.to_owned()];
        let canonical = if is_glob(written) {
            let (dir, rest) = literal_dir_prefix(written);
            canonicalize(if dir.is_empty() { "/" } else { dir })
                .map(|c| format!("{}{rest}", c.trim_end_matches('/')))
        } else if written.ends_with('/') {
            canonicalize(body).map(|c| format!("{}/", c.trim_end_matches('/')))
        } else {
            let (dir, name) = body.rsplit_once('/').unwrap_or(("", body));
            canonicalize(if dir.is_empty() { "/" } else { dir })
                .map(|c| format!("{}/{name}", c.trim_end_matches('/')))
        };
        if let Some(c) = canonical {
            if c != written {
                forms.push(c);
            }
        }
        let mut matchers = Vec::with_capacity(forms.len());
        for form in &forms {
            matchers.push(if is_glob(form) {
                ExeMatcher::Glob(exe_glob(form)?)
            } else if form.ends_with('/') {
                ExeMatcher::Dir(form.as_bytes().to_vec())
            } else {
                ExeMatcher::Exact(form.as_bytes().to_vec())
            });
        }
        Ok(ExePattern { written: written.to_owned(), matchers })
    }

    /// The pattern as the administrator wrote it.
    pub fn written(&self) -> &str {
        &self.written
    }

    /// The canonical form this pattern also matches, when it differs from the written one.
    pub fn canonical_form(&self) -> Option<String> {
        match self.matchers.get(1)? {
            ExeMatcher::Exact(p) | ExeMatcher::Dir(p) => Some(String::from_utf8_lossy(p).into()),
            ExeMatcher::Glob(g) => Some(g.glob().glob().to_owned()),
        }
    }

    /// Whether the resolved real path `path` matches.
    pub fn matches(&self, path: &[u8]) -> bool {
        self.matchers.iter().any(|m| m.matches(path))
    }
}

/// Per-argument globs for `argv[1..]`. A final `"**"` matches any number of further
/// arguments, including none; otherwise the count must be equal. `*` matches `/` here.
#[derive(Debug, Clone)]
pub struct ArgsPattern {
    items: Vec<GlobMatcher>,
    rest: bool,
}

impl ArgsPattern {
    /// Compiles the written per-argument globs.
    ///
    /// # Errors
    /// A message naming the first invalid glob, or a `"**"` that is not last.
    pub fn new(written: &[String]) -> Result<Self, String> {
        let mut items = Vec::with_capacity(written.len());
        let mut rest = false;
        for (i, w) in written.iter().enumerate() {
            if w == "**" {
                if i + 1 != written.len() {
                    return Err("\"**\" (any further arguments) must be the last element of args"
                        .to_owned());
                }
                rest = true;
                continue;
            }
            let g = GlobBuilder::new(w)
                .literal_separator(false)
                .backslash_escape(true)
                .empty_alternates(true)
                .build()
                .map_err(|e| format!("invalid argument glob {w:?}: {}", e.kind()))?;
            items.push(g.compile_matcher());
        }
        Ok(ArgsPattern { items, rest })
    }

    /// Whether the arguments (without `argv[0]`) match.
    pub fn matches<A: AsRef<[u8]>>(&self, args: &[A]) -> bool {
        if args.len() < self.items.len() || (!self.rest && args.len() != self.items.len()) {
            return false;
        }
        self.items
            .iter()
            .zip(args)
            .all(|(g, a)| g.is_match_candidate(&Candidate::from_bytes(a.as_ref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    fn merged_usr(p: &str) -> Option<String> {
        match p {
            "/bin" => Some("/usr/bin".into()),
            "/sbin" => Some("/usr/sbin".into()),
            "/" => Some("/".into()),
            other => Some(other.into()),
        }
    }

    #[test]
    fn exact_path_matches_only_itself() {
        let p = ExePattern::new("/usr/bin/ls", &none).expect("valid");
        assert!(p.matches(b"/usr/bin/ls"));
        assert!(!p.matches(b"/usr/bin/lsblk"));
        assert!(!p.matches(b"/usr/bin/ls/x"));
    }

    #[test]
    fn directory_matches_direct_children_only() {
        let p = ExePattern::new("/usr/bin/", &none).expect("valid");
        assert!(p.matches(b"/usr/bin/ls"));
        assert!(!p.matches(b"/usr/bin/"));
        assert!(!p.matches(b"/usr/bin/sub/tool"));
        assert!(!p.matches(b"/usr/binx/ls"));
    }

    #[test]
    fn glob_star_stays_in_one_directory_and_double_star_crosses() {
        let p = ExePattern::new("/usr/bin/git*", &none).expect("valid");
        assert!(p.matches(b"/usr/bin/git"));
        assert!(p.matches(b"/usr/bin/git-upload-pack"));
        assert!(!p.matches(b"/usr/bin/gitdir/x"));
        let deep = ExePattern::new("/tmp/**", &none).expect("valid");
        assert!(deep.matches(b"/tmp/a/b/c"));
        assert!(deep.matches(b"/tmp/x"));
        assert!(!deep.matches(b"/var/tmp/x"));
    }

    #[test]
    fn non_utf8_paths_are_matched_as_bytes() {
        let p = ExePattern::new("/opt/*", &none).expect("valid");
        assert!(p.matches(b"/opt/\xff\xfe"));
        let d = ExePattern::new("/opt/", &none).expect("valid");
        assert!(d.matches(b"/opt/\xff"));
    }

    #[test]
    fn symlinked_directories_in_patterns_are_resolved() {
        let p = ExePattern::new("/bin/ls", &merged_usr).expect("valid");
        assert!(p.matches(b"/usr/bin/ls"));
        assert!(p.matches(b"/bin/ls"));
        assert_eq!(p.canonical_form().as_deref(), Some("/usr/bin/ls"));
        let d = ExePattern::new("/sbin/", &merged_usr).expect("valid");
        assert!(d.matches(b"/usr/sbin/ip"));
        let g = ExePattern::new("/bin/git*", &merged_usr).expect("valid");
        assert!(g.matches(b"/usr/bin/git-shell"));
        let root = ExePattern::new("/*", &merged_usr).expect("valid");
        assert!(root.matches(b"/init"));
    }

    #[test]
    fn bad_exe_patterns_are_refused_with_a_reason() {
        for (bad, why) in [
            ("usr/bin/ls", "absolute"),
            ("/usr//bin/ls", "canonical"),
            ("/usr/bin/../sbin/ip", "canonical"),
            ("/usr/bin/[", "invalid glob"),
        ] {
            let e = ExePattern::new(bad, &none).expect_err(bad);
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn args_count_must_match_unless_rest() {
        let p = ArgsPattern::new(&["status".into()]).expect("valid");
        assert!(p.matches(&["status"]));
        assert!(!p.matches(&["status", "-s"]));
        assert!(!p.matches::<&str>(&[]));
        let rest = ArgsPattern::new(&["log".into(), "**".into()]).expect("valid");
        assert!(rest.matches(&["log"]));
        assert!(rest.matches(&["log", "--oneline", "-5"]));
        assert!(!rest.matches(&["status"]));
        let none = ArgsPattern::new(&[]).expect("valid");
        assert!(none.matches::<&str>(&[]));
        assert!(!none.matches(&["x"]));
    }

    #[test]
    fn arg_globs_cross_slashes_and_match_bytes() {
        let p = ArgsPattern::new(&["-rf".into(), "/*".into()]).expect("valid");
        assert!(p.matches(&["-rf", "/home/x/y"]));
        assert!(!p.matches(&["-rf", "home"]));
        let any = ArgsPattern::new(&["*".into()]).expect("valid");
        assert!(any.matches(&[b"\xff\x00x".as_slice()]));
        let lit = ArgsPattern::new(&["\\*".into()]).expect("valid");
        assert!(lit.matches(&["*"]));
        assert!(!lit.matches(&["x"]));
    }

    #[test]
    fn double_star_must_be_last() {
        let e = ArgsPattern::new(&["**".into(), "x".into()]).expect_err("not last");
        assert!(e.contains("last"));
    }
}
