//! Users and groups, through NSS: the login user of a session with all its groups, and the
//! names of the effective uids that execs run under.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;

use nix::unistd::{Gid, Group, Uid, User};

/// The login user of a session: the identity every command is authorized for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginUser {
    /// User name.
    pub name: String,
    /// Uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Every gid, the primary one included.
    pub gids: Vec<u32>,
    /// Names of those groups (a group without a name appears as `#gid`).
    pub groups: Vec<String>,
}

fn nss(e: nix::Error) -> io::Error {
    io::Error::from(e)
}

/// The gids and group names of `name`, whose primary group is `gid`.
///
/// # Errors
/// When NSS fails.
pub fn groups_of(name: &str, gid: u32) -> io::Result<(Vec<u32>, Vec<String>)> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let list = nix::unistd::getgrouplist(&c, Gid::from_raw(gid)).map_err(nss)?;
    let mut gids: Vec<u32> = list.iter().map(|g| g.as_raw()).collect();
    if !gids.contains(&gid) {
        gids.insert(0, gid);
    }
    let names = gids
        .iter()
        .map(|&g| match Group::from_gid(Gid::from_raw(g)) {
            Ok(Some(gr)) => gr.name,
            _ => format!("#{g}"),
        })
        .collect();
    Ok((gids, names))
}

/// Looks a user up by name. `Ok(None)` when there is no such user.
///
/// # Errors
/// When NSS fails.
pub fn lookup(name: &str) -> io::Result<Option<LoginUser>> {
    let Some(u) = User::from_name(name).map_err(nss)? else { return Ok(None) };
    let (gids, groups) = groups_of(&u.name, u.gid.as_raw())?;
    Ok(Some(LoginUser { name: u.name, uid: u.uid.as_raw(), gid: u.gid.as_raw(), gids, groups }))
}

/// Names of uids, looked up once each.
#[derive(Debug, Default)]
pub struct UidNames {
    cache: HashMap<u32, String>,
}

impl UidNames {
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
    fn root_is_found_with_its_groups() {
        let r = lookup("root").expect("nss").expect("root exists");
        assert_eq!((r.uid, r.gid), (0, 0));
        assert!(r.groups.iter().any(|g| g == "root"));
        assert_eq!(lookup("no-such-user-sw").expect("nss"), None);
    }

    #[test]
    fn unknown_uids_get_a_numeric_name() {
        let mut n = UidNames::default();
        assert_eq!(n.name(0), "root");
        assert_eq!(n.name(3_999_999), "#3999999");
    }
}
