//! Patterns for the executable and for the arguments of a command.
//!
//! # Which program runs, and as what
//! An exec is decided on two facts the caller cannot disguise: the **real file** that runs (its
//! path with every symlink resolved) and the **name it is invoked as**: the last component of
//! `argv[0]`, without the leading `-` of a login shell. Multi-call programs choose what to do
//! from that name (`systemctl` invoked as `reboot` reboots; busybox is every applet), and
//! `argv[0]` is whatever the caller writes (`exec -a`), so the name is part of what runs.
//!
//! An executable pattern is one of:
//! - an exact path: `/usr/bin/ls`, or a link to a program under another name
//!   (`/usr/sbin/reboot`, a symlink to `/usr/bin/systemctl`);
//! - a directory, written with a trailing `/`: `/usr/bin/` (the files directly in it, not in
//!   its subdirectories, as in sudoers);
//! - a glob, when it contains `*`, `?`, `[` or `{`: `*` and `?` never cross a `/`, `**` does.
//!
//! A pattern names a program **under a name**: `/usr/bin/ls` is `ls` under the name `ls`,
//! `/usr/sbin/reboot` is `systemctl` under the name `reboot`, `/usr/bin/` is every program
//! under the name it has in that directory. How that is used depends on what the rule does:
//! - a rule that **allows** matches only the program under a name the pattern gives it, as
//!   sudoers does: `/usr/bin/systemctl` does not allow `systemctl` invoked as `reboot`, nor as
//!   a made-up name;
//! - a rule that **denies**, or asks the authorization backend, matches the program under
//!   every name: `/usr/bin/id` refuses `exec -a foo /usr/bin/id`; a link (`/usr/sbin/reboot`)
//!   takes its target invoked under any name that contains the link's name, since that is how
//!   `systemctl` tests its name. A made-up name can lose a program its allowance, never
//!   escape a restriction.
//!
//! A pattern's symlinks (`/bin` on a merged-`/usr` system, `/usr/sbin/reboot` itself) are
//! resolved when the policy is compiled, **only through directories and links that nobody but
//! root can change** (see [`Canonicalize`]). Through anything a user can change, the pattern
//! stays as written: a user's own symlink can never widen a rule.

use globset::GlobBuilder;

use crate::glob::Glob;

/// Why a written pattern is refused. The configuration checker reports it at the position of
/// the value in the file; the texts are what `session-wrapper check-config` prints after that
/// position, so they are part of the interface.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// An executable pattern that does not start with `/`.
    #[error("executable pattern {pattern:?} must be an absolute path")]
    NotAbsolute {
        /// The pattern as written.
        pattern: String,
    },
    /// An executable pattern with a NUL byte, which no path can hold.
    #[error("executable pattern contains a NUL byte")]
    Nul,
    /// An executable pattern with an empty, `.` or `..` component.
    #[error("executable pattern {pattern:?} is not canonical (no empty, `.` or `..` components)")]
    NotCanonical {
        /// The pattern as written.
        pattern: String,
    },
    /// An executable pattern that is not a valid glob.
    #[error("invalid glob {pattern:?}: {}", .source.kind())]
    ExeGlob {
        /// The glob, as written or with its directory resolved.
        pattern: String,
        /// Why globset refused it.
        #[source]
        source: globset::Error,
    },
    /// An argument or name glob (`args`, `any-arg`, `names`) that is not a valid glob.
    #[error("invalid argument glob {pattern:?}: {}", .source.kind())]
    ArgGlob {
        /// The glob as written (for `names`, without its leading `!`).
        pattern: String,
        /// Why globset refused it.
        #[source]
        source: globset::Error,
    },
    /// A `"**"` in `args` that is not the last element.
    #[error("\"**\" (any further arguments) must be the last element of args")]
    RestNotLast,
    /// An entry of `names` that is empty (or just `!`) or holds a `/`.
    #[error("invalid name {name:?} in `names`: a name has no `/` and is not empty")]
    InvalidName {
        /// The entry as written.
        name: String,
    },
}

/// Resolves an absolute path to the real path it leads to, following symlinks (the last
/// component's too), but only when every directory and link on the way is owned by root and
/// writable by no one else; `None` otherwise, or when the path does not exist. Supplied by the
/// caller because resolving paths is a filesystem operation and this crate makes none.
pub type Canonicalize<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The facts about a program that patterns match on.
#[derive(Debug, Clone, Copy)]
pub struct Program<'a> {
    /// The real path of the file that runs.
    pub exe: &'a [u8],
    /// The name it is invoked as (see [`invoked_name`]).
    pub name: &'a [u8],
    /// Paths, in directories only root can change, whose last component is `name` and that
    /// lead to `exe` (links such as `/usr/sbin/reboot`). `exe` itself counts when its own
    /// name is `name`, whether or not it is listed here.
    pub links: &'a [Vec<u8>],
}

impl Program<'_> {
    /// The paths the program is invoked through: its links, and itself under its own name.
    pub(crate) fn invoked_paths(&self) -> impl Iterator<Item = &[u8]> {
        let own = (last_component(self.exe) == self.name).then_some(self.exe);
        own.into_iter().chain(self.links.iter().map(Vec::as_slice))
    }
}

/// The name a program is invoked as: the last `/`-separated component of `argv[0]`, without
/// one leading `-` (a login shell is `-bash`). What `program_invocation_short_name` gives a C
/// program, and what multi-call programs act on.
pub fn invoked_name(argv0: &[u8]) -> &[u8] {
    let last = last_component(argv0);
    last.strip_prefix(b"-").unwrap_or(last)
}

/// The bytes after the last `/`.
pub fn last_component(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// How broadly a pattern matches: see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breadth {
    /// For a rule that allows: only under a name the pattern gives.
    Narrow,
    /// For a rule that denies or authorizes: under any name.
    Broad,
}

/// How one written executable pattern matches.
#[derive(Debug, Clone)]
enum ExeMatcher {
    /// A file by its real path, and the name the pattern gives it. `link` when that name is
    /// not the file's own (the pattern names a link to it).
    File { real: Vec<u8>, name: Vec<u8>, link: bool },
    /// A directory, with a trailing `/`.
    Dir(Vec<u8>),
    Glob(Glob),
}

impl ExeMatcher {
    /// Whether `path` (a real path or the path of a link) is named by this matcher.
    fn names_path(&self, path: &[u8]) -> bool {
        match self {
            ExeMatcher::File { real, .. } => real == path,
            ExeMatcher::Dir(d) => {
                path.len() > d.len() && path.starts_with(d) && !path[d.len()..].contains(&b'/')
            }
            ExeMatcher::Glob(g) => g.is_match(path),
        }
    }

    fn matches(&self, p: &Program<'_>, breadth: Breadth) -> bool {
        if let ExeMatcher::File { real, name, link } = self {
            if real != p.exe {
                return false;
            }
            return match breadth {
                Breadth::Narrow => p.name == name.as_slice(),
                Breadth::Broad => !link || contains(p.name, name),
            };
        }
        let narrow = p.invoked_paths().any(|path| self.names_path(path));
        narrow || (breadth == Breadth::Broad && self.names_path(p.exe))
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
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

fn exe_glob(pattern: &str) -> Result<Glob, PatternError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map(Glob::new)
        .map_err(|source| PatternError::ExeGlob { pattern: pattern.to_owned(), source })
}

/// Splits `path` into its longest leading directory without glob characters and the rest.
fn literal_dir_prefix(path: &str) -> (&str, &str) {
    let first_meta = path.find(GLOB_META).unwrap_or(path.len());
    let cut = path[..first_meta].rfind('/').unwrap_or(0);
    (&path[..cut], &path[cut..])
}

fn join(dir: &str, rest: &str) -> String {
    format!("{}{rest}", dir.trim_end_matches('/'))
}

impl ExePattern {
    /// Compiles a written pattern.
    ///
    /// # Errors
    /// [`PatternError::NotAbsolute`], [`PatternError::Nul`], [`PatternError::NotCanonical`],
    /// or [`PatternError::ExeGlob`] when the pattern (or its resolved form) is not a valid glob.
    pub fn new(written: &str, canonicalize: Canonicalize<'_>) -> Result<Self, PatternError> {
        if !written.starts_with('/') {
            return Err(PatternError::NotAbsolute { pattern: written.to_owned() });
        }
        if written.contains('\0') {
            return Err(PatternError::Nul);
        }
        let body = written.trim_end_matches('/');
        if body.split('/').skip(1).any(|c| c.is_empty() || c == "." || c == "..")
            && written != "/"
        {
            return Err(PatternError::NotCanonical { pattern: written.to_owned() });
        }
        let canon_dir = |dir: &str| canonicalize(if dir.is_empty() { "/" } else { dir });
        let mut forms = vec![written.to_owned()];
        if is_glob(written) {
            let (dir, rest) = literal_dir_prefix(written);
            forms.extend(canon_dir(dir).map(|c| join(&c, rest)));
        } else if written.ends_with('/') {
            forms.extend(canonicalize(body).map(|c| format!("{}/", c.trim_end_matches('/'))));
        } else {
            let (dir, name) = body.rsplit_once('/').unwrap_or(("", body));
            // The file itself, its last link followed: what runs, under the name written.
            let real = canonicalize(body)
                .or_else(|| canon_dir(dir).map(|c| join(&c, &format!("/{name}"))))
                .unwrap_or_else(|| body.to_owned());
            let link = last_component(real.as_bytes()) != name.as_bytes();
            let file = ExeMatcher::File { real: real.into_bytes(), name: name.as_bytes().to_vec(), link };
            return Ok(ExePattern { written: written.to_owned(), matchers: vec![file] });
        }
        forms.dedup();
        let mut matchers = Vec::with_capacity(forms.len());
        for form in &forms {
            matchers.push(if is_glob(form) {
                ExeMatcher::Glob(exe_glob(form)?)
            } else {
                ExeMatcher::Dir(form.as_bytes().to_vec())
            });
        }
        Ok(ExePattern { written: written.to_owned(), matchers })
    }

    /// The pattern as the administrator wrote it.
    pub fn written(&self) -> &str {
        &self.written
    }

    /// What this pattern matches on this system, when that differs from what is written:
    /// the canonical directory, or the real file a link leads to (with the name it gives).
    pub fn canonical_form(&self) -> Option<String> {
        let text = match self.matchers.first()? {
            ExeMatcher::File { real, name, link } => {
                let real = String::from_utf8_lossy(real);
                if *link {
                    format!("{real} invoked as {}", String::from_utf8_lossy(name))
                } else {
                    real.into_owned()
                }
            }
            _ => match self.matchers.get(1)? {
                ExeMatcher::Dir(p) => String::from_utf8_lossy(p).into_owned(),
                ExeMatcher::Glob(g) => g.glob().glob().to_owned(),
                ExeMatcher::File { .. } => return None,
            },
        };
        (text != self.written).then_some(text)
    }

    /// The real file an exact pattern names and whether it names it through a link under
    /// another name; `None` for directories and globs.
    pub fn file(&self) -> Option<(&[u8], bool)> {
        match self.matchers.first()? {
            ExeMatcher::File { real, link, .. } => Some((real, *link)),
            _ => None,
        }
    }

    /// The directories this pattern reaches into (for a directory or a glob: its canonical
    /// literal prefix), for checks of who can write there.
    pub fn directories(&self) -> Vec<String> {
        self.matchers
            .iter()
            .filter_map(|m| match m {
                ExeMatcher::Dir(d) => Some(String::from_utf8_lossy(d).trim_end_matches('/').to_owned()),
                ExeMatcher::Glob(g) => {
                    let (dir, _) = literal_dir_prefix(g.glob().glob());
                    Some(if dir.is_empty() { "/".to_owned() } else { dir.to_owned() })
                }
                ExeMatcher::File { .. } => None,
            })
            .collect()
    }

    /// Whether the program matches, as a rule of the given breadth sees it.
    pub fn matches(&self, program: &Program<'_>, breadth: Breadth) -> bool {
        self.matchers.iter().any(|m| m.matches(program, breadth))
    }
}

/// Per-argument globs for `argv[1..]`. A final `"**"` matches any number of further
/// arguments, including none; otherwise the count must be equal. `*` matches `/` here.
#[derive(Debug, Clone)]
pub struct ArgsPattern {
    items: Vec<Glob>,
    rest: bool,
}

fn arg_glob(w: &str) -> Result<Glob, PatternError> {
    GlobBuilder::new(w)
        .literal_separator(false)
        .backslash_escape(true)
        .empty_alternates(true)
        .build()
        .map(Glob::new)
        .map_err(|source| PatternError::ArgGlob { pattern: w.to_owned(), source })
}

impl ArgsPattern {
    /// Compiles the written per-argument globs.
    ///
    /// # Errors
    /// [`PatternError::ArgGlob`] for the first invalid glob, or [`PatternError::RestNotLast`].
    pub fn new(written: &[String]) -> Result<Self, PatternError> {
        let mut items = Vec::with_capacity(written.len());
        let mut rest = false;
        for (i, w) in written.iter().enumerate() {
            if w == "**" {
                if i + 1 != written.len() {
                    return Err(PatternError::RestNotLast);
                }
                rest = true;
                continue;
            }
            items.push(arg_glob(w)?);
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
            .all(|(g, a)| g.is_match(a.as_ref()))
    }
}

/// Globs on the name a program is invoked as (`names`): it must match one of the plain
/// globs (when there are any) and none of those written with a leading `!`. `["!systemctl"]`
/// is "systemctl under any other name", which a rule that denies uses to keep a multi-call
/// program to one personality.
#[derive(Debug, Clone)]
pub struct NamePattern {
    include: Vec<Glob>,
    exclude: Vec<Glob>,
}

impl NamePattern {
    /// Compiles the written globs.
    ///
    /// # Errors
    /// [`PatternError::InvalidName`] for the first empty entry or entry with a `/`, or
    /// [`PatternError::ArgGlob`] for the first invalid glob.
    pub fn new(written: &[String]) -> Result<Self, PatternError> {
        let mut include = Vec::new();
        let mut exclude = Vec::new();
        for w in written {
            let (list, glob) = match w.strip_prefix('!') {
                Some(rest) => (&mut exclude, rest),
                None => (&mut include, w.as_str()),
            };
            if glob.is_empty() || glob.contains('/') {
                return Err(PatternError::InvalidName { name: w.clone() });
            }
            list.push(arg_glob(glob)?);
        }
        Ok(NamePattern { include, exclude })
    }

    /// Whether `name` (see [`invoked_name`]) matches.
    pub fn matches(&self, name: &[u8]) -> bool {
        (self.include.is_empty() || self.include.iter().any(|g| g.is_match(name)))
            && !self.exclude.iter().any(|g| g.is_match(name))
    }
}

/// Globs of which at least one must match at least one argument, wherever it stands among
/// the others (`any-arg`): "systemctl, but never `reboot`", whatever options come first.
#[derive(Debug, Clone)]
pub struct AnyArg {
    globs: Vec<Glob>,
}

impl AnyArg {
    /// Compiles the written globs.
    ///
    /// # Errors
    /// [`PatternError::ArgGlob`] for the first invalid glob.
    pub fn new(written: &[String]) -> Result<Self, PatternError> {
        Ok(AnyArg { globs: written.iter().map(|w| arg_glob(w)).collect::<Result<_, _>>()? })
    }

    /// Whether any argument (without `argv[0]`) matches any glob.
    pub fn matches<A: AsRef<[u8]>>(&self, args: &[A]) -> bool {
        args.iter().any(|a| self.globs.iter().any(|g| g.is_match(a.as_ref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    /// A merged-/usr Debian: /bin and /sbin are links, reboot is systemctl, sh is dash, and
    /// /home/alice/bin is a user's link that must never be followed (it is not offered).
    fn debian(p: &str) -> Option<String> {
        let p = p.strip_prefix("/bin").map(|r| format!("/usr/bin{r}")).unwrap_or_else(|| p.to_owned());
        let p = p.strip_prefix("/sbin").map(|r| format!("/usr/sbin{r}")).unwrap_or(p);
        Some(match p.as_str() {
            "/usr/sbin/reboot" | "/usr/sbin/halt" => "/usr/bin/systemctl".into(),
            "/usr/bin/sh" => "/usr/bin/dash".into(),
            "" => "/".into(),
            p if p.starts_with("/home") => return None,
            p => p.into(),
        })
    }

    fn prog<'a>(exe: &'a str, name: &'a str, links: &'a [Vec<u8>]) -> Program<'a> {
        Program { exe: exe.as_bytes(), name: name.as_bytes(), links }
    }

    fn both(p: &ExePattern, program: &Program<'_>) -> (bool, bool) {
        (p.matches(program, Breadth::Narrow), p.matches(program, Breadth::Broad))
    }

    #[test]
    fn exact_path_matches_only_itself() {
        let p = ExePattern::new("/usr/bin/ls", &none).expect("valid");
        assert_eq!(both(&p, &prog("/usr/bin/ls", "ls", &[])), (true, true));
        assert_eq!(both(&p, &prog("/usr/bin/lsblk", "lsblk", &[])), (false, false));
        assert_eq!(both(&p, &prog("/usr/bin/ls/x", "x", &[])), (false, false));
    }

    #[test]
    fn an_allow_needs_the_name_a_deny_takes_any() {
        let p = ExePattern::new("/usr/bin/id", &none).expect("valid");
        // exec -a foo /usr/bin/id
        assert_eq!(both(&p, &prog("/usr/bin/id", "foo", &[])), (false, true));
        assert_eq!(both(&p, &prog("/usr/bin/id", "", &[])), (false, true));
    }

    #[test]
    fn a_link_names_its_target_under_its_own_name() {
        let reboot = ExePattern::new("/usr/sbin/reboot", &debian).expect("valid");
        assert_eq!(reboot.file(), Some((b"/usr/bin/systemctl".as_slice(), true)));
        let links = [b"/usr/sbin/reboot".to_vec()];
        // reboot, /sbin/reboot, /usr/sbin//reboot, exec -a /x/reboot systemctl: all "reboot".
        assert_eq!(both(&reboot, &prog("/usr/bin/systemctl", "reboot", &links)), (true, true));
        assert_eq!(both(&reboot, &prog("/usr/bin/systemctl", "reboot", &[])), (true, true));
        // systemctl acts as reboot on any name containing it: a deny follows.
        assert_eq!(both(&reboot, &prog("/usr/bin/systemctl", "xreboot2", &[])), (false, true));
        assert_eq!(both(&reboot, &prog("/usr/bin/systemctl", "systemctl", &[])), (false, false));
        let spelled = ExePattern::new("/sbin/reboot", &debian).expect("valid");
        assert_eq!(both(&spelled, &prog("/usr/bin/systemctl", "reboot", &[])), (true, true));
        // And the program itself, named by its real file, is not its other personalities.
        let sc = ExePattern::new("/usr/bin/systemctl", &debian).expect("valid");
        assert_eq!(both(&sc, &prog("/usr/bin/systemctl", "reboot", &links)), (false, true));
        assert_eq!(both(&sc, &prog("/usr/bin/systemctl", "systemctl", &[])), (true, true));
    }

    #[test]
    fn directories_allow_what_they_hold_under_the_names_it_has_there() {
        let p = ExePattern::new("/usr/bin/", &debian).expect("valid");
        assert_eq!(both(&p, &prog("/usr/bin/ls", "ls", &[])), (true, true));
        assert_eq!(both(&p, &prog("/usr/bin/ls", "other", &[])), (false, true));
        assert!(!p.matches(&prog("/usr/bin/", "", &[]), Breadth::Broad));
        assert!(!p.matches(&prog("/usr/bin/sub/tool", "tool", &[]), Breadth::Broad));
        assert!(!p.matches(&prog("/usr/binx/ls", "ls", &[]), Breadth::Broad));
        // sh is dash through /usr/bin/sh: allowed as sh.
        let sh = [b"/usr/bin/sh".to_vec()];
        assert_eq!(both(&p, &prog("/usr/bin/dash", "sh", &sh)), (true, true));
        // systemctl as reboot is reached through /usr/sbin, not /usr/bin.
        let reboot = [b"/usr/sbin/reboot".to_vec()];
        assert_eq!(both(&p, &prog("/usr/bin/systemctl", "reboot", &reboot)), (false, true));
        let sbin = ExePattern::new("/sbin/", &debian).expect("valid");
        assert_eq!(both(&sbin, &prog("/usr/bin/systemctl", "reboot", &reboot)), (true, true));
    }

    #[test]
    fn glob_star_stays_in_one_directory_and_double_star_crosses() {
        let p = ExePattern::new("/usr/bin/git*", &none).expect("valid");
        assert!(p.matches(&prog("/usr/bin/git", "git", &[]), Breadth::Narrow));
        assert!(p.matches(&prog("/usr/bin/git-upload-pack", "git-upload-pack", &[]), Breadth::Narrow));
        assert!(!p.matches(&prog("/usr/bin/gitdir/x", "x", &[]), Breadth::Broad));
        let deep = ExePattern::new("/tmp/**", &none).expect("valid");
        assert!(deep.matches(&prog("/tmp/a/b/c", "c", &[]), Breadth::Narrow));
        assert!(deep.matches(&prog("/tmp/x", "renamed", &[]), Breadth::Broad));
        assert!(!deep.matches(&prog("/var/tmp/x", "x", &[]), Breadth::Broad));
    }

    #[test]
    fn non_utf8_paths_are_matched_as_bytes() {
        let p = ExePattern::new("/opt/*", &none).expect("valid");
        let exe = b"/opt/\xff\xfe";
        assert!(p.matches(&Program { exe, name: b"\xff\xfe", links: &[] }, Breadth::Narrow));
        let d = ExePattern::new("/opt/", &none).expect("valid");
        assert!(d.matches(&Program { exe: b"/opt/\xff", name: b"\xff", links: &[] }, Breadth::Narrow));
    }

    #[test]
    fn symlinked_directories_in_patterns_are_resolved() {
        let p = ExePattern::new("/bin/ls", &debian).expect("valid");
        assert!(p.matches(&prog("/usr/bin/ls", "ls", &[]), Breadth::Narrow));
        assert_eq!(p.canonical_form().as_deref(), Some("/usr/bin/ls"));
        let d = ExePattern::new("/sbin/", &debian).expect("valid");
        assert!(d.matches(&prog("/usr/sbin/ip", "ip", &[]), Breadth::Narrow));
        let g = ExePattern::new("/bin/git*", &debian).expect("valid");
        assert!(g.matches(&prog("/usr/bin/git-shell", "git-shell", &[]), Breadth::Narrow));
        let root = ExePattern::new("/*", &debian).expect("valid");
        assert!(root.matches(&prog("/init", "init", &[]), Breadth::Narrow));
    }

    #[test]
    fn a_path_through_something_a_user_can_change_stays_as_written() {
        // /home/alice/bin -> /usr/bin, made by alice: the resolver offers nothing.
        let d = ExePattern::new("/home/alice/bin/", &debian).expect("valid");
        assert!(!d.matches(&prog("/usr/bin/su", "su", &[]), Breadth::Broad));
        assert!(d.matches(&prog("/home/alice/bin/tool", "tool", &[]), Breadth::Narrow));
        let f = ExePattern::new("/home/alice/bin/tool", &debian).expect("valid");
        assert_eq!(f.file(), Some((b"/home/alice/bin/tool".as_slice(), false)));
        assert!(!f.matches(&prog("/opt/forbidden/tool", "tool", &[]), Breadth::Broad));
    }

    #[test]
    fn bad_exe_patterns_are_refused_with_a_reason() {
        for (bad, why) in [
            ("usr/bin/ls", "absolute"),
            ("/usr//bin/ls", "canonical"),
            ("/usr/bin/../sbin/ip", "canonical"),
            ("/usr/bin/[", "invalid glob"),
        ] {
            let e = ExePattern::new(bad, &none).expect_err(bad).to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn invoked_names_are_the_last_component_without_a_login_dash() {
        assert_eq!(invoked_name(b"/usr/sbin/reboot"), b"reboot");
        assert_eq!(invoked_name(b"-bash"), b"bash");
        assert_eq!(invoked_name(b"--x"), b"-x");
        assert_eq!(invoked_name(b"reboot/"), b"");
        assert_eq!(invoked_name(b""), b"");
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
    fn any_arg_finds_a_verb_wherever_it_stands() {
        let a = AnyArg::new(&["{reboot,poweroff}".into(), "*.target".into()]).expect("valid");
        assert!(a.matches(&["reboot"]));
        assert!(a.matches(&["--no-wall", "reboot"]));
        assert!(a.matches(&["-i", "--", "poweroff"]));
        assert!(a.matches(&["start", "reboot.target"]));
        assert!(!a.matches(&["status", "nginx"]));
        assert!(!a.matches(&["--message=reboot"]));
        assert!(!a.matches::<&str>(&[]));
    }

    #[test]
    fn names_include_and_exclude() {
        let n = NamePattern::new(&["!systemctl".into()]).expect("valid");
        assert!(n.matches(b"reboot"));
        assert!(n.matches(b"xinit"));
        assert!(!n.matches(b"systemctl"));
        let only = NamePattern::new(&["vi*".into(), "!vimdiff".into()]).expect("valid");
        assert!(only.matches(b"vim") && only.matches(b"vi"));
        assert!(!only.matches(b"vimdiff") && !only.matches(b"ex"));
        assert!(NamePattern::new(&["a/b".into()]).is_err());
        assert!(NamePattern::new(&["!".into()]).is_err());
    }

    #[test]
    fn double_star_must_be_last() {
        let e = ArgsPattern::new(&["**".into(), "x".into()]).expect_err("not last");
        assert_eq!(e, PatternError::RestNotLast);
        assert!(e.to_string().contains("last"));
    }

    /// The texts are printed by `check-config` after the file, line and column: they must not
    /// change by accident.
    #[test]
    fn pattern_errors_keep_their_texts() {
        let exe = |w: &str| ExePattern::new(w, &none).expect_err(w).to_string();
        let args = |w: &[&str]| {
            let w: Vec<String> = w.iter().map(|s| (*s).to_owned()).collect();
            ArgsPattern::new(&w).expect_err("invalid").to_string()
        };
        let names = |w: &[&str]| {
            let w: Vec<String> = w.iter().map(|s| (*s).to_owned()).collect();
            NamePattern::new(&w).expect_err("invalid").to_string()
        };
        assert_eq!(exe("usr/bin/ls"), "executable pattern \"usr/bin/ls\" must be an absolute path");
        assert_eq!(exe("/usr/bin/\0ls"), "executable pattern contains a NUL byte");
        assert_eq!(
            exe("/usr//bin"),
            "executable pattern \"/usr//bin\" is not canonical (no empty, `.` or `..` components)"
        );
        assert_eq!(exe("/usr/bin/["), "invalid glob \"/usr/bin/[\": unclosed character class; missing ']'");
        assert_eq!(args(&["["]), "invalid argument glob \"[\": unclosed character class; missing ']'");
        assert_eq!(args(&["**", "x"]), "\"**\" (any further arguments) must be the last element of args");
        assert_eq!(names(&["a/b"]), "invalid name \"a/b\" in `names`: a name has no `/` and is not empty");
        assert_eq!(names(&["!"]), "invalid name \"!\" in `names`: a name has no `/` and is not empty");
        assert_eq!(names(&["!["]), "invalid argument glob \"[\": unclosed character class; missing ']'");
        let any = AnyArg::new(&["ok".into(), "{a".into()]).expect_err("invalid");
        assert!(matches!(&any, PatternError::ArgGlob { pattern, .. } if pattern == "{a"));
        // The source keeps globset's own error, with the glob it was about.
        let source = std::error::Error::source(&any).map(ToString::to_string).unwrap_or_default();
        assert!(source.contains("{a"), "{source}");
    }
}
