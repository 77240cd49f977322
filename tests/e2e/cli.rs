//! The `custodia` binary as an operator uses it: the README run command on the embedded default,
//! `user add`, `client add`, `keys rotate`/`list`, `check-config`, `migrate`, and one clear line
//! with exit code 2 for a bad setting or argument.

use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use custodia_tests::*;
use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn custodia(dir: &Path, env: &[(&str, &str)], args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(custodia_bin());
    cmd.current_dir(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn: {e}"));
    if let Some(input) = stdin {
        if let Some(mut s) = child.stdin.take() {
            let _ = s.write_all(input.as_bytes());
        }
    } else {
        drop(child.stdin.take());
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait: {e}"))
}

struct Serving(Child);
impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn serve(dir: &Path, env: &[(&str, &str)], base: &str) -> Serving {
    let mut cmd = Command::new(custodia_bin());
    cmd.current_dir(dir)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = Serving(cmd.spawn().unwrap_or_else(|e| panic!("spawn: {e}")));
    let started = Instant::now();
    loop {
        if http().get(format!("{base}/healthz")).send().await.is_ok() {
            return child;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "server did not come up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn one_line_exit_2(out: &Output, names: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit code 2: {err}");
    assert!(err.contains(names), "the message names `{names}`: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_command_serves_discovery_and_jwks_on_the_sqlite_default() {
    // The README run command, `custodia serve`, in an empty directory: only the port is changed so
    // tests can run side by side (the issuer follows it).
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let bind = format!("127.0.0.1:{port}");
    let env = [
        ("CUSTODIA_BIND", bind.as_str()),
        ("CUSTODIA_ISSUER", base.as_str()),
    ];
    let mut server = serve(dir.path(), &env, &base).await;
    let meta: Value = http()
        .get(format!("{base}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(meta["issuer"], base.as_str());
    let meta2: Value = http()
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(meta, meta2, "both metadata documents come from one source");
    let jwks: Value = http()
        .get(format!("{base}/jwks"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1));
    assert!(
        dir.path().join("custodia.db").exists(),
        "the SQLite file in the working directory"
    );
    let kek = dir.path().join("custodia.db.kek");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&kek)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0);
        assert_eq!(mode, 0o600, "the key-encryption key file is private");
    }
    // Graceful shutdown on SIGTERM.
    let pid = server.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = server.0.try_wait().unwrap_or(None) {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no graceful exit"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "clean exit after SIGTERM");
    let out = server.0.stdout.take().map(|mut s| {
        let mut buf = String::new();
        let _ = std::io::Read::read_to_string(&mut s, &mut buf);
        buf
    });
    let out = out.unwrap_or_default();
    assert!(out.contains("listening on"), "{out}");
    assert!(
        out.contains("custodia user add"),
        "how to add the first user: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_walkthrough_with_cli_made_user_and_client() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let bind = format!("127.0.0.1:{port}");
    let env = [
        ("CUSTODIA_BIND", bind.as_str()),
        ("CUSTODIA_ISSUER", base.as_str()),
    ];
    let out = custodia(
        dir.path(),
        &env,
        &[
            "user",
            "add",
            "--username",
            "alice",
            "--email",
            "alice@example.org",
            "--name",
            "Alice",
            "--password-stdin",
        ],
        Some("a long password\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = custodia(
        dir.path(),
        &env,
        &[
            "user",
            "add",
            "--username",
            "alice",
            "--email",
            "alice@example.org",
            "--password-stdin",
        ],
        Some("a long password\n"),
    );
    assert_eq!(out.status.code(), Some(1), "duplicate user refused");
    let out = custodia(
        dir.path(),
        &env,
        &[
            "user",
            "add",
            "--username",
            "bob",
            "--email",
            "bob@example.org",
            "--password-stdin",
        ],
        Some("short\n"),
    );
    one_line_exit_2(&out, "password");

    let out = custodia(
        dir.path(),
        &env,
        &[
            "client",
            "add",
            "--name",
            "bench",
            "--grant-type",
            "client_credentials",
            "--scope",
            "api:read",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let client: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("RFC 7591 JSON: {e}"));
    let id = client["client_id"].as_str().unwrap_or_default().to_string();
    let secret = client["client_secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(secret.starts_with("cst_cs_"));
    let out = custodia(
        dir.path(),
        &env,
        &[
            "client",
            "add",
            "--name",
            "bad",
            "--redirect-uri",
            "http://app.example/cb",
        ],
        None,
    );
    one_line_exit_2(&out, "redirect URI");

    let out = custodia(
        dir.path(),
        &env,
        &["keys", "rotate", "--alg", "ES256"],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = custodia(dir.path(), &env, &["keys", "list"], None);
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listing.contains("ES256\tcurrent") && listing.contains("retired"),
        "{listing}"
    );

    let _server = serve(dir.path(), &env, &base).await;
    let t: Value = http()
        .post(format!("{base}/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "api:read")])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let at = t["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {t}"));
    let i: Value = http()
        .post(format!("{base}/introspect"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", at)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(i["active"], true);
    let jwks: Value = http()
        .get(format!("{base}/jwks"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(
        jwks["keys"].as_array().map(Vec::len),
        Some(2),
        "rotated keys stay published"
    );
}

#[test]
fn bad_settings_and_arguments_exit_2_with_one_line() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    for (name, value) in [
        ("CUSTODIA_ISSUER", "http://auth.example"),
        ("CUSTODIA_BIND", "everywhere"),
        ("CUSTODIA_DATABASE_URL", "mysql://db"),
        ("CUSTODIA_PROFILE", "nope"),
        ("CUSTODIA_REGISTRATION_MODE", "sometimes"),
        ("CUSTODIA_CODE_TTL", "3600"),
        ("CUSTODIA_SIGNING_ALG", "HS256"),
    ] {
        for cmd in [&["check-config"][..], &["serve"][..]] {
            let out = custodia(d, &[(name, value)], cmd, None);
            one_line_exit_2(&out, name);
            assert_eq!(
                String::from_utf8_lossy(&out.stderr).trim().lines().count(),
                1,
                "one line"
            );
        }
    }
    let bad_file = d.join("bad.toml");
    let _ = std::fs::write(&bad_file, "issuer = 3\n");
    let out = custodia(
        d,
        &[],
        &[
            "--config",
            bad_file.to_str().unwrap_or_default(),
            "check-config",
        ],
        None,
    );
    one_line_exit_2(&out, "--config");
    let out = custodia(d, &[], &["serve", "--bogus"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = custodia(d, &[], &["client", "add"], None);
    assert_eq!(out.status.code(), Some(2));
    let out = custodia(d, &[], &["check-config"], None);
    assert!(out.status.success());
}

#[test]
fn refused_postgres_connection_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = custodia(
        dir.path(),
        &[(
            "CUSTODIA_DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/none",
        )],
        &["migrate"],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("PostgreSQL") && err.to_lowercase().contains("refused"),
        "{err}"
    );
}

#[test]
fn wrong_key_encryption_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = custodia(dir.path(), &[], &["keys", "list"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::write(
        dir.path().join("custodia.db.kek"),
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    );
    let out = custodia(dir.path(), &[], &["keys", "list"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("cannot be decrypted"), "{err}");
}
