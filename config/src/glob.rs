//! A glob, matched without a regular expression where its shape allows.
//!
//! globset turns a glob into a regular expression and compiles it: 10 to 30 us a glob, and
//! about 0.2 ms for the first one a process compiles (the regex engine's code and tables, cold).
//! A session's supervisor compiles its whole policy while the session opens (docs/BENCHMARKS.md,
//! eleventh pass: the admin guide's example roles added 1.2 ms to the open). Most globs in a
//! policy are one of a few shapes: a word, a set of words (`{status,show}`), everything under a
//! directory (`/tmp/**`), a prefix or a suffix (`*.target`, `*reboot*`), one path component
//! (`/opt/*/bin/tool`), with `?` and classes (`[*?[]`) among their literals. Those are matched
//! here directly; anything else by globset's regex, as before.
//!
//! The shape is read from the regular expression globset makes of the glob, not from the glob:
//! that expression is what decides a match, so the direct matcher decides exactly as it does
//! (the test below compares the two on generated globs and inputs). Anything in it that is not
//! understood here (a `**/` alternative, a class or `?` among alternatives, more than one `*`
//! where one of them stops at `/`, a case-insensitive flag) leaves the glob to the regex.

use globset::{Candidate, GlobMatcher};

/// A compiled glob (see the module documentation).
#[derive(Debug, Clone)]
pub(crate) struct Glob {
    glob: globset::Glob,
    matcher: Matcher,
}

#[derive(Debug, Clone)]
enum Matcher {
    /// Exactly one of these.
    Words(Vec<Vec<u8>>),
    /// Exactly this piece (with a class or `?` in it).
    Piece(Vec<Unit>),
    /// These pieces in order, anything (any bytes, `/` and newlines included) between them:
    /// the first at the start, the last at the end. At least two.
    Stars(Vec<Vec<Unit>>),
    /// A prefix and a suffix with no `/` between them.
    Segment(Vec<Unit>, Vec<Unit>),
    /// Anything else: globset's regular expression.
    Regex(GlobMatcher),
}

/// One byte of a piece: this byte, or any of a set (a class, or `?`).
#[derive(Debug, Clone)]
enum Unit {
    Byte(u8),
    Set(Box<[bool; 256]>),
}

impl Unit {
    fn matches(&self, b: u8) -> bool {
        match self {
            Unit::Byte(x) => *x == b,
            Unit::Set(set) => set[usize::from(b)],
        }
    }
}

/// Whether `s` is `piece`, byte for byte.
fn is_piece(piece: &[Unit], s: &[u8]) -> bool {
    piece.len() == s.len() && piece.iter().zip(s).all(|(u, &b)| u.matches(b))
}

/// What lies between `first` at the start of `s` and `last` at its end (the two not
/// overlapping), when they are there.
fn between<'s>(first: &[Unit], last: &[Unit], s: &'s [u8]) -> Option<&'s [u8]> {
    let end = s.len().checked_sub(last.len())?;
    (end >= first.len() && is_piece(first, &s[..first.len()]) && is_piece(last, &s[end..])).then(|| &s[first.len()..end])
}

impl Glob {
    /// The matcher of a parsed glob.
    pub(crate) fn new(glob: globset::Glob) -> Self {
        let matcher = shape(glob.regex()).unwrap_or_else(|| Matcher::Regex(glob.compile_matcher()));
        Glob { glob, matcher }
    }

    /// The glob as globset parsed it.
    pub(crate) fn glob(&self) -> &globset::Glob {
        &self.glob
    }

    /// Whether `s` matches, as globset's matcher of the same glob decides.
    pub(crate) fn is_match(&self, s: &[u8]) -> bool {
        match &self.matcher {
            Matcher::Words(words) => words.iter().any(|w| w == s),
            Matcher::Piece(piece) => is_piece(piece, s),
            Matcher::Stars(pieces) => stars_match(pieces, s),
            Matcher::Segment(prefix, suffix) => between(prefix, suffix, s).is_some_and(|m| !m.contains(&b'/')),
            Matcher::Regex(m) => m.is_match_candidate(&Candidate::from_bytes(s)),
        }
    }

    #[cfg(test)]
    fn is_direct(&self) -> bool {
        !matches!(self.matcher, Matcher::Regex(_))
    }
}

/// `^P0.*P1 ... .*Pn$` with `.` matching any byte: each middle piece at its leftmost place
/// after the one before (a later place never leaves more room for the rest).
fn stars_match(pieces: &[Vec<Unit>], s: &[u8]) -> bool {
    let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else { return false };
    let Some(mut rest) = between(first, last, s) else { return false };
    for piece in &pieces[1..pieces.len() - 1] {
        if piece.is_empty() {
            continue;
        }
        match rest.windows(piece.len()).position(|w| is_piece(piece, w)) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// The direct matcher of globset's expression `re`, when it has one of the shapes above.
fn shape(re: &str) -> Option<Matcher> {
    let body = re.strip_prefix("(?-u)^")?.strip_suffix('$')?.as_bytes();
    if let Some(words) = words(body) {
        return Some(Matcher::Words(words));
    }
    let mut pieces = vec![Vec::new()];
    let mut segment_stars = 0;
    for token in tokens(body)? {
        match token {
            Token::Unit(u) => pieces.last_mut()?.push(u),
            Token::AnyStar => pieces.push(Vec::new()),
            Token::SegmentStar => {
                segment_stars += 1;
                pieces.push(Vec::new());
            }
        }
    }
    match (pieces.len(), segment_stars) {
        // Literals only were words above: this piece has a class or `?`.
        (1, _) => Some(Matcher::Piece(pieces.pop()?)),
        (2, 1) => {
            let suffix = pieces.pop()?;
            Some(Matcher::Segment(pieces.pop()?, suffix))
        }
        (_, 0) => Some(Matcher::Stars(pieces)),
        _ => None,
    }
}

#[derive(Debug)]
enum Token {
    /// One byte.
    Unit(Unit),
    /// `.*`: any bytes (globset's expressions match `.` to newlines too).
    AnyStar,
    /// `[^/]*`: any bytes but `/`.
    SegmentStar,
}

/// One literal of globset's expression at the start of `re`: an ASCII character it does not
/// escape, an escaped ASCII punctuation mark, or a byte written `\xNN`; with what follows.
fn literal(re: &[u8]) -> Option<(u8, &[u8])> {
    match re {
        [b'\\', b'x', h, l, rest @ ..] => {
            let hex = std::str::from_utf8(&[*h, *l]).ok().and_then(|t| u8::from_str_radix(t, 16).ok())?;
            Some((hex, rest))
        }
        [b'\\', p, rest @ ..] if p.is_ascii_punctuation() => Some((*p, rest)),
        // (`&`, `~` and `#` are never unescaped in globset's output; refused all the same.)
        [c, rest @ ..] if c.is_ascii() && !b"\\.[]()|*+?{}^$-&~#".contains(c) => Some((*c, rest)),
        _ => None,
    }
}

/// A class of globset's expression, after its `[`: the set of bytes it matches, and what
/// follows its `]`.
fn class(mut re: &[u8]) -> Option<(Box<[bool; 256]>, &[u8])> {
    let negated = match re.strip_prefix(b"^") {
        Some(rest) => {
            re = rest;
            true
        }
        None => false,
    };
    let mut set = Box::new([negated; 256]);
    loop {
        if let Some(rest) = re.strip_prefix(b"]") {
            return Some((set, rest));
        }
        let (from, rest) = literal(re)?;
        re = rest;
        let to = match re.strip_prefix(b"-") {
            Some(rest) => {
                let (to, rest) = literal(rest)?;
                re = rest;
                to
            }
            None => from,
        };
        for b in from..=to {
            set[usize::from(b)] = !negated;
        }
    }
}

/// The tokens of a part of globset's expression; `None` at anything else.
fn tokens(mut re: &[u8]) -> Option<Vec<Token>> {
    let mut out = Vec::new();
    while let Some(&c) = re.first() {
        match c {
            b'.' => match re.strip_prefix(b".*") {
                Some(rest) => {
                    out.push(Token::AnyStar);
                    re = rest;
                }
                None => {
                    out.push(Token::Unit(Unit::Set(Box::new([true; 256]))));
                    re = &re[1..];
                }
            },
            b'[' => {
                let (set, rest) = class(&re[1..])?;
                match rest.strip_prefix(b"*") {
                    // Only globset's `[^/]*` has a star after a class.
                    Some(rest) => {
                        let mut segment = [true; 256];
                        segment[usize::from(b'/')] = false;
                        if *set != segment {
                            return None;
                        }
                        out.push(Token::SegmentStar);
                        re = rest;
                    }
                    None => {
                        out.push(Token::Unit(Unit::Set(set)));
                        re = rest;
                    }
                }
            }
            _ => {
                let (b, rest) = literal(re)?;
                out.push(Token::Unit(Unit::Byte(b)));
                re = rest;
            }
        }
    }
    Some(out)
}

/// At most this many words are made of a glob's alternatives (`{a,b}{c,d}` is four).
const MAX_WORDS: usize = 256;

/// The words globset's expression `re` matches, when it is literals and groups of literal
/// alternatives only (`{nginx,frr}{,.service}`: four words).
fn words(mut re: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut words = vec![Vec::new()];
    while !re.is_empty() {
        if let Some(group) = re.strip_prefix(b"(?:") {
            let end = group_end(group)?;
            let mut alternatives = Vec::new();
            for branch in split_alternatives(&group[..end])? {
                let mut word = Vec::new();
                let mut rest = branch;
                while !rest.is_empty() {
                    let (b, after) = literal(rest)?;
                    word.push(b);
                    rest = after;
                }
                alternatives.push(word);
            }
            if words.len() * alternatives.len() > MAX_WORDS {
                return None;
            }
            words = words.iter().flat_map(|w| alternatives.iter().map(move |a| [w.as_slice(), a].concat())).collect();
            re = &group[end + 1..];
        } else {
            let (b, rest) = literal(re)?;
            words.iter_mut().for_each(|w| w.push(b));
            re = rest;
        }
    }
    Some(words)
}

/// Where the group that `re` is the inside of ends (its unescaped `)`); `None` when it holds
/// another group or a class.
fn group_end(re: &[u8]) -> Option<usize> {
    let mut i = 0;
    while i < re.len() {
        match re[i] {
            b'\\' => i += 2,
            b')' => return Some(i),
            b'(' | b'[' => return None,
            _ => i += 1,
        }
    }
    None
}

/// The branches of `a|b|c` (without the group around it), split at the unescaped `|`.
fn split_alternatives(re: &[u8]) -> Option<Vec<&[u8]>> {
    let mut branches = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < re.len() {
        match re[i] {
            b'\\' => i += 2,
            b'|' => {
                branches.push(&re[start..i]);
                i += 1;
                start = i;
            }
            b'[' | b'(' => return None,
            _ => i += 1,
        }
    }
    branches.push(re.get(start..)?);
    Some(branches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use globset::GlobBuilder;

    /// The option sets this crate builds globs with (executables, arguments and names).
    fn builders(p: &str) -> [Result<globset::Glob, globset::Error>; 2] {
        [
            GlobBuilder::new(p).literal_separator(true).backslash_escape(true).build(),
            GlobBuilder::new(p).literal_separator(false).backslash_escape(true).empty_alternates(true).build(),
        ]
    }

    fn direct(p: &str, i: usize) -> Glob {
        Glob::new(builders(p)[i].clone().expect("a glob"))
    }

    #[test]
    fn the_usual_shapes_are_matched_directly() {
        for (p, i) in [
            ("/tmp/**", 0),
            ("/usr/bin/*", 0),
            ("/opt/*/bin/tool", 0),
            ("{status,list-units,is-active}", 1),
            ("{,-q}", 1),
            ("{nginx,frr,lldpd}{,.service}", 1),
            ("*reboot*", 1),
            ("*.target", 1),
            ("**", 1),
            ("plain-word", 1),
            ("caf\u{e9}", 1),
        ] {
            assert!(direct(p, i).is_direct(), "{p}: {}", direct(p, i).glob().regex());
        }
        for (p, i) in [("*[*?[]*", 1), ("?", 1), ("file.[ch]", 0), ("/usr/bin/?", 0)] {
            assert!(direct(p, i).is_direct(), "{p}: {}", direct(p, i).glob().regex());
        }
        for (p, i) in [("**/x", 0), ("/a/*/b/*", 0), ("{a*,b}", 1), ("{a?,b}", 1), ("{[ab],c}", 1)] {
            assert!(!direct(p, i).is_direct(), "{p} is left to the regex");
        }
        let dir = direct("/tmp/**", 0);
        assert!(dir.is_match(b"/tmp/x") && dir.is_match(b"/tmp/x/y") && dir.is_match(b"/tmp/"));
        assert!(!dir.is_match(b"/tmp") && !dir.is_match(b"/tmpx/y"));
        let segment = direct("/opt/*/bin/tool", 0);
        assert!(segment.is_match(b"/opt/a/bin/tool") && !segment.is_match(b"/opt/a/b/bin/tool"));
        let special = direct("*[*?[]*", 1);
        assert!(special.is_match(b"a*b") && special.is_match(b"x?") && special.is_match(b"[") && !special.is_match(b"abc"));
        let one = direct("/usr/bin/?", 0);
        assert!(one.is_match(b"/usr/bin/w") && !one.is_match(b"/usr/bin//") && !one.is_match(b"/usr/bin/ww"));
        let two = direct("*a*b*", 1);
        assert!(two.is_match(b"aba") && two.is_match(b"xaxbx") && !two.is_match(b"ba"));
        let word = direct("*reboot*", 1);
        assert!(word.is_match(b"reboot") && word.is_match(b"--x\nreboot\n") && !word.is_match(b"rebo"));
        let services = direct("{nginx,frr}{,.service}", 1);
        assert!(services.is_match(b"frr") && services.is_match(b"nginx.service") && !services.is_match(b".service"));
        let words = direct("{,-q}", 1);
        assert!(words.is_match(b"") && words.is_match(b"-q") && !words.is_match(b"q"));
    }

    /// A small deterministic generator (xorshift64*).
    struct Gen(u64);
    impl Gen {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn pick<'a, T>(&mut self, from: &'a [T]) -> &'a T {
            &from[(self.next() % from.len() as u64) as usize]
        }
        fn string(&mut self, alphabet: &[&str], max: u64) -> String {
            let n = self.next() % (max + 1);
            (0..n).map(|_| *self.pick(alphabet)).collect()
        }
    }

    /// The direct matcher decides as globset's regex on every glob and input generated: globs
    /// made of the pieces with a meaning in globs (stars, `**`, alternatives with an empty
    /// branch, classes, escapes, `/`, non-ASCII), inputs of the bytes that matter to them (`/`,
    /// a newline, a non-ASCII character, the globs' literals).
    #[test]
    fn direct_matching_decides_as_globset_s_regex() {
        let pieces = [
            "a", "b", "ab", "/", "*", "*", "**", "?", "{a,b}", "{,a}", "{ab,b,}", "{a*,b}", "[ab]", "[!a]", "\\*",
            "\\{", ".", "-", "\u{e9}", "}", ",", "{", "[",
        ];
        let input_chars = ["a", "b", "/", ".", "\n", "-", "\u{e9}", "ab", "*", "{"];
        let mut g = Gen(0x9e37_79b9_7f4a_7c15);
        let mut compared = 0u64;
        // Words, sets of words, stars, one segment, a piece with a class, and stars or a
        // segment with a class.
        let mut shapes = [0u32; 6];
        // Some with literals that recur between stars (where only the leftmost place works),
        // then generated ones.
        let fixed = ["*a*b*", "*a*a*", "a*b*a", "*ab*b*", "*/*", "/*/a/*", "{a,ab}*b"];
        let generated: Vec<String> = (0..8000).map(|_| g.string(&pieces, 6)).collect();
        for p in fixed.iter().map(|p| (*p).to_owned()).chain(generated) {
            for built in builders(&p) {
                let Ok(built) = built else { continue };
                let ours = Glob::new(built.clone());
                let shape = match &ours.matcher {
                    Matcher::Words(w) => usize::from(w.len() > 1),
                    Matcher::Stars(_) => 2,
                    Matcher::Segment(..) => 3,
                    Matcher::Piece(_) => 4,
                    Matcher::Regex(_) => continue,
                };
                let classes = |p: &[Unit]| p.iter().any(|u| matches!(u, Unit::Set(_)));
                if match &ours.matcher {
                    Matcher::Stars(pieces) => pieces.iter().any(|p| classes(p)),
                    Matcher::Segment(a, b) => classes(a) || classes(b),
                    _ => false,
                } {
                    shapes[5] += 1;
                }
                shapes[shape] += 1;
                let theirs = built.compile_matcher();
                let mut inputs: Vec<String> = (0..40).map(|_| g.string(&input_chars, 8)).collect();
                inputs.push(p.replace(['*', '?', '{', '}', ',', '\\', '[', ']'], ""));
                inputs.push(String::new());
                for s in inputs {
                    assert_eq!(
                        ours.is_match(s.as_bytes()),
                        theirs.is_match_candidate(&Candidate::from_bytes(s.as_bytes())),
                        "glob {p:?} (regex {}) on {s:?}",
                        built.regex()
                    );
                    compared += 1;
                }
            }
        }
        // The generator reaches every shape: a change that sent everything to the regex would
        // pass the comparison without testing anything.
        assert!(shapes.iter().all(|&n| n > 200) && compared > 100_000, "{shapes:?} by shape, {compared} comparisons");
    }
}
