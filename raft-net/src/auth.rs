//! Bearer tokens for the HTTP API, checked by one middleware that each route group carries.
//!
//! Every route belongs to one [`Access`] class, and a router of routes of one class gets
//! [`guard`]ed (a `route_layer`), so a new route group (a state machine's own routes, say)
//! only has to pick its class. With `--admin-token`, the admin routes (membership, leadership,
//! snapshots, fault injection) answer `401` without `Authorization: Bearer <token>` and `403`
//! with another token; without it they are open, as on a laptop. Client routes are open unless
//! `--client-token` is set; then they take the client token or the admin token. Open routes
//! (`/healthz`, `/metrics`) never need one.
//!
//! Tokens are compared as BLAKE3 digests with `subtle`'s constant-time equality, so neither the
//! timing of a refusal nor the length of a guess tells anything about the token.

use std::fmt;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::error::ConfigError;

/// Shortest token accepted from a file: anything shorter is guessable over the network.
pub const TOKEN_BYTES_MIN: usize = 16;
/// Random bytes in a generated token (written as twice as many hex digits).
const GENERATED_TOKEN_BYTES: usize = 32;

/// A bearer token. Its `Debug` output does not show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<secret>)")
    }
}

impl Token {
    /// The token in `path`: its contents without surrounding whitespace, at least
    /// [`TOKEN_BYTES_MIN`] visible ASCII characters (it travels in an HTTP header).
    pub fn from_file(path: &Path) -> Result<Token, ConfigError> {
        let error = |reason: String| ConfigError::TokenFile {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
        Token::parse(text.trim()).map_err(error)
    }

    /// A token from its text, checked as in a file.
    pub(crate) fn parse(text: &str) -> Result<Token, String> {
        if text.len() < TOKEN_BYTES_MIN {
            return Err(format!(
                "the token is {} characters; at least {TOKEN_BYTES_MIN} are needed",
                text.len()
            ));
        }
        if !text.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err("the token must be visible ASCII without spaces".to_string());
        }
        Ok(Token(text.to_string()))
    }

    /// The token in `path`, creating the file (owner-only permissions) with a fresh random
    /// token when it does not exist yet, so a restarted cluster keeps its token.
    pub fn load_or_generate(path: &Path) -> Result<Token, ConfigError> {
        if path.exists() {
            return Token::from_file(path);
        }
        let error = |reason: String| ConfigError::TokenFile {
            path: path.to_path_buf(),
            reason,
        };
        let mut random = [0; GENERATED_TOKEN_BYTES];
        getrandom::getrandom(&mut random).map_err(|e| error(e.to_string()))?;
        let text: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| error(e.to_string()))?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(|e| error(e.to_string()))?;
        writeln!(file, "{text}")
            .and_then(|()| file.sync_all())
            .map_err(|e| error(e.to_string()))?;
        Ok(Token(text))
    }

    /// The `Authorization` header value that presents this token.
    #[must_use]
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    fn digest(&self) -> Digest {
        digest(self.0.as_bytes())
    }
}

type Digest = [u8; 32];

fn digest(token: &[u8]) -> Digest {
    *blake3::hash(token).as_bytes()
}

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Health and metrics: never a token.
    Open,
    /// Reads and writes of the replicated state: the client token, when one is set.
    Client,
    /// Membership, leadership, snapshots, fault injection: the admin token, when one is set.
    Admin,
}

/// The node's tokens (as digests).
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    admin: Option<Digest>,
    client: Option<Digest>,
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header: `401`.
    Missing,
    /// A token that does not grant this access: `403`.
    Wrong,
}

impl Tokens {
    #[must_use]
    pub fn new(admin: Option<&Token>, client: Option<&Token>) -> Tokens {
        Tokens {
            admin: admin.map(Token::digest),
            client: client.map(Token::digest),
        }
    }

    /// Whether an admin token is set (address changes need one).
    #[must_use]
    pub fn has_admin(&self) -> bool {
        self.admin.is_some()
    }

    /// Whether routes of class `access` take every request, token or not.
    #[must_use]
    pub fn is_open(&self, access: Access) -> bool {
        match access {
            Access::Open => true,
            Access::Client => self.client.is_none(),
            Access::Admin => self.admin.is_none(),
        }
    }

    /// Whether a request with `headers` may use a route of class `access`.
    pub fn check(&self, access: Access, headers: &HeaderMap) -> Result<(), Refusal> {
        let accepted: [Option<&Digest>; 2] = match access {
            Access::Open => return Ok(()),
            Access::Admin => [self.admin.as_ref(), None],
            // The admin token also grants everything a client may do.
            Access::Client => match &self.client {
                None => return Ok(()),
                Some(client) => [Some(client), self.admin.as_ref()],
            },
        };
        if accepted.iter().all(Option::is_none) {
            return Ok(());
        }
        let presented = bearer(headers).ok_or(Refusal::Missing)?;
        let presented = digest(presented);
        // Every accepted token is compared, so the time taken does not depend on which one (if
        // any) matched.
        let matched = accepted
            .iter()
            .flatten()
            .fold(subtle::Choice::from(0), |matched, token| {
                matched | token.ct_eq(&presented)
            });
        if bool::from(matched) {
            Ok(())
        } else {
            Err(Refusal::Wrong)
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (the scheme is case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, token) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = token.trim_ascii();
    (!token.is_empty()).then_some(token)
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Refusal::Missing => (
                StatusCode::UNAUTHORIZED,
                "this route needs a token: send Authorization: Bearer <token>",
            ),
            Refusal::Wrong => (
                StatusCode::FORBIDDEN,
                "the token does not grant access to this route",
            ),
        };
        let mut response = (status, axum::Json(json!({ "error": message }))).into_response();
        if self == Refusal::Missing {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"raft-net\""),
            );
        }
        response
    }
}

/// What the middleware of one route group knows.
#[derive(Clone, Debug)]
struct Gate {
    tokens: Arc<Tokens>,
    access: Access,
}

async fn gate(State(gate): State<Gate>, request: Request, next: Next) -> Response {
    match gate.tokens.check(gate.access, request.headers()) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// `router` with every route behind the check for `access` (a `route_layer`, so unmatched
/// paths still answer 404 and the check runs before any extractor reads the body).
pub fn guard<S>(router: Router<S>, tokens: &Arc<Tokens>, access: Access) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    // No token for this class: no middleware at all, so an open route costs nothing.
    if tokens.is_open(access) {
        return router;
    }
    let gate_state = Gate {
        tokens: Arc::clone(tokens),
        access,
    };
    router.route_layer(middleware::from_fn_with_state(gate_state, gate))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(value) = value {
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn admin_and_client_tokens_guard_their_classes() {
        let admin = Token::parse("admin-token-0123456789").unwrap();
        let client = Token::parse("client-token-0123456789").unwrap();
        let none = Tokens::default();
        let admin_only = Tokens::new(Some(&admin), None);
        let both = Tokens::new(Some(&admin), Some(&client));
        let bearer_admin = headers(Some(&admin.bearer()));
        let bearer_client = headers(Some(&client.bearer()));
        let lower = headers(Some("bearer admin-token-0123456789"));
        let wrong = headers(Some("Bearer admin-token-012345678"));
        let basic = headers(Some("Basic YWRtaW46YWRtaW4="));
        let missing = headers(None);
        for access in [Access::Open, Access::Client, Access::Admin] {
            assert_eq!(none.check(access, &missing), Ok(()));
        }
        assert_eq!(admin_only.check(Access::Client, &missing), Ok(()));
        assert_eq!(admin_only.check(Access::Open, &missing), Ok(()));
        assert_eq!(
            admin_only.check(Access::Admin, &missing),
            Err(Refusal::Missing)
        );
        assert_eq!(
            admin_only.check(Access::Admin, &basic),
            Err(Refusal::Missing)
        );
        assert_eq!(admin_only.check(Access::Admin, &wrong), Err(Refusal::Wrong));
        assert_eq!(
            admin_only.check(Access::Admin, &bearer_client),
            Err(Refusal::Wrong)
        );
        assert_eq!(admin_only.check(Access::Admin, &bearer_admin), Ok(()));
        assert_eq!(admin_only.check(Access::Admin, &lower), Ok(()));
        assert_eq!(both.check(Access::Client, &missing), Err(Refusal::Missing));
        assert_eq!(both.check(Access::Client, &wrong), Err(Refusal::Wrong));
        assert_eq!(both.check(Access::Client, &bearer_client), Ok(()));
        assert_eq!(both.check(Access::Client, &bearer_admin), Ok(()));
        assert_eq!(
            both.check(Access::Admin, &bearer_client),
            Err(Refusal::Wrong)
        );
        assert_eq!(both.check(Access::Open, &missing), Ok(()));
    }

    #[test]
    fn token_files_are_checked_and_generated_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/admin-token");
        let generated = Token::load_or_generate(&path).unwrap();
        assert_eq!(generated.0.len(), 2 * GENERATED_TOKEN_BYTES);
        assert_eq!(Token::load_or_generate(&path).unwrap(), generated);
        assert_eq!(Token::from_file(&path).unwrap(), generated);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "only the owner may read the token");
        }
        for bad in ["short", "has a space in the middle!!", ""] {
            std::fs::write(&path, bad).unwrap();
            assert!(Token::from_file(&path).is_err(), "{bad:?}");
        }
        assert!(Token::from_file(&dir.path().join("missing")).is_err());
        assert_eq!(format!("{generated:?}"), "Token(<secret>)");
    }
}
