//! The answers of the authorization backend, remembered for `cache-ttl-s` by command line
//! (the path the program is invoked through and its arguments): clear permits and denials
//! only.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::gather::ExecFacts;
use crate::authz::Outcome;

/// Entries at most; beyond, expired ones go, then all.
const ENTRIES: usize = 10_000;

/// Remembered answers.
#[derive(Debug, Default)]
pub struct Cache {
    entries: HashMap<Vec<u8>, (Outcome, Instant)>,
}

/// The key of an exec: the path it is invoked through, then each argument, NUL-separated.
pub fn key(f: &ExecFacts) -> Vec<u8> {
    let mut k = f.invoked_path().unwrap_or_else(|| f.plan.named.real_path.clone());
    for a in f.argv.get(1..).unwrap_or(&[]) {
        k.push(0);
        k.extend_from_slice(a);
    }
    k
}

impl Cache {
    /// The answer remembered for `key`, while it lasts.
    pub fn get(&mut self, key: &[u8]) -> Option<Outcome> {
        let (o, until) = self.entries.get(key)?;
        if *until > Instant::now() {
            Some(o.clone())
        } else {
            self.entries.remove(key);
            None
        }
    }

    /// Remembers `outcome` for `ttl` when it may be: a permit or a denial.
    pub fn remember(&mut self, key: Vec<u8>, outcome: &Outcome, ttl: Duration) {
        if !matches!(outcome, Outcome::Permit { .. } | Outcome::Deny { .. }) {
            return;
        }
        if self.entries.len() >= ENTRIES {
            let now = Instant::now();
            self.entries.retain(|_, (_, until)| *until > now);
            if self.entries.len() >= ENTRIES {
                self.entries.clear();
            }
        }
        self.entries.insert(key, (outcome.clone(), Instant::now() + ttl));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_permits_and_denials_are_remembered_and_they_expire() {
        let mut c = Cache::default();
        let permit = Outcome::Permit { server: "s".into(), status: "PASS_ADD" };
        c.remember(b"k".to_vec(), &permit, Duration::from_secs(60));
        assert_eq!(c.get(b"k"), Some(permit));
        c.remember(b"n".to_vec(), &Outcome::NoAnswer { tried: vec![] }, Duration::from_secs(60));
        assert_eq!(c.get(b"n"), None);
        c.remember(b"e".to_vec(), &Outcome::Deny { server: "s".into(), status: "FAIL", message: String::new() }, Duration::ZERO);
        assert_eq!(c.get(b"e"), None, "expired at once");
    }
}
