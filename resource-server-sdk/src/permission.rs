//! Permission requests (UMA 2.0 Federated Authorization §4): on behalf of a client that
//! presented no RPT or an insufficient one, the resource server asks the authorization server
//! for a permission ticket naming the resources and scopes the request needs (UMA-FED-25,
//! UMA-FED-41). The answer is one ticket, however many permissions were asked for (UMA-FED-30).

use serde::{Deserialize, Serialize};

use crate::client::UmaClient;
use crate::error::Error;
use crate::http;
use crate::pat::{Pat, PatStore};
use crate::secret::PermissionTicket;

/// One requested permission: a registered resource and the scopes wanted on it (possibly none,
/// UMA-FED-29).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Permission {
    pub resource_id: String,
    pub resource_scopes: Vec<String>,
}

impl Permission {
    pub fn new<I, S>(resource_id: impl Into<String>, scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Permission {
            resource_id: resource_id.into(),
            resource_scopes: scopes.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(Deserialize)]
struct TicketResponse {
    ticket: String,
}

impl UmaClient {
    /// Ask for a ticket for one permission (the body is a single JSON object).
    pub async fn request_permission(
        &self,
        pat: &Pat,
        permission: &Permission,
    ) -> Result<PermissionTicket, Error> {
        self.post_permission(pat, permission).await
    }

    /// Ask for one ticket covering several permissions (the body is a JSON array).
    pub async fn request_permissions(
        &self,
        pat: &Pat,
        permissions: &[Permission],
    ) -> Result<PermissionTicket, Error> {
        self.post_permission(pat, &permissions).await
    }

    /// Ask for a ticket for one permission on behalf of `owner`, with their PAT from `store`
    /// (UMA-FED-41): [`UmaClient::pat_for`], then [`UmaClient::request_permission`].
    ///
    /// When the authorization server refuses the PAT (401, typically `invalid_token`: the owner
    /// disconnected this resource server, or the PAT was revoked), the PAT is refreshed once
    /// and the request retried. If it cannot be refreshed (no refresh token, or the refresh
    /// token is refused too) or the new PAT is refused as well, the PAT is removed from the
    /// store, so the owner's next connection starts clean, and the error is
    /// [`Error::ReauthorizationRequired`]. Without a stored PAT the error is [`Error::NoPat`].
    pub async fn request_permission_for(
        &self,
        store: &dyn PatStore,
        owner: &str,
        permission: &Permission,
    ) -> Result<PermissionTicket, Error> {
        let pat = self.pat_for(store, owner).await?;
        let refused = match self.request_permission(&pat, permission).await {
            Err(e) if is_pat_refused(&e) => e,
            other => return other,
        };
        tracing::info!(owner, error = %refused, "the pat was refused, renewing it");
        let pat = self.renew_refused_pat(store, &pat).await?;
        match self.request_permission(&pat, permission).await {
            Err(e) if is_pat_refused(&e) => {
                tracing::info!(owner, error = %e, "the renewed pat was refused, removing it");
                self.discard_refused_pat(store, &pat).await?;
                Err(Error::ReauthorizationRequired(owner.to_string()))
            }
            other => other,
        }
    }

    async fn post_permission<B: Serialize + ?Sized>(
        &self,
        pat: &Pat,
        body: &B,
    ) -> Result<PermissionTicket, Error> {
        let d = self.discovery().await?;
        let request = self
            .with_pat(reqwest::Method::POST, d.permission_endpoint.clone(), pat)?
            .json(body);
        let answer = http::send(request).await?;
        let t: TicketResponse = answer.json(&[201])?;
        if t.ticket.is_empty() {
            return Err(Error::UnexpectedResponse {
                status: answer.status,
                detail: "empty ticket".into(),
            });
        }
        Ok(PermissionTicket::new(t.ticket))
    }
}

/// Whether the authorization server refused the PAT itself (RFC 6750 §3.1: 401 for an invalid,
/// expired or revoked token).
fn is_pat_refused(e: &Error) -> bool {
    e.status() == Some(401)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;
    use crate::pat::MemoryPatStore;
    use crate::secret::{AccessToken, ClientSecret, RefreshToken};
    use crate::test_support::{CLIENT_ID, CLIENT_SECRET, Counters, FakeAs, OWNER, now};
    use serde_json::json;

    fn pat(fake: &FakeAs) -> Pat {
        Pat {
            owner: OWNER.into(),
            access_token: AccessToken::new(fake.mint_pat(OWNER, now() + 600)),
            refresh_token: None,
            expires_at: now() + 600,
            scope: "uma_protection".into(),
            dpop_jkt: None,
        }
    }

    /// UMA-FED-25 (object or array body), UMA-FED-30 (one ticket), UMA-FED-26 (error code).
    #[actix_web::test]
    async fn one_or_many_permissions_give_one_ticket() {
        let fake = FakeAs::start().await;
        let c = UmaClient::new(ClientConfig::new(
            fake.issuer.clone(),
            CLIENT_ID,
            ClientSecret::new(CLIENT_SECRET),
            "https://rs.example/cb",
        ))
        .unwrap();
        let pat = pat(&fake);
        let one = Permission::new("r1", ["view"]);
        let t = c.request_permission(&pat, &one).await.unwrap();
        assert!(!t.expose_secret().is_empty());
        assert_eq!(
            fake.with_state(|s| s.last_permission_request.clone())
                .unwrap(),
            json!({"resource_id": "r1", "resource_scopes": ["view"]})
        );
        let many = [one.clone(), Permission::new("r2", Vec::<String>::new())];
        c.request_permissions(&pat, &many).await.unwrap();
        assert_eq!(
            fake.with_state(|s| s.last_permission_request.clone())
                .unwrap(),
            json!([
                {"resource_id": "r1", "resource_scopes": ["view"]},
                {"resource_id": "r2", "resource_scopes": []},
            ])
        );
        fake.with_state(|s| {
            s.permission_failure = Some((400, json!({"error": "invalid_resource_id"})))
        });
        let e = c.request_permission(&pat, &one).await.unwrap_err();
        assert_eq!(e.protocol_error(), Some("invalid_resource_id"));
        assert!(!e.is_unreachable());
        fake.stop().await;
    }

    /// UMA-FED-41 on behalf of an owner, and what a refused PAT (RFC 6750 §3.1) does to the
    /// store: renewed once when the refresh token works, removed otherwise.
    #[actix_web::test]
    async fn a_refused_pat_is_renewed_once_or_removed() {
        let fake = FakeAs::start().await;
        let c = UmaClient::new(ClientConfig::new(
            fake.issuer.clone(),
            CLIENT_ID,
            ClientSecret::new(CLIENT_SECRET),
            "https://rs.example/cb",
        ))
        .unwrap();
        let one = Permission::new("r1", ["view"]);
        let store = MemoryPatStore::new();
        let e = c
            .request_permission_for(&store, OWNER, &one)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::NoPat(_)), "{e}");

        // revoked PAT, working refresh token: renewed, ticket issued
        let mut revoked = pat(&fake);
        revoked.refresh_token = Some(RefreshToken::new("rt-1"));
        fake.with_state(|s| {
            s.refresh_tokens.insert("rt-1".into(), OWNER.into());
            s.revoked_pats
                .insert(revoked.access_token.expose_secret().to_string());
        });
        store.save(&revoked).await.unwrap();
        c.request_permission_for(&store, OWNER, &one).await.unwrap();
        let renewed = store.load(OWNER).await.unwrap().unwrap();
        assert_ne!(
            renewed.access_token.expose_secret(),
            revoked.access_token.expose_secret()
        );
        assert_eq!(Counters::get(&fake.counters.refresh), 1);
        assert_eq!(Counters::get(&fake.counters.permission), 2);
        assert_eq!(c.owner_lock_count(), 0, "owner locks are released");

        // every PAT refused (the renewed one too): removed after one renewal
        fake.with_state(|s| s.permission_failure = Some((401, json!({"error": "invalid_token"}))));
        let e = c
            .request_permission_for(&store, OWNER, &one)
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::ReauthorizationRequired(ref o) if o == OWNER),
            "{e}"
        );
        assert!(store.load(OWNER).await.unwrap().is_none());
        assert_eq!(Counters::get(&fake.counters.refresh), 2);
        assert_eq!(Counters::get(&fake.counters.permission), 4);

        fake.stop().await;
    }
}
