//! libgit2 parses every CA certificate of the system as it starts (about 18 ms, most of a
//! local `berth validate`), though only a fetch over HTTPS needs them, and every command opens
//! a repository. So when the repository is a local path, berth starts libgit2 with none.

/// Starts libgit2 without loading CA certificates; for commands that fetch nothing. Call it
/// first thing in `main`, while the process has one thread: it sets an environment variable
/// for the moment libgit2 reads it, then puts it back.
pub fn start_without_certificates() {
    let before = std::env::var_os("SSL_CERT_FILE");
    std::env::set_var("SSL_CERT_FILE", "/dev/null");
    // Any option starts libgit2; caching is on by default.
    git2::opts::enable_caching(true);
    match before {
        Some(value) => std::env::set_var("SSL_CERT_FILE", value),
        None => std::env::remove_var("SSL_CERT_FILE"),
    }
}
