//! Reading the arguments of an exec from the memory of the process that asked for it.
//!
//! Everything is read with `process_vm_readv(2)`, in whole pages: a string that ends just
//! before an unmapped page is read without touching that page, and a pointer into unmapped
//! memory is an `EFAULT`, as the kernel itself would answer. The pages where the strings of a
//! vector begin are read together, in one call for up to [`BATCH`] strings: a shell keeps
//! every exported variable in its own allocation, so that an environment is spread over a
//! dozen pages or more. Strings are bytes, never forced
//! into UTF-8. Sizes are bounded; what exceeds a bound is refused (`ENAMETOOLONG`, `E2BIG`)
//! rather than cut, so that nothing is ever decided on a partial command.
//!
//! What is read here is only a claim: another thread or process may change that memory before
//! the kernel reads it. The decision is checked again on the image the kernel really loaded
//! (see [`crate::sys::tracer`]).

use std::io::IoSliceMut;

use nix::errno::Errno;
use nix::sys::uio::{process_vm_readv, RemoteIoVec};
use nix::unistd::Pid;

/// x86_64 and i386 page size.
pub const PAGE: u64 = 4096;
/// Pages kept per request: argv and its strings usually live in one or two; a shell's
/// environment in up to a few dozen.
const CACHED_PAGES: usize = 32;
/// Strings whose first pages are read in one call.
pub const BATCH: usize = 24;

/// Why memory could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MemError {
    /// An address is not mapped (`EFAULT`).
    #[error("bad address")]
    Fault,
    /// The process is gone.
    #[error("process gone")]
    Gone,
    /// A string or vector exceeds its bound; the errno to answer with.
    #[error("too long")]
    TooLong(Errno),
    /// Anything else.
    #[error("read failed: {0}")]
    Other(Errno),
}

impl MemError {
    /// The errno an exec is answered with when its arguments cannot be read.
    pub fn errno(self) -> Errno {
        match self {
            MemError::Fault => Errno::EFAULT,
            MemError::Gone => Errno::ESRCH,
            MemError::TooLong(e) | MemError::Other(e) => e,
        }
    }
}

/// Pointer size of the calling ABI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PtrWidth {
    /// x86_64.
    Bits64,
    /// i386 (`int 0x80`).
    Bits32,
}

impl PtrWidth {
    fn bytes(self) -> u64 {
        match self {
            PtrWidth::Bits64 => 8,
            PtrWidth::Bits32 => 4,
        }
    }
}

/// Where pages come from: another process ([`Pid`], through `process_vm_readv`), or, for
/// tests and fuzzing, a synthetic address space.
pub trait PageSource {
    /// Fills the whole of `buf` with the page at `base` (page-aligned): `buf` may hold another
    /// page's bytes, and none of them may be left.
    ///
    /// # Errors
    /// [`MemError::Fault`] when the page is not mapped.
    fn read_page(&mut self, base: u64, buf: &mut [u8; PAGE as usize]) -> Result<(), MemError>;

    /// Fills `bufs[i]` with the page at `bases[i]` for as many leading pages as can be read
    /// whole, and says how many; what the rest hold is unspecified. An error is none read.
    fn read_pages(&mut self, bases: &[u64], bufs: &mut [Box<[u8; PAGE as usize]>]) -> usize {
        let mut n = 0;
        while n < bases.len().min(bufs.len()) && self.read_page(bases[n], &mut bufs[n]).is_ok() {
            n += 1;
        }
        n
    }
}

impl PageSource for Pid {
    fn read_pages(&mut self, bases: &[u64], bufs: &mut [Box<[u8; PAGE as usize]>]) -> usize {
        let remote: Vec<RemoteIoVec> = bases.iter().map(|&base| RemoteIoVec { base: base as usize, len: PAGE as usize }).collect();
        let mut local: Vec<IoSliceMut> = bufs.iter_mut().map(|b| IoSliceMut::new(&mut b[..])).collect();
        // The kernel stops at the first page it cannot read; those before it are whole.
        process_vm_readv(*self, &mut local, &remote).map_or(0, |n| n / PAGE as usize)
    }

    fn read_page(&mut self, base: u64, buf: &mut [u8; PAGE as usize]) -> Result<(), MemError> {
        let remote = [RemoteIoVec { base: base as usize, len: PAGE as usize }];
        let mut local = [IoSliceMut::new(&mut buf[..])];
        let n = process_vm_readv(*self, &mut local, &remote).map_err(|e| match e {
            Errno::EFAULT | Errno::EIO => MemError::Fault,
            Errno::ESRCH => MemError::Gone,
            other => MemError::Other(other),
        })?;
        if n == PAGE as usize {
            Ok(())
        } else {
            Err(MemError::Fault)
        }
    }
}

/// A synthetic address space: the listed pages are mapped, everything else faults.
#[derive(Debug, Default, Clone)]
pub struct FakeMemory {
    /// Page base address and contents.
    pub pages: Vec<(u64, Vec<u8>)>,
}

impl PageSource for FakeMemory {
    fn read_page(&mut self, base: u64, buf: &mut [u8; PAGE as usize]) -> Result<(), MemError> {
        let (_, data) = self.pages.iter().find(|(b, _)| *b == base).ok_or(MemError::Fault)?;
        buf.fill(0);
        let n = data.len().min(buf.len());
        buf[..n].copy_from_slice(&data[..n]);
        Ok(())
    }
}

thread_local! {
    /// The page buffers of readers that are done, for the next one: every exec is read
    /// through two or three pages, which would otherwise be allocated, zeroed and freed each
    /// time.
    static SPARE: std::cell::RefCell<Vec<Box<[u8; PAGE as usize]>>> = const { std::cell::RefCell::new(Vec::new()) };
}

thread_local! {
    /// The buffer of the last exec's environment strings, once it was done with
    /// ([`give_back_strings`]): a usual environment takes 1 to 8 KiB, which would otherwise be
    /// allocated (and the allocator's small free chunks consolidated) at every exec.
    static SPARE_STRINGS: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An empty buffer with room for `room` bytes of environment strings: the last one given back
/// (it held another exec's), or a new one.
fn strings_buffer(room: usize) -> Vec<u8> {
    let mut v = SPARE_STRINGS.with(|s| std::mem::take(&mut *s.borrow_mut()));
    v.clear();
    v.reserve(room);
    v
}

/// Gives back the buffer of an exec's environment strings ([`EnvScan::strings`]) once they are
/// no longer needed, for the next exec's.
pub fn give_back_strings(v: Vec<u8>) {
    SPARE_STRINGS.with(|s| {
        let mut spare = s.borrow_mut();
        if v.capacity() > spare.capacity() {
            *spare = v;
        }
    });
}

/// A page buffer: a spare one (holding another page's bytes) or a new one.
fn spare() -> Box<[u8; PAGE as usize]> {
    SPARE.with(|s| s.borrow_mut().pop()).unwrap_or_else(|| Box::new([0u8; PAGE as usize]))
}

fn give_back(page: Box<[u8; PAGE as usize]>) {
    SPARE.with(|s| {
        let mut spare = s.borrow_mut();
        if spare.len() < CACHED_PAGES {
            spare.push(page);
        }
    });
}

/// The memory of one process, read through a small page cache.
#[derive(Debug)]
pub struct Remote<S: PageSource = Pid> {
    source: S,
    pages: Vec<(u64, Box<[u8; PAGE as usize]>)>,
    next_evict: usize,
}

impl<S: PageSource> Drop for Remote<S> {
    fn drop(&mut self) {
        for (_, page) in self.pages.drain(..) {
            give_back(page);
        }
    }
}

impl Remote<Pid> {
    /// The memory of thread `pid`.
    pub fn new(pid: Pid) -> Self {
        Remote::with_source(pid)
    }
}

impl<S: PageSource> Remote<S> {
    /// Memory read from `source`.
    pub fn with_source(source: S) -> Self {
        Remote { source, pages: Vec::with_capacity(CACHED_PAGES), next_evict: 0 }
    }

    fn page(&mut self, base: u64) -> Result<&[u8; PAGE as usize], MemError> {
        if let Some(i) = self.pages.iter().position(|(b, _)| *b == base) {
            return Ok(&self.pages[i].1);
        }
        // A spare buffer holds another page's bytes: only a whole page read replaces them.
        let mut buf = spare();
        if let Err(e) = self.source.read_page(base, &mut buf) {
            give_back(buf);
            return Err(e);
        }
        let slot = self.keep(base, buf);
        Ok(&self.pages[slot].1)
    }

    /// Caches a page read whole, in place of the one kept longest once the cache is full.
    fn keep(&mut self, base: u64, buf: Box<[u8; PAGE as usize]>) -> usize {
        if self.pages.len() < CACHED_PAGES {
            self.pages.push((base, buf));
            self.pages.len() - 1
        } else {
            let i = self.next_evict;
            self.next_evict = (i + 1) % CACHED_PAGES;
            give_back(std::mem::replace(&mut self.pages[i], (base, buf)).1);
            i
        }
    }

    /// Reads, in one call, the pages that hold `addrs` and are not cached yet (at most
    /// [`BATCH`]). Only a cache fill: a page it cannot read is left for the reads that need
    /// it, which fail in their own order.
    fn prefetch(&mut self, addrs: &[u64]) {
        let mut bases: Vec<u64> = Vec::with_capacity(BATCH);
        for base in addrs.iter().map(|a| a & !(PAGE - 1)) {
            if bases.len() < BATCH && !bases.contains(&base) && !self.pages.iter().any(|(b, _)| *b == base) {
                bases.push(base);
            }
        }
        if bases.len() < 2 {
            return;
        }
        let mut bufs: Vec<Box<[u8; PAGE as usize]>> = bases.iter().map(|_| spare()).collect();
        let n = self.source.read_pages(&bases, &mut bufs);
        let mut bufs = bufs.into_iter();
        for (&base, buf) in bases.iter().zip(bufs.by_ref()).take(n) {
            self.keep(base, buf);
        }
        bufs.for_each(give_back);
    }

    /// Reads `out.len()` bytes at `addr`.
    ///
    /// # Errors
    /// [`MemError::Fault`] when any byte is unmapped.
    pub fn read(&mut self, mut addr: u64, out: &mut [u8]) -> Result<(), MemError> {
        let mut done = 0;
        while done < out.len() {
            let base = addr & !(PAGE - 1);
            let off = (addr - base) as usize;
            let page = self.page(base)?;
            let n = (PAGE as usize - off).min(out.len() - done);
            out[done..done + n].copy_from_slice(&page[off..off + n]);
            done += n;
            addr = addr.checked_add(n as u64).ok_or(MemError::Fault)?;
        }
        Ok(())
    }

    /// Reads a pointer of the given width.
    ///
    /// # Errors
    /// [`MemError::Fault`] when unmapped.
    pub fn read_ptr(&mut self, addr: u64, width: PtrWidth) -> Result<u64, MemError> {
        let mut b = [0u8; 8];
        let n = width.bytes() as usize;
        self.read(addr, &mut b[..n])?;
        Ok(u64::from_le_bytes(b))
    }

    /// Reads a NUL-terminated string of at most `max` bytes (the NUL excluded).
    /// `Ok(None)` means no NUL within `max` bytes; only the pages up to the NUL are read.
    ///
    /// # Errors
    /// [`MemError::Fault`] when the string runs into unmapped memory.
    pub fn read_cstr(&mut self, addr: u64, max: usize) -> Result<Option<Vec<u8>>, MemError> {
        let mut out = Vec::new();
        Ok(self.read_cstr_into(addr, max, &mut out)?.then_some(out))
    }

    /// [`Remote::read_cstr`] appending to `out`: `Ok(false)` (and `out` as it was) when there
    /// is no NUL within `max` bytes.
    ///
    /// # Errors
    /// [`MemError::Fault`] when the string runs into unmapped memory (`out` as it was).
    pub fn read_cstr_into(&mut self, mut addr: u64, max: usize, out: &mut Vec<u8>) -> Result<bool, MemError> {
        let start = out.len();
        loop {
            let base = addr & !(PAGE - 1);
            let off = (addr - base) as usize;
            let page = match self.page(base) {
                Ok(page) => page,
                Err(e) => {
                    out.truncate(start);
                    return Err(e);
                }
            };
            let chunk = &page[off..];
            let (take, ended) = match chunk.iter().position(|&b| b == 0) {
                Some(nul) => (&chunk[..nul], true),
                None => (chunk, false),
            };
            if out.len() - start + take.len() > max {
                out.truncate(start);
                return Ok(false);
            }
            out.extend_from_slice(take);
            if ended {
                return Ok(true);
            }
            let Some(next) = base.checked_add(PAGE) else {
                out.truncate(start);
                return Err(MemError::Fault);
            };
            addr = next;
        }
    }
}

/// Bounds on what is read from a process.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest path, NUL excluded (`PATH_MAX - 1`).
    pub path: usize,
    /// Longest single argument (`MAX_ARG_STRLEN - 1`).
    pub arg: usize,
    /// Most bytes in all arguments together.
    pub argv_total: usize,
    /// Most arguments, and most environment entries.
    pub entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { path: 4095, arg: 128 * 1024 - 1, argv_total: 4 << 20, entries: 1 << 20 }
    }
}

/// Reads a path argument.
///
/// # Errors
/// `ENAMETOOLONG` past `limits.path`, `EFAULT` for a bad pointer.
pub fn read_path<S: PageSource>(mem: &mut Remote<S>, addr: u64, limits: &Limits) -> Result<Vec<u8>, MemError> {
    mem.read_cstr(addr, limits.path)?.ok_or(MemError::TooLong(Errno::ENAMETOOLONG))
}

/// Reads a `char *const argv[]`. A NULL vector is read as empty, as the kernel does.
///
/// # Errors
/// `E2BIG` past the limits, `EFAULT` for a bad pointer.
pub fn read_argv<S: PageSource>(
    mem: &mut Remote<S>,
    addr: u64,
    width: PtrWidth,
    limits: &Limits,
) -> Result<Vec<Vec<u8>>, MemError> {
    let mut argv = Vec::new();
    if addr == 0 {
        return Ok(argv);
    }
    let mut total = 0usize;
    each_string(mem, addr, width, limits, |mem, p| {
        let s = mem.read_cstr(p, limits.arg)?.ok_or(MemError::TooLong(Errno::E2BIG))?;
        total += s.len() + 1;
        if total > limits.argv_total {
            return Err(MemError::TooLong(Errno::E2BIG));
        }
        argv.push(s);
        Ok(())
    })?;
    Ok(argv)
}

/// Calls `each` with every string pointer of the NULL-terminated vector at `addr` (not NULL),
/// in order; the pointers are read [`BATCH`] at a time, and the pages where their strings
/// begin are read together before `each` sees them.
///
/// # Errors
/// The first of `each`'s, or of reading the vector.
fn each_string<S: PageSource>(
    mem: &mut Remote<S>,
    addr: u64,
    width: PtrWidth,
    limits: &Limits,
    mut each: impl FnMut(&mut Remote<S>, u64) -> Result<(), MemError>,
) -> Result<(), MemError> {
    let mut batch = Vec::with_capacity(BATCH);
    let mut i = 0;
    loop {
        batch.clear();
        let mut ended = false;
        while batch.len() < BATCH {
            match nth_pointer(mem, addr, i, width, limits)? {
                Some(p) => batch.push(p),
                None => {
                    ended = true;
                    break;
                }
            }
            i += 1;
        }
        mem.prefetch(&batch);
        for &p in &batch {
            each(mem, p)?;
        }
        if ended {
            return Ok(());
        }
    }
}

/// The `i`th pointer of the NULL-terminated array at `addr`; `None` at its end.
///
/// # Errors
/// `E2BIG` past `limits.entries`, `EFAULT` for a bad pointer.
fn nth_pointer<S: PageSource>(
    mem: &mut Remote<S>,
    addr: u64,
    i: usize,
    width: PtrWidth,
    limits: &Limits,
) -> Result<Option<u64>, MemError> {
    if i >= limits.entries {
        return Err(MemError::TooLong(Errno::E2BIG));
    }
    let slot = addr.checked_add(i as u64 * width.bytes()).ok_or(MemError::Fault)?;
    let p = mem.read_ptr(slot, width)?;
    Ok((p != 0).then_some(p))
}

/// What an environment says to the loader: the first variable of a refused list that it
/// sets, and the value of every library search path variable it sets (each occurrence: the
/// loader takes the last, `getenv` the first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvScan<'n> {
    /// The first entry that sets one of the refused names.
    pub refused: Option<&'n str>,
    /// `(name, value)` for every entry that sets one of the path names.
    pub paths: Vec<(&'n str, Vec<u8>)>,
    /// Every entry whole, each with its NUL, as the kernel copies them to the new image;
    /// `None` unless asked for, or when they take more than was asked for.
    pub strings: Option<Vec<u8>>,
}

/// Scans a `char *const envp[]` for entries that set one of `refuse` (the first is reported)
/// or one of `paths` (their values are read whole, up to `limits.arg`), reading only as much
/// of every other entry as the longest name needs; and, with `keep` > 0, every entry whole
/// into [`EnvScan::strings`] while they take at most `keep` bytes.
///
/// # Errors
/// `E2BIG` past the entry limit or for a path value longer than an argument may be, `EFAULT`
/// for a bad pointer.
pub fn scan_env<'n, S: PageSource>(
    mem: &mut Remote<S>,
    addr: u64,
    width: PtrWidth,
    refuse: &'n [String],
    paths: &'n [String],
    limits: &Limits,
    keep: usize,
) -> Result<EnvScan<'n>, MemError> {
    // Room for a usual environment at once (a shell's is 1 to 3 KiB).
    let mut out = EnvScan { strings: (keep > 0).then(|| strings_buffer(keep.min(4096))), ..EnvScan::default() };
    if addr == 0 || (refuse.is_empty() && paths.is_empty() && keep == 0) {
        return Ok(out);
    }
    let longest = refuse.iter().chain(paths).map(String::len).max().unwrap_or(0) + 1;
    each_string(mem, addr, width, limits, |mem, p| {
        // The whole entry, while the entries fit in `keep`: then it is also what is matched.
        let mut whole = None;
        if let Some(strings) = &mut out.strings {
            let start = strings.len();
            if mem.read_cstr_into(p, keep - start.min(keep), strings)? && strings.len() < keep {
                whole = Some(start..strings.len());
                strings.push(0);
            } else if let Some(v) = out.strings.take() {
                give_back_strings(v);
            }
        }
        // Otherwise a prefix is enough: a string longer than `longest` reads as "no NUL yet".
        let prefix;
        let head: &[u8] = match (&whole, &out.strings) {
            (Some(r), Some(strings)) => &strings[r.clone()],
            _ => {
                prefix = match mem.read_cstr(p, longest)? {
                    Some(s) => s,
                    None => {
                        let mut b = vec![0u8; longest];
                        mem.read(p, &mut b)?;
                        b
                    }
                };
                &prefix
            }
        };
        if out.refused.is_none() {
            out.refused = env_match(head, refuse);
        }
        if let Some(name) = env_match(head, paths) {
            let value = match whole {
                Some(_) => head[name.len() + 1..].to_vec(),
                None => mem.read_cstr(p, limits.arg)?.ok_or(MemError::TooLong(Errno::E2BIG))?[name.len() + 1..].to_vec(),
            };
            out.paths.push((name, value));
        }
        Ok(())
    })?;
    Ok(out)
}

/// The name in `names` that the environment entry `entry` (`NAME=value`) sets, if any.
pub fn env_match<'n>(entry: &[u8], names: &'n [String]) -> Option<&'n str> {
    names
        .iter()
        .find(|n| entry.len() > n.len() && entry.starts_with(n.as_bytes()) && entry[n.len()] == b'=')
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::mman::{mmap_anonymous, mprotect, MapFlags, ProtFlags};
    use std::num::NonZeroUsize;

    /// Two pages, the second made inaccessible; returns the address of the first.
    fn guarded_page() -> *mut u8 {
        // SAFETY: a fresh anonymous private mapping, owned by the test for its lifetime.
        let p = unsafe {
            mmap_anonymous(
                None,
                NonZeroUsize::new(2 * PAGE as usize).expect("nonzero"),
                ProtFlags::PROT_READ | ProtFlags::PROT_WRITE,
                MapFlags::MAP_PRIVATE,
            )
        }
        .expect("mmap");
        // SAFETY: the second page lies inside the mapping just made.
        unsafe {
            mprotect(p.byte_add(PAGE as usize), PAGE as usize, ProtFlags::PROT_NONE)
                .expect("mprotect");
        }
        p.as_ptr().cast()
    }

    #[test]
    fn a_reader_reuses_the_pages_of_the_last_one_and_sees_only_its_own_bytes() {
        let first = FakeMemory { pages: vec![(0x1000, b"an earlier process's secret\0".to_vec())] };
        let mut r = Remote::with_source(first);
        assert_eq!(r.read_cstr(0x1000, 100), Ok(Some(b"an earlier process's secret".to_vec())));
        drop(r);
        let second = FakeMemory { pages: vec![(0x2000, b"ls\0".to_vec())] };
        let mut r = Remote::with_source(second);
        let mut got = [0xffu8; 32];
        r.read(0x2000, &mut got).expect("read");
        assert_eq!(&got[..3], b"ls\0");
        assert!(got[3..].iter().all(|&b| b == 0), "{got:?}");
        assert_eq!(r.read(0x1000, &mut got), Err(MemError::Fault), "the earlier page is not this process's");
    }

    fn me() -> Remote {
        Remote::new(Pid::this())
    }

    #[test]
    fn string_ending_at_a_page_boundary_is_read_without_the_next_page() {
        let page = guarded_page();
        // SAFETY: writes inside the first, writable page.
        unsafe {
            let end = page.add(PAGE as usize - 4);
            std::ptr::copy_nonoverlapping(c"abc".as_ptr().cast::<u8>(), end, 4);
        }
        let addr = page as u64 + PAGE - 4;
        assert_eq!(me().read_cstr(addr, 100), Ok(Some(b"abc".to_vec())));
    }

    #[test]
    fn unterminated_string_running_into_unmapped_memory_faults() {
        let page = guarded_page();
        // SAFETY: fills the first, writable page.
        unsafe { std::ptr::write_bytes(page, b'x', PAGE as usize) };
        assert_eq!(me().read_cstr(page as u64 + 10, 1 << 20), Err(MemError::Fault));
        // Within a bound shorter than the page, it is just too long.
        assert_eq!(me().read_cstr(page as u64, 100), Ok(None));
    }

    #[test]
    fn unmapped_pointer_faults_and_overlong_path_is_enametoolong() {
        let mut m = me();
        assert_eq!(read_path(&mut m, 8, &Limits::default()), Err(MemError::Fault));
        let long = vec![b'a'; 5000];
        let mut z = long.clone();
        z.push(0);
        let e = read_path(&mut m, z.as_ptr() as u64, &Limits::default()).expect_err("long");
        assert_eq!(e.errno(), Errno::ENAMETOOLONG);
    }

    #[test]
    fn argv_is_read_as_bytes_and_null_vector_is_empty() {
        let a = b"ls\0".to_vec();
        let b = b"\xff\xfe\0".to_vec();
        let v: [u64; 3] = [a.as_ptr() as u64, b.as_ptr() as u64, 0];
        let got = read_argv(&mut me(), v.as_ptr() as u64, PtrWidth::Bits64, &Limits::default())
            .expect("read");
        assert_eq!(got, vec![b"ls".to_vec(), b"\xff\xfe".to_vec()]);
        assert_eq!(read_argv(&mut me(), 0, PtrWidth::Bits64, &Limits::default()), Ok(vec![]));
    }

    #[test]
    fn argv_over_the_total_bound_is_e2big() {
        let a = vec![b'a'; 1000].into_iter().chain([0]).collect::<Vec<u8>>();
        let v: Vec<u64> = std::iter::repeat_n(a.as_ptr() as u64, 10).chain([0]).collect();
        let limits = Limits { argv_total: 5000, ..Limits::default() };
        let e = read_argv(&mut me(), v.as_ptr() as u64, PtrWidth::Bits64, &limits).expect_err("big");
        assert_eq!(e.errno(), Errno::E2BIG);
    }

    #[test]
    fn thirty_two_bit_pointers_are_read() {
        // A 32-bit vector can only point below 4 GiB; use a fixed low mapping.
        let a = b"x\0";
        let low = 0x1000_0000usize;
        // SAFETY: MAP_FIXED_NOREPLACE fails instead of clobbering an existing mapping.
        let p = unsafe {
            libc::mmap(
                low as *mut libc::c_void,
                PAGE as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                -1,
                0,
            )
        };
        assert_eq!(p as usize, low, "low mapping");
        // SAFETY: writes inside the page mapped above.
        unsafe {
            std::ptr::copy_nonoverlapping(a.as_ptr(), (low + 64) as *mut u8, 2);
            let v = [(low + 64) as u32, 0u32];
            std::ptr::copy_nonoverlapping(v.as_ptr().cast::<u8>(), low as *mut u8, 8);
        }
        let got = read_argv(&mut me(), low as u64, PtrWidth::Bits32, &Limits::default());
        assert_eq!(got, Ok(vec![b"x".to_vec()]));
    }

    /// Counts the calls made to the memory it reads.
    struct Counted {
        mem: FakeMemory,
        calls: usize,
    }

    impl PageSource for Counted {
        fn read_page(&mut self, base: u64, buf: &mut [u8; PAGE as usize]) -> Result<(), MemError> {
            self.calls += 1;
            self.mem.read_page(base, buf)
        }

        fn read_pages(&mut self, bases: &[u64], bufs: &mut [Box<[u8; PAGE as usize]>]) -> usize {
            self.calls += 1;
            self.mem.read_pages(bases, bufs)
        }
    }

    #[test]
    fn strings_spread_over_many_pages_are_read_in_one_call_each_page_once() {
        // A shell's environment: the vector at 0x1000, every entry on a page of its own.
        let n = 20u64;
        let mut ptrs: Vec<u8> = (0..n).flat_map(|i| (0x10_000 + i * PAGE + 8).to_le_bytes()).collect();
        ptrs.extend_from_slice(&0u64.to_le_bytes());
        let mut pages = vec![(0x1000, ptrs)];
        for i in 0..n {
            pages.push((0x10_000 + i * PAGE, [vec![b'x'; 8], format!("V{i}=value\0").into_bytes()].concat()));
        }
        let mut mem = Remote::with_source(Counted { mem: FakeMemory { pages }, calls: 0 });
        let scan = scan_env(&mut mem, 0x1000, PtrWidth::Bits64, &[], &[], &Limits::default(), 1 << 16).expect("scan");
        let want: Vec<u8> = (0..n).flat_map(|i| format!("V{i}=value\0").into_bytes()).collect();
        assert_eq!(scan.strings, Some(want));
        assert_eq!(mem.source.calls, 2, "the vector's page, then every string's page together");
    }

    #[test]
    fn an_environment_read_into_a_buffer_given_back_holds_only_its_own_strings() {
        let long = b"A_LONG_VARIABLE=with a value longer than the next environment's\0".to_vec();
        let short = b"B=1\0".to_vec();
        let scan = |entry: &[u8]| {
            let v: [u64; 2] = [entry.as_ptr() as u64, 0];
            scan_env(&mut me(), v.as_ptr() as u64, PtrWidth::Bits64, &[], &[], &Limits::default(), 4096).expect("scan")
        };
        let mut first = scan(&long).strings.expect("kept");
        assert_eq!(first, long);
        // Larger than any new buffer is made: the next read shows whether it is this one.
        first.reserve(20_000);
        let (capacity, at) = (first.capacity(), first.as_ptr());
        give_back_strings(first);
        let second = scan(&short).strings.expect("kept");
        assert_eq!(second, short, "nothing of the earlier environment is left in it");
        assert_eq!((second.capacity(), second.as_ptr()), (capacity, at), "the buffer given back is the one used");
    }

    #[test]
    fn a_bad_pointer_among_good_ones_still_faults_and_its_batch_is_still_read() {
        let good = b"ls\0".to_vec();
        let bad = guarded_page().wrapping_add(PAGE as usize + 16);
        let also = b"-l\0".to_vec();
        // The unreadable page first: the batch reads nothing, each string is read alone.
        let v: [u64; 4] = [bad as u64, good.as_ptr() as u64, also.as_ptr() as u64, 0];
        let got = read_argv(&mut me(), v.as_ptr() as u64, PtrWidth::Bits64, &Limits::default());
        assert_eq!(got, Err(MemError::Fault));
        let v: [u64; 4] = [good.as_ptr() as u64, also.as_ptr() as u64, bad as u64, 0];
        let got = read_argv(&mut me(), v.as_ptr() as u64, PtrWidth::Bits64, &Limits::default());
        assert_eq!(got, Err(MemError::Fault));
        let v: [u64; 3] = [good.as_ptr() as u64, also.as_ptr() as u64, 0];
        let got = read_argv(&mut me(), v.as_ptr() as u64, PtrWidth::Bits64, &Limits::default());
        assert_eq!(got, Ok(vec![b"ls".to_vec(), b"-l".to_vec()]));
    }

    #[test]
    fn synthetic_memory_decodes_like_a_process() {
        // argv pointer array at 0x1000, strings at 0x2000, 0x3000 unmapped.
        let mut ptrs = Vec::new();
        ptrs.extend_from_slice(&0x2000u64.to_le_bytes());
        ptrs.extend_from_slice(&0x2003u64.to_le_bytes());
        ptrs.extend_from_slice(&0u64.to_le_bytes());
        let mut mem = Remote::with_source(FakeMemory {
            pages: vec![(0x1000, ptrs), (0x2000, b"ls\0-l\0".to_vec())],
        });
        let argv = read_argv(&mut mem, 0x1000, PtrWidth::Bits64, &Limits::default()).expect("argv");
        assert_eq!(argv, vec![b"ls".to_vec(), b"-l".to_vec()]);
        assert_eq!(read_path(&mut mem, 0x3000, &Limits::default()), Err(MemError::Fault));
    }

    #[test]
    fn environment_is_scanned_for_loader_variables_and_library_paths() {
        let names = vec!["LD_PRELOAD".to_string(), "LD_AUDIT".to_string()];
        let paths = vec!["LD_LIBRARY_PATH".to_string()];
        let e1 = b"LD_PRELOADX=1\0".to_vec();
        let e2 = b"HOME=/root\0".to_vec();
        let e3 = b"LD_AUDIT=/tmp/a.so\0".to_vec();
        let e4 = b"LD_LIBRARY_PATH=/usr/lib:/home/a\0".to_vec();
        let e5 = b"LD_LIBRARY_PATH=\0".to_vec();
        let v: [u64; 6] =
            [e1.as_ptr() as u64, e2.as_ptr() as u64, e3.as_ptr() as u64, e4.as_ptr() as u64, e5.as_ptr() as u64, 0];
        let found = scan_env(&mut me(), v.as_ptr() as u64, PtrWidth::Bits64, &names, &paths, &Limits::default(), 0)
            .expect("scan");
        assert_eq!(found.refused, Some("LD_AUDIT"));
        assert_eq!(
            found.paths,
            vec![("LD_LIBRARY_PATH", b"/usr/lib:/home/a".to_vec()), ("LD_LIBRARY_PATH", Vec::new())]
        );
        let none: [u64; 2] = [e2.as_ptr() as u64, 0];
        let found = scan_env(&mut me(), none.as_ptr() as u64, PtrWidth::Bits64, &names, &paths, &Limits::default(), 0);
        assert_eq!(found, Ok(EnvScan::default()));
        assert_eq!(env_match(b"LD_PRELOAD=", &names), Some("LD_PRELOAD"));
        assert_eq!(env_match(b"LD_PRELOAD", &names), None);
        // For the kernel's check: every entry whole, as the kernel lays them out, while they fit.
        let kept = scan_env(&mut me(), v.as_ptr() as u64, PtrWidth::Bits64, &[], &[], &Limits::default(), 128).expect("scan");
        assert_eq!(kept.strings, Some([&e1[..], &e2, &e3, &e4, &e5].concat()));
        let over = scan_env(&mut me(), v.as_ptr() as u64, PtrWidth::Bits64, &names, &paths, &Limits::default(), 40).expect("scan");
        assert_eq!((over.strings, over.refused), (None, Some("LD_AUDIT")));
    }
}
