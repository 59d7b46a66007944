//! The account record: the bytes of an [`Account`], carried in one field of a
//! [`super::Message::Hello`]. Framed as messages are ([`super::frame`]): the name, the uid
//! and the primary gid once each, then one field per group (its gid, then its name), in the
//! account's order, then the uid's own name when known (a record without it, from a module of
//! an older version, reads as an account whose uid's name is not known).

use crate::account::Account;

use super::frame::{Fields, Framing, WireError, Writer};

mod tag {
    pub const NAME: u8 = 1;
    pub const UID: u8 = 2;
    pub const GID: u8 = 3;
    pub const GROUP: u8 = 4;
    pub const UID_NAME: u8 = 5;
}

/// How the record's fields are framed, and what a bad frame is called.
const FRAMING: Framing = Framing { truncated: "truncated account record", overlong: "account record longer than message" };

/// The bytes of `a`.
pub(super) fn encode(a: &Account) -> Vec<u8> {
    let mut w = Writer::default();
    w.field(tag::NAME, a.name.as_bytes());
    w.field(tag::UID, &a.uid.to_le_bytes());
    w.field(tag::GID, &a.gid.to_le_bytes());
    for (gid, name) in a.gids.iter().zip(&a.groups) {
        let mut v = gid.to_le_bytes().to_vec();
        v.extend_from_slice(name.as_bytes());
        w.field(tag::GROUP, &v);
    }
    if let Some(n) = &a.uid_name {
        w.field(tag::UID_NAME, n.as_bytes());
    }
    w.into_bytes()
}

/// Reads a record made by [`encode`].
///
/// # Errors
/// [`WireError`] for truncated records, unknown or repeated tags (but groups), ids that are
/// not four bytes, names that are not UTF-8, and a record without its name, uid or gid.
pub(super) fn decode(data: &[u8]) -> Result<Account, WireError> {
    let (mut name, mut uid, mut gid) = (None, None, None);
    let mut a = Account::default();
    let id = |v: &[u8]| v.try_into().map(u32::from_le_bytes).map_err(|_| WireError::Malformed("account id size"));
    let utf8 = |v: &[u8]| String::from_utf8(v.to_vec()).map_err(|_| WireError::Malformed("account name not UTF-8"));
    for field in Fields::new(data, FRAMING) {
        let (t, v) = field?;
        match t {
            tag::NAME => {
                once(&name)?;
                name = Some(utf8(v)?);
            }
            tag::UID => {
                once(&uid)?;
                uid = Some(id(v)?);
            }
            tag::GID => {
                once(&gid)?;
                gid = Some(id(v)?);
            }
            tag::GROUP => {
                let (g, n) = v.split_first_chunk::<4>().ok_or(WireError::Malformed("account group size"))?;
                a.gids.push(u32::from_le_bytes(*g));
                a.groups.push(utf8(n)?);
            }
            tag::UID_NAME => {
                once(&a.uid_name)?;
                a.uid_name = Some(utf8(v)?);
            }
            other => return Err(WireError::UnknownField(other)),
        }
    }
    a.name = name.ok_or(WireError::Missing("account name"))?;
    a.uid = uid.ok_or(WireError::Missing("account uid"))?;
    a.gid = gid.ok_or(WireError::Missing("account gid"))?;
    Ok(a)
}

/// Refuses a field that fills `slot` a second time.
fn once<T>(slot: &Option<T>) -> Result<(), WireError> {
    match slot {
        Some(_) => Err(WireError::Malformed("duplicate account field")),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Account {
        Account {
            name: "alice".into(),
            uid: 1000,
            gid: 1000,
            gids: vec![1000, 27, 4],
            groups: vec!["alice".into(), "sudo".into(), "#4".into()],
            uid_name: Some("alice".into()),
        }
    }

    #[test]
    fn an_account_reads_back_as_written() {
        assert_eq!(decode(&encode(&alice())).expect("decodes"), alice());
        let none = Account { name: "x".into(), ..Account::default() };
        assert_eq!(decode(&encode(&none)).expect("decodes"), none);
    }

    #[test]
    fn a_bad_account_record_is_refused() {
        let good = encode(&alice());
        assert!(decode(&good[..good.len() - 1]).is_err(), "truncated");
        let mut twice = good.clone();
        twice.extend_from_slice(&[tag::UID, 4, 0, 0, 0, 1, 0, 0, 0]);
        assert_eq!(decode(&twice), Err(WireError::Malformed("duplicate account field")));
        let mut named_twice = good.clone();
        named_twice.extend_from_slice(&[tag::UID_NAME, 1, 0, 0, 0, b'b']);
        assert_eq!(decode(&named_twice), Err(WireError::Malformed("duplicate account field")));
        let mut odd = good.clone();
        odd.extend_from_slice(&[9, 0, 0, 0, 0]);
        assert_eq!(decode(&odd), Err(WireError::UnknownField(9)));
        let mut short_group = good.clone();
        short_group.extend_from_slice(&[tag::GROUP, 3, 0, 0, 0, 1, 2, 3]);
        assert_eq!(decode(&short_group), Err(WireError::Malformed("account group size")));
        let mut w = Writer::default();
        w.field(tag::NAME, b"a");
        w.field(tag::UID, &[0, 0, 0, 0]);
        assert_eq!(decode(&w.into_bytes()), Err(WireError::Missing("account gid")));
        let mut w = Writer::default();
        w.field(tag::NAME, &[0xff]);
        assert_eq!(decode(&w.into_bytes()), Err(WireError::Malformed("account name not UTF-8")));
    }
}
