//! `raft-net client`: one request, following leader redirects, printing JSON.

use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};

/// Redirect hops followed before giving up (a leader change mid-request can add one).
const REDIRECTS_MAX: usize = 5;

/// `raft-net client` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Any node's HTTP URL; followers redirect to the leader.
    #[arg(long, env = "RAFT_SERVER", default_value = "http://127.0.0.1:8000")]
    pub server: String,
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

/// An HTTP client that follows redirects to the leader.
pub fn http_client() -> Result<reqwest::Client, ClientError> {
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::limited(REDIRECTS_MAX))
        .build()?)
}

/// Runs one operation; the JSON to print.
pub async fn run(args: &ClientArgs) -> Result<Value, ClientError> {
    let client = http_client()?;
    let server = args.server.as_str();
    let (method, url, body) = match &args.op {
        ClientOp::State => (Method::GET, url(server, &["api", "v1", "state"])?, None),
        ClientOp::Members => (Method::GET, url(server, &["api", "v1", "members"])?, None),
        ClientOp::Append { command } => (
            Method::POST,
            url(server, &["api", "v1", "append"])?,
            Some(json!({ "command": command }).to_string().into_bytes()),
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
    };
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    if !status.is_success() {
        return Err(ClientError::Status {
            status,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        });
    }
    if let ClientOp::Get { key, .. } = &args.op {
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
}
