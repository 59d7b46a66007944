//! The isolation record: the bytes of an [`Isolate`], carried in one field of a
//! [`super::Message::Supervise`]. Framed as messages are ([`super::frame`]); private
//! directories first, then each layer record followed by its paths and ports, then the
//! systemd limits.

use crate::isolate::{Isolate, LandlockLayer};

use super::frame::{Fields, Framing, WireError, Writer};

mod tag {
    pub const PRIVATE_DIR: u8 = 1;
    pub const LAYER: u8 = 2;
    pub const READ: u8 = 3;
    pub const WRITE: u8 = 4;
    pub const EXECUTE: u8 = 5;
    pub const BIND: u8 = 6;
    pub const CONNECT: u8 = 7;
    pub const SYSTEMD_MEMORY: u8 = 8;
    pub const SYSTEMD_TASKS: u8 = 9;
}

/// Bits of a layer record: which kinds the layer restricts.
mod kinds {
    pub const READ: u8 = 1;
    pub const WRITE: u8 = 2;
    pub const EXECUTE: u8 = 4;
    pub const BIND: u8 = 8;
    pub const CONNECT: u8 = 16;
}

/// How the record's fields are framed, and what a bad frame is called.
const FRAMING: Framing =
    Framing { truncated: "truncated isolation record", overlong: "isolation record longer than message" };

impl Isolate {
    /// The bytes of this record (a sequence of tag, little-endian `u32` length, value; paths
    /// and ports follow the layer record they belong to).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        for d in &self.private_dirs {
            w.field(tag::PRIVATE_DIR, d);
        }
        for l in &self.landlock {
            encode_layer(&mut w, l);
        }
        w.opt(tag::SYSTEMD_MEMORY, &self.systemd_memory_max);
        w.opt(tag::SYSTEMD_TASKS, &self.systemd_tasks_max);
        w.into_bytes()
    }

    /// Reads a record made by [`Isolate::encode`].
    ///
    /// # Errors
    /// [`WireError`] for truncated records, unknown tags, paths before any layer or of a kind
    /// the layer does not restrict, and paths that are empty, relative or contain NUL.
    pub fn decode(data: &[u8]) -> Result<Self, WireError> {
        let mut out = Isolate::default();
        for field in Fields::new(data, FRAMING) {
            let (t, value) = field?;
            add_field(&mut out, t, value)?;
        }
        Ok(out)
    }
}

/// The layer record (the mask of the kinds it restricts), then its paths and ports.
fn encode_layer(w: &mut Writer, l: &LandlockLayer) {
    let mut mask = 0;
    for (present, bit) in [
        (l.read.is_some(), kinds::READ),
        (l.write.is_some(), kinds::WRITE),
        (l.execute.is_some(), kinds::EXECUTE),
        (l.tcp_bind.is_some(), kinds::BIND),
        (l.tcp_connect.is_some(), kinds::CONNECT),
    ] {
        if present {
            mask |= bit;
        }
    }
    w.field(tag::LAYER, &[mask]);
    for (t, paths) in [(tag::READ, &l.read), (tag::WRITE, &l.write), (tag::EXECUTE, &l.execute)] {
        for p in paths.iter().flatten() {
            w.field(t, p);
        }
    }
    for (t, ports) in [(tag::BIND, &l.tcp_bind), (tag::CONNECT, &l.tcp_connect)] {
        for p in ports.iter().flatten() {
            w.field(t, &p.to_le_bytes());
        }
    }
}

/// Adds one field of the record to `out`.
fn add_field(out: &mut Isolate, t: u8, value: &[u8]) -> Result<(), WireError> {
    match t {
        tag::PRIVATE_DIR => out.private_dirs.push(path(value)?),
        tag::LAYER => out.landlock.push(layer(value)?),
        tag::READ | tag::WRITE | tag::EXECUTE => {
            let p = path(value)?;
            let l = out.landlock.last_mut().ok_or(WireError::Malformed("path outside a layer"))?;
            let list = match t {
                tag::READ => &mut l.read,
                tag::WRITE => &mut l.write,
                _ => &mut l.execute,
            };
            list.as_mut().ok_or(WireError::Malformed("path outside a layer that restricts it"))?.push(p);
        }
        tag::BIND | tag::CONNECT => {
            let p = port(value)?;
            let l = out.landlock.last_mut().ok_or(WireError::Malformed("port outside a layer"))?;
            let ports = if t == tag::BIND { &mut l.tcp_bind } else { &mut l.tcp_connect };
            ports.as_mut().ok_or(WireError::Malformed("port outside a layer that restricts it"))?.push(p);
        }
        tag::SYSTEMD_MEMORY => out.systemd_memory_max = Some(value.to_vec()),
        tag::SYSTEMD_TASKS => out.systemd_tasks_max = Some(value.to_vec()),
        other => return Err(WireError::UnknownField(other)),
    }
    Ok(())
}

/// An absolute path without NUL.
fn path(value: &[u8]) -> Result<Vec<u8>, WireError> {
    if value.first() != Some(&b'/') || value.contains(&0) {
        return Err(WireError::Malformed("isolation path is not absolute"));
    }
    Ok(value.to_vec())
}

/// A little-endian `u16`.
fn port(value: &[u8]) -> Result<u16, WireError> {
    let b: [u8; 2] = value.try_into().map_err(|_| WireError::Malformed("port size"))?;
    Ok(u16::from_le_bytes(b))
}

/// A new layer from its record: each kind its mask restricts starts with nothing allowed.
fn layer(value: &[u8]) -> Result<LandlockLayer, WireError> {
    let &[mask] = value else { return Err(WireError::Malformed("layer record size")) };
    let on = |bit: u8| (mask & bit != 0).then(Vec::new);
    Ok(LandlockLayer {
        read: on(kinds::READ),
        write: on(kinds::WRITE),
        execute: on(kinds::EXECUTE),
        tcp_bind: (mask & kinds::BIND != 0).then(Vec::new),
        tcp_connect: (mask & kinds::CONNECT != 0).then(Vec::new),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Isolate {
        Isolate {
            private_dirs: vec![b"/tmp".to_vec(), b"/var/tmp".to_vec()],
            landlock: vec![
                LandlockLayer {
                    read: None,
                    write: Some(vec![b"/home".to_vec(), b"/tmp".to_vec()]),
                    execute: Some(vec![]),
                    tcp_bind: None,
                    tcp_connect: Some(vec![22, 443]),
                },
                LandlockLayer { read: Some(vec![b"/".to_vec()]), ..LandlockLayer::default() },
            ],
            systemd_memory_max: Some(b"1073741824".to_vec()),
            systemd_tasks_max: None,
        }
    }

    fn record(fields: &[(u8, &[u8])]) -> Vec<u8> {
        let mut w = Writer::default();
        for (t, v) in fields {
            w.field(*t, v);
        }
        w.into_bytes()
    }

    #[test]
    fn records_roundtrip_and_keep_empty_lists_distinct_from_absent_ones() {
        let i = sample();
        assert_eq!(Isolate::decode(&i.encode()), Ok(i.clone()));
        assert_eq!(Isolate::decode(&[]), Ok(Isolate::default()));
        assert!(Isolate::default().is_empty());
        assert!(Isolate::default().encode().is_empty());
        let d = Isolate::decode(&i.encode()).expect("decodes");
        assert_eq!(d.landlock[0].execute, Some(vec![]), "execute restricted, nothing allowed");
        assert_eq!(d.landlock[0].read, None, "read unrestricted");
    }

    #[test]
    fn the_record_bytes_stay_as_they_were() {
        let i = Isolate {
            private_dirs: vec![b"/t".to_vec()],
            landlock: vec![LandlockLayer {
                write: Some(vec![b"/h".to_vec()]),
                tcp_connect: Some(vec![0x0116]),
                ..LandlockLayer::default()
            }],
            systemd_memory_max: None,
            systemd_tasks_max: Some(b"9".to_vec()),
        };
        #[rustfmt::skip]
        let expected = [
            1, 2, 0, 0, 0, b'/', b't',
            2, 1, 0, 0, 0, kinds::WRITE | kinds::CONNECT,
            4, 2, 0, 0, 0, b'/', b'h',
            7, 2, 0, 0, 0, 0x16, 0x01,
            9, 1, 0, 0, 0, b'9',
        ];
        assert_eq!(i.encode(), expected);
    }

    #[test]
    fn malformed_records_are_refused() {
        let malformed = |s| Err(WireError::Malformed(s));
        // A path before any layer.
        assert_eq!(Isolate::decode(&record(&[(tag::WRITE, b"/tmp")])), malformed("path outside a layer"));
        assert_eq!(Isolate::decode(&record(&[(tag::BIND, &[22, 0])])), malformed("port outside a layer"));
        // A path or port of a kind the layer does not restrict.
        assert_eq!(
            Isolate::decode(&record(&[(tag::LAYER, &[kinds::READ]), (tag::WRITE, b"/tmp")])),
            malformed("path outside a layer that restricts it")
        );
        assert_eq!(
            Isolate::decode(&record(&[(tag::LAYER, &[kinds::READ]), (tag::CONNECT, &[22, 0])])),
            malformed("port outside a layer that restricts it")
        );
        // A relative, empty or NUL-holding path; a port or layer record of the wrong size.
        for bad in [&b"tmp"[..], b"", b"/t\0"] {
            assert_eq!(
                Isolate::decode(&record(&[(tag::PRIVATE_DIR, bad)])),
                malformed("isolation path is not absolute")
            );
        }
        assert_eq!(
            Isolate::decode(&record(&[(tag::LAYER, &[kinds::BIND]), (tag::BIND, &[22])])),
            malformed("port size")
        );
        assert_eq!(Isolate::decode(&record(&[(tag::LAYER, &[1, 2])])), malformed("layer record size"));
        // Truncation and unknown tags.
        let good = sample().encode();
        for cut in 1..good.len() {
            let _ = Isolate::decode(&good[..cut]);
        }
        assert_eq!(Isolate::decode(&[99, 0, 0, 0, 0]), Err(WireError::UnknownField(99)));
        assert_eq!(
            Isolate::decode(&[tag::PRIVATE_DIR, 9, 0, 0, 0, b'/']),
            malformed("isolation record longer than message")
        );
        assert_eq!(Isolate::decode(&[tag::PRIVATE_DIR, 9]), malformed("truncated isolation record"));
    }

    #[test]
    fn a_later_systemd_limit_replaces_an_earlier_one() {
        let b = record(&[(tag::SYSTEMD_MEMORY, b"1"), (tag::SYSTEMD_MEMORY, b"2")]);
        assert_eq!(Isolate::decode(&b).expect("decodes").systemd_memory_max, Some(b"2".to_vec()));
    }
}
