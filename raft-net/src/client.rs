//! `raft-net client`: one request to any route of the API, following leader redirects,
//! printing the answer as JSON or as a table (`--output json|table`). Every route of the
//! OpenAPI document has an operation (a test checks it against the document).
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

pub mod table;

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
    /// How to print answers: pretty JSON, or aligned tables for people.
    #[arg(long, value_enum, default_value_t = Output::Json)]
    pub output: Output,
    #[command(subcommand)]
    pub op: ClientOp,
}

/// How `raft-net client` prints an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Json,
    Table,
}

/// `?client_id=&seq=` on a write: exactly-once within a session from `open-session`.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Session {
    /// The session's id (from `open-session`).
    #[arg(long, requires = "seq")]
    pub client_id: Option<u64>,
    /// The write's number in the session: 1, 2, 3, ...
    #[arg(long, requires = "client_id")]
    pub seq: Option<u64>,
}

/// What to ask.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ClientOp {
    /// Whether the node's driver loop answers (`GET /healthz`).
    Health,
    /// The node's Prometheus metrics (`GET /metrics`), as text.
    Metrics,
    /// The node's state and a page of its log (`GET /api/v1/state`).
    State {
        /// The page's first log index.
        #[arg(long)]
        from: Option<u64>,
        /// Entries in the page at most (0: the status only).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Print the node's status events as they happen (`GET /api/v1/events`).
    Events {
        /// Stop after this many events (default: until the stream ends).
        #[arg(long)]
        count: Option<usize>,
    },
    /// The API's OpenAPI document (`GET /api/v1/openapi.json`).
    Openapi,
    /// Check that the dashboard and its assets are served (`GET /ui`, `/ui/*`); prints its URL.
    Ui,
    /// Append a log command (`POST /api/v1/append`).
    Append {
        command: String,
        #[command(flatten)]
        session: Session,
    },
    /// Set a key (`PUT /api/v1/kv/KEY`).
    Put {
        key: String,
        value: String,
        #[command(flatten)]
        session: Session,
    },
    /// Read a key, linearizably unless --stale (`GET /api/v1/kv/KEY`).
    Get {
        key: String,
        #[arg(long)]
        stale: bool,
    },
    /// Delete a key (`DELETE /api/v1/kv/KEY`).
    Delete {
        key: String,
        #[command(flatten)]
        session: Session,
    },
    /// Open a client session for exactly-once writes (`POST /api/v1/sessions`).
    OpenSession,
    /// The cluster members (`GET /api/v1/members`).
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
    /// Save a consistent backup of the cluster to FILE (`GET /api/v1/backup`; admin); the same
    /// as `raft-net snapshot save FILE`.
    Backup { file: PathBuf },
    /// Drop all of the node's peer traffic (`POST /api/v1/admin/isolate`, or `/block` with
    /// --alias; admin).
    Isolate {
        #[arg(long)]
        alias: bool,
    },
    /// Let the node's peer traffic flow again (`POST /api/v1/admin/heal`, or `/unblock` with
    /// --alias; admin).
    Heal {
        #[arg(long)]
        alias: bool,
    },
    /// The seed KV store's compatibility routes.
    #[command(subcommand)]
    Seed(SeedOp),
}

/// The seed KV store's routes (`GET /set`, `/get`, `/remove`, `/join`, `/block`, `/unblock`).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum SeedOp {
    /// `GET /set?key=&value=`.
    Set {
        key: String,
        value: String,
        #[command(flatten)]
        session: Session,
    },
    /// `GET /get?key=`.
    Get { key: String },
    /// `GET /remove?key=`.
    Remove {
        key: String,
        #[command(flatten)]
        session: Session,
    },
    /// `GET /join?nodeId=&raftPort=` (admin).
    Join {
        node_id: String,
        raft_port: u16,
        #[arg(long)]
        http_port: Option<u16>,
        #[arg(long)]
        host: Option<String>,
    },
    /// `GET /block` (`POST` with --post; admin).
    Block {
        #[arg(long)]
        post: bool,
    },
    /// `GET /unblock` (`POST` with --post; admin).
    Unblock {
        #[arg(long)]
        post: bool,
    },
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
    #[error("cannot write the answer: {0}")]
    Output(#[source] std::io::Error),
    #[error("backup: {0}")]
    Backup(String),
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

/// One request an operation makes: its method, URL, body, and the route it stands for in
/// the OpenAPI document (method and path template).
#[derive(Debug)]
struct Call {
    method: Method,
    url: Url,
    body: Option<Vec<u8>>,
}

impl ClientOp {
    /// The routes of the OpenAPI document this operation calls, as (method, path template).
    #[must_use]
    pub fn routes(&self) -> Vec<(&'static str, &'static str)> {
        match self {
            ClientOp::Health => vec![("GET", "/healthz")],
            ClientOp::Metrics => vec![("GET", "/metrics")],
            ClientOp::State { .. } => vec![("GET", "/api/v1/state")],
            ClientOp::Events { .. } => vec![("GET", "/api/v1/events")],
            ClientOp::Openapi => vec![("GET", "/api/v1/openapi.json")],
            ClientOp::Ui => UI_ASSETS.iter().map(|path| ("GET", *path)).collect(),
            ClientOp::Append { .. } => vec![("POST", "/api/v1/append")],
            ClientOp::Put { .. } => vec![("PUT", "/api/v1/kv/{key}")],
            ClientOp::Get { .. } => vec![("GET", "/api/v1/kv/{key}")],
            ClientOp::Delete { .. } => vec![("DELETE", "/api/v1/kv/{key}")],
            ClientOp::OpenSession => vec![("POST", "/api/v1/sessions")],
            ClientOp::Members => vec![("GET", "/api/v1/members")],
            ClientOp::AddMember { .. } => vec![("POST", "/api/v1/members")],
            ClientOp::RemoveMember { .. } => vec![("DELETE", "/api/v1/members/{id}")],
            ClientOp::SetAddress { .. } => vec![("PUT", "/api/v1/members/{id}/address")],
            ClientOp::TransferLeader { .. } => vec![("POST", "/api/v1/admin/transfer-leader")],
            ClientOp::Snapshot => vec![("POST", "/api/v1/admin/snapshot")],
            ClientOp::Backup { .. } => vec![("GET", "/api/v1/backup")],
            ClientOp::Isolate { alias: false } => vec![("POST", "/api/v1/admin/isolate")],
            ClientOp::Isolate { alias: true } => vec![("POST", "/api/v1/admin/block")],
            ClientOp::Heal { alias: false } => vec![("POST", "/api/v1/admin/heal")],
            ClientOp::Heal { alias: true } => vec![("POST", "/api/v1/admin/unblock")],
            ClientOp::Seed(seed) => vec![match seed {
                SeedOp::Set { .. } => ("GET", "/set"),
                SeedOp::Get { .. } => ("GET", "/get"),
                SeedOp::Remove { .. } => ("GET", "/remove"),
                SeedOp::Join { .. } => ("GET", "/join"),
                SeedOp::Block { post: false } => ("GET", "/block"),
                SeedOp::Block { post: true } => ("POST", "/block"),
                SeedOp::Unblock { post: false } => ("GET", "/unblock"),
                SeedOp::Unblock { post: true } => ("POST", "/unblock"),
            }],
        }
    }
}

/// The dashboard's page and assets.
const UI_ASSETS: [&str; 4] = [
    "/ui",
    "/ui/render.js",
    "/ui/dashboard.js",
    "/ui/dashboard.css",
];

/// A URL with a query built from `pairs` (left out when `None`).
fn with_query(mut url: Url, pairs: &[(&str, Option<String>)]) -> Url {
    let present: Vec<_> = pairs
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|value| (*name, value.as_str())))
        .collect();
    if !present.is_empty() {
        url.query_pairs_mut().extend_pairs(present);
    }
    url
}

impl Session {
    fn pairs(self) -> [(&'static str, Option<String>); 2] {
        [
            ("client_id", self.client_id.map(|id| id.to_string())),
            ("seq", self.seq.map(|seq| seq.to_string())),
        ]
    }
}

/// The request of every operation but `events` and `ui`, which make their own.
fn call(server: &str, op: &ClientOp) -> Result<Call, ClientError> {
    let api = |tail: &[&str]| {
        let mut segments = vec!["api", "v1"];
        segments.extend_from_slice(tail);
        url(server, &segments)
    };
    let json = |value: Value| Some(value.to_string().into_bytes());
    let member = |id: u64, tail: &[&str]| {
        let id = id.to_string();
        let mut segments = vec!["members", id.as_str()];
        segments.extend_from_slice(tail);
        api(&segments)
    };
    let (method, url, body) = match op {
        ClientOp::Health => (Method::GET, url(server, &["healthz"])?, None),
        ClientOp::Metrics => (Method::GET, url(server, &["metrics"])?, None),
        ClientOp::State { from, limit } => (
            Method::GET,
            with_query(
                api(&["state"])?,
                &[
                    ("from", from.map(|from| from.to_string())),
                    ("limit", limit.map(|limit| limit.to_string())),
                ],
            ),
            None,
        ),
        ClientOp::Events { .. } => (Method::GET, api(&["events"])?, None),
        ClientOp::Openapi => (Method::GET, api(&["openapi.json"])?, None),
        ClientOp::Ui => (Method::GET, url(server, &["ui"])?, None),
        ClientOp::Backup { .. } => (Method::GET, api(&["backup"])?, None),
        ClientOp::Members => (Method::GET, api(&["members"])?, None),
        ClientOp::Append { command, session } => (
            Method::POST,
            with_query(api(&["append"])?, &session.pairs()),
            json(json!({ "command": command })),
        ),
        ClientOp::Put {
            key,
            value,
            session,
        } => (
            Method::PUT,
            with_query(api(&["kv", key])?, &session.pairs()),
            Some(value.clone().into_bytes()),
        ),
        ClientOp::Delete { key, session } => (
            Method::DELETE,
            with_query(api(&["kv", key])?, &session.pairs()),
            None,
        ),
        ClientOp::Get { key, stale } => (
            Method::GET,
            with_query(
                api(&["kv", key])?,
                &[("stale", stale.then(|| "true".to_string()))],
            ),
            None,
        ),
        ClientOp::OpenSession => (Method::POST, api(&["sessions"])?, None),
        ClientOp::AddMember {
            id,
            raft_addr,
            http_addr,
        } => (
            Method::POST,
            api(&["members"])?,
            json(json!({ "id": id, "raft_addr": raft_addr, "http_addr": http_addr })),
        ),
        ClientOp::RemoveMember { id } => (Method::DELETE, member(*id, &[])?, None),
        ClientOp::SetAddress {
            id,
            raft_addr,
            http_addr,
        } => (
            Method::PUT,
            member(*id, &["address"])?,
            json(json!({ "raft_addr": raft_addr, "http_addr": http_addr })),
        ),
        ClientOp::TransferLeader { to } => (
            Method::POST,
            api(&["admin", "transfer-leader"])?,
            json(json!({ "to": to })),
        ),
        ClientOp::Snapshot => (Method::POST, api(&["admin", "snapshot"])?, None),
        ClientOp::Isolate { alias } => {
            let route = if *alias { "block" } else { "isolate" };
            (Method::POST, api(&["admin", route])?, None)
        }
        ClientOp::Heal { alias } => {
            let route = if *alias { "unblock" } else { "heal" };
            (Method::POST, api(&["admin", route])?, None)
        }
        ClientOp::Seed(seed) => return seed_call(server, seed),
    };
    Ok(Call { method, url, body })
}

fn seed_call(server: &str, op: &SeedOp) -> Result<Call, ClientError> {
    let get = |path: &str, pairs: &[(&str, Option<String>)]| -> Result<Call, ClientError> {
        Ok(Call {
            method: Method::GET,
            url: with_query(url(server, &[path])?, pairs),
            body: None,
        })
    };
    let key = |key: &str| ("key", Some(key.to_string()));
    match op {
        SeedOp::Set {
            key: k,
            value,
            session,
        } => {
            let [client_id, seq] = session.pairs();
            get(
                "set",
                &[key(k), ("value", Some(value.clone())), client_id, seq],
            )
        }
        SeedOp::Get { key: k } => get("get", &[key(k)]),
        SeedOp::Remove { key: k, session } => {
            let [client_id, seq] = session.pairs();
            get("remove", &[key(k), client_id, seq])
        }
        SeedOp::Join {
            node_id,
            raft_port,
            http_port,
            host,
        } => get(
            "join",
            &[
                ("nodeId", Some(node_id.clone())),
                ("raftPort", Some(raft_port.to_string())),
                ("httpPort", http_port.map(|port| port.to_string())),
                ("host", host.clone()),
            ],
        ),
        SeedOp::Block { post } | SeedOp::Unblock { post } => {
            let path = if matches!(op, SeedOp::Block { .. }) {
                "block"
            } else {
                "unblock"
            };
            Ok(Call {
                method: if *post { Method::POST } else { Method::GET },
                url: url(server, &[path])?,
                body: None,
            })
        }
    }
}

/// Runs one operation and writes its answer to `out` in `args.output`'s form.
pub async fn run(
    args: &ClientArgs,
    out: &mut (dyn std::io::Write + Send),
) -> Result<(), ClientError> {
    let client = http_client(args.ca_cert.as_deref())?;
    let token = token(args)?;
    let server = args.server.as_str();
    match &args.op {
        ClientOp::Events { count } => {
            return events(&client, server, token.as_ref(), *count, args.output, out).await
        }
        ClientOp::Ui => return ui(&client, server, token.as_ref(), args.output, out).await,
        ClientOp::Backup { file } => {
            let summary =
                crate::backup::save(server, token.as_ref(), args.ca_cert.as_deref(), file)
                    .await
                    .map_err(|error| match error {
                        crate::backup::BackupError::Client(error) => error,
                        other => ClientError::Backup(other.to_string()),
                    })?
                    .summary();
            return print(out, &summary, args.output);
        }
        _ => {}
    }
    let Call { method, url, body } = call(server, &args.op)?;
    let answer = send(&client, method, url.as_str(), token.as_ref(), body).await?;
    let value = finish(&args.op, answer)?;
    print(out, &value, args.output)
}

fn print(
    out: &mut (dyn std::io::Write + Send),
    value: &Value,
    output: Output,
) -> Result<(), ClientError> {
    let text = match (output, value) {
        // Text answers (metrics) print as they came.
        (_, Value::String(text)) => text.clone(),
        (Output::Json, value) => serde_json::to_string_pretty(value).unwrap_or_default(),
        (Output::Table, value) => table::render(value),
    };
    writeln!(out, "{}", text.trim_end()).map_err(ClientError::Output)
}

/// The answer's JSON, or its text (a key's value, the metrics); an error status is an error.
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
    if let ClientOp::Metrics = op {
        return Ok(Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    }
    Ok(serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())))
}

/// `events`: prints each event as it arrives, one line each (JSON: `{"event","data"}`).
async fn events(
    client: &reqwest::Client,
    server: &str,
    token: Option<&Token>,
    count: Option<usize>,
    output: Output,
    out: &mut (dyn std::io::Write + Send),
) -> Result<(), ClientError> {
    let url = url(server, &["api", "v1", "events"])?;
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.header(reqwest::header::AUTHORIZATION, token.bearer());
    }
    let mut response = request.send().await?;
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        return Err(ClientError::Status { status, body });
    }
    let mut buffer = Vec::new();
    let mut printed = 0;
    while count.is_none_or(|count| printed < count) {
        let Some(chunk) = response.chunk().await? else {
            break;
        };
        buffer.extend_from_slice(&chunk);
        while let Some(end) = buffer.windows(2).position(|pair| pair == b"\n\n") {
            let frame: Vec<u8> = buffer.drain(..end + 2).collect();
            let Some((event, data)) = sse_frame(&String::from_utf8_lossy(&frame)) else {
                continue;
            };
            let line = match output {
                Output::Json => json!({ "event": event, "data": data }).to_string(),
                Output::Table => format!("{event}  {}", table::inline(&data)),
            };
            writeln!(out, "{line}").map_err(ClientError::Output)?;
            out.flush().map_err(ClientError::Output)?;
            printed += 1;
            if count.is_some_and(|count| printed >= count) {
                break;
            }
        }
    }
    Ok(())
}

/// The event name and JSON data of one server-sent event (comments and keep-alives: `None`).
fn sse_frame(frame: &str) -> Option<(String, Value)> {
    let mut event = "message".to_string();
    let mut data = Vec::new();
    for line in frame.lines() {
        if let Some(name) = line.strip_prefix("event:") {
            event = name.trim().to_string();
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    if data.is_empty() {
        return None;
    }
    let data = data.join("\n");
    Some((
        event,
        serde_json::from_str(&data).unwrap_or(Value::String(data)),
    ))
}

/// `ui`: fetches the page and each asset; prints the dashboard's URL and what was served.
async fn ui(
    client: &reqwest::Client,
    server: &str,
    token: Option<&Token>,
    output: Output,
    out: &mut (dyn std::io::Write + Send),
) -> Result<(), ClientError> {
    let mut assets = Vec::new();
    for path in UI_ASSETS {
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let url = url(server, &segments)?;
        let (status, body) = send(client, Method::GET, url.as_str(), token, None).await?;
        if !status.is_success() {
            return Err(ClientError::Status {
                status,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        assets.push(json!({ "path": path, "bytes": body.len() }));
    }
    let value = json!({ "dashboard": url(server, &["ui"])?.to_string(), "assets": assets });
    print(out, &value, output)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of every operation, each way it can call (aliases, GET and POST).
    fn every_operation() -> Vec<ClientOp> {
        let session = Session::default();
        let key = || "k".to_string();
        let mut all = vec![
            ClientOp::Health,
            ClientOp::Metrics,
            ClientOp::State {
                from: None,
                limit: None,
            },
            ClientOp::Events { count: Some(1) },
            ClientOp::Openapi,
            ClientOp::Ui,
            ClientOp::Append {
                command: "c".to_string(),
                session,
            },
            ClientOp::Put {
                key: key(),
                value: "v".to_string(),
                session,
            },
            ClientOp::Get {
                key: key(),
                stale: false,
            },
            ClientOp::Delete {
                key: key(),
                session,
            },
            ClientOp::OpenSession,
            ClientOp::Members,
            ClientOp::AddMember {
                id: 4,
                raft_addr: String::new(),
                http_addr: String::new(),
            },
            ClientOp::RemoveMember { id: 4 },
            ClientOp::SetAddress {
                id: 4,
                raft_addr: String::new(),
                http_addr: String::new(),
            },
            ClientOp::TransferLeader { to: 2 },
            ClientOp::Snapshot,
            ClientOp::Backup {
                file: PathBuf::from("backup.raftbak"),
            },
            ClientOp::Seed(SeedOp::Set {
                key: key(),
                value: "v".to_string(),
                session,
            }),
            ClientOp::Seed(SeedOp::Get { key: key() }),
            ClientOp::Seed(SeedOp::Remove {
                key: key(),
                session,
            }),
            ClientOp::Seed(SeedOp::Join {
                node_id: "4".to_string(),
                raft_port: 9003,
                http_port: None,
                host: None,
            }),
        ];
        for alias in [false, true] {
            all.push(ClientOp::Isolate { alias });
            all.push(ClientOp::Heal { alias });
        }
        for post in [false, true] {
            all.push(ClientOp::Seed(SeedOp::Block { post }));
            all.push(ClientOp::Seed(SeedOp::Unblock { post }));
        }
        all
    }

    #[tokio::test]
    async fn every_route_of_the_openapi_document_has_a_client_operation() {
        let document = crate::http::tests::document(crate::auth::Tokens::default()).await;
        let mut documented: Vec<(String, String)> = crate::http::tests::operations(&document)
            .into_iter()
            .map(|(method, path, _)| (method, path))
            .collect();
        documented.sort();
        let mut called: Vec<(String, String)> = every_operation()
            .iter()
            .flat_map(ClientOp::routes)
            .map(|(method, path)| (method.to_string(), path.to_string()))
            .collect();
        called.sort();
        called.dedup();
        assert_eq!(called, documented);
    }

    #[test]
    fn each_operation_calls_the_route_it_names() {
        let server = "http://127.0.0.1:8000";
        for op in every_operation() {
            if matches!(op, ClientOp::Ui) {
                continue;
            }
            let call = call(server, &op).unwrap();
            let [(method, template)] = op.routes()[..] else {
                panic!("{op:?} calls one route");
            };
            assert_eq!(call.method.as_str(), method, "{op:?}");
            // The template's {key} and {id} are the sample's k and 4.
            let path = template.replace("{key}", "k").replace("{id}", "4");
            assert_eq!(call.url.path(), path, "{op:?}");
        }
        let sessioned = ClientOp::Put {
            key: "a b".to_string(),
            value: "v".to_string(),
            session: Session {
                client_id: Some(7),
                seq: Some(2),
            },
        };
        assert_eq!(
            call(server, &sessioned).unwrap().url.as_str(),
            "http://127.0.0.1:8000/api/v1/kv/a%20b?client_id=7&seq=2"
        );
        let join = ClientOp::Seed(SeedOp::Join {
            node_id: "n4".to_string(),
            raft_port: 9003,
            http_port: Some(8003),
            host: None,
        });
        assert_eq!(
            call(server, &join).unwrap().url.as_str(),
            "http://127.0.0.1:8000/join?nodeId=n4&raftPort=9003&httpPort=8003"
        );
    }

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
