//! Single-use things stay single-use under concurrency: 20 tasks redeem the same code (or refresh
//! token) at once; exactly one succeeds, and — the others being replays — the tokens it got are
//! then revoked (BCP-11, BCP-15).

use custodia_tests::*;
use futures_util::future::join_all;

const PW: &str = "correct horse battery";

both!(code_redeemed_by_20_tasks_at_once, |srv| {
    srv.add_user("alice", PW).await;
    let client = srv.web_client().await;
    let (verifier, challenge) = pkce();
    let loc = authorize_and_allow(
        &srv,
        &client,
        &[
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("scope", "openid offline_access"),
        ],
        "alice",
        PW,
    )
    .await;
    let code = query(&loc).remove("code").unwrap_or_default();
    let attempts = (0..20).map(|_| {
        let (srv, client, code, verifier) = (&srv, &client, code.clone(), verifier.clone());
        async move {
            token_request(
                srv,
                client,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", "https://client.example/cb"),
                    ("code_verifier", &verifier),
                ],
            )
            .await
        }
    });
    let results = join_all(attempts).await;
    let ok: Vec<_> = results.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(ok.len(), 1, "exactly one redemption succeeds: {results:?}");
    for (s, v) in results.iter().filter(|(s, _)| *s != 200) {
        assert_eq!((*s, v["error"].as_str()), (400, Some("invalid_grant")));
    }
    let winner = &ok[0].1;
    for t in ["access_token", "refresh_token"] {
        let tok = winner[t].as_str().unwrap_or_default();
        assert_eq!(
            introspect(&srv, &client, tok).await["active"],
            false,
            "{t} of the winner is revoked by the replays"
        );
    }
});

both!(refresh_token_used_by_20_tasks_at_once, |srv| {
    srv.add_user("alice", PW).await;
    let client = srv.web_client().await;
    let t = code_flow_tokens(&srv, &client, "alice", PW, "openid offline_access").await;
    let rt = t["refresh_token"].as_str().unwrap_or_default().to_string();
    let attempts = (0..20).map(|_| {
        let (srv, client, rt) = (&srv, &client, rt.clone());
        async move {
            token_request(
                srv,
                client,
                &[("grant_type", "refresh_token"), ("refresh_token", &rt)],
            )
            .await
        }
    });
    let results = join_all(attempts).await;
    let ok: Vec<_> = results.iter().filter(|(s, _)| *s == 200).collect();
    assert_eq!(ok.len(), 1, "exactly one rotation succeeds: {results:?}");
    let winner = &ok[0].1;
    for t in ["access_token", "refresh_token"] {
        let tok = winner[t].as_str().unwrap_or_default();
        assert_eq!(
            introspect(&srv, &client, tok).await["active"],
            false,
            "{t} of the winner is revoked by the reuse"
        );
    }
});

// The protection API under concurrency: three resource servers, two owners, 40 registrations per
// (resource server, owner) pair all at once — nothing is lost and nothing is mixed (UMA-FED-04).
both!(
    parallel_resource_registration_by_several_resource_servers,
    |srv| {
        use custodia_tests::reqwest::Method;
        use serde_json::json;
        srv.add_user("alice", PW).await;
        srv.add_user("bob", PW).await;
        let mut pairs = vec![];
        for rs_name in ["rs-a", "rs-b", "rs-c"] {
            let rs = srv.rs_client(rs_name).await;
            for owner in ["alice", "bob"] {
                let pat = srv.pat(&rs, owner, PW).await;
                pairs.push((format!("{rs_name}/{owner}"), pat));
            }
        }
        let url = srv.url("/uma/resources");
        let calls = pairs.iter().flat_map(|(label, pat)| {
            (0..40).map({
                let url = url.clone();
                move |i| {
                    let (url, label, pat) = (url.clone(), label.clone(), pat.clone());
                    async move {
                        let name = format!("{label}#{i}");
                        let (s, _, v) = bearer_json(
                            Method::POST,
                            &url,
                            Some(&pat),
                            Some(&json!({"resource_scopes": ["read"], "name": name})),
                        )
                        .await;
                        assert_eq!(s, 201, "{v}");
                        (
                            label,
                            name,
                            v["_id"].as_str().unwrap_or_default().to_string(),
                        )
                    }
                }
            })
        });
        let created = join_all(calls).await;
        assert_eq!(created.len(), 240);
        // Tickets asked for at once by every partition (group-committed together) never mix.
        let asks = pairs.iter().flat_map(|(label, pat)| {
            let rid = created
                .iter()
                .find(|(l, _, _)| l == label)
                .map(|(_, _, id)| id.clone())
                .unwrap_or_default();
            let srv = &srv;
            (0..10).map(move |_| {
                let (label, pat, rid) = (label.clone(), pat.clone(), rid.clone());
                async move {
                    let (s, _, v) = bearer_json(
                        Method::POST,
                        &srv.url("/uma/permission"),
                        Some(&pat),
                        Some(&json!({"resource_id": rid, "resource_scopes": ["read"]})),
                    )
                    .await;
                    assert_eq!(s, 201, "{v}");
                    (
                        label,
                        rid,
                        v["ticket"].as_str().unwrap_or_default().to_string(),
                    )
                }
            })
        });
        let tickets = join_all(asks).await;
        assert_eq!(tickets.len(), 60);
        for (label, rid, t) in &tickets {
            let info = custodia_server::protocol::permission::peek(&srv.core, t, srv.core.now())
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|| panic!("{label}: ticket lost"));
            assert_eq!(info.permissions.len(), 1);
            assert_eq!(&info.permissions[0].resource_id, rid, "{label}");
        }
        for (label, pat) in &pairs {
            let (_, _, list) = bearer_json(Method::GET, &url, Some(pat), None).await;
            let listed: Vec<String> = serde_json::from_value(list).unwrap_or_default();
            let mut expected: Vec<String> = created
                .iter()
                .filter(|(l, _, _)| l == label)
                .map(|(_, _, id)| id.clone())
                .collect();
            let mut got = listed.clone();
            got.sort();
            expected.sort();
            assert_eq!(got, expected, "{label} sees exactly its own 40");
            for id in &listed {
                let (_, _, v) =
                    bearer_json(Method::GET, &format!("{url}/{id}"), Some(pat), None).await;
                assert!(
                    v["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with(&format!("{label}#"))),
                    "{label}: {v}"
                );
            }
        }
    }
);

/// SQLite's WAL stays bounded under saturating load: writers recording tokens through the single
/// writer while readers never stop reading. A checkpoint that races the writer never catches up
/// (some reader always holds a recent snapshot), so the WAL used to grow with everything written
/// (3.2 GB after one benchmark run); the writer's own checkpoints between its batches let it
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_wal_stays_bounded_under_load() {
    use custodia_server::store::grants::AccessTokenRow;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let srv = TestServer::start(Backend::Sqlite).await;
    let path = srv
        .database_url
        .strip_prefix("sqlite://")
        .unwrap_or_else(|| panic!("not SQLite: {}", srv.database_url))
        .to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (store, stop) = (srv.store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let n = store
                        .run(|c| {
                            custodia_server::store::grants::access_token(c, "none")
                                .map(|r| r.is_some())
                        })
                        .await;
                    assert!(matches!(n, Ok(false)), "{n:?}");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    let now = custodia_server::now();
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let store = srv.store.clone();
            tokio::spawn(async move {
                for i in 0..1_000 {
                    let row = AccessTokenRow {
                        jti: format!("load-{w}-{i}-{}", "x".repeat(200)),
                        grant_id: None,
                        client_id: "load".into(),
                        user_id: None,
                        scope: "api:read api:write".into(),
                        expires_at: now + 3600,
                        revoked: false,
                        created_at: now,
                    };
                    store
                        .record_access_token(row)
                        .await
                        .unwrap_or_else(|e| panic!("{e}"));
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap_or_else(|e| panic!("{e}"));
    }
    stop.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(reads > 100, "the readers kept reading ({reads} reads)");
    let size = |p: &str| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let (db, wal) = (size(&path), size(&format!("{path}-wal")));
    // 16,000 rows of ~300 bytes: the database grew by several MB, written through the WAL, whose
    // pages are rewritten again and again (every commit appends the index pages it touched).
    // Without the writer's checkpoints the WAL ended at ~22 times the database (184 MB for 8 MB
    // here); with them it restarts and its file stays about the size of the database or less.
    assert!(db > 4 << 20, "database {db} bytes");
    assert!(
        wal < 3 * db,
        "the WAL ({wal} bytes) must restart instead of holding everything written (database {db} bytes)"
    );
}

// Housekeeping deletes expired rows in steps of about `PRUNE_STEP` rows per table, oldest first,
// each step its own writer job (a one-statement delete of a minute's expired rows under load held
// the writer — and every queued request — for most of a second). Live rows stay.
both!(housekeeping_deletes_in_bounded_steps, |srv| {
    use custodia_server::store::PRUNE_STEP;
    use custodia_server::store::grants::{AccessTokenRow, access_token};
    let now = custodia_server::now();
    let row = |jti: String, expires_at: i64| AccessTokenRow {
        jti,
        grant_id: None,
        client_id: "hk".into(),
        user_id: None,
        scope: "api:read".into(),
        expires_at,
        revoked: false,
        created_at: now - 10_000,
    };
    // Access-token records are kept an hour past their expiry (introspection says "inactive").
    let expired = 2 * PRUNE_STEP + 300;
    let jobs = (0..expired).map(|i| {
        srv.store
            .record_access_token(row(format!("old-{i}"), now - 7200 - i))
    });
    for r in futures_util::future::join_all(jobs).await {
        r.unwrap_or_else(|e| panic!("{e}"));
    }
    srv.store
        .record_access_token(row("live".into(), now + 600))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let exists = |jti: String| {
        let store = srv.store.clone();
        async move {
            store
                .run(move |c| access_token(c, &jti))
                .await
                .unwrap_or_else(|e| panic!("{e}"))
                .is_some()
        }
    };
    // Step 1: the PRUNE_STEP oldest go (the highest `i` expired first), the rest stay.
    assert!(
        srv.store.prune(now).await.unwrap_or_else(|e| panic!("{e}")),
        "more remain"
    );
    assert!(
        !exists(format!("old-{}", expired - 1)).await,
        "the oldest is gone"
    );
    assert!(!exists(format!("old-{}", expired - PRUNE_STEP)).await);
    assert!(
        exists(format!("old-{}", expired - PRUNE_STEP - 1)).await,
        "one step deletes no more"
    );
    assert!(exists("old-0".into()).await);
    let mut steps = 1;
    loop {
        steps += 1;
        assert!(steps < 10, "housekeeping does not end");
        if !srv.store.prune(now).await.unwrap_or_else(|e| panic!("{e}")) {
            break;
        }
    }
    assert_eq!(steps, 3, "{expired} rows in steps of {PRUNE_STEP}");
    assert!(!exists("old-0".into()).await, "every expired row is gone");
    assert!(exists("live".into()).await, "a live token stays");
});
