//! API keys: who may call what (`--api-keys FILE`; no file, no checks).
//!
//! ```toml
//! [[key]]
//! name = "ci"                       # named in logs and errors, never the key itself
//! sha256 = "9f86d08...0f00a08"      # hex SHA-256 of the key; the key is never stored
//! scopes = ["infer"]                # "infer" (inference, metadata, /metrics), "admin" (repository API)
//! models = ["mnist-cnn"]            # optional allow list for model routes; absent: every model
//! ```
//!
//! A client sends `Authorization: Bearer <key>` (REST) or the same `authorization` metadata
//! (gRPC). The presented key is hashed and compared with **every** stored hash in constant time
//! (`subtle`), so neither the comparison nor the number of keys tried says how close a guess was.
//! Health routes (`/v2/health/*`, gRPC ServerLive/ServerReady) stay open for probes.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    Infer,
    Admin,
}

#[derive(Debug)]
struct Key {
    name: String,
    /// Lower-case hex of the SHA-256 of the key.
    sha256: [u8; 64],
    infer: bool,
    admin: bool,
    models: Option<Vec<String>>,
}

/// The keys of one file.
#[derive(Debug)]
pub struct ApiKeys {
    keys: Vec<Key>,
}

/// Why a request is refused: REST 401/403, gRPC UNAUTHENTICATED/PERMISSION_DENIED.
#[derive(Debug, PartialEq)]
pub enum Denied {
    Unauthenticated(String),
    Forbidden(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    key: Vec<KeyFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    name: String,
    sha256: String,
    scopes: Vec<String>,
    models: Option<Vec<String>>,
}

/// The lower-case hex SHA-256 of `key`, as the keys file stores it.
pub fn hash_key(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

impl ApiKeys {
    /// Parses a keys file; the error names the entry and what to fix.
    pub fn parse(text: &str) -> Result<ApiKeys, String> {
        let f: File = toml::from_str(text).map_err(|e| format!("API keys file: {e}"))?;
        if f.key.is_empty() {
            return Err("API keys file: no [[key]] entries; add one (name, sha256, scopes) or leave --api-keys out".into());
        }
        let mut keys = Vec::new();
        for k in f.key {
            let hex = k.sha256.to_ascii_lowercase();
            let sha256: [u8; 64] = hex
                .as_bytes()
                .try_into()
                .ok()
                .filter(|h: &[u8; 64]| h.iter().all(u8::is_ascii_hexdigit))
                .ok_or_else(|| {
                    format!("API key '{}': sha256 must be 64 hex digits (e.g. `printf %s KEY | sha256sum`)", k.name)
                })?;
            let (mut infer, mut admin) = (false, false);
            for s in &k.scopes {
                match s.as_str() {
                    "infer" => infer = true,
                    "admin" => admin = true,
                    other => return Err(format!("API key '{}': unknown scope '{other}'; scopes are \"infer\" and \"admin\"", k.name)),
                }
            }
            if !infer && !admin {
                return Err(format!("API key '{}': give it at least one scope (\"infer\", \"admin\")", k.name));
            }
            keys.push(Key { name: k.name, sha256, infer, admin, models: k.models });
        }
        Ok(ApiKeys { keys })
    }

    /// Checks the `Authorization` value of a request needing `scope` (for `model`, if a model route).
    pub fn check(&self, authorization: Option<&str>, scope: Scope, model: Option<&str>) -> Result<(), Denied> {
        let Some(key) = authorization.and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))) else {
            return Err(Denied::Unauthenticated(
                "this server needs an API key: send `Authorization: Bearer <key>` (gRPC: `authorization` metadata)".into(),
            ));
        };
        let presented = hash_key(key.trim());
        let mut found: Option<&Key> = None;
        // Every stored hash is compared, whatever matched before.
        for k in &self.keys {
            if bool::from(k.sha256.ct_eq(presented.as_bytes())) {
                found = Some(k);
            }
        }
        let Some(k) = found else {
            return Err(Denied::Unauthenticated("the API key is not valid; check it, or ask for a new one".into()));
        };
        let has = match scope {
            Scope::Infer => k.infer,
            Scope::Admin => k.admin,
        };
        if !has {
            let want = if scope == Scope::Admin { "admin" } else { "infer" };
            return Err(Denied::Forbidden(format!("API key '{}' lacks the \"{want}\" scope this route needs", k.name)));
        }
        if let (Some(m), Some(allowed)) = (model, &k.models) {
            if !allowed.iter().any(|a| a == m) {
                return Err(Denied::Forbidden(format!(
                    "API key '{}' may not use model '{}'; it may use: {}",
                    k.name,
                    crate::clip(m),
                    allowed.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// What a REST path needs: `None` for open routes, else the scope and the model it names.
pub fn rest_needs(path: &str) -> Option<(Scope, Option<String>)> {
    let p = path.split('?').next().unwrap_or("");
    let segs: Vec<&str> = p.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["v2", "health", ..] => None,
        ["v2", "repository", ..] => Some((Scope::Admin, None)),
        ["v2", "models", m, ..] => Some((Scope::Infer, Some(m.to_string()))),
        ["v1", "models", m, ..] => Some((Scope::Infer, Some(m.split(':').next().unwrap_or("").to_string()))),
        ["predict"] => {
            let q = path.split_once('?').map_or("", |(_, q)| q);
            let m = q.split('&').find_map(|kv| kv.strip_prefix("model=")).unwrap_or("mnist-cnn");
            Some((Scope::Infer, Some(m.to_string())))
        }
        // /v2, /metrics, /openapi.yaml, unknown routes: a valid key with the infer scope.
        _ => Some((Scope::Infer, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_scopes_and_allow_lists() {
        let file = format!(
            "[[key]]\nname = \"ci\"\nsha256 = \"{}\"\nscopes = [\"infer\"]\nmodels = [\"a\"]\n\
             [[key]]\nname = \"ops\"\nsha256 = \"{}\"\nscopes = [\"admin\"]\n",
            hash_key("s3cret-ci"),
            hash_key("s3cret-ops").to_uppercase()
        );
        let k = ApiKeys::parse(&file).unwrap();
        assert_eq!(k.check(Some("Bearer s3cret-ci"), Scope::Infer, Some("a")), Ok(()));
        assert!(matches!(k.check(Some("Bearer s3cret-ci"), Scope::Infer, Some("b")), Err(Denied::Forbidden(m)) if m.contains("may use: a")));
        assert!(matches!(k.check(Some("Bearer s3cret-ci"), Scope::Admin, None), Err(Denied::Forbidden(_))));
        assert_eq!(k.check(Some("Bearer s3cret-ops"), Scope::Admin, None), Ok(()));
        assert!(matches!(k.check(Some("Bearer s3cret-ops"), Scope::Infer, Some("a")), Err(Denied::Forbidden(_))));
        assert!(matches!(k.check(Some("Bearer wrong"), Scope::Infer, None), Err(Denied::Unauthenticated(_))));
        assert!(matches!(k.check(None, Scope::Infer, None), Err(Denied::Unauthenticated(_))));
        assert!(matches!(k.check(Some("s3cret-ci"), Scope::Infer, None), Err(Denied::Unauthenticated(_))));
        for bad in [
            "",
            "[[key]]\nname = \"x\"\nsha256 = \"abc\"\nscopes = [\"infer\"]\n",
            "[[key]]\nname = \"x\"\nsha256 = \"".to_string().as_str(),
        ] {
            assert!(ApiKeys::parse(bad).is_err(), "{bad}");
        }
        let wrong_scope = format!("[[key]]\nname = \"x\"\nsha256 = \"{}\"\nscopes = [\"root\"]\n", hash_key("k"));
        assert!(ApiKeys::parse(&wrong_scope).unwrap_err().contains("unknown scope 'root'"));
        let no_scope = format!("[[key]]\nname = \"x\"\nsha256 = \"{}\"\nscopes = []\n", hash_key("k"));
        assert!(ApiKeys::parse(&no_scope).is_err());
        // The key file never holds the key.
        assert!(!file.contains("s3cret"));
    }

    #[test]
    fn which_routes_need_what() {
        assert_eq!(rest_needs("/v2/health/ready"), None);
        assert_eq!(rest_needs("/v2/repository/index"), Some((Scope::Admin, None)));
        assert_eq!(rest_needs("/v2/models/m/versions/1/infer"), Some((Scope::Infer, Some("m".into()))));
        assert_eq!(rest_needs("/v1/models/m:predict"), Some((Scope::Infer, Some("m".into()))));
        assert_eq!(rest_needs("/predict?model=x"), Some((Scope::Infer, Some("x".into()))));
        assert_eq!(rest_needs("/metrics"), Some((Scope::Infer, None)));
    }
}
