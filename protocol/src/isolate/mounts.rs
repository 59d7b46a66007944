//! The private directories: a new mount namespace (unshare(2) `CLONE_NEWNS`) whose mounts
//! receive the host's later mounts but send none back, and a fresh tmpfs over each directory
//! (mount(2)).
//!
//! Part of [`crate::isolate`]: [`crate::Isolate::apply`] mounts these first, because a
//! Landlock domain may not change mounts afterwards.

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Why a private directory could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("private directory {}: {problem}", String::from_utf8_lossy(path))]
pub struct PrivateDirError {
    /// The directory (for the steps that concern all of them, the first).
    pub path: Vec<u8>,
    /// What went wrong.
    #[source]
    pub problem: PrivateDirProblem,
}

/// What went wrong with a private directory.
#[derive(Debug, thiserror::Error)]
pub enum PrivateDirProblem {
    /// It is a file or a symbolic link.
    #[error("not a directory (symbolic links are not followed)")]
    NotADirectory,
    /// It cannot be looked at (it does not exist, most often).
    #[error("{0}")]
    Inaccessible(#[source] io::Error),
    /// The path has a NUL byte.
    #[error("contains NUL")]
    ContainsNul,
    /// No new mount namespace.
    #[error("unshare(CLONE_NEWNS): {0}")]
    Unshare(#[source] io::Error),
    /// The new namespace's mounts could not be made slaves of the host's.
    #[error("making mounts private: {0}")]
    MakePrivate(#[source] io::Error),
    /// The tmpfs could not be mounted over it.
    #[error("mounting a tmpfs: {0}")]
    MountTmpfs(#[source] io::Error),
}

fn fail(path: &[u8], problem: PrivateDirProblem) -> PrivateDirError {
    PrivateDirError { path: path.to_vec(), problem }
}

/// Mounts a fresh tmpfs (`nosuid,nodev`, mode 1777) over each of `dirs` in a new mount
/// namespace of the calling thread, then resolves the working directory again (so that a
/// process started in `/tmp` does not keep the host's `/tmp` as its working directory).
/// Nothing happens when `dirs` is empty.
///
/// # Errors
/// [`PrivateDirError`] when a directory is missing or not a directory (checked for all before
/// anything is changed), or a step fails.
pub(super) fn mount_private_dirs(dirs: &[Vec<u8>]) -> Result<(), PrivateDirError> {
    let Some(first) = dirs.first() else {
        return Ok(());
    };
    let paths = checked_paths(dirs)?;
    let cwd = std::env::current_dir().ok();
    unshare_mount_namespace().map_err(|e| fail(first, e))?;
    for (d, c) in dirs.iter().zip(&paths) {
        mount_tmpfs(c).map_err(|e| fail(d, PrivateDirProblem::MountTmpfs(e)))?;
    }
    if cwd.and_then(|c| std::env::set_current_dir(c).ok()).is_none() {
        let _ = std::env::set_current_dir("/");
    }
    Ok(())
}

/// Each of `dirs` as a C string, once it is known to be a directory (not a symbolic link).
fn checked_paths(dirs: &[Vec<u8>]) -> Result<Vec<CString>, PrivateDirError> {
    dirs.iter()
        .map(|d| {
            match std::fs::symlink_metadata(Path::new(OsStr::from_bytes(d))) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(fail(d, PrivateDirProblem::NotADirectory)),
                Err(e) => return Err(fail(d, PrivateDirProblem::Inaccessible(e))),
            }
            CString::new(d.clone()).map_err(|_| fail(d, PrivateDirProblem::ContainsNul))
        })
        .collect()
}

/// A new mount namespace for the calling thread, whose mounts are slaves of the host's.
fn unshare_mount_namespace() -> Result<(), PrivateDirProblem> {
    // SAFETY: plain syscall with no pointer arguments.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return Err(PrivateDirProblem::Unshare(io::Error::last_os_error()));
    }
    // SAFETY: NUL-terminated strings that outlive the call, NULL where mount(2) allows it.
    let r = unsafe {
        libc::mount(std::ptr::null(), c"/".as_ptr(), std::ptr::null(), libc::MS_REC | libc::MS_SLAVE, std::ptr::null())
    };
    if r != 0 {
        return Err(PrivateDirProblem::MakePrivate(io::Error::last_os_error()));
    }
    Ok(())
}

fn mount_tmpfs(target: &CStr) -> io::Result<()> {
    // SAFETY: NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"mode=1777".as_ptr().cast(),
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every case here is refused by the check that runs before unshare(2), so the test
    // runner's own mounts are never touched.

    #[test]
    fn no_private_directories_changes_nothing() {
        assert!(mount_private_dirs(&[]).is_ok());
    }

    #[test]
    fn a_missing_directory_is_refused_with_its_path() {
        let e = mount_private_dirs(&[b"/nonexistent-sw-test".to_vec()]).expect_err("missing");
        assert!(matches!(e.problem, PrivateDirProblem::Inaccessible(_)));
        assert!(e.to_string().starts_with("private directory /nonexistent-sw-test: "), "{e}");
    }

    #[test]
    fn a_file_or_a_symbolic_link_is_not_a_directory() {
        let base = std::env::temp_dir().join(format!("sw-mounts-{}", std::process::id()));
        std::fs::create_dir_all(&base).expect("mkdir");
        let (file, link) = (base.join("file"), base.join("link"));
        std::fs::write(&file, b"").expect("file");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&base, &link).expect("symlink");
        for p in [&file, &link] {
            let dirs = [base.as_os_str().as_bytes().to_vec(), p.as_os_str().as_bytes().to_vec()];
            let e = mount_private_dirs(&dirs).expect_err("refused");
            assert!(matches!(e.problem, PrivateDirProblem::NotADirectory));
            assert_eq!(e.path, dirs[1]);
            assert!(e.to_string().ends_with(": not a directory (symbolic links are not followed)"));
        }
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn a_path_with_nul_is_refused() {
        let e = checked_paths(&[b"/\0x".to_vec()]).expect_err("nul");
        // symlink_metadata refuses it first, as the kernel cannot be given it.
        assert!(matches!(e.problem, PrivateDirProblem::Inaccessible(_) | PrivateDirProblem::ContainsNul));
    }
}
