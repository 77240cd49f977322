//! Signing keys and JOSE (RFC 7515/7517/7519 with `josekit`): generation (RS256 with RSA-2048 or
//! larger, ES256 with P-256, PS256), private keys encrypted at rest under a key-encryption key
//! (AES-256-GCM), the published JWKS, rotation, signing and verification.
//!
//! Rotation keeps a retired key's public part in the JWKS until everything it signed has expired
//! (`publish_until`). Instances reload the key set from the database periodically, so a rotation
//! done by `custodia keys rotate` reaches every running instance.

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use josekit::jwk::Jwk;
use josekit::jws::{self, JwsHeader, JwsSigner, JwsVerifier};
use josekit::jwt::{self, JwtPayload};
use serde_json::{Map, Value};

use crate::config::Config;
use crate::secrets::{new_id, random_bytes};
use crate::store::keys::{self as key_repo, KeyRow};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key-encryption key: {0}")]
    Kek(String),
    #[error("JOSE: {0}")]
    Jose(String),
    #[error("the stored private key `{0}` cannot be decrypted with this key-encryption key")]
    Decrypt(String),
    #[error("unsupported algorithm `{0}`")]
    UnsupportedAlg(String),
    #[error("no current signing key")]
    NoCurrentKey,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<josekit::JoseError> for KeyError {
    fn from(e: josekit::JoseError) -> Self {
        KeyError::Jose(e.to_string())
    }
}

/// Decode a base64 key-encryption key of exactly 32 bytes.
pub fn decode_kek(value: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD.decode(value.trim()).map_err(|_| {
        "must be base64 of 32 random bytes (for example `openssl rand -base64 32`)".to_string()
    })?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("must decode to 32 bytes, not {}", bytes.len()))
}

/// The key-encryption key: from configuration, or from its file (created with mode 0600 the first
/// time).
pub fn load_or_create_kek(config: &Config) -> Result<[u8; 32], KeyError> {
    if let Some(k) = &config.kek {
        return decode_kek(k).map_err(KeyError::Kek);
    }
    load_or_create_kek_file(&config.kek_file)
}

fn load_or_create_kek_file(path: &Path) -> Result<[u8; 32], KeyError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            decode_kek(&text).map_err(|e| KeyError::Kek(format!("`{}` {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = random_bytes(32);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                opts.mode(0o600);
            }
            let mut f = opts
                .open(path)
                .map_err(|e| KeyError::Kek(format!("cannot create `{}`: {e}", path.display())))?;
            f.write_all(STANDARD.encode(&key).as_bytes())
                .and_then(|_| f.sync_all())
                .map_err(|e| KeyError::Kek(format!("cannot write `{}`: {e}", path.display())))?;
            let mut out = [0u8; 32];
            out.copy_from_slice(&key);
            Ok(out)
        }
        Err(e) => Err(KeyError::Kek(format!(
            "cannot read `{}`: {e}",
            path.display()
        ))),
    }
}

/// HMAC-SHA-512(KEK, label): a key for another purpose than encrypting signing keys, independent
/// of the KEK's own use and of every other label's.
fn derive_key(kek: &[u8; 32], label: &[u8]) -> Result<[u8; 64], KeyError> {
    let jose = |e: openssl::error::ErrorStack| KeyError::Jose(e.to_string());
    let key = openssl::pkey::PKey::hmac(kek).map_err(jose)?;
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha512(), &key).map_err(jose)?;
    signer.update(label).map_err(jose)?;
    let mac = signer.sign_to_vec().map_err(jose)?;
    let mut out = [0u8; 64];
    if mac.len() != out.len() {
        return Err(KeyError::Jose(
            "HMAC-SHA-512 gave an unexpected length".into(),
        ));
    }
    out.copy_from_slice(&mac);
    Ok(out)
}

fn seal_with(key: &[u8; 32], purpose: &str, plain: &[u8]) -> Result<String, KeyError> {
    let sealed = encrypt(key, purpose, plain)?;
    let raw = STANDARD
        .decode(sealed)
        .map_err(|e| KeyError::Jose(e.to_string()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw))
}

fn open_with(key: &[u8; 32], purpose: &str, sealed: &str) -> Option<Vec<u8>> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(sealed)
        .ok()?;
    decrypt(key, purpose, &STANDARD.encode(raw)).ok()
}

/// The first 32 bytes of a derived key (an AES-256 key).
fn first_half(k: &[u8; 64]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&k[..32]);
    out
}

fn encrypt(kek: &[u8; 32], kid: &str, plain: &[u8]) -> Result<String, KeyError> {
    let iv = random_bytes(12);
    let mut tag = [0u8; 16];
    let ct = openssl::symm::encrypt_aead(
        openssl::symm::Cipher::aes_256_gcm(),
        kek,
        Some(&iv),
        kid.as_bytes(),
        plain,
        &mut tag,
    )
    .map_err(|e| KeyError::Jose(e.to_string()))?;
    let mut out = iv;
    out.extend_from_slice(&ct);
    out.extend_from_slice(&tag);
    Ok(STANDARD.encode(out))
}

fn decrypt(kek: &[u8; 32], kid: &str, enc: &str) -> Result<Vec<u8>, KeyError> {
    let raw = STANDARD
        .decode(enc)
        .map_err(|_| KeyError::Decrypt(kid.into()))?;
    if raw.len() < 12 + 16 {
        return Err(KeyError::Decrypt(kid.into()));
    }
    let (iv, rest) = raw.split_at(12);
    let (ct, tag) = rest.split_at(rest.len() - 16);
    openssl::symm::decrypt_aead(
        openssl::symm::Cipher::aes_256_gcm(),
        kek,
        Some(iv),
        kid.as_bytes(),
        ct,
        tag,
    )
    .map_err(|_| KeyError::Decrypt(kid.into()))
}

/// Generate a key pair for `alg`: PKCS#8 DER private key and the public JWK.
fn generate(alg: &str) -> Result<(Vec<u8>, Jwk), KeyError> {
    Ok(match alg {
        "RS256" => {
            let kp = jws::RS256.generate_key_pair(2048)?;
            (kp.to_der_private_key(), kp.to_jwk_public_key())
        }
        "PS256" => {
            let kp = jws::PS256.generate_key_pair(2048)?;
            (kp.to_der_private_key(), kp.to_jwk_public_key())
        }
        "ES256" => {
            let kp = jws::ES256.generate_key_pair()?;
            (kp.to_der_private_key(), kp.to_jwk_public_key())
        }
        other => return Err(KeyError::UnsupportedAlg(other.into())),
    })
}

fn signer(alg: &str, der: &[u8], kid: &str) -> Result<Box<dyn JwsSigner>, KeyError> {
    Ok(match alg {
        "RS256" => Box::new(jws::RS256.signer_from_der(der)?.with_key_id_opt(kid)),
        "PS256" => Box::new(jws::PS256.signer_from_der(der)?.with_key_id_opt(kid)),
        "ES256" => Box::new(jws::ES256.signer_from_der(der)?.with_key_id_opt(kid)),
        other => return Err(KeyError::UnsupportedAlg(other.into())),
    })
}

/// A verifier for a public JWK under an algorithm.
pub fn verifier_for(alg: &str, jwk: &Jwk) -> Result<Box<dyn JwsVerifier>, KeyError> {
    Ok(match alg {
        "RS256" => Box::new(jws::RS256.verifier_from_jwk(jwk)?),
        "PS256" => Box::new(jws::PS256.verifier_from_jwk(jwk)?),
        "ES256" => Box::new(jws::ES256.verifier_from_jwk(jwk)?),
        other => return Err(KeyError::UnsupportedAlg(other.into())),
    })
}

/// Small extension so all three signer types take the `kid` alike.
trait WithKid: Sized {
    fn with_key_id_opt(self, kid: &str) -> Self;
}
impl WithKid for josekit::jws::alg::rsassa::RsassaJwsSigner {
    fn with_key_id_opt(mut self, kid: &str) -> Self {
        self.set_key_id(kid);
        self
    }
}
impl WithKid for josekit::jws::alg::rsassa_pss::RsassaPssJwsSigner {
    fn with_key_id_opt(mut self, kid: &str) -> Self {
        self.set_key_id(kid);
        self
    }
}
impl WithKid for josekit::jws::alg::ecdsa::EcdsaJwsSigner {
    fn with_key_id_opt(mut self, kid: &str) -> Self {
        self.set_key_id(kid);
        self
    }
}

struct LoadedKey {
    kid: String,
    alg: String,
    public_jwk: Jwk,
    signer: Option<Box<dyn JwsSigner>>,
    verifier: Box<dyn JwsVerifier>,
    current: bool,
    publish_until: Option<i64>,
}

struct KeySet {
    keys: Vec<LoadedKey>,
    jwks: Value,
}

/// The server's keys: the current signing key and every still-published old key.
#[derive(Clone)]
pub struct KeyRing {
    inner: Arc<RwLock<Arc<KeySet>>>,
    kek: Arc<[u8; 32]>,
    /// The AES-256-SIV key of pairwise subject identifiers, derived from the key-encryption key
    /// (HMAC-SHA-512 with a fixed label), so it is as stable as the KEK itself.
    pairwise: Arc<[u8; 64]>,
    /// The MAC key of DPoP nonces, derived from the KEK the same way: every instance sharing the
    /// KEK accepts the nonces of the others.
    dpop_nonce: Arc<[u8; 64]>,
    /// The AES-256-GCM key of state Custodia leaves with a browser (the sign-in at a claims
    /// provider), derived from the KEK the same way.
    browser_state: Arc<[u8; 32]>,
    /// The key request objects may be encrypted to (IGOV-OIDC-13), derived from the KEK.
    request_enc: Arc<EncryptionKey>,
}

/// Algorithms of request-object encryption (the `alg` of the JWE; the `enc` is any josekit
/// supports: AES-GCM and AES-CBC-HMAC-SHA2).
pub const REQUEST_ENCRYPTION_ALGS: &[&str] = &["ECDH-ES", "ECDH-ES+A128KW", "ECDH-ES+A256KW"];
/// Content encryptions advertised for request objects.
pub const REQUEST_ENCRYPTION_ENCS: &[&str] =
    &["A128GCM", "A256GCM", "A128CBC-HS256", "A256CBC-HS512"];

/// A P-256 key for ECDH-ES, derived from the key-encryption key, so every instance sharing the
/// KEK has it without another stored secret, and it changes only with the KEK. Published in the
/// JWKS with `use: enc`.
struct EncryptionKey {
    kid: String,
    /// PKCS#8 DER of the private key.
    der: Vec<u8>,
    public_jwk: Value,
}

/// Derive the request-object encryption key: the private scalar is HMAC-SHA-512(KEK, label)
/// reduced into [1, n − 1] (the 512-bit input leaves a bias below 2^-250).
fn derive_encryption_key(kek: &[u8; 32]) -> Result<EncryptionKey, KeyError> {
    use openssl::bn::{BigNum, BigNumContext};
    use openssl::ec::{EcGroup, EcKey, EcPoint};
    use openssl::nid::Nid;
    let jose = |e: openssl::error::ErrorStack| KeyError::Jose(e.to_string());
    let seed = derive_key(kek, b"custodia request object encryption v1")?;
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).map_err(jose)?;
    let mut ctx = BigNumContext::new().map_err(jose)?;
    let mut order = BigNum::new().map_err(jose)?;
    group.order(&mut order, &mut ctx).map_err(jose)?;
    let one = BigNum::from_u32(1).map_err(jose)?;
    let mut order_minus_one = BigNum::new().map_err(jose)?;
    order_minus_one.checked_sub(&order, &one).map_err(jose)?;
    let wide = BigNum::from_slice(&seed).map_err(jose)?;
    let mut reduced = BigNum::new().map_err(jose)?;
    reduced
        .nnmod(&wide, &order_minus_one, &mut ctx)
        .map_err(jose)?;
    let mut d = BigNum::new().map_err(jose)?;
    d.checked_add(&reduced, &one).map_err(jose)?;
    let mut point = EcPoint::new(&group).map_err(jose)?;
    point.mul_generator2(&group, &d, &mut ctx).map_err(jose)?;
    let key = EcKey::from_private_components(&group, &d, &point).map_err(jose)?;
    let der = openssl::pkey::PKey::from_ec_key(key)
        .and_then(|k| k.private_key_to_pkcs8())
        .map_err(jose)?;
    let pair = josekit::jwk::alg::ec::EcKeyPair::from_der(
        &der,
        Some(josekit::jwk::alg::ec::EcCurve::P256),
    )?;
    let mut public = josekit::jwk::KeyPair::to_jwk_public_key(&pair)
        .as_ref()
        .clone();
    public.remove("alg");
    public.remove("use");
    public.remove("kid");
    let kid = format!(
        "enc-{}",
        crate::protocol::dpop::thumbprint(&public)
            .ok_or_else(|| KeyError::Jose("the encryption key has no thumbprint".into()))?
    );
    public.insert("kid".into(), Value::String(kid.clone()));
    public.insert("use".into(), Value::String("enc".into()));
    public.insert("alg".into(), Value::String("ECDH-ES+A256KW".into()));
    Ok(EncryptionKey {
        kid,
        der,
        public_jwk: Value::Object(public),
    })
}

/// Verification failures of our own tokens.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenInvalid {
    Malformed,
    UnknownKey,
    BadSignature,
}

impl KeyRing {
    /// Load the keys; on the first start generate and store a current key for
    /// `config.signing_alg`. Changing the algorithm later is a rotation (`custodia keys rotate
    /// --alg`), never a side effect of starting.
    pub fn load_or_init(
        store: &Store,
        config: &Config,
        kek: [u8; 32],
        now: i64,
    ) -> Result<KeyRing, KeyError> {
        let ring = KeyRing {
            inner: Arc::new(RwLock::new(Arc::new(KeySet {
                keys: vec![],
                jwks: Value::Null,
            }))),
            kek: Arc::new(kek),
            pairwise: Arc::new(derive_key(
                &kek,
                b"custodia pairwise subject identifiers v1",
            )?),
            dpop_nonce: Arc::new(derive_key(&kek, b"custodia dpop nonces v1")?),
            browser_state: Arc::new(first_half(&derive_key(&kek, b"custodia browser state v1")?)),
            request_enc: Arc::new(derive_encryption_key(&kek)?),
        };
        ring.reload_sync(store, now)?;
        let needs_key = {
            let set = ring.snapshot();
            !set.keys.iter().any(|k| k.current)
        };
        if needs_key {
            ring.rotate_sync(store, config, &config.signing_alg, now)?;
        }
        Ok(ring)
    }

    fn snapshot(&self) -> Arc<KeySet> {
        match self.inner.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Re-read the key set from the database (decrypting private keys of keys that still sign).
    pub fn reload_sync(&self, store: &Store, now: i64) -> Result<(), KeyError> {
        let rows = store.run_sync(key_repo::all)?;
        let set = self.build(rows, now)?;
        match self.inner.write() {
            Ok(mut g) => *g = Arc::new(set),
            Err(p) => *p.into_inner() = Arc::new(set),
        }
        Ok(())
    }

    fn build(&self, rows: Vec<KeyRow>, now: i64) -> Result<KeySet, KeyError> {
        let mut keys = vec![];
        for row in rows {
            let current = row.retired_at.is_none();
            if !current && row.publish_until.is_some_and(|t| t <= now) {
                continue;
            }
            let map: Map<String, Value> =
                serde_json::from_str(&row.public_jwk).map_err(|e| KeyError::Jose(e.to_string()))?;
            let public_jwk = Jwk::from_map(map)?;
            let signer = if current {
                let der = decrypt(&self.kek, &row.kid, &row.private_key_enc)?;
                Some(signer(&row.alg, &der, &row.kid)?)
            } else {
                None
            };
            let verifier = verifier_for(&row.alg, &public_jwk)?;
            keys.push(LoadedKey {
                kid: row.kid,
                alg: row.alg,
                public_jwk,
                signer,
                verifier,
                current,
                publish_until: row.publish_until,
            });
        }
        let jwks = serde_json::json!({
            "keys": keys.iter().map(|k| {
                let mut m = k.public_jwk.as_ref().clone();
                m.insert("kid".into(), Value::String(k.kid.clone()));
                m.insert("alg".into(), Value::String(k.alg.clone()));
                m.insert("use".into(), Value::String("sig".into()));
                Value::Object(m)
            }).chain(std::iter::once(self.request_enc.public_jwk.clone())).collect::<Vec<_>>()
        });
        Ok(KeySet { keys, jwks })
    }

    /// Generate a new current key for `alg`; older keys stay published until every token they
    /// signed has expired.
    pub fn rotate_sync(
        &self,
        store: &Store,
        config: &Config,
        alg: &str,
        now: i64,
    ) -> Result<String, KeyError> {
        config
            .profile
            .check_signing_alg(alg)
            .map_err(|v| KeyError::UnsupportedAlg(v.description))?;
        let (der, jwk) = generate(alg)?;
        let kid = new_id();
        let enc = encrypt(&self.kek, &kid, &der)?;
        let mut public = jwk.as_ref().clone();
        public.remove("kid");
        let row = KeyRow {
            kid: kid.clone(),
            alg: alg.to_string(),
            public_jwk: Value::Object(public).to_string(),
            private_key_enc: enc,
            created_at: now,
            retired_at: None,
            publish_until: None,
        };
        let longest = config.access_token_ttl.max(config.id_token_ttl) as i64;
        store.run_sync(|c| key_repo::rotate_in(c, &row, now, now + longest + 300))?;
        self.reload_sync(store, now)?;
        Ok(kid)
    }

    /// The JWKS document (RFC 7517 §5).
    pub fn jwks(&self) -> Value {
        self.snapshot().jwks.clone()
    }

    /// Keys as (kid, alg, current, publish_until), for the CLI.
    pub fn describe(&self) -> Vec<(String, String, bool, Option<i64>)> {
        self.snapshot()
            .keys
            .iter()
            .map(|k| (k.kid.clone(), k.alg.clone(), k.current, k.publish_until))
            .collect()
    }

    /// The key of pairwise subject identifiers ([`crate::protocol::subjects`]).
    pub(crate) fn pairwise_key(&self) -> &[u8; 64] {
        &self.pairwise
    }

    /// Decrypt a request object encrypted to this server's `use: enc` key (OpenID Connect Core
    /// §6.1, IGOV-OIDC-13): the plaintext (the signed request object), or why it cannot be read.
    pub(crate) fn decrypt_request_object(&self, jwe: &str) -> Result<String, String> {
        let header = josekit::jwe::JweHeader::from_bytes(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(jwe.split('.').next().unwrap_or_default())
                .map_err(|_| "its JWE header is malformed".to_string())?,
        )
        .map_err(|_| "its JWE header is malformed".to_string())?;
        // No compression: a deflated plaintext could be thousands of times its ciphertext (the
        // encryption key is public, so anyone could send one); a request object is small.
        if header.compression().is_some() {
            return Err("compressed (`zip`) request objects are not accepted".into());
        }
        let enc = header.content_encryption().unwrap_or_default().to_string();
        if !REQUEST_ENCRYPTION_ENCS.contains(&enc.as_str()) {
            return Err(format!(
                "its content encryption must be one of {} (not `{}`)",
                REQUEST_ENCRYPTION_ENCS.join(", "),
                crate::protocol::scope::sanitize(&enc)
            ));
        }
        let alg = header.algorithm().unwrap_or_default().to_string();
        use josekit::jwe::{ECDH_ES, ECDH_ES_A128KW, ECDH_ES_A256KW};
        let decrypter = match alg.as_str() {
            "ECDH-ES" => ECDH_ES.decrypter_from_der(&self.request_enc.der),
            "ECDH-ES+A128KW" => ECDH_ES_A128KW.decrypter_from_der(&self.request_enc.der),
            "ECDH-ES+A256KW" => ECDH_ES_A256KW.decrypter_from_der(&self.request_enc.der),
            other => {
                return Err(format!(
                    "it must be encrypted with one of {} (not `{}`)",
                    REQUEST_ENCRYPTION_ALGS.join(", "),
                    crate::protocol::scope::sanitize(other)
                ));
            }
        }
        .map_err(|e| {
            tracing::error!(error = %e, "the request-object decryption key cannot be used");
            "this server cannot decrypt request objects now".to_string()
        })?;
        if header.key_id().is_some_and(|k| k != self.request_enc.kid) {
            return Err(format!(
                "it is encrypted to a key this server does not have (use `{}`)",
                self.request_enc.kid
            ));
        }
        let (plain, _) = josekit::jwe::deserialize_compact(jwe, &decrypter)
            .map_err(|_| "it cannot be decrypted with this server's key".to_string())?;
        String::from_utf8(plain).map_err(|_| "its content is not text".to_string())
    }

    /// Encrypt and authenticate state that a browser keeps for Custodia (AES-256-GCM under a
    /// KEK-derived key; `purpose` is bound as associated data), so the browser can neither read
    /// nor alter it, and any instance sharing the KEK can open it.
    /// The result is base64url (cookie- and URL-safe).
    pub fn seal(&self, purpose: &str, plain: &[u8]) -> Result<String, KeyError> {
        seal_with(&self.browser_state, purpose, plain)
    }

    /// Open what [`KeyRing::seal`] sealed for `purpose`; `None` if it was altered, sealed for
    /// another purpose, or under another KEK.
    pub fn open(&self, purpose: &str, sealed: &str) -> Option<Vec<u8>> {
        open_with(&self.browser_state, purpose, sealed)
    }

    /// HMAC-SHA-256 of `data` under the DPoP nonce key, truncated to 128 bits
    /// ([`crate::protocol::dpop::nonce`]).
    pub(crate) fn dpop_nonce_mac(&self, data: &[u8]) -> Option<[u8; 16]> {
        let key = openssl::pkey::PKey::hmac(&self.dpop_nonce[..]).ok()?;
        let mut signer =
            openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).ok()?;
        signer.update(data).ok()?;
        let mac = signer.sign_to_vec().ok()?;
        let mut out = [0u8; 16];
        out.copy_from_slice(mac.get(..16)?);
        Some(out)
    }

    /// The algorithm of the current signing key.
    pub fn signing_alg(&self) -> Option<String> {
        self.snapshot()
            .keys
            .iter()
            .find(|k| k.current)
            .map(|k| k.alg.clone())
    }

    /// Sign claims as a JWT with the current key and the given `typ`.
    pub fn sign(&self, typ: &str, claims: Map<String, Value>) -> Result<String, KeyError> {
        let set = self.snapshot();
        let key = set
            .keys
            .iter()
            .rev()
            .find(|k| k.current && k.signer.is_some())
            .ok_or(KeyError::NoCurrentKey)?;
        let signer = key.signer.as_ref().ok_or(KeyError::NoCurrentKey)?;
        let mut header = JwsHeader::new();
        header.set_token_type(typ);
        header.set_key_id(&key.kid);
        let payload = JwtPayload::from_map(claims)?;
        Ok(jwt::encode_with_signer(&payload, &header, signer.as_ref())?)
    }

    /// Verify a JWT signed by one of our published keys; returns its claims and header `typ`.
    /// Expiry and audience are the caller's business.
    pub fn verify(
        &self,
        token: &str,
    ) -> Result<(Map<String, Value>, Option<String>), TokenInvalid> {
        if token.len() > 16 * 1024 || token.split('.').count() != 3 {
            return Err(TokenInvalid::Malformed);
        }
        let set = self.snapshot();
        let header = jwt::decode_header(token).map_err(|_| TokenInvalid::Malformed)?;
        let kid = header
            .claim("kid")
            .and_then(Value::as_str)
            .ok_or(TokenInvalid::UnknownKey)?;
        let alg = header
            .claim("alg")
            .and_then(Value::as_str)
            .ok_or(TokenInvalid::Malformed)?;
        let key = set
            .keys
            .iter()
            .find(|k| k.kid == kid && k.alg == alg)
            .ok_or(TokenInvalid::UnknownKey)?;
        let (payload, header) = jwt::decode_with_verifier(token, key.verifier.as_ref())
            .map_err(|_| TokenInvalid::BadSignature)?;
        let typ = header.token_type().map(str::to_string);
        Ok((payload.claims_set().clone(), typ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aead_round_trip_and_tamper() -> Result<(), KeyError> {
        let kek = [7u8; 32];
        let enc = encrypt(&kek, "kid1", b"secret key bytes")?;
        assert_eq!(decrypt(&kek, "kid1", &enc)?, b"secret key bytes");
        assert!(
            decrypt(&kek, "kid2", &enc).is_err(),
            "the kid is bound as associated data"
        );
        assert!(decrypt(&[8u8; 32], "kid1", &enc).is_err());
        Ok(())
    }

    #[test]
    fn request_encryption_key_is_derived_from_the_kek() -> Result<(), KeyError> {
        let a = derive_encryption_key(&[7u8; 32])?;
        let again = derive_encryption_key(&[7u8; 32])?;
        let other = derive_encryption_key(&[8u8; 32])?;
        assert_eq!(
            (a.kid.as_str(), &a.public_jwk),
            (again.kid.as_str(), &again.public_jwk)
        );
        assert_ne!(a.kid, other.kid);
        assert_eq!(a.public_jwk["crv"], "P-256");
        assert!(a.public_jwk.get("d").is_none());
        // What is encrypted to the published key, the derived private key decrypts.
        let jwk = Jwk::from_map(a.public_jwk.as_object().cloned().unwrap_or_default())?;
        let mut h = josekit::jwe::JweHeader::new();
        h.set_content_encryption("A128GCM");
        let enc = josekit::jwe::ECDH_ES_A256KW.encrypter_from_jwk(&jwk)?;
        let sealed = josekit::jwe::serialize_compact(b"a.b.c", &h, &enc)?;
        let dec = josekit::jwe::ECDH_ES_A256KW.decrypter_from_der(&a.der)?;
        assert_eq!(
            josekit::jwe::deserialize_compact(&sealed, &dec)?.0,
            b"a.b.c"
        );
        let wrong = josekit::jwe::ECDH_ES_A256KW.decrypter_from_der(&other.der)?;
        assert!(josekit::jwe::deserialize_compact(&sealed, &wrong).is_err());
        Ok(())
    }

    /// Sealed browser state opens only unaltered, for its purpose, under its key.
    #[test]
    fn sealed_state_is_private_and_tamper_evident() -> Result<(), KeyError> {
        let key = first_half(&derive_key(&[7u8; 32], b"custodia browser state v1")?);
        let other = first_half(&derive_key(&[8u8; 32], b"custodia browser state v1")?);
        let sealed = seal_with(&key, "rp", b"{\"state\":\"s\"}")?;
        assert!(!sealed.contains("state") && !sealed.contains(['+', '/', '=']));
        assert_eq!(
            open_with(&key, "rp", &sealed).as_deref(),
            Some(&b"{\"state\":\"s\"}"[..])
        );
        assert_eq!(open_with(&key, "csrf", &sealed), None, "another purpose");
        assert_eq!(open_with(&other, "rp", &sealed), None, "another KEK");
        let mut flipped = sealed.into_bytes();
        if let Some(b) = flipped.get_mut(20) {
            *b = if *b == b'A' { b'B' } else { b'A' };
        }
        let flipped = String::from_utf8(flipped).unwrap_or_default();
        assert_eq!(open_with(&key, "rp", &flipped), None, "altered");
        Ok(())
    }

    #[test]
    fn kek_decoding() {
        assert!(decode_kek(&STANDARD.encode([1u8; 32])).is_ok());
        assert!(decode_kek(&STANDARD.encode([1u8; 16])).is_err());
        assert!(decode_kek("not base64!").is_err());
    }
}
