//! `raft-net client`: one request, following leader redirects, printing JSON.
//!
//! It presents a token when it has one: `--admin-token FILE` (env `RAFT_ADMIN_TOKEN_FILE`;
//! for a server on this host, by default `./data/admin-token`, the file `raft-net cluster`
//! writes), else `--client-token FILE`. Redirects are followed here rather than by `reqwest`,
//! which drops the `Authorization` header when a redirect goes to another port; a redirect from
//! `https` to `http` is refused, since it would send the token in clear.

use std::path::{Path, PathBuf};

use axum::body::Bytes;
use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};

use crate::auth::Token;
use crate::error::ConfigError;

/// Redirect hops followed before giving up (a leader change mid-request can add one).
const REDIRECTS_MAX: usize = 5;
/// Where `raft-net cluster` (run from the same directory) writes its admin token.
pub const DEFAULT_ADMIN_TOKEN: &str = "./data/admin-token";

/// `raft-net client` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Any node's URL (http:// or https://); followers redirect to the leader.
    #[arg(long, env = "RAFT_SERVER", default_value = "http://127.0.0.1:8000")]
    pub server: String,
    /// Present the admin token in FILE (default, for a server on this host:
    /// ./data/admin-token, when it exists).
    #[arg(long, env = "RAFT_ADMIN_TOKEN_FILE", value_name = "FILE")]
    pub admin_token: Option<PathBuf>,
    /// Present the client token in FILE (when there is no admin token).
    #[arg(long, env = "RAFT_CLIENT_TOKEN_FILE", value_name = "FILE")]
    pub client_token: Option<PathBuf>,
    /// Trust this PEM certificate (or authority) for https:// servers.
    #[arg(long, env = "RAFT_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    pub op: ClientOp,
}

/// What to ask.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClientOp {
    /// The node's state and log (`GET /api/v1/state`).
    State,
    /// Append a log command (`POST /api/v1/append`).
    Append { command: String },
    /// Set a key (`PUT /api/v1/kv/KEY`).
    Put { key: String, value: String },
    /// Read a key, linearizably unless --stale.
    Get {
        key: String,
        #[arg(long)]
        stale: bool,
    },
    /// Delete a key.
    Delete { key: String },
    /// The cluster members.
    Members,
    /// Add a member (`POST /api/v1/members`; admin).
    AddMember {
        id: u64,
        raft_addr: String,
        http_addr: String,
    },
    /// Remove a member (`DELETE /api/v1/members/ID`; admin).
    RemoveMember { id: u64 },
    /// Move a member to new addresses (`PUT /api/v1/members/ID/address`; admin token needed).
    SetAddress {
        id: u64,
        raft_addr: String,
        http_addr: String,
    },
    /// Hand leadership to a voter (`POST /api/v1/admin/transfer-leader`; admin).
    TransferLeader { to: u64 },
    /// Snapshot the node's store now (`POST /api/v1/admin/snapshot`; admin).
    Snapshot,
}

/// Why a client request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid server URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("more than {REDIRECTS_MAX} redirects, last to {0}")]
    Redirects(String),
    #[error("refusing a redirect from https to {0}: the token would travel in clear")]
    Downgrade(String),
}

fn url(server: &str, segments: &[&str]) -> Result<Url, ClientError> {
    let invalid = |reason: String| ClientError::Url {
        url: server.to_string(),
        reason,
    };
    let mut url = Url::parse(server).map_err(|error| invalid(error.to_string()))?;
    url.path_segments_mut()
        .map_err(|()| invalid("cannot be a base URL".to_string()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// An HTTP client that trusts `ca` (when given) and leaves redirects to [`send`].
pub fn http_client(ca: Option<&Path>) -> Result<reqwest::Client, ClientError> {
    Ok(crate::tls::reqwest_builder(ca)?
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// Sends one request, presenting `token`, following `307`/`308` redirects (to the leader)
/// with the same method, body and token; the final status and body.
pub async fn send(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    token: Option<&Token>,
    body: Option<Vec<u8>>,
) -> Result<(StatusCode, Bytes), ClientError> {
    let mut url = Url::parse(url).map_err(|error| ClientError::Url {
        url: url.to_string(),
        reason: error.to_string(),
    })?;
    for _ in 0..=REDIRECTS_MAX {
        let mut request = client.request(method.clone(), url.clone());
        if let Some(token) = token {
            request = request.header(reqwest::header::AUTHORIZATION, token.bearer());
        }
        if let Some(body) = &body {
            request = request.body(body.clone());
        }
        let response = request.send().await?;
        let status = response.status();
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let redirect = matches!(
            status,
            StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
        );
        match location {
            Some(location) if redirect => {
                let next = url.join(&location).map_err(|error| ClientError::Url {
                    url: location.clone(),
                    reason: error.to_string(),
                })?;
                if url.scheme() == "https" && next.scheme() != "https" {
                    return Err(ClientError::Downgrade(next.to_string()));
                }
                url = next;
            }
            _ => return Ok((status, response.bytes().await?)),
        }
    }
    Err(ClientError::Redirects(url.to_string()))
}

/// The token `args` point at: the admin token (its flag, or the local cluster's default file
/// when it exists and the server is on this host), else the client token.
fn token(args: &ClientArgs) -> Result<Option<Token>, ClientError> {
    if let Some(path) = &args.admin_token {
        return Ok(Some(Token::from_file(path)?));
    }
    if args.client_token.is_none() {
        if let Some(token) = default_admin_token(&args.server)? {
            return Ok(Some(token));
        }
    }
    Ok(args
        .client_token
        .as_deref()
        .map(Token::from_file)
        .transpose()?)
}

/// The local cluster's admin token (the file `raft-net cluster` writes), when it exists and
/// `server` is on this host.
pub fn default_admin_token(server: &str) -> Result<Option<Token>, ClientError> {
    let default = Path::new(DEFAULT_ADMIN_TOKEN);
    if default.exists() && is_local(server) {
        return Ok(Some(Token::from_file(default)?));
    }
    Ok(None)
}

/// Whether `server` is on this host (a loopback address or `localhost`): the only servers the
/// default token file is shown to.
fn is_local(server: &str) -> bool {
    let Ok(url) = Url::parse(server) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Runs one operation; the JSON to print.
pub async fn run(args: &ClientArgs) -> Result<Value, ClientError> {
    let client = http_client(args.ca_cert.as_deref())?;
    let token = token(args)?;
    let server = args.server.as_str();
    let segments = |id: u64, tail: &[&str]| {
        let id = id.to_string();
        let mut all = vec!["api", "v1", "members"];
        all.push(&id);
        all.extend_from_slice(tail);
        url(server, &all)
    };
    let json = |value: Value| Some(value.to_string().into_bytes());
    let (method, url, body) = match &args.op {
        ClientOp::State => (Method::GET, url(server, &["api", "v1", "state"])?, None),
        ClientOp::Members => (Method::GET, url(server, &["api", "v1", "members"])?, None),
        ClientOp::Append { command } => (
            Method::POST,
            url(server, &["api", "v1", "append"])?,
            json(json!({ "command": command })),
        ),
        ClientOp::Put { key, value } => (
            Method::PUT,
            url(server, &["api", "v1", "kv", key])?,
            Some(value.clone().into_bytes()),
        ),
        ClientOp::Delete { key } => (
            Method::DELETE,
            url(server, &["api", "v1", "kv", key])?,
            None,
        ),
        ClientOp::Get { key, stale } => {
            let mut url = url(server, &["api", "v1", "kv", key])?;
            if *stale {
                url.set_query(Some("stale=true"));
            }
            (Method::GET, url, None)
        }
        ClientOp::AddMember {
            id,
            raft_addr,
            http_addr,
        } => (
            Method::POST,
            url(server, &["api", "v1", "members"])?,
            json(json!({ "id": id, "raft_addr": raft_addr, "http_addr": http_addr })),
        ),
        ClientOp::RemoveMember { id } => (Method::DELETE, segments(*id, &[])?, None),
        ClientOp::SetAddress {
            id,
            raft_addr,
            http_addr,
        } => (
            Method::PUT,
            segments(*id, &["address"])?,
            json(json!({ "raft_addr": raft_addr, "http_addr": http_addr })),
        ),
        ClientOp::TransferLeader { to } => (
            Method::POST,
            url(server, &["api", "v1", "admin", "transfer-leader"])?,
            json(json!({ "to": to })),
        ),
        ClientOp::Snapshot => (
            Method::POST,
            url(server, &["api", "v1", "admin", "snapshot"])?,
            None,
        ),
    };
    let answer = send(&client, method, url.as_str(), token.as_ref(), body).await?;
    finish(&args.op, answer)
}

fn finish(op: &ClientOp, (status, bytes): (StatusCode, Bytes)) -> Result<Value, ClientError> {
    if !status.is_success() {
        return Err(ClientError::Status {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    if let ClientOp::Get { key, .. } = op {
        return Ok(json!({ "key": key, "value": String::from_utf8_lossy(&bytes) }));
    }
    Ok(serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_escaped_into_one_segment() {
        let url = url("http://127.0.0.1:8000/", &["api", "v1", "kv", "a/b c"]).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8000/api/v1/kv/a%2Fb%20c");
        assert!(super::url("not a url", &[]).is_err());
    }

    #[test]
    fn the_default_token_goes_to_this_host_only() {
        for local in [
            "http://127.0.0.1:8000",
            "https://localhost:1",
            "http://[::1]:80",
        ] {
            assert!(is_local(local), "{local}");
        }
        for remote in ["http://10.0.0.1:8000", "https://example.com", "nonsense"] {
            assert!(!is_local(remote), "{remote}");
        }
    }
}
