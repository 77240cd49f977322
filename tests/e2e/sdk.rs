//! The resource-server SDK (`custodia-sdk`) and the example FHIR resource server against a real
//! Custodia over HTTP: an owner connects the resource server (PAT through the SDK), resources are
//! registered, read, updated, listed and deleted through the SDK, tickets come back in a
//! `WWW-Authenticate: UMA` challenge that Custodia recognises, and RPTs are verified both locally
//! and by introspection.

use std::sync::Arc;
use std::time::Duration;

use custodia_sdk::actix::Requirement;
use custodia_sdk::{
    ClientConfig, ClientSecret, Error as SdkError, MemoryPatStore, Pat, PatStore, Permission,
    ResourceDescription, RptVerifier, UmaChallenge, UmaClient, Verification,
};
use custodia_server::protocol::permission::{self, RequestedPermission};
use custodia_server::protocol::tokens::RptPermission;
use custodia_tests::reqwest::Method;
use custodia_tests::*;
use serde_json::json;

const PW: &str = "correct horse battery";

fn sdk_client(srv: &TestServer, rs: &TestClient, redirect_uri: &str) -> UmaClient {
    UmaClient::new(
        ClientConfig::new(
            srv.base.clone(),
            rs.id.clone(),
            ClientSecret::new(rs.secret.clone().unwrap_or_default()),
            redirect_uri,
        )
        .insecure_allow_http(true),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The owner's part of the SDK's PAT flow: open the SDK's authorization URL, sign in, allow;
/// returns the redirect with `code` and `state`.
async fn owner_allows(srv: &TestServer, url: &str, username: &str) -> String {
    let browser = browser();
    let login = open(&browser, url).await;
    let (status, page) = login.page();
    assert_eq!(status, 200, "{page}");
    match submit_login(&browser, srv, page, username, PW).await {
        Landing::Redirect(_, l) => l,
        Landing::Page(_, consent) => submit_consent(&browser, srv, &consent, "allow")
            .await
            .redirect()
            .to_string(),
    }
}

async fn sdk_pat(srv: &TestServer, uma: &UmaClient, username: &str) -> Pat {
    let (url, pending) = uma
        .authorization_url()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(url.as_str().contains("code_challenge_method=S256"));
    let back = owner_allows(srv, url.as_str(), username).await;
    let q = query(&back);
    uma.exchange_code(
        pending,
        q.get("code").map(String::as_str).unwrap_or_default(),
        q.get("state").map(String::as_str).unwrap_or_default(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

// UMA-FED-03, UMA-FED-05, UMA-FED-06, UMA-FED-10..19 through the SDK: PAT, CRUD, tickets, refresh.
both!(sdk_pat_resources_and_tickets, |srv| {
    let alice = srv.add_user("alice", PW).await;
    let rs = srv.rs_client("SDK RS").await;
    let uma = sdk_client(&srv, &rs, "https://client.example/cb");
    let d = uma.discovery().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(d.issuer, srv.base);

    // A wrong `state` is refused before the code is spent.
    let (url, pending) = uma
        .authorization_url()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let back = owner_allows(&srv, url.as_str(), "alice").await;
    let code = query(&back).remove("code").unwrap_or_default();
    let refused = uma.exchange_code(pending, &code, "forged-state").await;
    assert!(
        matches!(refused, Err(SdkError::StateMismatch)),
        "{refused:?}"
    );

    let pat = sdk_pat(&srv, &uma, "alice").await;
    assert_eq!(pat.owner, alice, "the PAT's owner is the owner's subject");

    // CRUD through the SDK.
    let desc = ResourceDescription::new(["read", "write"])
        .with_name("Lab results")
        .with_type("https://rs.example/lab");
    let created = uma
        .create_resource(&pat, &desc)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let read = uma
        .read_resource(&pat, &created.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.id, created.id);
    assert_eq!(read.description.resource_scopes, vec!["read", "write"]);
    assert_eq!(read.description.name.as_deref(), Some("Lab results"));
    let replaced = ResourceDescription::new(["read"]);
    uma.update_resource(&pat, &created.id, &replaced)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let read = uma
        .read_resource(&pat, &created.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(read.description.resource_scopes, vec!["read"]);
    assert_eq!(read.description.name, None);
    let other = uma
        .create_resource(&pat, &ResourceDescription::new(["view"]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut listed = uma
        .list_resources(&pat)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    listed.sort();
    let mut want = vec![created.id.clone(), other.id.clone()];
    want.sort();
    assert_eq!(listed, want);

    // Tickets for one and for several permissions; Custodia recognises them.
    let one = uma
        .request_permission(&pat, &Permission::new(created.id.clone(), ["read"]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let many = uma
        .request_permissions(
            &pat,
            &[
                Permission::new(created.id.clone(), ["read"]),
                Permission::new(other.id.clone(), Vec::<String>::new()),
            ],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = srv.core.now();
    let info = permission::peek(&srv.core, one.expose_secret(), now)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("ticket not recognised"));
    assert_eq!(
        info.permissions,
        vec![RequestedPermission {
            resource_id: created.id.clone(),
            resource_scopes: vec!["read".into()]
        }]
    );
    let info = permission::peek(&srv.core, many.expose_secret(), now)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("ticket not recognised"));
    assert_eq!(info.permissions.len(), 2);

    // The AS's errors come back typed.
    let e = uma
        .request_permission(&pat, &Permission::new(created.id.clone(), ["write"]))
        .await
        .err();
    assert_eq!(
        e.as_ref().and_then(|e| e.protocol_error()),
        Some("invalid_scope")
    );
    let e = uma.read_resource(&pat, "no-such-id").await.err();
    assert_eq!(
        e.as_ref().and_then(|e| e.protocol_error()),
        Some("not_found")
    );

    uma.delete_resource(&pat, &other.id)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let e = uma.read_resource(&pat, &other.id).await.err();
    assert_eq!(
        e.as_ref().and_then(|e| e.protocol_error()),
        Some("not_found")
    );

    // Automatic refresh: a PAT about to expire is refreshed once and saved (UMA-FED-06).
    let store = MemoryPatStore::new();
    let mut expiring = pat.clone();
    expiring.expires_at = srv.core.now() + 5;
    store
        .save(&expiring)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = tokio::join!(uma.pat_for(&store, &alice), uma.pat_for(&store, &alice));
    let (a, b) = (
        a.unwrap_or_else(|e| panic!("{e}")),
        b.unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(
        a.access_token.expose_secret(),
        b.access_token.expose_secret(),
        "concurrent callers share one refresh"
    );
    assert_ne!(
        a.access_token.expose_secret(),
        pat.access_token.expose_secret()
    );
    assert!(
        uma.list_resources(&a).await.is_ok(),
        "the refreshed PAT works"
    );
    let saved = store
        .load(&alice)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("saved"));
    assert_eq!(
        saved.access_token.expose_secret(),
        a.access_token.expose_secret()
    );
});

// RPT verification against Custodia's real keys: locally (JWKS) and by introspection with the PAT;
// the permission check; revocation seen by introspection at once (UMA-FED-34..37).
both!(sdk_rpt_verification, |srv| {
    srv.add_user("alice", PW).await;
    let rs = srv.rs_client("SDK RS").await;
    let other_rs = srv.rs_client("Other RS").await;
    let uma = sdk_client(&srv, &rs, "https://client.example/cb");
    let pat = sdk_pat(&srv, &uma, "alice").await;
    let r = uma
        .create_resource(&pat, &ResourceDescription::new(["read", "write"]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let app = srv.web_client().await;
    let perms = [RptPermission {
        resource_id: r.id.clone(),
        resource_scopes: vec!["read".into()],
        exp: None,
    }];
    let rpt = srv
        .mint_rpt(&app.id, std::slice::from_ref(&rs.id), &perms)
        .await;
    let verifier = RptVerifier::new(&uma);
    let local = verifier
        .verify_local(&rpt)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let now = srv.core.now();
    assert!(local.covers(&r.id, "read", now));
    assert!(!local.covers(&r.id, "write", now));
    assert!(!local.covers("another-resource", "read", now));
    let intro = verifier
        .verify_introspection(&pat, &rpt)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(intro.covers(&r.id, "read", now) && !intro.covers(&r.id, "write", now));

    // An RPT for another resource server is not ours: refused locally (audience).
    let foreign = srv
        .mint_rpt(&app.id, std::slice::from_ref(&other_rs.id), &perms)
        .await;
    assert!(verifier.verify_local(&foreign).await.is_err());
    // A tampered one is refused.
    let mut tampered = rpt.clone();
    tampered.pop();
    tampered.push(if rpt.ends_with('A') { 'B' } else { 'A' });
    assert!(verifier.verify_local(&tampered).await.is_err());

    // Revocation: introspection (a fresh verifier, no cache) sees it at once.
    let resp = http()
        .post(srv.url("/revoke"))
        .basic_auth(&app.id, app.secret.as_deref())
        .form(&[("token", rpt.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    let fresh = RptVerifier::new(&uma).with_introspection_cache(Duration::from_secs(0), 16);
    assert!(fresh.verify_introspection(&pat, &rpt).await.is_err());
});

// The example FHIR server: connect registers the owner's resources; a request with no token gets
// 401 with a UMA challenge whose ticket Custodia recognises (UMA-FED-41, UMA-FED-42); a covering
// RPT reads, a lacking one gets 403 with a fresh ticket; writes need the write scope; with
// Custodia down, 403 with the `Warning` header (UMA-FED-43).
both!(fhir_example_resource_server, [
    "CUSTODIA_INSECURE_LOOPBACK_HTTP_REDIRECTS" => "true",
], |srv| {
    let alice = srv.add_user("alice", PW).await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (fhir, rs) = fhir_example(&srv, dir.path(), Verification::Local).await;
    let text = connect_fhir(&srv, &fhir, "alice", PW).await;
    assert!(text.contains(&alice), "{text}");

    // Custodia holds the two resources of the owner, registered by this RS.
    let (store, rs_id, owner) = (srv.store.clone(), rs.id.clone(), alice.clone());
    let ids = store
        .run(move |c| custodia_server::store::uma::list_resources(c, &rs_id, &owner))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ids.len(), 2, "Patient record and Observations");

    // Reconnecting brings the registrations in line: the two are updated (not duplicated) and a
    // stray registration of this RS for alice (left from a lost database) is deleted.
    let stray = custodia_server::store::uma::ResourceRow {
        id: uuid::Uuid::new_v4().to_string(),
        owner_id: alice.clone(),
        rs_client_id: rs.id.clone(),
        name: Some("stray".into()),
        description: None,
        icon_uri: None,
        resource_type: None,
        scopes: "[\"read\"]".into(),
        extras: "{}".into(),
        created_at: srv.core.now(),
        updated_at: srv.core.now(),
    };
    let stray_id = stray.id.clone();
    srv.store
        .run(move |c| custodia_server::store::uma::insert_resource(c, &stray))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    connect_fhir(&srv, &fhir, "alice", PW).await;
    let (store, rs_id, owner) = (srv.store.clone(), rs.id.clone(), alice.clone());
    let mut again = store
        .run(move |c| custodia_server::store::uma::list_resources(c, &rs_id, &owner))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut before = ids.clone();
    again.sort();
    before.sort();
    assert_eq!(again, before, "same two registrations, stray {stray_id} deleted");

    // No token: 401 + UMA challenge.
    let resp = http()
        .get(format!("{fhir}/fhir/Patient/{alice}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 401);
    let header = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let challenge = UmaChallenge::parse(&header).unwrap_or_else(|e| panic!("{header}: {e}"));
    assert_eq!(challenge.as_uri, srv.base, "as_uri is the issuer");
    assert_eq!(challenge.realm.as_deref(), Some("fhir"));
    let info = permission::peek(&srv.core, challenge.ticket.expose_secret(), srv.core.now())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("Custodia does not recognise the RS's ticket"));
    assert_eq!(info.owner_id, alice);
    assert_eq!(info.rs_client_id, rs.id);
    assert_eq!(info.permissions.len(), 1);
    assert_eq!(info.permissions[0].resource_scopes, vec!["patient/Patient.read"]);
    let patient_resource = info.permissions[0].resource_id.clone();
    assert!(ids.contains(&patient_resource));
    // A garbage token gets the same 401 challenge.
    let resp = http()
        .get(format!("{fhir}/fhir/Patient/{alice}"))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 401);

    // An RPT covering Patient.read reads the Patient.
    let app = srv.web_client().await;
    let read_rpt = srv
        .mint_rpt(
            &app.id,
            std::slice::from_ref(&rs.id),
            &[RptPermission {
                resource_id: patient_resource.clone(),
                resource_scopes: vec!["patient/Patient.read".into()],
                exp: None,
            }],
        )
        .await;
    let (s, _, v) = bearer_json(
        Method::GET,
        &format!("{fhir}/fhir/Patient/{alice}"),
        Some(&read_rpt),
        None,
    )
    .await;
    assert_eq!((s, &v["resourceType"], &v["id"]), (200, &json!("Patient"), &json!(alice)));
    // …but cannot write it: 403 with a fresh ticket for the write scope.
    let (s, h, _) = bearer_json(
        Method::PUT,
        &format!("{fhir}/fhir/Patient/{alice}"),
        Some(&read_rpt),
        Some(&json!({"resourceType": "Patient", "name": [{"family": "Stolen"}]})),
    )
    .await;
    assert_eq!(s, 403);
    let header = h
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let c = UmaChallenge::parse(header).unwrap_or_else(|e| panic!("{header}: {e}"));
    let info = permission::peek(&srv.core, c.ticket.expose_secret(), srv.core.now())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .unwrap_or_else(|| panic!("fresh ticket"));
    assert_eq!(info.permissions[0].resource_scopes, vec!["patient/Patient.write"]);

    // Observations: write with the write scope, then search with the read scope.
    let obs_resource = ids
        .iter()
        .find(|i| **i != patient_resource)
        .cloned()
        .unwrap_or_default();
    let rw = srv
        .mint_rpt(
            &app.id,
            std::slice::from_ref(&rs.id),
            &[RptPermission {
                resource_id: obs_resource.clone(),
                resource_scopes: vec![
                    "patient/Observation.read".into(),
                    "patient/Observation.write".into(),
                ],
                exp: None,
            }],
        )
        .await;
    let obs = json!({
        "resourceType": "Observation",
        "status": "final",
        "code": {"text": "heart rate"},
        "subject": {"reference": format!("Patient/{alice}")},
        "valueQuantity": {"value": 62, "unit": "beats/min"},
    });
    let (s, _, created) = bearer_json(
        Method::POST,
        &format!("{fhir}/fhir/Observation"),
        Some(&rw),
        Some(&obs),
    )
    .await;
    assert_eq!(s, 201, "{created}");
    let (s, _, _) = bearer_json(
        Method::POST,
        &format!("{fhir}/fhir/Observation"),
        Some(&read_rpt),
        Some(&obs),
    )
    .await;
    assert_eq!(s, 401, "an RPT for another resource does not verify for this one's needs");
    let (s, _, bundle) = bearer_json(
        Method::GET,
        &format!("{fhir}/fhir/Observation?patient={alice}"),
        Some(&rw),
        None,
    )
    .await;
    assert_eq!((s, &bundle["total"]), (200, &json!(1)), "{bundle}");
    let oid = created["id"].as_str().unwrap_or_default();
    let (s, _, one) = bearer_json(
        Method::GET,
        &format!("{fhir}/fhir/Observation/{oid}"),
        Some(&rw),
        None,
    )
    .await;
    assert_eq!((s, &one["valueQuantity"]["value"]), (200, &json!(62)));
    // An unknown patient is a FHIR 404, not a challenge.
    let (s, _, v) = bearer_json(Method::GET, &format!("{fhir}/fhir/Patient/nobody"), None, None).await;
    assert_eq!((s, &v["resourceType"]), (404, &json!("OperationOutcome")));

    // Custodia unreachable: 403 with the Warning header and no challenge.
    srv.stop().await;
    let resp = http()
        .get(format!("{fhir}/fhir/Patient/{alice}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 403);
    assert_eq!(
        resp.headers().get("warning").and_then(|v| v.to_str().ok()),
        Some("199 - \"UMA Authorization Server Unreachable\"")
    );
    assert!(resp.headers().get("www-authenticate").is_none());
});

// The guard's function form with introspection chosen per route: a requirement verified by
// introspection with the PAT sees a revoked RPT as invalid at once.
both!(sdk_guard_by_introspection, |srv| {
    srv.add_user("alice", PW).await;
    let rs = srv.rs_client("SDK RS").await;
    let uma = sdk_client(&srv, &rs, "https://client.example/cb");
    let pat = sdk_pat(&srv, &uma, "alice").await;
    let r = uma
        .create_resource(&pat, &ResourceDescription::new(["read"]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let store = Arc::new(MemoryPatStore::new());
    store.save(&pat).await.unwrap_or_else(|e| panic!("{e}"));
    let guard = custodia_sdk::actix::UmaGuard::new(uma.clone(), RptVerifier::new(&uma), store);
    let app = srv.web_client().await;
    let rpt = srv
        .mint_rpt(
            &app.id,
            std::slice::from_ref(&rs.id),
            &[RptPermission {
                resource_id: r.id.clone(),
                resource_scopes: vec!["read".into()],
                exp: None,
            }],
        )
        .await;
    let need = Requirement::new(pat.owner.clone(), r.id.clone(), ["read"])
        .with_verification(Verification::Introspection);
    let req = actix_web::test::TestRequest::get()
        .insert_header(("authorization", format!("Bearer {rpt}")))
        .to_http_request();
    assert!(guard.authorize(&req, &need).await.is_ok());
    let resp = http()
        .post(srv.url("/revoke"))
        .basic_auth(&app.id, app.secret.as_deref())
        .form(&[("token", rpt.as_str())])
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status().as_u16(), 200);
    let fresh = custodia_sdk::actix::UmaGuard::new(
        uma.clone(),
        RptVerifier::new(&uma).with_introspection_cache(Duration::from_secs(0), 16),
        Arc::new({
            let s = MemoryPatStore::new();
            s.save(&pat).await.unwrap_or_else(|e| panic!("{e}"));
            s
        }),
    );
    let denied = fresh.authorize(&req, &need).await;
    let challenge = denied
        .err()
        .and_then(|e| e.challenge().cloned())
        .unwrap_or_else(|| panic!("a revoked RPT gets the challenge"));
    assert!(
        permission::peek(&srv.core, challenge.ticket.expose_secret(), srv.core.now())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .is_some()
    );
});
