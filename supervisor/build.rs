//! Compiles the in-kernel exec check (`bpf/exec_check.bpf.c`) with clang, for `sys/bpf.rs` to
//! embed. Needs clang and libbpf's headers (Debian: `clang`, `libbpf-dev`). Links the
//! programs with libgcc's static unwinder (`static-libgcc/libgcc_s.so` says why).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/exec_check.bpf.c";
    println!("cargo:rerun-if-changed={src}");
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=../static-libgcc/libgcc_s.so");
    println!("cargo:rustc-link-search=native={dir}/../static-libgcc");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("exec_check.bpf.o");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let (target_arch, multiarch) = match arch.as_str() {
        "x86_64" => ("x86", "x86_64-linux-gnu"),
        "aarch64" => ("arm64", "aarch64-linux-gnu"),
        other => (other, ""),
    };
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let status = Command::new(&clang)
        .args(["-g", "-O2", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror"])
        // The same object from any checkout: the pinned programs' directory is named by its
        // hash, so that only a changed program is loaded again.
        .arg(format!("-fdebug-prefix-map={dir}=."))
        .arg(format!("-D__TARGET_ARCH_{target_arch}"))
        .arg("-idirafter")
        .arg(format!("/usr/include/{multiarch}"))
        .args(["-c", src, "-o"])
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{clang} could not compile {src} ({s}); it needs libbpf's headers (Debian: libbpf-dev)"),
        Err(e) => panic!("cannot run {clang} to compile {src}: {e} (Debian: apt-get install clang libbpf-dev)"),
    }
    // The tag of this build's programs (FNV-1a of the object): the directory they are pinned
    // in, which the supervisor opens without reading the object.
    let object = std::fs::read(&out).expect("read the compiled program");
    let tag = object.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3));
    println!("cargo:rustc-env=SW_EXEC_CHECK_TAG={tag:016x}");
}
