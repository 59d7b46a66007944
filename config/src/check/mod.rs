//! Semantic checks: from the file as written ([`crate::raw`]) to the checked values the rest of
//! the program uses, with every problem reported at its file, line and column.
//!
//! serde has already refused what is not TOML, unknown keys and values of the wrong type; what
//! is left is what serde cannot know: a path that must be absolute, a number out of range, a
//! glob that does not compile, a rule that cannot work. A check reports a problem and goes on,
//! so that one run of `session-wrapper check-config` shows every mistake of every file.
//!
//! The modules follow the tables of the file:
//! - `settings`: the top-level keys (`mode`, `fail-policy`, `default`, ...), `[scope]`, `[log]`;
//! - `guards`: `[guards]`;
//! - `tacacs`: `[tacacs]` and its `[[tacacs.servers]]`;
//! - `isolation`: each `[[isolation]]` block;
//! - `rule`: each `[[rules]]` and `[[fallback]]` rule (see there to add a rule condition).
//!
//! [`Config::parse`](crate::Config::parse) reads the sources one after the other and hands each
//! table to its checker (`Config::apply`, in `lib.rs`, says in which order); what needs every
//! source merged (duplicate names, a TACACS+ secret) is checked in `lib.rs` too.

pub(crate) mod guards;
pub(crate) mod isolation;
pub(crate) mod rule;
pub(crate) mod settings;
pub(crate) mod tacacs;

use std::fmt::Display;

use toml::Spanned;

use crate::raw::RawFile;
use crate::{Location, Problem, Source};

/// Collects the problems of one source, each with its location.
pub(crate) struct Checker<'a> {
    source: &'a Source,
    problems: &'a mut Vec<Problem>,
}

/// How many problems had been found at some point: see [`Checker::found_since`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark(usize);

impl<'a> Checker<'a> {
    /// A checker of `source` that adds what it finds to `problems`.
    pub(crate) fn new(source: &'a Source, problems: &'a mut Vec<Problem>) -> Self {
        Checker { source, problems }
    }

    /// Deserializes the source; a TOML or serde error is a problem, located where serde saw it.
    pub(crate) fn read(&mut self) -> Option<RawFile> {
        match toml::from_str(&self.source.text) {
            Ok(raw) => Some(raw),
            Err(e) => {
                self.problem(e.span().map_or(0, |s| s.start), e.message().trim());
                None
            }
        }
    }

    /// The location of byte `offset` of the source.
    pub(crate) fn at(&self, offset: usize) -> Location {
        Location::at(&self.source.name, &self.source.text, offset)
    }

    /// The byte offset where line `line` (1-based) of the source starts.
    pub(crate) fn line_start(&self, line: usize) -> usize {
        let mut offset = 0;
        for (i, text) in self.source.text.split_inclusive('\n').enumerate() {
            if i + 1 == line {
                break;
            }
            offset += text.len();
        }
        offset
    }

    /// The last component of the source's name (`config.toml`), which default names start with.
    pub(crate) fn file_base(&self) -> &str {
        self.source.name.rsplit('/').next().unwrap_or(&self.source.name)
    }

    /// Reports a problem at byte `offset`.
    pub(crate) fn problem(&mut self, offset: usize, message: impl Display) {
        let location = self.at(offset);
        self.problems.push(Problem { location, message: message.to_string() });
    }

    /// Marks how many problems have been found so far.
    pub(crate) fn mark(&self) -> Mark {
        Mark(self.problems.len())
    }

    /// Whether a problem has been found since `mark`.
    pub(crate) fn found_since(&self, mark: Mark) -> bool {
        self.problems.len() != mark.0
    }

    /// One of a fixed set of words: `what` names the key, `allowed` lists the words.
    pub(crate) fn choice<T>(
        &mut self,
        value: &Spanned<String>,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
        allowed: &str,
    ) -> Option<T> {
        let parsed = parse(value.get_ref());
        if parsed.is_none() {
            self.problem(
                value.span().start,
                format!("{what} must be one of {allowed}, not {:?}", value.get_ref()),
            );
        }
        parsed
    }

    /// A list of user, group or service names that restricts what something applies to: an
    /// empty list is a problem (it would match nothing), and so is a name with a space or a
    /// control character.
    pub(crate) fn names(
        &mut self,
        list: Option<Spanned<Vec<Spanned<String>>>>,
        key: &str,
    ) -> Option<Vec<String>> {
        let list = list?;
        if list.get_ref().is_empty() {
            self.problem(
                list.span().start,
                format!("`{key}` is an empty list, which matches nothing; remove the key to match any"),
            );
            return None;
        }
        let list = list.into_inner();
        let mut out = Vec::with_capacity(list.len());
        for n in list {
            let valid = !n.get_ref().is_empty()
                && !n.get_ref().chars().any(|c| c.is_whitespace() || c.is_control());
            if !valid {
                self.problem(n.span().start, format!("invalid name {:?} in `{key}`", n.get_ref()));
            }
            out.push(n.into_inner());
        }
        Some(out)
    }

    /// An integer between `lo` and `hi` included.
    pub(crate) fn ranged(&mut self, v: &Spanned<i64>, what: &str, lo: i64, hi: i64) -> Option<i64> {
        let n = *v.get_ref();
        if (lo..=hi).contains(&n) {
            Some(n)
        } else {
            self.problem(v.span().start, format!("{what} must be between {lo} and {hi}, not {n}"));
            None
        }
    }

    /// An absolute path.
    pub(crate) fn absolute(&mut self, v: &Spanned<String>, what: &str) -> Option<String> {
        if v.get_ref().starts_with('/') {
            Some(v.get_ref().clone())
        } else {
            self.problem(v.span().start, format!("{what} must be an absolute path, not {:?}", v.get_ref()));
            None
        }
    }
}

/// Whether `n` is a valid name for a rule or an isolation block (it is logged as `rule=` or
/// `isolation=`): 1 to 64 letters, digits, `.`, `_`, `:` and `-`.
pub(crate) fn valid_block_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}
