//! One refusal per command. A shell looking a command up in `PATH` tries each directory in
//! turn and goes on after `EACCES`, so on a merged-/usr host one `wget` typed is refused twice,
//! as `/usr/bin/wget` and then as `/bin/wget`: the same file with the same arguments. The
//! second refusal repeats the first: its line says `repeat=1`, the user gets no second message,
//! and it is not counted again.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

/// How long after a refusal the same exec by the same process is the same command.
const WINDOW: Duration = Duration::from_secs(2);
/// Processes remembered at most before the old entries go.
const KEPT: usize = 256;

/// The last refusal of each process: (device, inode, hash of the argv, when).
#[derive(Debug, Default)]
pub struct Repeats {
    last: HashMap<i32, (u64, u64, u64, Instant)>,
}

fn argv_hash(argv: &[Vec<u8>]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    argv.hash(&mut h);
    h.finish()
}

impl Repeats {
    /// Process `tgid` is refused running file `(dev, ino)` with `argv`: whether that repeats
    /// its last refusal. Remembers it either way.
    pub fn refused(&mut self, tgid: i32, (dev, ino): (u64, u64), argv: &[Vec<u8>]) -> bool {
        let now = Instant::now();
        let hash = argv_hash(argv);
        let repeat = self
            .last
            .get(&tgid)
            .is_some_and(|&(d, i, a, t)| (d, i, a) == (dev, ino, hash) && now.duration_since(t) < WINDOW);
        if self.last.len() >= KEPT {
            self.last.retain(|_, e| now.duration_since(e.3) < WINDOW);
        }
        self.last.insert(tgid, (dev, ino, hash, now));
        repeat
    }

    /// Process `tgid` runs a new program: what it is refused next is another command.
    pub fn ran(&mut self, tgid: i32) {
        self.last.remove(&tgid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_file_and_arguments_again_is_a_repeat_until_something_runs() {
        let mut r = Repeats::default();
        let wget = vec![b"wget".to_vec(), b"x".to_vec()];
        assert!(!r.refused(10, (1, 2), &wget));
        assert!(r.refused(10, (1, 2), &wget), "the PATH search's second try");
        assert!(!r.refused(11, (1, 2), &wget), "another process");
        assert!(!r.refused(10, (1, 3), &wget), "another file");
        assert!(!r.refused(10, (1, 3), &[b"wget".to_vec()]), "other arguments");
        r.ran(10);
        assert!(!r.refused(10, (1, 3), &[b"wget".to_vec()]), "a new program ran in between");
    }
}
