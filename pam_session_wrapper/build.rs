//! Links the cdylib with a version script so that it exports only its PAM hooks, and with
//! libgcc's static unwinder (`static-libgcc/libgcc_s.so` says why): a host that loads the
//! module then loads no libgcc_s.so.1 for it.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    println!("cargo:rerun-if-changed=pam_session_wrapper.map");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/pam_session_wrapper.map");
    println!("cargo:rerun-if-changed=../static-libgcc/libgcc_s.so");
    println!("cargo:rustc-link-search=native={dir}/../static-libgcc");
}
