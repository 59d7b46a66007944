//! Links the cdylib with a version script so that it exports only its PAM hooks.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    println!("cargo:rerun-if-changed=pam_session_wrapper.map");
    println!("cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/pam_session_wrapper.map");
}
