//! Users and groups, through NSS: the login user of a session with all its groups, and the
//! names of the effective uids that execs run under.

use std::collections::HashMap;
use std::io;

use nix::unistd::{Uid, User};

/// The login user of a session: the identity every command is authorized for.
pub use session_wrapper_protocol::Account as LoginUser;

/// Looks a user up by name. `Ok(None)` when there is no such user.
///
/// # Errors
/// When NSS fails.
pub fn lookup(name: &str) -> io::Result<Option<LoginUser>> {
    LoginUser::lookup(name)
}

/// Names of uids, looked up once each.
#[derive(Debug, Default)]
pub struct UidNames {
    cache: HashMap<u32, String>,
}

impl UidNames {
    /// Names of uids that know `uid`'s name already (as a lookup of `uid` gave it).
    pub fn knowing(uid: u32, name: Option<&str>) -> Self {
        let mut names = UidNames::default();
        if let Some(name) = name {
            names.cache.insert(uid, name.to_owned());
        }
        names
    }

    /// The name of `uid`, or `#uid` when it has none.
    pub fn name(&mut self, uid: u32) -> &str {
        // Bounded: a session sees few distinct uids, but never let a hostile one grow this.
        if self.cache.len() > 1024 {
            self.cache.clear();
        }
        self.cache.entry(uid).or_insert_with(|| match User::from_uid(Uid::from_raw(uid)) {
            Ok(Some(u)) => u.name,
            _ => format!("#{uid}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_uids_get_a_numeric_name() {
        let mut n = UidNames::default();
        assert_eq!(n.name(0), "root");
        assert_eq!(n.name(3_999_999), "#3999999");
    }

    #[test]
    fn a_name_known_before_is_not_looked_up() {
        let mut n = UidNames::knowing(3_999_998, Some("given"));
        assert_eq!(n.name(3_999_998), "given");
        assert_eq!(n.name(3_999_999), "#3999999", "others are looked up");
        assert_eq!(UidNames::knowing(3_999_998, None).name(3_999_998), "#3999998");
    }
}
