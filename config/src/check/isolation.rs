//! Each `[[isolation]]` block ([`crate::isolation`]). Blocks of every source are kept; a block
//! with any problem is dropped (the configuration is refused anyway).

use toml::Spanned;

use crate::isolation::{parse_cpu, parse_size, Blocked, CpuMax, Isolation, Landlock, SyscallSet, NOT_BLOCKABLE};
use crate::raw::{RawIsolation, RawLandlock};
use crate::Location;

use super::{valid_block_name, Checker};

/// Directories that must never be replaced by an empty tmpfs.
const UNPRIVATIZABLE: &[&str] =
    &["/", "/proc", "/sys", "/dev", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/boot", "/run"];

/// One `[[isolation]]` block.
pub(crate) fn check_isolation(raw: Spanned<RawIsolation>, ck: &mut Checker<'_>) -> Option<Isolation> {
    let origin = ck.at(raw.span().start);
    let r = raw.into_inner();
    let mark = ck.mark();
    let name = isolation_name(r.name, &origin, ck);
    let block = r.block_syscalls.map(|list| blocked_syscalls(list, ck)).unwrap_or_default();
    let memory_max = r.memory_max.and_then(|v| memory_max(&v, ck));
    let pids_max = r.pids_max.and_then(|v| ck.ranged(&v, "pids-max", 1, 4_194_304)).map(|n| n as u64);
    let cpu_max = r.cpu_max.and_then(|v| cpu_max(&v, ck));
    let private_dirs = r.private_dirs.map(|list| private_dirs(list, ck)).unwrap_or_default();
    let landlock = r.landlock.map(|l| landlock(l.into_inner(), ck));
    let users = ck.names(r.users, "users");
    let groups = ck.names(r.groups, "groups");
    let services = ck.names(r.services, "services");
    if ck.found_since(mark) {
        return None;
    }
    Some(Isolation {
        name,
        origin,
        users,
        groups,
        services,
        block,
        memory_max,
        pids_max,
        cpu_max,
        private_dirs,
        landlock,
    })
}

/// `name`, by default `isolation-FILE:LINE`.
fn isolation_name(name: Option<Spanned<String>>, origin: &Location, ck: &mut Checker<'_>) -> String {
    match name {
        Some(n) => {
            if !valid_block_name(n.get_ref()) {
                ck.problem(
                    n.span().start,
                    format!("isolation name {:?} must be 1-64 letters, digits, `.`, `_`, `:`, `-`", n.get_ref()),
                );
            }
            n.into_inner()
        }
        None => format!("isolation-{}:{}", ck.file_base(), origin.line),
    }
}

/// `block-syscalls`: named sets and single system calls, except those the session filter
/// handles itself.
fn blocked_syscalls(list: Spanned<Vec<Spanned<String>>>, ck: &mut Checker<'_>) -> Vec<Blocked> {
    let mut block = Vec::new();
    for item in list.into_inner() {
        let v = item.get_ref();
        if let Some(set) = SyscallSet::parse(v) {
            block.push(Blocked::Set(set));
        } else if NOT_BLOCKABLE.contains(&v.as_str()) {
            ck.problem(
                item.span().start,
                format!("{v:?} cannot be blocked: the session filter itself handles it (use the policy's rules for execs)"),
            );
        } else if !v.is_empty() && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            block.push(Blocked::Syscall(v.clone()));
        } else {
            ck.problem(
                item.span().start,
                format!("{v:?} is neither a system call name nor one of the sets {}", SyscallSet::names().join(", ")),
            );
        }
    }
    block
}

/// `memory-max`: bytes, or a size with a suffix; at least 1M.
fn memory_max(v: &Spanned<toml::Value>, ck: &mut Checker<'_>) -> Option<u64> {
    let parsed = match v.get_ref() {
        toml::Value::Integer(n) => u64::try_from(*n).ok().filter(|&n| n > 0),
        toml::Value::String(s) => parse_size(s),
        _ => None,
    };
    match parsed {
        Some(n) if n >= 1 << 20 => Some(n),
        _ => {
            ck.problem(v.span().start, "memory-max must be a size of at least 1M (bytes, or with K, M, G, T)");
            None
        }
    }
}

/// `cpu-max`: a percentage of one CPU, or quota and period.
fn cpu_max(v: &Spanned<String>, ck: &mut Checker<'_>) -> Option<CpuMax> {
    let parsed = parse_cpu(v.get_ref());
    if parsed.is_none() {
        ck.problem(
            v.span().start,
            "cpu-max must be a percentage of one CPU (\"50%\") or \"QUOTA PERIOD\" in microseconds",
        );
    }
    parsed
}

/// `private-dirs`: absolute, canonical directories, none that the system needs.
fn private_dirs(list: Spanned<Vec<Spanned<String>>>, ck: &mut Checker<'_>) -> Vec<String> {
    let mut dirs = Vec::new();
    for d in list.into_inner() {
        let v = d.get_ref().trim_end_matches('/').to_owned();
        let canonical =
            v.starts_with('/') && !v.split('/').skip(1).any(|c| c.is_empty() || c == "." || c == "..");
        if !canonical || UNPRIVATIZABLE.contains(&v.as_str()) || v.is_empty() {
            ck.problem(
                d.span().start,
                format!(
                    "private-dirs cannot hold {:?}: an absolute, canonical directory other than {}",
                    d.get_ref(),
                    UNPRIVATIZABLE.join(" ")
                ),
            );
        } else {
            dirs.push(v);
        }
    }
    dirs
}

/// `landlock`: absolute paths and TCP ports; an absent list leaves that access unrestricted.
fn landlock(l: RawLandlock, ck: &mut Checker<'_>) -> Landlock {
    let paths = |list: Option<Vec<Spanned<String>>>, ck: &mut Checker<'_>, what: &str| {
        list.map(|v| v.iter().filter_map(|p| ck.absolute(p, what)).collect::<Vec<_>>())
    };
    let ports = |list: Option<Vec<Spanned<i64>>>, ck: &mut Checker<'_>, what: &str| {
        list.map(|v| v.iter().filter_map(|p| ck.ranged(p, what, 1, 65_535)).map(|p| p as u16).collect::<Vec<_>>())
    };
    Landlock {
        read: paths(l.read, ck, "landlock.read"),
        write: paths(l.write, ck, "landlock.write"),
        execute: paths(l.execute, ck, "landlock.execute"),
        tcp_bind: ports(l.tcp_bind, ck, "landlock.tcp-bind"),
        tcp_connect: ports(l.tcp_connect, ck, "landlock.tcp-connect"),
    }
}
