//! The crate's public vocabulary: what the server hands in (resources, the requesting party, the
//! request context, stored policies) and what it gets back (validation diagnostics, decisions,
//! required claims). Plain data with no Cedar type in it, so the server never sees `cedar_policy`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A registered resource as the authorization server knows it (UMA Federated Authorization §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// The resource id the authorization server assigned (`_id`).
    pub id: String,
    /// The resource owner's user id.
    pub owner: String,
    /// The client id of the resource server that registered it.
    pub resource_server: String,
    /// The registered `type`, if any; a resource is in the group of its type.
    pub resource_type: Option<String>,
    /// The registered `name`, if any.
    pub name: Option<String>,
    /// The registered `resource_scopes`; each is a Cedar action.
    pub scopes: Vec<String>,
}

/// The value of one claim of the requesting party.
///
/// In JSON a claim is its plain value (`"x"`, `true`, `3`, `["a", "b"]`). In Cedar every claim is a
/// `Set<String>` tag of the party (see the crate docs): `Bool` becomes `"true"`/`"false"`, `Long`
/// its decimal text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClaimValue {
    /// A string claim.
    String(String),
    /// A boolean claim.
    Bool(bool),
    /// An integer claim.
    Long(i64),
    /// A multi-valued claim (for example roles).
    Strings(Vec<String>),
}

/// The requesting party as far as known. `subject`/`issuer` None = not identified yet.
///
/// `claims` are the party's other claims (roles, practitioner identifiers, assurance levels, …), all
/// attested by the claim token whose issuer is [`RequestContext::claim_token_issuer`]. The identity
/// claims `sub`, `iss`, `email` and `email_verified` are taken from the fields, never from `claims`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Party {
    /// The issuer of `subject` (exact string, as in the ID token's `iss`).
    pub issuer: Option<String>,
    /// The subject identifier at `issuer` (`sub`).
    pub subject: Option<String>,
    /// The party's email address, if one was presented.
    pub email: Option<String>,
    /// Whether `email` was verified by its issuer; unverified emails are ignored by every policy.
    pub email_verified: bool,
    /// Other claims by name.
    pub claims: BTreeMap<String, ClaimValue>,
}

/// Facts about the request itself, the Cedar `context`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The time of the request, seconds since the Unix epoch (injected, never read from a clock here).
    pub now: i64,
    /// The client asking for the RPT.
    pub client_id: String,
    /// The issuer of the claim token that supplied [`Party::claims`], if any.
    pub claim_token_issuer: Option<String>,
    /// Whether the client's token is sender-constrained (DPoP, mTLS).
    pub sender_constrained: bool,
}

/// Whom a share is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PersonSelector {
    /// A person identified by `sub` at an issuer.
    Subject {
        /// The identity provider's issuer identifier.
        issuer: String,
        /// The subject identifier at that issuer.
        subject: String,
    },
    /// Whoever proves this email address with `email_verified = true`.
    VerifiedEmail(String),
    /// Whoever presents this claim with this value in a claim token from the named issuer (the
    /// issuer is required here): a role or a credential rather than a person, such as the
    /// emergency clinicians of a hospital's identity provider for break-the-glass access
    /// (HEART-FHIR-07).
    Claim(ClaimRequirement),
}

/// What a share covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceSelector {
    /// One resource, by resource id.
    Resource(String),
    /// Every resource of the owner with this resource type.
    Type(String),
}

/// A claim a share requires, such as a role or a practitioner identifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequirement {
    /// The claim name (for example `role`).
    pub name: String,
    /// The value the claim must have (or contain, for a multi-valued claim).
    pub value: String,
    /// If set, the claim only counts when the claim token came from this issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

/// The common sharing case, compiled to a template-linked Cedar policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareTemplate {
    /// The resource, or the resource type, shared.
    pub resource: ResourceSelector,
    /// The person it is shared with.
    pub with: PersonSelector,
    /// The scopes granted (each must be a scope of the shared resource).
    pub scopes: Vec<String>,
    /// If set, the share ends at this time (seconds since the Unix epoch, exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<i64>,
    /// If set, the party must also present this claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_claim: Option<ClaimRequirement>,
}

/// A policy as the owner wrote it: a share, or raw Cedar text.
///
/// JSON (unknown fields are refused, so a misspelt `until` cannot make a share unlimited):
/// ```json
/// {"kind": "share",
///  "resource": {"resource": "<resource id>"} | {"type": "<resource type>"},
///  "with": {"subject": {"issuer": "…", "subject": "…"}} | {"verified_email": "…"}
///          | {"claim": {"name": "…", "value": "…", "issuer": "…"}},
///  "scopes": ["…"],
///  "until": 1900000000,                                        (optional)
///  "require_claim": {"name": "…", "value": "…", "issuer": "…"}} (optional; issuer optional)
/// {"kind": "cedar", "text": "permit(…);"}
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "PolicySourceRepr", into = "PolicySourceRepr")]
pub enum PolicySource {
    /// A sharing template.
    Share(ShareTemplate),
    /// Raw Cedar text: one or more `permit`/`forbid` statements.
    Cedar(String),
}

/// The JSON shape of [`PolicySource`] (serde's internal tagging cannot hold a bare string).
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum PolicySourceRepr {
    Share(ShareTemplate),
    Cedar(CedarText),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CedarText {
    text: String,
}

impl From<PolicySource> for PolicySourceRepr {
    fn from(value: PolicySource) -> Self {
        match value {
            PolicySource::Share(t) => PolicySourceRepr::Share(t),
            PolicySource::Cedar(text) => PolicySourceRepr::Cedar(CedarText { text }),
        }
    }
}

impl From<PolicySourceRepr> for PolicySource {
    fn from(value: PolicySourceRepr) -> Self {
        match value {
            PolicySourceRepr::Share(t) => PolicySource::Share(t),
            PolicySourceRepr::Cedar(CedarText { text }) => PolicySource::Cedar(text),
        }
    }
}

/// A policy as stored: the server's policy id and the owner's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPolicy {
    /// The policy id; decisions name deciding policies by it.
    pub id: String,
    /// What the owner wrote.
    pub source: PolicySource,
}

/// How serious a [`Diagnostic`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The policy is refused.
    Error,
    /// The policy can be saved, but probably does not do what the owner meant.
    Warning,
}

/// One finding about a policy, with its place in raw Cedar text when it has one (1-based line and
/// column, columns counted in characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// What is wrong, written for the owner.
    pub message: String,
    /// The line in the Cedar text, when the finding has a place there.
    pub line: Option<u32>,
    /// The column in the Cedar text, when the finding has a place there.
    pub column: Option<u32>,
    /// Error or warning.
    pub severity: Severity,
}

impl Diagnostic {
    pub(crate) fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            line: None,
            column: None,
            severity: Severity::Error,
        }
    }

    pub(crate) fn warning(message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            line: None,
            column: None,
            severity: Severity::Warning,
        }
    }
}

/// Every error and warning found when validating one policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Validation {
    /// Findings that refuse the policy.
    pub errors: Vec<Diagnostic>,
    /// Findings that do not.
    pub warnings: Vec<Diagnostic>,
}

impl Validation {
    /// True when there is no error (warnings allowed).
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    pub(crate) fn push(&mut self, d: Diagnostic) {
        match d.severity {
            Severity::Error => self.errors.push(d),
            Severity::Warning => self.warnings.push(d),
        }
    }
}

/// The outcome for one (resource, scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the scope is granted.
    pub permit: bool,
    /// The ids of the deciding policies: the satisfied permits when permitted; the satisfied
    /// forbids, or else the policies whose evaluation failed, when denied; empty for default deny.
    pub policies: Vec<String>,
    /// Evaluation errors and refusals, for the log (never shown to the requesting party).
    pub errors: Vec<String>,
}

impl Decision {
    pub(crate) fn deny_with(error: String) -> Self {
        Decision {
            permit: false,
            policies: Vec::new(),
            errors: vec![error],
        }
    }
}

/// A claim that could make some policy permit, for UMA `required_claims` (UMA Grant §3.3.6).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequiredClaim {
    /// The claim name (`sub`, `email`, `email_verified`, or a policy's claim name).
    pub name: String,
    /// The issuer the policy names for it, if any.
    pub issuer: Option<String>,
    /// A human-readable name, when there is a better one than `name`.
    pub friendly_name: Option<String>,
}
