//! Permission requests (UMA 2.0 Federated Authorization §4): on behalf of a client that
//! presented no RPT or an insufficient one, the resource server asks the authorization server
//! for a permission ticket naming the resources and scopes the request needs (UMA-FED-25,
//! UMA-FED-41). The answer is one ticket, however many permissions were asked for (UMA-FED-30).

use serde::{Deserialize, Serialize};

use crate::client::UmaClient;
use crate::error::Error;
use crate::http;
use crate::pat::Pat;
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

    async fn post_permission<B: Serialize + ?Sized>(
        &self,
        pat: &Pat,
        body: &B,
    ) -> Result<PermissionTicket, Error> {
        let d = self.discovery().await?;
        let request = self
            .inner
            .http
            .post(d.permission_endpoint.clone())
            .header(reqwest::header::AUTHORIZATION, pat.bearer())
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;
    use crate::secret::{AccessToken, ClientSecret};
    use crate::test_support::{CLIENT_ID, CLIENT_SECRET, FakeAs, OWNER, now};
    use serde_json::json;

    fn pat(fake: &FakeAs) -> Pat {
        Pat {
            owner: OWNER.into(),
            access_token: AccessToken::new(fake.mint_pat(OWNER, now() + 600)),
            refresh_token: None,
            expires_at: now() + 600,
            scope: "uma_protection".into(),
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
}
