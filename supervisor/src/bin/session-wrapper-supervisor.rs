//! `session-wrapper-supervisor`: the per-session supervisor started by `pam_session_wrapper.so`.
//! Not meant to be run by hand; see session-wrapper(8).

fn main() {
    let pam = std::env::args().nth(1).as_deref() == Some("--pam");
    if !pam {
        eprintln!("session-wrapper-supervisor: started by pam_session_wrapper.so (with --pam), not by hand; see `session-wrapper run`");
        std::process::exit(2);
    }
    std::process::exit(session_wrapper::session::from_pam::serve_pam_session());
}
