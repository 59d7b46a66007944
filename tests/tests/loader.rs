//! The kernel's exec check is loaded by `session-wrapper-bpf-loader`, which the first
//! supervisor since boot runs when it finds no pins of its build; supervisors themselves map
//! no libbpf, libelf or zlib. The loader is run only from a place that root alone can change.
//!
//! One test, in a binary of its own: it removes this build's pins, which no other session may
//! be using meanwhile (cargo runs test binaries one after the other).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use session_wrapper_tests::{bin, install, require_root, scratch, stderr, write_executable, ConfigFile};

const PIN_ROOT: &str = "/sys/fs/bpf/session-wrapper";

/// `session-wrapper run` of `program` (a `session-wrapper` binary), as nobody, logging to its
/// standard error, running `/bin/true` with `verify = "bpf"`.
fn run(program: &Path, cfg: &ConfigFile) -> Output {
    Command::new(program)
        .args(["run", "--config"])
        .arg(cfg.path())
        .args(["--user", "nobody", "--log-socket", "/nonexistent/log", "--", "/bin/true"])
        .env_remove("LD_LIBRARY_PATH")
        .current_dir("/")
        .output()
        .expect("run session-wrapper")
}

fn session_start(err: &str) -> &str {
    err.lines().find(|l| l.contains("event=session-start")).unwrap_or_default()
}

/// The tag of this build's programs, as the loader's usage names it.
fn tag(loader: &Path) -> String {
    let out = Command::new(loader).output().expect("run the loader");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let tag = err.rsplit("TAG: ").next().unwrap_or_default().trim_end().trim_end_matches(')');
    assert!(tag.len() == 16 && tag.bytes().all(|b| b.is_ascii_hexdigit()), "no tag in {err:?}");
    tag.to_string()
}

#[test]
fn the_kernel_check_is_loaded_by_the_loader_and_never_from_a_place_others_can_change() {
    require_root!();
    if !Path::new("/sys/fs/bpf").join(".").exists() || !Path::new("/sys/kernel/btf/vmlinux").exists() {
        session_wrapper_tests::skip(module_path!(), "no BPF file system or no kernel BTF: the kernel's check cannot load here");
        return;
    }
    let loader = bin("session-wrapper-bpf-loader");
    let tag = tag(&loader);
    let pins = PathBuf::from(PIN_ROOT).join(&tag);

    // A loader of another build refuses, and says why.
    let out = Command::new(&loader).arg("0123456789abcdef").output().expect("run the loader");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("this loader's programs are {tag}, not 0123456789abcdef")), "{}", stderr(&out));

    let cfg = ConfigFile::new("default = \"allow\"\nverify = \"bpf\"\n");
    if pins.exists() {
        std::fs::remove_dir_all(&pins).expect("remove this build's pins");
    }

    // The attack: a directory anyone may write (as a supervisor's directory might be by
    // mistake) holds our program and a "loader" planted by a user. With no pins, a supervisor
    // that ran it would run the user's code as root. It is refused and named; the session is
    // checked at ptrace stops.
    let open = scratch();
    let planted = open.path().join("ran-as-root");
    let wrapper = open.path().join("session-wrapper");
    install(&bin("session-wrapper"), &wrapper);
    write_executable(&open.path().join("session-wrapper-bpf-loader"), &format!("#!/bin/sh\ntouch {}\n", planted.display()));
    let out = run(&wrapper, &cfg);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let fallback = err.lines().find(|l| l.contains("event=verify-fallback")).unwrap_or_default();
    assert!(
        fallback.contains(&format!("{}/session-wrapper-bpf-loader", open.path().display()))
            && fallback.contains("can be changed by others than root"),
        "{err}"
    );
    assert!(session_start(&err).contains(" verify=ptrace "), "{err}");
    assert!(err.lines().any(|l| l.contains("path=\"/bin/true\"") && l.contains("result=exec")), "{err}");
    assert!(!planted.exists(), "the planted loader ran");
    assert!(!pins.exists(), "something loaded the programs");

    // A loader in a root-only directory (/var/lib, not /tmp) that fails: its last line is the
    // reason logged, the rest is passed on to standard error.
    let closed = tempfile::Builder::new().prefix("sw-loader-").tempdir_in("/var/lib").expect("tempdir in /var/lib");
    std::fs::set_permissions(closed.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let wrapper = closed.path().join("session-wrapper");
    install(&bin("session-wrapper"), &wrapper);
    write_executable(&closed.path().join("session-wrapper-bpf-loader"), "#!/bin/sh\necho 'libbpf: chatter' >&2\necho \"refused: $1\" >&2\nexit 3\n");
    let out = run(&wrapper, &cfg);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let fallback = err.lines().find(|l| l.contains("event=verify-fallback")).unwrap_or_default();
    assert!(fallback.contains(&format!("refused: {tag} (exit status 3)")) && !fallback.contains("chatter"), "{err}");
    assert!(err.contains("libbpf: chatter"), "the loader's words are not passed on: {err}");
    assert!(session_start(&err).contains(" verify=ptrace "), "{err}");
    assert!(!pins.exists(), "something loaded the programs");

    // The built program, beside its loader in a root-only directory: the loader loads and
    // pins them, and the session is checked in the kernel.
    let out = run(&bin("session-wrapper"), &cfg);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("event=verify-fallback"), "{err}");
    assert!(session_start(&err).contains(" verify=bpf "), "{err}");
    for pin in ["expects", "on_exec", "on_exit"] {
        assert!(pins.join(pin).exists(), "{pin} not pinned: {err}");
    }
    assert!(err.lines().any(|l| l.contains("path=\"/bin/true\"") && l.contains("result=exec")), "{err}");
}
