//! The keys that sign ID tokens: one current key per algorithm (RS256,
//! ES256, EdDSA), kept in the data folder's `oidc-keys.json` (mode 0600).
//! Rotating makes new current keys; a retired key stays published in the
//! JWKS until every token it signed has expired, then is dropped. A
//! running server sees a rotation made by the command line at its next
//! use of the keys (the file's modification time is checked).
//!
//! Signing is `jsonwebtoken` over ring. ring cannot generate RSA keys, so
//! the RSA key alone is generated with the `rsa` crate.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use data_encoding::BASE64URL_NOPAD;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, JwkSet, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::datadir::write_private;

/// A problem with the token keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read or written.
    #[error("{0}")]
    File(String),
    /// The key file does not read.
    #[error("{path}: {problem}")]
    Damaged {
        /// The file.
        path: String,
        /// What is wrong.
        problem: String,
    },
    /// Signing failed.
    #[error("signing failed: {0}")]
    Sign(String),
    /// A token did not verify: its signature, issuer or shape.
    #[error("the token does not verify: {0}")]
    Invalid(String),
}

/// An ID-token signing algorithm a client may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (every OpenID provider supports it).
    #[serde(rename = "RS256")]
    Rs256,
    /// ECDSA P-256 with SHA-256.
    #[serde(rename = "ES256")]
    Es256,
    /// Ed25519.
    #[serde(rename = "EdDSA")]
    EdDsa,
}

impl TokenAlg {
    /// Every algorithm, as published in the discovery document.
    pub const ALL: [TokenAlg; 3] = [TokenAlg::Rs256, TokenAlg::Es256, TokenAlg::EdDsa];

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenAlg::Rs256 => "RS256",
            TokenAlg::Es256 => "ES256",
            TokenAlg::EdDsa => "EdDSA",
        }
    }

    /// Reads a JOSE name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    fn jose(self) -> Algorithm {
        match self {
            TokenAlg::Rs256 => Algorithm::RS256,
            TokenAlg::Es256 => Algorithm::ES256,
            TokenAlg::EdDsa => Algorithm::EdDSA,
        }
    }
}

/// One key as stored.
#[derive(Clone, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    alg: TokenAlg,
    created_at: u64,
    /// When a newer key replaced it; `None` while current.
    #[serde(default)]
    retired_at: Option<u64>,
    /// The private key: PKCS#1 DER for RSA, PKCS#8 DER otherwise (base64url).
    private: String,
}

impl Drop for StoredKey {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.private);
    }
}

/// A key ready to use.
struct LoadedKey {
    stored: StoredKey,
    encoding: EncodingKey,
    jwk: Jwk,
}

struct Loaded {
    keys: Vec<LoadedKey>,
    /// The file's modification time and length when read.
    modified: Option<(SystemTime, u64)>,
}

/// Called after new keys were written to the file, before they are used:
/// it may replace the file (instances that share keys adopt the first
/// instance's), which is then read again.
pub type AfterCreate = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// The token keys of a data folder.
pub struct TokenKeys {
    path: PathBuf,
    /// How long a retired key stays published (the longest token lifetime).
    published_for: u64,
    loaded: Mutex<Loaded>,
    after_create: Option<AfterCreate>,
}

/// What a rotation did.
#[derive(Debug)]
pub struct Rotation {
    /// The new current keys' ids.
    pub current: Vec<String>,
    /// Retired keys still published.
    pub still_published: Vec<String>,
    /// Retired keys dropped (every token they signed has expired).
    pub dropped: Vec<String>,
}

impl TokenKeys {
    /// The key file of a data folder.
    pub fn file(data: &Path) -> PathBuf {
        data.join("oidc-keys.json")
    }

    /// Opens the keys at `path`. A current key for each algorithm is
    /// made at the first use that finds none (RSA generation takes a
    /// moment, which a server that never signs a token need not spend).
    /// Retired keys are published for `published_for` seconds after their
    /// retirement.
    pub fn open(path: &Path, published_for: u64) -> Result<Self, KeyError> {
        let keys = load(path, read(path)?)?;
        Ok(TokenKeys {
            path: path.to_path_buf(),
            published_for,
            loaded: Mutex::new(Loaded {
                keys,
                modified: modified(path),
            }),
            after_create: None,
        })
    }

    /// Runs `hook` whenever this process makes missing keys.
    pub fn after_create(mut self, hook: AfterCreate) -> Self {
        self.after_create = Some(hook);
        self
    }

    /// Makes a new current key for every algorithm; the old ones are
    /// retired (still published), and keys retired longer ago than
    /// `published_for` seconds are dropped.
    pub fn rotate(path: &Path, published_for: u64, now: u64) -> Result<Rotation, KeyError> {
        let mut stored = read(path)?;
        for k in &mut stored {
            k.retired_at.get_or_insert(now);
        }
        let (kept, dropped): (Vec<StoredKey>, Vec<StoredKey>) = stored
            .into_iter()
            .partition(|k| k.retired_at.is_some_and(|r| r + published_for > now));
        let mut next = kept;
        let still_published = next.iter().map(|k| k.kid.clone()).collect();
        let mut current = Vec::new();
        for alg in TokenAlg::ALL {
            let key = generate(alg, now)?;
            current.push(key.kid.clone());
            next.push(key);
        }
        write(path, &next)?;
        Ok(Rotation {
            current,
            still_published,
            dropped: dropped.iter().map(|k| k.kid.clone()).collect(),
        })
    }

    /// Signs `claims` with the current key of `alg`.
    pub fn sign<T: Serialize>(&self, alg: TokenAlg, claims: &T) -> Result<String, KeyError> {
        self.sign_as(alg, "JWT", claims)
    }

    /// [`TokenKeys::sign`] with the header's `typ` (e.g. `logout+jwt`).
    pub fn sign_as<T: Serialize>(
        &self,
        alg: TokenAlg,
        typ: &str,
        claims: &T,
    ) -> Result<String, KeyError> {
        self.with_keys(unix_now(), |keys| {
            let key = keys
                .iter()
                .find(|k| k.stored.alg == alg && k.stored.retired_at.is_none())
                .ok_or_else(|| KeyError::Sign(format!("no current {} key", alg.as_str())))?;
            let mut header = Header::new(alg.jose());
            header.kid = Some(key.stored.kid.clone());
            header.typ = Some(typ.to_string());
            jsonwebtoken::encode(&header, claims, &key.encoding)
                .map_err(|e| KeyError::Sign(e.to_string()))
        })
    }

    /// The published keys: the current ones, and the retired ones whose
    /// tokens may still be valid.
    pub fn jwks(&self, now: u64) -> Result<JwkSet, KeyError> {
        let published_for = self.published_for;
        self.with_keys(now, |keys| {
            Ok(JwkSet {
                keys: keys
                    .iter()
                    .filter(|k| k.stored.retired_at.is_none_or(|r| r + published_for > now))
                    .map(|k| k.jwk.clone())
                    .collect(),
            })
        })
    }

    /// The claims of a token signed by one of the published keys for
    /// `issuer`. Its expiry is not checked here: the caller decides what
    /// an expired token may still do.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        issuer: &str,
        now: u64,
    ) -> Result<T, KeyError> {
        let invalid = |e: &dyn std::fmt::Display| KeyError::Invalid(e.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(|e| invalid(&e))?;
        let kid = header.kid.ok_or_else(|| invalid(&"no key id"))?;
        let set = self.jwks(now)?;
        let jwk = set.find(&kid).ok_or_else(|| invalid(&"unknown key"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| invalid(&e))?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[issuer]);
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["iss", "sub", "aud"]);
        jsonwebtoken::decode::<T>(token, &key, &validation)
            .map(|d| d.claims)
            .map_err(|e| invalid(&e))
    }

    /// Runs `f` on the keys, reloading them first if the file changed
    /// (a rotation by the command line), and making the current keys that
    /// are missing.
    fn with_keys<R>(
        &self,
        now: u64,
        f: impl FnOnce(&[LoadedKey]) -> Result<R, KeyError>,
    ) -> Result<R, KeyError> {
        let mut loaded = self
            .loaded
            .lock()
            .map_err(|_| KeyError::Sign("the key lock is poisoned".into()))?;
        let now_modified = modified(&self.path);
        if now_modified != loaded.modified {
            loaded.keys = load(&self.path, read(&self.path)?)?;
            loaded.modified = now_modified;
        }
        let missing: Vec<TokenAlg> = TokenAlg::ALL
            .into_iter()
            .filter(|alg| {
                !loaded
                    .keys
                    .iter()
                    .any(|k| k.stored.alg == *alg && k.stored.retired_at.is_none())
            })
            .collect();
        if !missing.is_empty() {
            let mut stored = read(&self.path)?;
            for alg in missing {
                stored.push(generate(alg, now)?);
            }
            write(&self.path, &stored)?;
            match &self.after_create {
                Some(hook) => {
                    hook().map_err(KeyError::Sign)?;
                    loaded.keys = load(&self.path, read(&self.path)?)?;
                }
                None => loaded.keys = load(&self.path, stored)?,
            }
            loaded.modified = modified(&self.path);
        }
        f(&loaded.keys)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn modified(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn damaged(path: &Path, problem: impl ToString) -> KeyError {
    KeyError::Damaged {
        path: path.display().to_string(),
        problem: problem.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<StoredKey>, KeyError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            serde_json::from_slice(&bytes).map_err(|e| damaged(path, e))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(KeyError::File(format!("{}: {e}", path.display()))),
    }
}

fn write(path: &Path, keys: &[StoredKey]) -> Result<(), KeyError> {
    let json =
        Zeroizing::new(serde_json::to_vec_pretty(keys).map_err(|e| KeyError::File(e.to_string()))?);
    write_private(path, &json).map_err(|e| KeyError::File(e.to_string()))
}

fn load(path: &Path, stored: Vec<StoredKey>) -> Result<Vec<LoadedKey>, KeyError> {
    stored
        .into_iter()
        .map(|k| {
            let der = Zeroizing::new(
                BASE64URL_NOPAD
                    .decode(k.private.as_bytes())
                    .map_err(|e| damaged(path, format!("key {}: {e}", k.kid)))?,
            );
            let (encoding, params) =
                keys_of(k.alg, &der).map_err(|e| damaged(path, format!("key {}: {e}", k.kid)))?;
            let jwk = Jwk {
                common: CommonParameters {
                    public_key_use: Some(PublicKeyUse::Signature),
                    key_algorithm: Some(match k.alg {
                        TokenAlg::Rs256 => KeyAlgorithm::RS256,
                        TokenAlg::Es256 => KeyAlgorithm::ES256,
                        TokenAlg::EdDsa => KeyAlgorithm::EdDSA,
                    }),
                    key_id: Some(k.kid.clone()),
                    ..CommonParameters::default()
                },
                algorithm: params,
            };
            Ok(LoadedKey {
                stored: k,
                encoding,
                jwk,
            })
        })
        .collect()
}

/// The signing key and the public JWK parameters of a stored private key.
fn keys_of(alg: TokenAlg, der: &[u8]) -> Result<(EncodingKey, AlgorithmParameters), String> {
    let b64 = |b: &[u8]| BASE64URL_NOPAD.encode(b);
    Ok(match alg {
        TokenAlg::Rs256 => {
            use rsa::pkcs1::DecodeRsaPrivateKey;
            use rsa::traits::PublicKeyParts;
            let key = rsa::RsaPrivateKey::from_pkcs1_der(der).map_err(|e| e.to_string())?;
            let params = AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: b64(&key.n().to_bytes_be()),
                e: b64(&key.e().to_bytes_be()),
            });
            (EncodingKey::from_rsa_der(der), params)
        }
        TokenAlg::Es256 => {
            let pair = EcdsaKeyPair::from_pkcs8(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                der,
                &SystemRandom::new(),
            )
            .map_err(|e| e.to_string())?;
            // An uncompressed point: 0x04, x, y.
            let point = pair.public_key().as_ref();
            if point.len() != 65 {
                return Err("not a P-256 point".into());
            }
            let params = AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                key_type: EllipticCurveKeyType::EC,
                curve: EllipticCurve::P256,
                x: b64(&point[1..33]),
                y: b64(&point[33..]),
            });
            (EncodingKey::from_ec_der(der), params)
        }
        TokenAlg::EdDsa => {
            let pair =
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| e.to_string())?;
            let params = AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: b64(pair.public_key().as_ref()),
            });
            (EncodingKey::from_ed_der(der), params)
        }
    })
}

/// A new key for `alg`.
fn generate(alg: TokenAlg, now: u64) -> Result<StoredKey, KeyError> {
    let rng = SystemRandom::new();
    let failed = |e: &dyn std::fmt::Display| KeyError::Sign(format!("key generation: {e}"));
    let der: Zeroizing<Vec<u8>> = match alg {
        TokenAlg::Rs256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
                .map_err(|e| failed(&e))?;
            Zeroizing::new(
                key.to_pkcs1_der()
                    .map_err(|e| failed(&e))?
                    .as_bytes()
                    .to_vec(),
            )
        }
        TokenAlg::Es256 => Zeroizing::new(
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|e| failed(&e))?
                .as_ref()
                .to_vec(),
        ),
        TokenAlg::EdDsa => Zeroizing::new(
            Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|e| failed(&e))?
                .as_ref()
                .to_vec(),
        ),
    };
    let mut id = [0u8; 12];
    rng.fill(&mut id)
        .map_err(|_| failed(&"random generator failed"))?;
    Ok(StoredKey {
        kid: format!(
            "{}-{}",
            alg.as_str().to_lowercase(),
            BASE64URL_NOPAD.encode(&id)
        ),
        alg,
        created_at: now,
        retired_at: None,
        private: BASE64URL_NOPAD.encode(&der),
    })
}

#[cfg(test)]
mod tests;
