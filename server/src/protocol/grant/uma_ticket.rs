//! The UMA grant (UMA Grant §3.3): `grant_type=urn:ietf:params:oauth:grant-type:uma-ticket`. The
//! client (authenticated by the token endpoint) trades a permission ticket, with optional pushed
//! claims, for an RPT.
//!
//! 1. `ticket` is required (UMA-GRANT-08); `claim_token` and `claim_token_format` come together
//!    (UMA-GRANT-09); `scope` values count only when registered for the client (UMA-GRANT-15).
//! 2. The ticket is consumed with one conditional `UPDATE` (UMA-GRANT-54): of any number of
//!    concurrent presentations one proceeds; unknown, expired or used tickets are `invalid_grant`.
//! 3. Every resource the ticket names must still be registered (deleting a resource kills its
//!    tickets; this is the second line of that defence).
//! 4. The requesting party comes from the pushed claim token (an invalid one yields `need_info`,
//!    UMA-GRANT-11) or is unidentified.
//! 5. Each (resource, scope) is decided by the owner's policies (`custodia-policy`), or by a
//!    request the owner approved. All granted → an RPT; a subset granted and nothing more to
//!    gain → an RPT for the subset; more claims could help → `need_info` with `required_claims`;
//!    nothing granted and the owner accepts requests → `request_submitted` (queued); otherwise
//!    `request_denied`. `need_info` and `request_submitted` carry a new ticket: the old one is
//!    dead (UMA-GRANT-46, -50).
//! 6. Every decision is recorded for the owner (audit).

use custodia_policy::{RequestContext, RequiredClaim};
use serde_json::{Value, json};

use super::super::Core;
use super::super::claims::{self, Verified};
use super::super::client_auth::Authenticated;
use super::super::error::{ErrorCode, OAuthError, UmaExtras};
use super::super::params::Params;
use super::super::permission::RequestedPermission;
use super::super::policies::{self, resource_info};
use super::super::scope;
use super::super::tokens::{Minter, RptPermission, RptSpec, TokenResponse};
use crate::secrets::{Secret, SecretKind, new_id};
use crate::store::grant::{self as store, AccessRequestRow, DecisionRow, GroundRow, PctRow};
use crate::store::recorder::GrantRows;
use crate::store::uma::{self, NewTicket, ResourceRow, TicketResourceRow, TicketRow};

/// The grant type (UMA Grant §3.3.1).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:uma-ticket";

/// Seconds a client should wait between polls after `request_submitted` (UMA-GRANT-50).
pub const POLL_INTERVAL: u64 = 5;

fn outcome_str(code: ErrorCode) -> &'static str {
    code.as_str()
}

/// A new ticket for the same permissions (rotation).
async fn rotate(
    core: &Core,
    old: &TicketRow,
    perms: &[RequestedPermission],
    now: i64,
) -> Result<Secret, OAuthError> {
    rotate_with(core, old, old.claims.clone(), perms, now).await
}

/// [`rotate`] with these claims on the new ticket.
async fn rotate_with(
    core: &Core,
    old: &TicketRow,
    claims: Option<String>,
    perms: &[RequestedPermission],
    now: i64,
) -> Result<Secret, OAuthError> {
    let ticket = Secret::generate(SecretKind::PermissionTicket);
    let hash = ticket.hash();
    let new = NewTicket {
        more_resources: perms
            .iter()
            .skip(1)
            .map(|p| TicketResourceRow {
                ticket_hash: hash.clone(),
                resource_id: p.resource_id.clone(),
            })
            .collect(),
        row: TicketRow {
            ticket_hash: hash,
            owner_id: old.owner_id.clone(),
            rs_client_id: old.rs_client_id.clone(),
            resource_id: old.resource_id.clone(),
            permissions: old.permissions.clone(),
            expires_at: now + core.config.ticket_ttl as i64,
            used: false,
            created_at: now,
            claims,
        },
    };
    core.store.record_ticket(new).await?;
    Ok(ticket)
}

/// `required_claims` (UMA Grant §3.3.6): each claim a policy still needs, with its issuer, the
/// one format Custodia takes, a friendly name, and the claim type the operator configured for it
/// at that issuer (`claim_types` of a trusted issuer; HEART-FHIRUMA-03).
fn required_claims_json(core: &Core, claims: &[RequiredClaim]) -> Vec<Value> {
    let mut out: Vec<Value> = vec![];
    for c in claims {
        let mut o = serde_json::Map::new();
        o.insert("name".into(), json!(c.name));
        let claim_type = c
            .issuer
            .as_deref()
            .and_then(|i| super::super::upstream::trusted(core, i))
            .and_then(|t| t.claim_types.get(&c.name));
        if let Some(t) = claim_type {
            o.insert("claim_type".into(), json!(t));
        }
        o.insert(
            "claim_token_format".into(),
            json!([claims::ID_TOKEN_FORMAT]),
        );
        if let Some(i) = &c.issuer {
            o.insert("issuer".into(), json!([i]));
        }
        if let Some(f) = &c.friendly_name {
            o.insert("friendly_name".into(), json!(f));
        }
        let v = Value::Object(o);
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Where to send the requesting party (UMA-GRANT-48): the claims interaction endpoint, naming the
/// provider to sign in at when the missing claims all come from one trusted provider Custodia can
/// sign people in at (`idp`; the client appends its own parameters, UMA-GRANT-19).
fn redirect_user(core: &Core, missing: &[RequiredClaim]) -> String {
    let base = core.config.url("/uma/claims");
    let mut issuers: Vec<&str> = missing.iter().filter_map(|c| c.issuer.as_deref()).collect();
    issuers.sort_unstable();
    issuers.dedup();
    match issuers.as_slice() {
        [one] if missing.iter().all(|c| c.issuer.is_some()) => {
            match super::super::upstream::trusted(core, one).filter(|t| t.client_id.is_some()) {
                Some(t) => format!(
                    "{base}?{}",
                    serde_urlencoded::to_string([("idp", t.issuer.as_str())]).unwrap_or_default()
                ),
                None => base,
            }
        }
        _ => base,
    }
}

/// The scopes to decide per resource: the ticket's (all registered ones when it asked for none)
/// plus the client's `scope` values that the resource registered.
fn wanted(
    perms: &[RequestedPermission],
    rows: &[ResourceRow],
    extra: &[String],
) -> Vec<(ResourceRow, Vec<String>)> {
    let mut out = vec![];
    for p in perms {
        let Some(row) = rows.iter().find(|r| r.id == p.resource_id) else {
            continue;
        };
        let registered = super::super::resources::scopes_of(row);
        let mut scopes: Vec<String> = if p.resource_scopes.is_empty() && extra.is_empty() {
            registered.clone()
        } else {
            p.resource_scopes.clone()
        };
        for s in extra {
            if registered.contains(s) && !scopes.contains(s) {
                scopes.push(s.clone());
            }
        }
        out.push((row.clone(), scopes));
    }
    out
}

/// Scopes an approved request of this (client, party) grants on a resource, with the request.
fn approved_scopes(requests: &[AccessRequestRow], resource_id: &str) -> Vec<(String, String)> {
    let mut out = vec![];
    for r in requests.iter().filter(|r| r.status == "approved") {
        let granted: Vec<RequestedPermission> = r
            .granted
            .as_deref()
            .and_then(|g| serde_json::from_str(g).ok())
            .unwrap_or_default();
        for p in granted.into_iter().filter(|p| p.resource_id == resource_id) {
            out.extend(p.resource_scopes.into_iter().map(|s| (s, r.id.clone())));
        }
    }
    out
}

pub async fn issue(
    core: &Core,
    auth: &Authenticated,
    params: &Params,
    dpop: Option<&str>,
    now: i64,
) -> Result<TokenResponse, OAuthError> {
    let client = &auth.client;
    let ticket = params.require("ticket")?.to_string();
    let pushed = match (params.get("claim_token"), params.get("claim_token_format")) {
        (Some(t), Some(f)) => Some((t.to_string(), f.to_string())),
        (None, None) => None,
        _ => {
            return Err(OAuthError::invalid_request(
                "`claim_token` and `claim_token_format` go together",
            ));
        }
    };
    let extra = scope::parse(params.get("scope").unwrap_or(""))?;
    if let Some(s) = extra.iter().find(|s| !client.scopes.contains(s)) {
        return Err(OAuthError::invalid_scope(format!(
            "scope `{s}` is not registered for this client"
        )));
    }

    // A PCT or an RPT to upgrade must be this client's own and live: checked before the ticket is
    // spent, so a bad one costs the client nothing but this answer.
    let (from_pct, pct_problem) = match params.get("pct") {
        Some(p) => match pct_party(core, p, &client.id, now).await? {
            Ok(v) => (Some(v), None),
            Err(why) => (None, Some(why)),
        },
        None => (None, None),
    };
    let previous = match params.get("rpt") {
        Some(r) => Some(previous_rpt(core, r, &client.id, dpop, now).await?),
        None => None,
    };

    // Single use, whatever happens next.
    let hash = Secret::new(ticket).hash();
    let Some(row) = core.store.consume_ticket(hash.clone(), now).await? else {
        replayed(core, hash).await?;
        return Err(OAuthError::invalid_grant(
            "the ticket is unknown, expired or already used",
        ));
    };
    let perms: Vec<RequestedPermission> =
        serde_json::from_str(&row.permissions).map_err(OAuthError::internal)?;

    // Who is asking.
    let mut claim_problem: Option<String> = None;
    let verified: Option<Verified> = match &pushed {
        Some((token, format)) => {
            match claims::verify_pushed(core, &client.id, format, token, now).await? {
                Ok(v) => Some(v),
                Err(why) => {
                    claim_problem = Some(why);
                    None
                }
            }
        }
        None => None,
    };
    // Claims gathered interactively for this client travel with the ticket (while they are not
    // older than the claims' maximum age, however often the ticket was rotated); a PCT stands
    // for claims gathered before.
    let max_age = core.config.pct_claims_max_age as i64;
    let mut gathered_problem: Option<String> = None;
    let gathered = match row
        .claims
        .as_deref()
        .and_then(|c| claims::from_gathered_at(c, &client.id, core.issuer()))
    {
        Some((_, Some(at))) if now - at > max_age => {
            gathered_problem = Some(format!(
                "the claims gathered earlier are older than {max_age} seconds; the requesting party must provide them again"
            ));
            None
        }
        other => other.map(|(v, _)| v),
    };
    let carried: Option<Value> = row
        .claims
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok());
    // The party was told already, on the ticket this one replaces, which claims would help.
    let told = carried
        .as_ref()
        .and_then(|v| v.get("need_info_for"))
        .and_then(Value::as_str);
    let persist = gathered.is_some()
        && carried
            .as_ref()
            .and_then(|v| v.get("persist"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
    // The claims in use were gathered at the claims interaction endpoint for this ticket: the
    // requesting party has just answered a need_info.
    let gathered_in_use = verified.is_none() && gathered.is_some();
    let verified = verified.or(gathered).or(from_pct);
    if verified.is_none() {
        claim_problem = claim_problem.or(gathered_problem).or(pct_problem);
    }
    let party = verified
        .as_ref()
        .map(|v| v.party.clone())
        .unwrap_or_default();
    let ctx = RequestContext {
        now,
        client_id: client.id.clone(),
        claim_token_issuer: verified.as_ref().map(|v| v.issuer.clone()),
        sender_constrained: dpop.is_some(),
    };
    let party_key = claims::party_key(&party, &client.id);
    // The requesting party has answered a need_info: with claims gathered at the claims
    // interaction endpoint, or (a client that pushes its claims) by coming back as the same
    // identified party with the ticket that need_info gave.
    let answered = gathered_in_use || (party.subject.is_some() && told == Some(party_key.as_str()));

    // What the ticket names, the owner's settings and this party's latest request: one trip to
    // the store.
    let ids: Vec<String> = perms.iter().map(|p| p.resource_id.clone()).collect();
    let (rs, o, cid, pk) = (
        row.rs_client_id.clone(),
        row.owner_id.clone(),
        client.id.clone(),
        party_key.clone(),
    );
    let (rows, (accept_requests, policy_version), requests) = core
        .store
        .run(move |c| {
            Ok((
                uma::resources_by_ids(c, &rs, &o, &ids)?,
                store::settings(c, &o)?,
                store::latest_request(c, &o, &cid, &pk)?,
            ))
        })
        .await?;
    if rows.len() != perms.len() {
        return Err(OAuthError::invalid_grant(
            "a resource of this ticket is no longer registered",
        ));
    }

    // Decide each (resource, scope).
    let owner_policies = policies::compiled(core, &row.owner_id, policy_version).await?;
    // UMA-GRANT-45: a requested scope that no resource of the ticket offers.
    if let Some(s) = extra.iter().find(|s| {
        !rows
            .iter()
            .any(|r| super::super::resources::scopes_of(r).contains(s))
    }) {
        return Err(OAuthError::invalid_scope(format!(
            "scope `{s}` is not a scope of any resource of this ticket"
        )));
    }
    let wanted = wanted(&perms, &rows, &extra);
    let mut granted: Vec<RptPermission> = vec![];
    let mut denied: Vec<(ResourceRow, String)> = vec![];
    let mut deciding: Vec<String> = vec![];
    // Why each granted scope was granted: (resource, scope, policy, request).
    let mut grounds: Vec<(String, String, Option<String>, Option<String>)> = vec![];
    for (resource, scopes) in &wanted {
        let info = resource_info(resource);
        let approved = approved_scopes(&requests, &resource.id);
        let mut ok = vec![];
        for s in scopes {
            let d = owner_policies.decide(&party, &info, s, &ctx);
            if d.permit {
                for p in &d.policies {
                    grounds.push((resource.id.clone(), s.clone(), Some(p.clone()), None));
                }
                deciding.extend(d.policies);
                ok.push(s.clone());
            } else if let Some((_, request)) = approved.iter().find(|(a, _)| a == s) {
                grounds.push((resource.id.clone(), s.clone(), None, Some(request.clone())));
                ok.push(s.clone());
            } else {
                denied.push((resource.clone(), s.clone()));
            }
        }
        if !ok.is_empty() {
            granted.push(RptPermission {
                resource_id: resource.id.clone(),
                resource_scopes: ok,
                exp: None,
            });
        }
    }
    deciding.sort();
    deciding.dedup();

    let asked: Value = json!(
        wanted
            .iter()
            .map(|(r, s)| json!({"resource_id": r.id, "resource_scopes": s}))
            .collect::<Vec<_>>()
    );
    let record = |outcome: &str, granted: &[RptPermission]| DecisionRow {
        id: new_id(),
        owner_id: row.owner_id.clone(),
        client_id: client.id.clone(),
        party: claims::party_json(&party).to_string(),
        asked: asked.to_string(),
        granted: json!(granted).to_string(),
        policies: json!(deciding).to_string(),
        outcome: outcome.to_string(),
        created_at: now,
    };

    // More claims could help: need_info (UMA-GRANT-11) — but not again to a requesting party that
    // has answered one (`answered`): what it gave is what it has for this request, so another
    // need_info would only send it round again, and a policy meant for others (a share with
    // whoever holds a role at a hospital's provider) would shut the owner out. The owner decides
    // (request_submitted, when the owner takes requests) or the request is denied.
    if !(denied.is_empty() || (answered && claim_problem.is_none())) {
        let mut missing: Vec<RequiredClaim> = vec![];
        for (resource, s) in &denied {
            missing.extend(owner_policies.missing_claims(
                &party,
                &resource_info(resource),
                s,
                &ctx,
            ));
        }
        if !missing.is_empty() || claim_problem.is_some() {
            // The new ticket remembers whom this need_info was for (an identified party), and
            // drops gathered claims that were too old to use.
            let mut next: Value = match &carried {
                Some(c) if gathered_in_use => c.clone(),
                _ => json!({}),
            };
            if party.subject.is_some()
                && let Some(o) = next.as_object_mut()
            {
                o.insert("need_info_for".into(), json!(party_key));
            }
            let next = next
                .as_object()
                .is_some_and(|o| !o.is_empty())
                .then(|| next.to_string());
            let fresh = rotate_with(core, &row, next, &perms, now).await?;
            let d = record(outcome_str(ErrorCode::NeedInfo), &[]);
            core.store
                .record_grant(GrantRows {
                    decision: Some(d),
                    ..GrantRows::default()
                })
                .await?;
            let description = match &claim_problem {
                Some(why) => format!("more claims are needed: {why}"),
                None => "more claims about the requesting party are needed".to_string(),
            };
            return Err(OAuthError::uma(
                ErrorCode::NeedInfo,
                description,
                UmaExtras {
                    ticket: Some(fresh.expose_secret().to_string()),
                    required_claims: Some(required_claims_json(core, &missing)),
                    redirect_user: Some(redirect_user(core, &missing)),
                    interval: None,
                },
            ));
        }
    }

    if granted.is_empty() {
        let pending = requests.iter().find(|r| r.status == "pending");
        let refused = requests
            .iter()
            .find(|r| r.status != "approved")
            .is_some_and(|r| r.status == "denied");
        if accept_requests && !refused {
            if pending.is_none() {
                let req = AccessRequestRow {
                    id: new_id(),
                    owner_id: row.owner_id.clone(),
                    rs_client_id: row.rs_client_id.clone(),
                    client_id: client.id.clone(),
                    party: claims::party_json(&party).to_string(),
                    party_key: party_key.clone(),
                    permissions: asked.to_string(),
                    status: "pending".into(),
                    granted: None,
                    created_at: now,
                    decided_at: None,
                };
                core.store
                    .run(move |c| store::insert_request(c, &req))
                    .await?;
            }
            let fresh = rotate(core, &row, &perms, now).await?;
            let d = record(outcome_str(ErrorCode::RequestSubmitted), &[]);
            core.store
                .record_grant(GrantRows {
                    decision: Some(d),
                    ..GrantRows::default()
                })
                .await?;
            return Err(OAuthError::uma(
                ErrorCode::RequestSubmitted,
                "the resource owner has been asked; poll again with the new ticket",
                UmaExtras {
                    ticket: Some(fresh.expose_secret().to_string()),
                    required_claims: None,
                    redirect_user: None,
                    interval: Some(POLL_INTERVAL),
                },
            ));
        }
        let d = record(outcome_str(ErrorCode::RequestDenied), &[]);
        core.store
            .record_grant(GrantRows {
                decision: Some(d),
                ..GrantRows::default()
            })
            .await?;
        return Err(OAuthError::new(
            ErrorCode::RequestDenied,
            "the client is not authorized for these permissions",
        ));
    }

    // An upgrade keeps the old RPT's permissions that still hold, on whichever resource server
    // (UMA Grant §3.3.5): the new RPT's audience is every resource server it then covers.
    let mut upgraded = None;
    let mut replaced: Option<String> = None;
    let mut audience = vec![row.rs_client_id.clone()];
    let subject = party.subject.clone().unwrap_or_else(|| client.id.clone());
    let user_id = verified.as_ref().and_then(|v| v.user_id.clone());
    // A pairwise client sees its requesting parties by their pairwise `sub` (HEART-OIDC-05).
    let minter = Minter::from_core(core).bound(dpop).for_client(client);
    let shown = minter.shown_subject(&subject, user_id.as_deref())?;
    // Permissions granted to one requesting party never travel to another's RPT.
    if let Some(old) = previous.filter(|p| p.subject == shown) {
        let (old_jti, old_perms) = (old.jti, old.permissions);
        let (kept, kept_grounds, served_by) = still_held(core, &old_jti, old_perms, now).await?;
        // UMA-GRANT-41, -43: the new RPT includes every still-valid permission of the old one
        // (carried over or granted again): `upgraded`, and the old RPT is revoked. Nothing left
        // of it (expired, withdrawn): a plain RPT, and the old one is left alone.
        if !kept.is_empty() {
            upgraded = Some(true);
            replaced = Some(old_jti.clone());
        }
        // A kept permission keeps its own `exp`: an upgrade never extends what was granted
        // before (a share `until` a time cannot be stretched by upgrading again and again).
        let mut carried = vec![];
        for mut p in kept {
            if let Some(g) = granted.iter().find(|g| g.resource_id == p.resource_id) {
                p.resource_scopes.retain(|s| !g.resource_scopes.contains(s));
            }
            if !p.resource_scopes.is_empty() {
                carried.push(p);
            }
        }
        for g in kept_grounds {
            grounds.push((g.resource_id, g.scope, g.policy_id, g.request_id));
        }
        for p in &carried {
            if let Some((_, rs)) = served_by.iter().find(|(r, _)| *r == p.resource_id)
                && !audience.contains(rs)
            {
                audience.push(rs.clone());
            }
        }
        granted.extend(carried);
    }

    // An RPT for what was granted.
    let exp = now + core.config.access_token_ttl as i64;
    for p in &mut granted {
        p.exp = Some(p.exp.map_or(exp, |e| e.min(exp)));
    }
    let (token, access_row) = minter.mint_rpt(
        &RptSpec {
            client_id: &client.id,
            subject: &subject,
            user_id: user_id.as_deref(),
            audience: &audience,
            permissions: &granted,
            // The ticket it was redeemed for: a replay of that ticket revokes it (UMA-GRANT-56).
            grant_id: Some(&row.ticket_hash),
        },
        now,
    )?;
    let rows: Vec<GroundRow> = grounds
        .into_iter()
        .map(|(resource_id, scope, policy_id, request_id)| GroundRow {
            jti: access_row.jti.clone(),
            resource_id,
            scope,
            policy_id,
            request_id,
            expires_at: exp,
        })
        .collect();
    let pct = match (&verified, persist) {
        (Some(_), true) => row.claims.as_deref().map(|c| {
            let secret = Secret::generate(SecretKind::Pct);
            let pct_row = PctRow {
                pct_hash: secret.hash(),
                client_id: client.id.clone(),
                claims: c.to_string(),
                expires_at: now + core.config.refresh_token_ttl as i64,
                revoked: false,
                created_at: now,
            };
            (secret, pct_row)
        }),
        _ => None,
    };
    let (pct_secret, pct_row) = match pct {
        Some((s, r)) => (Some(s), Some(r)),
        None => (None, None),
    };
    let d = record("rpt_issued", &granted);
    // HEART-FHIR-07: break-the-glass access is always called out in the audit log (the owner
    // reads the decision, with its scopes, through the owner API).
    let emergency: Vec<&str> = granted
        .iter()
        .filter(|p| p.resource_scopes.iter().any(|s| s == "btg"))
        .map(|p| p.resource_id.as_str())
        .collect();
    if !emergency.is_empty() {
        tracing::warn!(
            target: "audit",
            event = "break_the_glass",
            grant_type = GRANT_TYPE,
            client_id = %client.id,
            owner = %row.owner_id,
            resources = %emergency.join(" "),
            party_issuer = party.issuer.as_deref().unwrap_or("-"),
            party_subject = party.subject.as_deref().unwrap_or("-"),
        );
    }
    core.store
        .record_grant(GrantRows {
            access: Some(access_row),
            grounds: rows,
            pct: pct_row,
            decision: Some(d),
        })
        .await?;
    // UMA-GRANT-43: the upgraded RPT replaces the old one.
    if let Some(jti) = replaced {
        core.store
            .run(move |c| crate::store::grants::revoke_access_token(c, &jti))
            .await?;
    }
    Ok(TokenResponse {
        access_token: token,
        token_type: "Bearer",
        expires_in: core.config.access_token_ttl,
        refresh_token: None,
        id_token: None,
        scope: None,
        upgraded,
        pct: pct_secret.map(|s| s.expose_secret().to_string()),
    })
}

/// A used ticket presented again is likely stolen (UMA Grant §5.5, UMA-GRANT-56): the RPT
/// issued for it is revoked. Unknown and expired tickets cost one read.
async fn replayed(core: &Core, hash: String) -> Result<(), OAuthError> {
    core.store
        .run(move |c| {
            if uma::ticket(c, &hash)?.is_some_and(|t| t.used) {
                crate::store::grants::revoke_grant(c, &hash)?;
                tracing::warn!(target: "audit", event = "ticket_replayed");
            }
            Ok(())
        })
        .await?;
    Ok(())
}

/// The party a PCT stands for: it must be this client's, unrevoked and unexpired (UMA-GRANT-57),
/// else `invalid_grant`. Claims gathered longer ago than `pct_claims_max_age` are not used
/// (`Ok(Err(reason))`: the grant asks for them again, UMA-GRANT-36).
async fn pct_party(
    core: &Core,
    pct: &str,
    client_id: &str,
    now: i64,
) -> Result<Result<Verified, String>, OAuthError> {
    let hash = Secret::new(pct).hash();
    let row = core.store.run(move |c| store::pct(c, &hash)).await?;
    let (verified, gathered_at, created_at) = row
        .filter(|r| !r.revoked && r.expires_at > now && r.client_id == client_id)
        .and_then(|r| {
            claims::from_gathered_at(&r.claims, client_id, core.issuer())
                .map(|(v, at)| (v, at, r.created_at))
        })
        .ok_or_else(|| {
            OAuthError::invalid_grant("the PCT is unknown, expired, revoked or not this client's")
        })?;
    let max_age = core.config.pct_claims_max_age as i64;
    if now - gathered_at.unwrap_or(created_at) > max_age {
        return Ok(Err(format!(
            "the claims behind the PCT are older than {max_age} seconds; the requesting party must provide them again"
        )));
    }
    Ok(Ok(verified))
}

/// The RPT a client asks to upgrade: ours, this client's, not revoked (it may have expired,
/// UMA-GRANT-14: then nothing of it is kept, even once its record is gone). Returns its `jti`, its
/// requesting party (`sub`) and its permissions, each with its expiry (the token's when the
/// permission names none).
async fn previous_rpt(
    core: &Core,
    rpt: &str,
    client_id: &str,
    dpop: Option<&str>,
    now: i64,
) -> Result<PreviousRpt, OAuthError> {
    let bad =
        || OAuthError::invalid_grant("the RPT to upgrade is unknown, revoked or not this client's");
    let Ok((claims, typ)) = core.keys.verify(rpt) else {
        return Err(bad());
    };
    if typ.as_deref() != Some("at+jwt")
        || claims.get("iss").and_then(Value::as_str) != Some(core.issuer())
        || claims.get("client_id").and_then(Value::as_str) != Some(client_id)
    {
        return Err(bad());
    }
    let token_exp = claims.get("exp").and_then(Value::as_i64).ok_or_else(bad)?;
    let mut perms: Vec<RptPermission> = claims
        .get("permissions")
        .cloned()
        .and_then(|p| serde_json::from_value(p).ok())
        .ok_or_else(bad)?;
    for p in &mut perms {
        p.exp = Some(p.exp.map_or(token_exp, |e| e.min(token_exp)));
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .ok_or_else(bad)?
        .to_string();
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    // A DPoP-bound RPT is upgraded only with a proof from its key: otherwise a thief holding it
    // could trade it for an RPT bound to nothing, or to their own key.
    let bound = claims
        .get("cnf")
        .and_then(|c| c.get("jkt"))
        .and_then(Value::as_str);
    if bound.is_some_and(|j| dpop != Some(j)) {
        return Err(OAuthError::invalid_grant(
            "the RPT to upgrade is bound to a DPoP key: send a proof from that key",
        ));
    }
    let j = jti.clone();
    match core
        .store
        .run(move |c| crate::store::grants::access_token(c, &j))
        .await?
    {
        Some(r) if !r.revoked && r.client_id == client_id => Ok(PreviousRpt {
            jti,
            subject,
            permissions: perms,
        }),
        // Expired long enough ago for its record to be pruned: nothing left to carry.
        None if token_exp <= now => Ok(PreviousRpt {
            jti,
            subject,
            permissions: vec![],
        }),
        _ => Err(bad()),
    }
}

/// An RPT sent for upgrade.
struct PreviousRpt {
    jti: String,
    /// Its requesting party: permissions are carried only to an RPT for the same one.
    subject: String,
    permissions: Vec<RptPermission>,
}

/// The old RPT's permissions that have not expired, whose grounds still hold and whose resources
/// are still registered, with those grounds and (resource, resource server) for each.
async fn still_held(
    core: &Core,
    jti: &str,
    perms: Vec<RptPermission>,
    now: i64,
) -> Result<(Vec<RptPermission>, Vec<GroundRow>, Vec<(String, String)>), OAuthError> {
    let perms: Vec<RptPermission> = perms
        .into_iter()
        .filter(|p| p.exp.is_some_and(|e| e > now))
        .collect();
    let j = jti.to_string();
    let ids: Vec<String> = perms.iter().map(|p| p.resource_id.clone()).collect();
    let (live, registered) = core
        .store
        .run(move |c| {
            Ok((
                store::live_grounds(c, &j)?.unwrap_or_default(),
                uma::resources_with_ids(c, &ids)?,
            ))
        })
        .await?;
    let mut kept = vec![];
    let mut grounds = vec![];
    let mut servers: Vec<(String, String)> = vec![];
    for p in perms {
        let Some(resource) = registered.iter().find(|s| s.id == p.resource_id) else {
            continue;
        };
        let scopes: Vec<String> = p
            .resource_scopes
            .into_iter()
            .filter(|s| {
                live.iter()
                    .any(|g| g.resource_id == p.resource_id && g.scope == *s)
            })
            .collect();
        if scopes.is_empty() {
            continue;
        }
        grounds.extend(
            live.iter()
                .filter(|g| g.resource_id == p.resource_id && scopes.contains(&g.scope))
                .cloned(),
        );
        servers.push((resource.id.clone(), resource.rs_client_id.clone()));
        kept.push(RptPermission {
            resource_id: p.resource_id,
            resource_scopes: scopes,
            exp: p.exp,
        });
    }
    Ok((kept, grounds, servers))
}
