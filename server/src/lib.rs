//! `custodia-server`: the Custodia authorization server.
//!
//! Layers run one way: [`http`] (actix-web: extract, authenticate, call, map) → [`protocol`] (OAuth
//! 2.0, OpenID Connect; takes `now` as input) → [`store`] / [`keys`] / `custodia-profiles`.
//! See `ARCHITECTURE.md` for the map and its invariants.

pub mod cli;
pub mod config;
pub mod http;
pub mod keys;
pub mod protocol;
pub mod secrets;
pub mod store;

/// Seconds since the Unix epoch (the only place the server reads the clock; the protocol core
/// takes `now` as an argument).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The import rules of `ARCHITECTURE.md`, checked: only `http` uses actix-web, only `store` uses
/// diesel.
#[cfg(test)]
mod architecture {
    use std::path::{Path, PathBuf};

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }

    #[test]
    fn import_rules() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![];
        sources(&root, &mut files);
        assert!(files.len() > 20, "the sources were found");
        for f in files {
            let rel = f
                .strip_prefix(&root)
                .map(|p| p.to_string_lossy().to_string())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            if rel == "lib.rs" {
                continue;
            }
            if text.contains("actix_web") {
                assert!(
                    rel.starts_with("http/"),
                    "{rel} uses actix_web: only server::http may"
                );
            }
            if text.contains("diesel") {
                assert!(
                    rel.starts_with("store/"),
                    "{rel} uses diesel: only server::store may"
                );
            }
        }
    }
}
