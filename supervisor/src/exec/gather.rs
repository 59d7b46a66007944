//! Gathering the facts of one exec: the caller's ids, the path, `argv` and what the
//! environment says to the loader, read from its memory ([`crate::sys::memory`]); the real file and
//! its `#!` chain ([`crate::sys::resolve`]), the links its name comes through ([`crate::sys::trust`]); the
//! working directory, the terminal, the caller's user namespace.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::unistd::Pid;
use session_wrapper_config::{Config, ExeKind, GuardAction};

use crate::sys::exefile::Loaders;
use crate::sys::filter::{Notified, AUDIT_ARCH_I386};
use crate::log::{Event, Kind, Severity};
use crate::sys::memory::{self, Limits, PtrWidth, Remote};
use crate::sys::notify::{Listener, Notification};
use crate::sys::procfs;
use crate::sys::resolve::{self, Asker, ExecPlan, HeadCache, Reference, RemoteFd};
use crate::sys::trust::LinkFinder;
use crate::sys::users::{LoginUser, UidNames};

/// The library search path variables the `library-path` guard checks.
pub const LIBRARY_PATH_VARS: [&str; 2] = ["LD_LIBRARY_PATH", "GCONV_PATH"];

/// What the pipeline sees the session's execs with: this system's loaders, the bounds of what
/// is read, caches, the session's own root and user namespace.
#[derive(Debug)]
pub struct Sight {
    /// The dynamic loaders, by identity.
    pub loaders: Loaders,
    /// Bounds on what is read from a process.
    pub limits: Limits,
    /// Names of uids.
    pub names: UidNames,
    /// Heads of files recently seen (`#!` lines).
    pub heads: HeadCache,
    /// The session's mount and user namespace.
    pub reference: Reference,
    /// Finds the links a program is invoked through under another name.
    pub links: LinkFinder,
    /// The library search path variables checked (none when the guard allows them).
    pub library_vars: Vec<String>,
    /// How many bytes of environment strings to keep whole for the kernel's exec check (0:
    /// none, the check is at the ptrace stop).
    pub strings_max: usize,
    /// With the kernel's exec check and the `user-namespaces` guard denying: the session's
    /// user namespace (inode number), which the kernel compares with the task's at the exec
    /// instead of a `/proc/TID/ns/user` lookup here.
    pub kernel_user_namespace: Option<u32>,
}

impl Sight {
    /// What a session sees with under `config`, from its `reference` (its root, mount table
    /// and user namespace, taken while its leader waited): this system's loaders, and a
    /// finder of the links in the standard directories of that root (opened at its first
    /// search). Its `user`'s uid is named as the account's lookup (the module's, or the
    /// supervisor's own) named it.
    pub fn new(config: &Config, reference: Reference, user: &LoginUser) -> Self {
        let links = LinkFinder::new(reference.root());
        let library_vars = if config.policy.guards.library_path == GuardAction::Deny {
            LIBRARY_PATH_VARS.iter().map(|v| (*v).to_owned()).collect()
        } else {
            Vec::new()
        };
        Sight {
            loaders: Loaders::discover(),
            limits: Limits::default(),
            names: UidNames::knowing(user.uid, user.uid_name.as_deref()),
            heads: HeadCache::default(),
            reference,
            links,
            library_vars,
            strings_max: 0,
            kernel_user_namespace: None,
        }
    }

    /// Hands the exec check to the kernel: environment strings are kept whole, and the user
    /// namespace is compared there when the guard denies others.
    pub fn check_in_kernel(&mut self, config: &Config) {
        self.strings_max = crate::sys::bpf::BLOCK_MAX;
        if config.policy.guards.user_namespaces == GuardAction::Deny {
            self.kernel_user_namespace = self.reference.user_namespace_inode().and_then(|i| u32::try_from(i).ok());
        }
    }
}

/// Everything known about one exec before it is decided.
#[derive(Debug)]
pub struct ExecFacts {
    /// The notification's id.
    pub id: u64,
    /// The thread that made the call.
    pub tid: i32,
    /// Its ids.
    pub status: procfs::Status,
    /// A pidfd of it, for the deny message.
    pub pidfd: Option<OwnedFd>,
    /// The path as asked.
    pub path: Vec<u8>,
    /// The argument vector (never empty: an empty one runs with `argv[0] = ""`).
    pub argv: Vec<Vec<u8>>,
    /// The first refused loader variable the environment sets.
    pub loader_env: Option<String>,
    /// The environment's strings whole, each with its NUL, when the kernel checks the exec
    /// and they fit ([`Sight::strings_max`]); their buffer is given back for the next exec's
    /// once the exec's check is chosen.
    pub env_strings: Option<Vec<u8>>,
    /// Why a library search path of its environment is refused, if it is.
    pub library_path: Option<String>,
    /// Whether the caller is in a user namespace other than the session's.
    pub foreign_user_namespace: bool,
    /// Not looked up: the kernel compares it if it takes this exec
    /// ([`Sight::kernel_user_namespace`]); otherwise it is looked up before the exec goes on.
    pub user_namespace_unchecked: bool,
    /// The file, its `#!` chain and what will really start.
    pub plan: ExecPlan,
    /// The working directory.
    pub cwd: Vec<u8>,
    /// The controlling terminal: `None` until it is known, then the terminal if there is one.
    /// It is read from `/proc` while the caller waits in its notification, except for an exec
    /// the kernel check takes, whose finding gives the terminal at the exec itself: one
    /// reading fewer before the answer ([`ExecFacts::tty`], [`ExecFacts::found_tty`]).
    pub tty: Option<Option<String>>,
    /// The effective user at the exec, by name.
    pub target_user: String,
    /// When the notification was received.
    pub t0: Instant,
}

/// An exec's environment strings go back for the next exec's, whatever became of it (the
/// pipeline gives them back earlier, once the exec's check is chosen: [`ExecFacts::env_strings`]).
impl Drop for ExecFacts {
    fn drop(&mut self) {
        self.give_back_env();
    }
}

impl ExecFacts {
    /// Gives the environment's strings back for the next exec's (they are read for the
    /// kernel's expectation alone).
    pub fn give_back_env(&mut self) {
        if let Some(env) = self.env_strings.take() {
            memory::give_back_strings(env);
        }
    }

    /// The controlling terminal, read from `/proc` if not known yet (`None`: none, or the
    /// process is gone).
    pub fn tty(&mut self) -> Option<&str> {
        let tgid = self.status.tgid;
        self.tty.get_or_insert_with(|| procfs::tty(tgid).ok().flatten()).as_deref()
    }

    /// The terminal the kernel check found (`/proc/PID/stat`'s `tty_nr`), unless it is known
    /// already; read from `/proc` when the finding has none.
    pub fn found_tty(&mut self, nr: Option<u64>) -> Option<&str> {
        if self.tty.is_none() {
            if let Some(nr) = nr {
                self.tty = Some(procfs::tty_name(nr));
            }
        }
        self.tty()
    }

    /// The terminal as known so far (`None`: none, or not known yet).
    pub fn known_tty(&self) -> Option<&str> {
        self.tty.as_ref().and_then(Option::as_deref)
    }

    /// The path the program is invoked through, as the authorization backend and accounting
    /// name it: its real path under its own name (`/usr/bin/systemctl`), the link its name
    /// comes from otherwise (`/usr/sbin/reboot` for `systemctl` invoked as `reboot`); `None`
    /// for a name no link gives it (`exec -a xreboot /usr/bin/systemctl`).
    pub fn invoked_path(&self) -> Option<Vec<u8>> {
        let named = &self.plan.named;
        let name = session_wrapper_config::invoked_name(self.argv.first().map_or(&[][..], Vec::as_slice));
        if named.real_path.rsplit(|&b| b == b'/').next() == Some(name) {
            Some(named.real_path.clone())
        } else {
            named.links.first().cloned()
        }
    }
}

/// What gathering came to.
#[derive(Debug)]
pub enum Gathered {
    /// The facts, to decide on.
    Facts(Box<ExecFacts>),
    /// The exec cannot run (its arguments cannot be read, its path names nothing that can
    /// run): answer it with `errno`, log `event` if there is one, count it as failed or not.
    Refused {
        /// The errno to answer with.
        errno: Errno,
        /// What to log.
        event: Option<Event>,
        /// Whether it counts as a failure (a missing file does not: `execvp` tries them).
        failed: bool,
    },
    /// The task is gone, or its call was already answered.
    Gone,
}

/// The call's arguments: (dirfd, path, argv, envp, flags) pointers and values, and the
/// pointer width of the calling ABI.
fn arguments(n: &Notification, kind: Notified) -> ((Option<RemoteFd>, u64, u64, u64, u64), PtrWidth) {
    let is32 = n.arch == AUDIT_ARCH_I386;
    let a = |i: usize| if is32 { n.args[i] & 0xffff_ffff } else { n.args[i] };
    let width = if is32 { PtrWidth::Bits32 } else { PtrWidth::Bits64 };
    let args = match kind {
        Notified::Execveat => (RemoteFd::of_dirfd(a(0) as i32), a(1), a(2), a(3), a(4)),
        _ => (None, a(0), a(1), a(2), 0),
    };
    (args, width)
}

/// Reads and resolves everything about the exec.
pub fn gather(listener: &Listener, n: &Notification, kind: Notified, sight: &mut Sight, config: &Config, debug: bool) -> Gathered {
    let t0 = Instant::now();
    let tid = n.tid;
    let ((dirfd, path_ptr, argv_ptr, envp_ptr, flags), width) = arguments(n, kind);
    let mut mem = Remote::new(Pid::from_raw(tid));
    let limits = sight.limits;
    let path = memory::read_path(&mut mem, path_ptr, &limits);
    // The file before the arguments, in the kernel's order: a path that names nothing that
    // can run (each PATH entry `execvp` tries before the one that has the program) is
    // answered without reading argv and the environment, the working directory or the
    // terminal; and, when it can be followed without the caller's process id, before its ids
    // are read (a third of the system calls of such an answer).
    let asker = Asker { tid };
    let early = match (&path, dirfd) {
        (Ok(path), None) => resolve::resolve_by_thread(asker, path, flags),
        _ => None,
    };
    if let Some(Err(errno)) = early {
        if is_missing(errno) && !debug {
            if !listener.id_valid(n.id) {
                return Gathered::Gone;
            }
            return Gathered::Refused { errno, event: None, failed: false };
        }
    }
    let Ok((status, pidfd)) = procfs::task(tid) else {
        return Gathered::Refused { errno: Errno::ESRCH, event: None, failed: false };
    };
    // What is read is the right task's only while its call still waits: checked before any
    // of it is acted on.
    let unreadable = |e: memory::MemError| {
        if !listener.id_valid(n.id) {
            return Gathered::Gone;
        }
        let event = Event::new(Severity::Notice, Kind::ExecRefused)
            .bare("pid", status.tgid)
            .bare("uid", status.euid)
            .text("reason", format!("arguments unreadable: {e}"))
            .bare("errno", e.errno());
        Gathered::Refused { errno: e.errno(), event: Some(event), failed: true }
    };
    let path = match path {
        Ok(path) => path,
        Err(e) => return unreadable(e),
    };
    let named = match early.unwrap_or_else(|| resolve::resolve(asker, status.tgid, dirfd, &path, flags)) {
        Ok(named) => named,
        Err(_) if !listener.id_valid(n.id) => return Gathered::Gone,
        Err(errno) => return unresolved(errno, &status, &path, debug),
    };
    let refuse = &config.policy.guards.loader_env;
    let read = memory::read_argv(&mut mem, argv_ptr, width, &limits).and_then(|argv| {
        let env = memory::scan_env(&mut mem, envp_ptr, width, refuse, &sight.library_vars, &limits, sight.strings_max)?;
        let paths: Vec<(String, Vec<u8>)> = env.paths.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        Ok((argv, env.refused.map(str::to_owned), paths, env.strings))
    });
    drop(mem);
    let (mut argv, loader_env, library_vars, env_strings) = match read {
        Ok(r) => r,
        Err(e) => return unreadable(e),
    };
    // Since Linux 5.18 an empty argv runs with argv[0] = "".
    if argv.is_empty() {
        argv.push(Vec::new());
    }
    let filename = resolve::kernel_filename(dirfd, &path);
    let plan = resolve::plan(asker, status.tgid, named, filename, &argv, &mut sight.heads);
    let cwd = match &plan {
        Ok(_) => procfs::cwd(tid).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    if !listener.id_valid(n.id) {
        return Gathered::Gone;
    }
    let mut plan = match plan {
        Ok(p) => p,
        Err(errno) => return unresolved(errno, &status, &path, debug),
    };
    mark_foreign(&mut sight.reference, &mut plan);
    plan.find_links(&sight.links, &path, &argv);
    let library_path = library_path_problem(tid, &library_vars);
    let user_namespace_unchecked = sight.kernel_user_namespace.is_some() && env_strings.is_some();
    let foreign_user_namespace = !user_namespace_unchecked && sight.reference.foreign_user_namespace(tid);
    let target_user = sight.names.name(status.euid).to_owned();
    Gathered::Facts(Box::new(ExecFacts {
        id: n.id,
        tid,
        status,
        pidfd,
        path,
        argv,
        loader_env,
        env_strings,
        library_path,
        foreign_user_namespace,
        user_namespace_unchecked,
        plan,
        cwd,
        tty: None,
        target_user,
        t0,
    }))
}

/// Whether the exec found no file at its path (what `execvp` meets at each PATH entry before
/// the one that has the program).
fn is_missing(errno: Errno) -> bool {
    matches!(errno, Errno::ENOENT | Errno::ENOTDIR)
}

/// Nothing runs. A missing file is what the kernel would say too (and `execvp` tries every
/// PATH entry): logged only with `debug`. Any other refusal is logged and counted.
fn unresolved(errno: Errno, status: &procfs::Status, path: &[u8], debug: bool) -> Gathered {
    let missing = is_missing(errno);
    let event = (debug || !missing).then(|| {
        Event::new(if missing { Severity::Debug } else { Severity::Notice }, Kind::ExecUnresolved)
            .bare("pid", status.tgid)
            .bare("uid", status.euid)
            .quoted("path", path)
            .bare("errno", errno)
    });
    Gathered::Refused { errno, event, failed: !missing }
}

/// Marks the files of an exec whose paths name other files (or none) in the session's mount
/// namespace: reached through a namespace of their own, their names cannot be trusted
/// (`guards.foreign-mount`).
fn mark_foreign(reference: &mut Reference, plan: &mut ExecPlan) {
    let files = std::iter::once(&mut plan.named).chain(plan.interpreters.iter_mut().map(|i| &mut i.file));
    for file in files {
        if file.kind == ExeKind::File && reference.foreign(&file.real_path, file.dev, file.ino, Some(file.mnt_id)) {
            file.kind = ExeKind::Foreign;
        }
    }
}

/// Why the library search path variables of task `tid`'s exec are refused, if they are:
/// each directory is looked up from the task's own root, as its loader will.
pub fn library_path_problem(tid: i32, vars: &[(String, Vec<u8>)]) -> Option<String> {
    if vars.is_empty() {
        return None;
    }
    let root = CString::new(format!("/proc/{tid}/root")).ok().and_then(|c| {
        nix::fcntl::openat(nix::fcntl::AT_FDCWD, c.as_c_str(), OFlag::O_PATH | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty()).ok()
    });
    let Some(root) = root else { return Some("the process's root directory cannot be read".into()) };
    vars.iter().find_map(|(name, value)| {
        crate::sys::trust::library_path_problem(root.as_fd(), value).map(|p| format!("{name}={}: {p}", String::from_utf8_lossy(value)))
    })
}
