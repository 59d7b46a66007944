//! The login user of a session as NSS gives it, with every group.
//!
//! The module looks the user up in the host process (sshd, su, sudo and login have already
//! loaded their NSS modules to find the user) while the supervisor it just started is still
//! being loaded, and sends the result in its hello: the supervisor then does not load NSS
//! modules of its own on the session open's critical path (docs/BENCHMARKS.md, sixth pass).
//! A hello without one (a module of an older version, or a lookup that failed in the host)
//! makes the supervisor look the user up itself, as before.

use std::ffi::CString;
use std::io;

use nix::unistd::{Gid, Group, User};

/// A user: the identity every command of a session is authorized for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Account {
    /// User name, as NSS spells it.
    pub name: String,
    /// Uid.
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    /// Every gid, the primary one included.
    pub gids: Vec<u32>,
    /// Names of those groups, in the same order (a group without a name appears as `#gid`).
    pub groups: Vec<String>,
    /// The name NSS gives `uid` when asked by uid (`name` but where another user of that uid
    /// comes first): what the supervisor calls the user of an exec that runs as `uid`. Looked
    /// up with the rest, so that a session's first exec does not load NSS in the supervisor
    /// (`None`: not looked up, `uid` has no name, or NSS failed).
    pub uid_name: Option<String>,
}

impl Account {
    /// Looks a user up by name. `Ok(None)` when there is no such user.
    ///
    /// # Errors
    /// When NSS fails.
    pub fn lookup(name: &str) -> io::Result<Option<Account>> {
        let Some(u) = User::from_name(name).map_err(io::Error::from)? else { return Ok(None) };
        let (gids, groups) = groups_of(&u.name, u.gid.as_raw())?;
        let uid_name = User::from_uid(u.uid).ok().flatten().map(|by_uid| by_uid.name);
        Ok(Some(Account { name: u.name, uid: u.uid.as_raw(), gid: u.gid.as_raw(), gids, groups, uid_name }))
    }
}

/// The gids and group names of `name`, whose primary group is `gid`.
fn groups_of(name: &str, gid: u32) -> io::Result<(Vec<u32>, Vec<String>)> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let list = nix::unistd::getgrouplist(&c, Gid::from_raw(gid)).map_err(io::Error::from)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_found_with_its_groups() {
        let r = Account::lookup("root").expect("nss").expect("root exists");
        assert_eq!((r.uid, r.gid), (0, 0));
        assert_eq!(r.gids.len(), r.groups.len());
        assert!(r.groups.iter().any(|g| g == "root"));
        assert_eq!(r.uid_name.as_deref(), Some("root"));
        assert_eq!(Account::lookup("no-such-user-sw").expect("nss"), None);
    }
}
