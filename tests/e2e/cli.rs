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

/// Start `custodia serve`; its output goes to `serve.out` and `serve.err` in `dir` (files, not
/// pipes, so a chatty log can never fill a pipe and stall the server).
async fn serve(dir: &Path, env: &[(&str, &str)], base: &str) -> Serving {
    let out = std::fs::File::create(dir.join("serve.out")).unwrap_or_else(|e| panic!("{e}"));
    let err = std::fs::File::create(dir.join("serve.err")).unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = Command::new(custodia_bin());
    cmd.current_dir(dir).arg("serve").stdout(out).stderr(err);
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

/// A `client_credentials` token from a running server, then introspected: active.
async fn client_credentials_round_trip(base: &str, id: &str, secret: &str, scope: Option<&str>) {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let t: Value = http()
        .post(format!("{base}/token"))
        .basic_auth(id, Some(secret))
        .form(&form)
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
        .basic_auth(id, Some(secret))
        .form(&[("token", at)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(i["active"], true);
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
    let signing = |jwks: &Value| {
        jwks["keys"]
            .as_array()
            .map(|k| k.iter().filter(|k| k["use"] == "sig").count())
    };
    assert_eq!(signing(&jwks), Some(1));
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
    let out = std::fs::read_to_string(dir.path().join("serve.out")).unwrap_or_default();
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
    // A UMA client with its claims redirect URI (UMA Grant §3.3.2).
    let out = custodia(
        dir.path(),
        &env,
        &[
            "client",
            "add",
            "--name",
            "clinic",
            "--grant-type",
            "urn:ietf:params:oauth:grant-type:uma-ticket",
            "--claims-redirect-uri",
            "https://clinic.example/claims",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let uma: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        uma["claims_redirect_uris"],
        serde_json::json!(["https://clinic.example/claims"])
    );
    let out = custodia(
        dir.path(),
        &env,
        &[
            "client",
            "add",
            "--name",
            "bad claims",
            "--grant-type",
            "urn:ietf:params:oauth:grant-type:uma-ticket",
            "--claims-redirect-uri",
            "http://clinic.example/claims",
        ],
        None,
    );
    one_line_exit_2(&out, "redirect URI");
    // A resource server and the resource indicator it answers for (RFC 8707), in parsed form.
    let out = custodia(
        dir.path(),
        &env,
        &[
            "client",
            "add",
            "--name",
            "fhir",
            "--grant-type",
            "client_credentials",
            "--scope",
            "uma_protection",
            "--resource-uri",
            "https://FHIR.example/r4",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rs: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    assert_eq!(
        rs["resource_uris"],
        serde_json::json!(["https://fhir.example/r4"])
    );
    let out = custodia(
        dir.path(),
        &env,
        &[
            "client",
            "add",
            "--name",
            "bad fhir",
            "--grant-type",
            "client_credentials",
            "--resource-uri",
            "https://fhir.example/r4#frag",
        ],
        None,
    );
    one_line_exit_2(&out, "fragment");

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
    client_credentials_round_trip(&base, &id, &secret, Some("api:read")).await;
    let jwks: Value = http()
        .get(format!("{base}/jwks"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let signing = jwks["keys"]
        .as_array()
        .map(|k| k.iter().filter(|k| k["use"] == "sig").count());
    assert_eq!(signing, Some(2), "rotated keys stay published");
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
    one_line_exit_2(&out, "--bogus");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1,
        "one line"
    );
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

/// "Never log a token": with every log level on (`trace`, JSON), a full code flow, client
/// credentials, introspection, revocation, a failed login and UMA protection calls (a PAT, a
/// ticket, introspection with the PAT) leave no password, secret, code, ticket or token in the
/// server's output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_secrets() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let bind = format!("127.0.0.1:{port}");
    let env = [
        ("CUSTODIA_BIND", bind.as_str()),
        ("CUSTODIA_ISSUER", base.as_str()),
        ("CUSTODIA_LOG", "trace"),
        ("CUSTODIA_LOG_FORMAT", "json"),
    ];
    let password = "a long password 1234";
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
        Some(password),
    );
    assert!(out.status.success());
    let out = custodia(
        dir.path(),
        &env,
        &[
            "client",
            "add",
            "--name",
            "app",
            "--redirect-uri",
            "https://client.example/cb",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--grant-type",
            "client_credentials",
            "--scope",
            "openid profile api:read uma_protection btg",
        ],
        None,
    );
    let client: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let id = client["client_id"].as_str().unwrap_or_default().to_string();
    let secret = client["client_secret"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    let mut server = serve(dir.path(), &env, &base).await;
    let mut leaked: Vec<String> = vec![secret.clone(), password.to_string()];
    // Client credentials, introspection, revocation.
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
    let at = t["access_token"].as_str().unwrap_or_default().to_string();
    // HEART-FHIR-07: break-the-glass access is called out in the audit log.
    let btg = http()
        .post(format!("{base}/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "api:read btg"),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(btg.status().as_u16(), 200);
    let _ = http()
        .post(format!("{base}/introspect"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", at.as_str())])
        .send()
        .await;
    let _ = http()
        .get(format!("{base}/userinfo?access_token={at}"))
        .send()
        .await;
    let _ = http()
        .post(format!("{base}/revoke"))
        .basic_auth(&id, Some(&secret))
        .form(&[("token", at.as_str())])
        .send()
        .await;
    leaked.push(at);
    // A code flow with a failed login first.
    let (verifier, challenge) = pkce();
    let b = browser();
    let url = format!(
        "{base}/authorize?response_type=code&client_id={id}&redirect_uri=https%3A%2F%2Fclient.example%2Fcb&scope=openid%20profile%20uma_protection&state=st&code_challenge={challenge}&code_challenge_method=S256"
    );
    let page = b
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    let csrf = input_value(&page, "csrf").unwrap_or_default();
    let request = input_value(&page, "request").unwrap_or_default();
    let _ = b
        .post(format!("{base}/authorize/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("request", request.as_str()),
            ("username", "alice"),
            ("password", "the wrong password"),
        ])
        .send()
        .await;
    let consent = b
        .post(format!("{base}/authorize/login"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("request", request.as_str()),
            ("username", "alice"),
            ("password", password),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_default();
    let r = b
        .post(format!("{base}/authorize/consent"))
        .form(&[
            (
                "csrf",
                input_value(&consent, "csrf").unwrap_or_default().as_str(),
            ),
            (
                "request",
                input_value(&consent, "request")
                    .unwrap_or_default()
                    .as_str(),
            ),
            ("decision", "allow"),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let loc = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let code = query(&loc)
        .remove("code")
        .unwrap_or_else(|| panic!("no code: {loc}"));
    let t: Value = http()
        .post(format!("{base}/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", "https://client.example/cb"),
            ("code_verifier", verifier.as_str()),
        ])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    leaked.push(code);
    leaked.push(csrf);
    for k in ["access_token", "refresh_token", "id_token"] {
        leaked.push(
            t[k].as_str()
                .unwrap_or_else(|| panic!("no {k}: {t}"))
                .to_string(),
        );
    }
    // The access token is a PAT: protection calls, a ticket, introspection with the PAT.
    let pat = t["access_token"].as_str().unwrap_or_default().to_string();
    let r: Value = http()
        .post(format!("{base}/uma/resources"))
        .bearer_auth(&pat)
        .json(&serde_json::json!({"resource_scopes": ["read"], "name": "labs"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let rid = r["_id"].as_str().unwrap_or_default().to_string();
    let tk: Value = http()
        .post(format!("{base}/uma/permission"))
        .bearer_auth(&pat)
        .json(&serde_json::json!({"resource_id": rid, "resource_scopes": ["read"]}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    leaked.push(
        tk["ticket"]
            .as_str()
            .unwrap_or_else(|| panic!("no ticket: {tk}"))
            .to_string(),
    );
    let _ = http()
        .post(format!("{base}/introspect"))
        .bearer_auth(&pat)
        .form(&[("token", pat.as_str())])
        .send()
        .await;
    let _ = http()
        .get(format!("{base}/uma/resources?access_token={pat}"))
        .send()
        .await;
    let _ = http()
        .post(format!("{base}/token"))
        .basic_auth(&id, Some(&secret))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                t["refresh_token"].as_str().unwrap_or_default(),
            ),
        ])
        .send()
        .await;
    let _ = server.0.kill();
    let _ = server.0.wait();
    let logs = std::fs::read_to_string(dir.path().join("serve.err")).unwrap_or_default();
    assert!(
        logs.contains("token_issued"),
        "the audit log is there: {}",
        &logs[..logs.len().min(2000)]
    );
    assert_eq!(
        logs.matches("break_the_glass").count(),
        1,
        "one break-the-glass token, one audit event"
    );
    for s in &leaked {
        assert!(s.len() >= 8);
        assert!(!logs.contains(s.as_str()), "a secret reached the log");
    }
    assert!(!logs.contains("cst_"), "no prefixed secret reached the log");
}

mod serve_on_postgres {
    use super::*;

    /// The binary on PostgreSQL: `migrate`, `client add` and `serve` against a fresh database, the
    /// key-encryption key file created in the working directory, tokens issued and introspected.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let db = tokio::task::spawn_blocking(custodia_tests::fresh_pg_database)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let bind = format!("127.0.0.1:{port}");
        let env = [
            ("CUSTODIA_BIND", bind.as_str()),
            ("CUSTODIA_ISSUER", base.as_str()),
            ("CUSTODIA_DATABASE_URL", db.as_str()),
        ];
        let out = custodia(dir.path(), &env, &["migrate"], None);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = custodia(
            dir.path(),
            &env,
            &[
                "client",
                "add",
                "--name",
                "svc",
                "--grant-type",
                "client_credentials",
                "--scope",
                "api:read",
            ],
            None,
        );
        // The status (exit code or signal) and both streams, should it ever fail: once in CI it
        // failed with an empty stderr.
        assert!(
            out.status.success(),
            "{:?}: stderr {} stdout {}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        let client: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let (id, secret) = (
            client["client_id"].as_str().unwrap_or_default().to_string(),
            client["client_secret"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
        let server = serve(dir.path(), &env, &base).await;
        assert!(
            dir.path().join("custodia.kek").exists(),
            "the KEK file for PostgreSQL is custodia.kek in the working directory"
        );
        client_credentials_round_trip(&base, &id, &secret, None).await;
        let r = http()
            .get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status().as_u16(), 200);
        drop(server);
        custodia_tests::drop_pg_database(&db);
    }
}

// `CUSTODIA_PROFILE` chooses the lock-down: `check-config` and `serve` refuse a setting the
// profile forbids, naming it (HEART-OAUTH-43, HEART-OIDC-03, IGOV-OAUTH-04, IGOV-OAUTH-42);
// settings left unset take the profile's own limits, so every profile starts on its defaults.
#[test]
fn profiles_refuse_contradicting_settings() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    for (profile, name, value) in [
        ("heart", "CUSTODIA_REFRESH_TOKEN_TTL", "1209600"),
        ("heart", "CUSTODIA_ID_TOKEN_TTL", "600"),
        ("heart-fhir", "CUSTODIA_ACCESS_TOKEN_TTL", "7200"),
        ("igov", "CUSTODIA_SIGNING_ALG", "RS256"),
        ("igov", "CUSTODIA_REFRESH_TOKEN_TTL", "172800"),
        // IGOV-OIDC-07: ID tokens live at most five minutes.
        ("igov", "CUSTODIA_ID_TOKEN_TTL", "301"),
    ] {
        for cmd in [&["check-config"][..], &["serve"][..]] {
            let out = custodia(
                d,
                &[("CUSTODIA_PROFILE", profile), (name, value)],
                cmd,
                None,
            );
            one_line_exit_2(&out, name);
            assert!(
                String::from_utf8_lossy(&out.stderr).contains(profile),
                "names the profile"
            );
        }
    }
    for profile in ["default", "heart", "heart-fhir", "igov"] {
        let out = custodia(d, &[("CUSTODIA_PROFILE", profile)], &["check-config"], None);
        assert!(
            out.status.success(),
            "{profile}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
