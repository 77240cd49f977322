//! Resource registration (UMA 2.0 Federated Authorization §3): describing a protected resource
//! with its scopes and creating, reading, replacing, deleting and listing it at the
//! authorization server's `resource_registration_endpoint`, with the owner's PAT as bearer
//! token (UMA-FED-10).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;

use crate::client::UmaClient;
use crate::error::Error;
use crate::http;
use crate::pat::Pat;

/// A resource description (§3.1, UMA-FED-11). `resource_scopes` is required; the other members
/// are optional and left out when `None`. `extra` carries further members, such as
/// language-tagged names (`name#fr`, UMA-FED-12).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceDescription {
    pub resource_scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icon_uri: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ResourceDescription {
    /// A description with these scopes and nothing else.
    pub fn new<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ResourceDescription {
            resource_scopes: scopes.into_iter().map(Into::into).collect(),
            ..ResourceDescription::default()
        }
    }

    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    pub fn with_description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    pub fn with_icon_uri(mut self, icon_uri: impl Into<String>) -> Self {
        self.icon_uri = Some(icon_uri.into());
        self
    }

    pub fn with_type(mut self, resource_type: impl Into<String>) -> Self {
        self.resource_type = Some(resource_type.into());
        self
    }
}

/// The answer to a create or an update (§3.2.1, §3.2.3).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct RegisteredResource {
    /// The resource's `_id` at the authorization server.
    #[serde(rename = "_id")]
    pub id: String,
    /// Where the owner manages the resource's policy (UMA-FED-20), if offered.
    #[serde(default)]
    pub user_access_policy_uri: Option<String>,
    /// The `Location` header of a create (UMA-FED-14).
    #[serde(skip)]
    pub location: Option<String>,
}

/// A registered resource as read back (§3.2.2): its `_id` and description.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Resource {
    #[serde(rename = "_id")]
    pub id: String,
    #[serde(flatten)]
    pub description: ResourceDescription,
}

impl UmaClient {
    async fn rreg(&self) -> Result<Url, Error> {
        Ok(self
            .discovery()
            .await?
            .resource_registration_endpoint
            .clone())
    }

    async fn resource_url(&self, id: &str) -> Result<Url, Error> {
        let mut url = self.rreg().await?;
        url.path_segments_mut()
            .map_err(|_| {
                Error::Discovery("resource registration endpoint cannot take a path".into())
            })?
            .pop_if_empty()
            .push(id);
        Ok(url)
    }

    /// Register a resource (`POST rreg/` → 201, UMA-FED-14).
    pub async fn create_resource(
        &self,
        pat: &Pat,
        description: &ResourceDescription,
    ) -> Result<RegisteredResource, Error> {
        let request = self
            .with_pat(reqwest::Method::POST, self.rreg().await?, pat)?
            .json(description);
        let answer = http::send(request).await?;
        let mut registered: RegisteredResource = answer.json(&[201])?;
        registered.location = answer
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Ok(registered)
    }

    /// Read a registered resource (`GET rreg/{_id}` → 200, UMA-FED-15).
    pub async fn read_resource(&self, pat: &Pat, id: &str) -> Result<Resource, Error> {
        let request = self.with_pat(reqwest::Method::GET, self.resource_url(id).await?, pat)?;
        http::send(request).await?.json(&[200])
    }

    /// Replace a resource's description (`PUT rreg/{_id}` → 200, UMA-FED-16).
    pub async fn update_resource(
        &self,
        pat: &Pat,
        id: &str,
        description: &ResourceDescription,
    ) -> Result<RegisteredResource, Error> {
        let request = self
            .with_pat(reqwest::Method::PUT, self.resource_url(id).await?, pat)?
            .json(description);
        http::send(request).await?.json(&[200])
    }

    /// Deregister a resource (`DELETE rreg/{_id}` → 204 or 200, UMA-FED-17).
    pub async fn delete_resource(&self, pat: &Pat, id: &str) -> Result<(), Error> {
        let request = self.with_pat(reqwest::Method::DELETE, self.resource_url(id).await?, pat)?;
        http::send(request).await?.expect(&[200, 204])
    }

    /// The `_id`s of the owner's resources registered by this resource server
    /// (`GET rreg/` → 200, UMA-FED-18).
    pub async fn list_resources(&self, pat: &Pat) -> Result<Vec<String>, Error> {
        let request = self.with_pat(reqwest::Method::GET, self.rreg().await?, pat)?;
        http::send(request).await?.json(&[200])
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

    #[test]
    fn description_serializes_without_absent_members() {
        let d = ResourceDescription::new(["view", "https://scopes.example/print"]);
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({"resource_scopes": ["view", "https://scopes.example/print"]})
        );
        let mut d = d
            .with_name("Photo album")
            .with_type("https://rs.example/types/album")
            .with_icon_uri("https://rs.example/album.png")
            .with_description("holiday photos");
        d.extra.insert("name#fr".into(), json!("Album photo"));
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            json!({
                "resource_scopes": ["view", "https://scopes.example/print"],
                "name": "Photo album", "type": "https://rs.example/types/album",
                "icon_uri": "https://rs.example/album.png", "description": "holiday photos",
                "name#fr": "Album photo",
            })
        );
    }

    #[test]
    fn read_answer_keeps_id_and_extra_members() {
        let r: Resource = serde_json::from_value(json!({
            "_id": "r1", "resource_scopes": ["view"], "name": "n", "name#fr": "nom"
        }))
        .unwrap();
        assert_eq!(r.id, "r1");
        assert_eq!(r.description.name.as_deref(), Some("n"));
        assert_eq!(r.description.extra.get("name#fr"), Some(&json!("nom")));
        assert!(!r.description.extra.contains_key("_id"));
    }

    /// UMA-FED-10, -14, -15, -16, -17, -18, -21 against the fake server.
    #[actix_web::test]
    async fn crud_round_trip() {
        let fake = FakeAs::start().await;
        let c = UmaClient::new(ClientConfig::new(
            fake.issuer.clone(),
            CLIENT_ID,
            ClientSecret::new(CLIENT_SECRET),
            "https://rs.example/cb",
        ))
        .unwrap();
        let pat = Pat {
            owner: OWNER.into(),
            access_token: AccessToken::new(fake.mint_pat(OWNER, now() + 600)),
            refresh_token: None,
            expires_at: now() + 600,
            scope: "uma_protection".into(),
            dpop_jkt: None,
        };
        let d = ResourceDescription::new(["view", "edit"]).with_name("album");
        let created = c.create_resource(&pat, &d).await.unwrap();
        assert!(created.location.as_deref().unwrap().ends_with(&created.id));
        assert!(created.user_access_policy_uri.is_some());
        let read = c.read_resource(&pat, &created.id).await.unwrap();
        assert_eq!(read.id, created.id);
        assert_eq!(read.description, d);
        let replaced = ResourceDescription::new(["view"]);
        let updated = c
            .update_resource(&pat, &created.id, &replaced)
            .await
            .unwrap();
        assert_eq!(updated.id, created.id);
        assert_eq!(
            c.read_resource(&pat, &created.id)
                .await
                .unwrap()
                .description,
            replaced
        );
        assert_eq!(
            c.list_resources(&pat).await.unwrap(),
            vec![created.id.clone()]
        );
        c.delete_resource(&pat, &created.id).await.unwrap();
        let e = c.read_resource(&pat, &created.id).await.unwrap_err();
        assert_eq!(
            (e.status(), e.protocol_error()),
            (Some(404), Some("not_found"))
        );
        let e = c.delete_resource(&pat, "a/b?c").await.unwrap_err();
        assert_eq!(e.status(), Some(404), "ids are one encoded path segment");
        fake.stop().await;
    }
}
