//! `task-mcp serve`: the HTTP frontend. [`Server::build`] resolves the secret and binds the listener,
//! [`Server::run`] serves until its shutdown token is cancelled (then stops accepting, ends the event
//! streams and lets requests in flight finish), and [`router`] is the whole app for `oneshot` tests.
//!
//! Modules: `auth` (JWT, secret, API keys, rate limit, the guard), `errors` (the one error response),
//! `extract` (request parsing), `tasks` and `directory` (REST handlers), `sse` (the event stream),
//! `mcp` (MCP over Streamable HTTP), `health`, `metrics`, `openapi` (route table + document),
//! `hosts` (the Host names every route answers to), `middleware` (request id, limits, Origin and CORS).

pub mod auth;
pub mod caps;
mod conn;
pub mod dashboard;
pub mod directory;
pub mod errors;
pub mod extract;
pub mod health;
pub mod hosts;
pub mod mcp;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod origins;
#[cfg(test)]
mod properties;
mod schema;
pub mod sse;
pub mod tasks;
pub mod work;

use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::middleware::{from_fn_with_state, map_request};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};

use crate::cli::{
    DEFAULT_AUTH_FAILURES, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_STREAMS, DEFAULT_MAX_STREAMS_PER_USER, ServeArgs,
};
use crate::events::hub::Hub;
use crate::events::relay::RelayMode;
use crate::service::TaskService;
use crate::wiring::Parts;
use auth::oauth::{OAuthConfig, ResourceServer};
use auth::{FailureLimiter, Guard, JwtKeys, SecretSource};
use openapi::{Api, op};

/// The request body limit.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// Limits a deployment rarely changes (tests shorten some).
#[derive(Debug, Clone)]
pub struct Limits {
    pub body_bytes: usize,
    /// Time to produce a response head.
    pub request_timeout: Duration,
    /// Failed authentications per client address per window, before 429.
    pub auth_failures: u32,
    pub auth_window: Duration,
    /// The longest lifetime a JWT may claim (`exp - iat`, and `exp - now`); longer ones are refused.
    pub token_lifetime: Duration,
    /// Heartbeat comment interval on event streams.
    pub sse_heartbeat: Duration,
    /// How long an event stream may go without the client reading before it is dropped.
    pub slow_client: Duration,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
    /// How long a client has to send a request's headers, from the moment its connection opens or its
    /// previous answer ends: a silent, slow or idle connection is closed after it.
    pub header_timeout: Duration,
    /// Open connections, beyond which a new one is answered 503.
    pub max_connections: usize,
    /// Open event streams in all, and per user.
    pub max_streams: usize,
    pub max_streams_per_user: usize,
    /// How long a fetch of the OAuth issuer's metadata or keys may take.
    pub jwks_timeout: Duration,
    /// How soon the issuer's keys may be fetched again for a token naming a key not in the cache.
    pub jwks_refetch: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: BODY_LIMIT_BYTES,
            request_timeout: Duration::from_secs(30),
            auth_failures: DEFAULT_AUTH_FAILURES,
            auth_window: Duration::from_secs(60),
            token_lifetime: auth::jwt::DEFAULT_MAX_LIFETIME,
            sse_heartbeat: Duration::from_secs(15),
            slow_client: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_streams: DEFAULT_MAX_STREAMS,
            max_streams_per_user: DEFAULT_MAX_STREAMS_PER_USER,
            jwks_timeout: Duration::from_secs(5),
            jwks_refetch: Duration::from_secs(60),
        }
    }
}

/// What `serve` is told: where to listen, the secret, which origins and hosts to trust.
#[derive(Clone)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    pub jwt_secret: Option<String>,
    pub cors_origins: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub public_url: Option<String>,
    /// `/mcp` as an OAuth protected resource (`OAUTH_ISSUER`), beside API keys.
    pub oauth: Option<OAuthConfig>,
    pub limits: Limits,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("jwt_secret", &self.jwt_secret.as_ref().map(|_| "***"))
            .field("cors_origins", &self.cors_origins)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("public_url", &self.public_url)
            .field("oauth", &self.oauth)
            .field("limits", &self.limits)
            .finish()
    }
}

impl Config {
    pub fn from_args(args: ServeArgs) -> Self {
        let clean = |list: Vec<String>| -> Vec<String> {
            list.into_iter().map(|s| s.trim().trim_end_matches('/').to_owned()).filter(|s| !s.is_empty()).collect()
        };
        let public_url = args.public_url.map(|u| u.trim().trim_end_matches('/').to_owned()).filter(|u| !u.is_empty());
        let oauth = args.oauth_issuer.filter(|i| !i.trim().is_empty()).map(|issuer| OAuthConfig {
            issuer: issuer.trim().to_owned(),
            audience: args.oauth_audience.filter(|a| !a.trim().is_empty()),
            base_url: public_url.clone(),
        });
        Self {
            host: args.host,
            port: args.port,
            jwt_secret: args.jwt_secret,
            cors_origins: clean(args.cors_origins),
            allowed_hosts: clean(args.allowed_hosts),
            public_url,
            oauth,
            limits: Limits {
                max_connections: args.max_connections.max(1),
                max_streams: args.max_streams,
                max_streams_per_user: args.max_streams_per_user,
                auth_failures: args.auth_failures,
                ..Limits::default()
            },
        }
    }
}

/// The authentication parts of a server.
pub struct AuthState {
    pub jwt: JwtKeys,
    pub limiter: FailureLimiter,
    /// With `OAUTH_ISSUER`: `/mcp` as a protected resource.
    pub oauth: Option<ResourceServer>,
}

/// Everything a handler may need, cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub parts: Parts,
    pub service: TaskService,
    pub auth: AuthState,
    pub hub: Arc<Hub>,
    pub metrics: metrics::Metrics,
    /// The open event streams, capped.
    pub streams: caps::StreamCaps,
    pub config: Config,
    /// Cancelled when the server stops: event streams end.
    pub shutdown: CancellationToken,
    openapi: OnceLock<serde_json::Value>,
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// The parts of a server over `app`, signing with `secret`. Starts the live hub (which stops with
    /// `shutdown`).
    pub fn new(parts: Parts, config: Config, secret: &[u8], shutdown: CancellationToken) -> anyhow::Result<Self> {
        let jwt = JwtKeys::new(secret)?.with_max_lifetime(config.limits.token_lifetime);
        let limiter = FailureLimiter::new(config.limits.auth_failures, config.limits.auth_window);
        let oauth = match &config.oauth {
            Some(oauth) => {
                let bound = format!("http://{}", SocketAddr::new(config.host, config.port));
                let limits = &config.limits;
                Some(ResourceServer::new(oauth, &bound, limits.jwks_timeout, limits.jwks_refetch)?)
            }
            None => None,
        };
        let hub = parts.start_hub(shutdown.clone());
        let metrics = metrics::Metrics::new({
            let (hub, store) = (hub.clone(), parts.store.clone());
            move || metrics::Live { sse_clients: hub.subscriber_count(), pool: store.pool_status() }
        });
        Ok(AppState(Arc::new(Inner {
            service: parts.service.clone(),
            parts,
            auth: AuthState { jwt, limiter, oauth },
            hub,
            metrics,
            streams: caps::StreamCaps::new(config.limits.max_streams, config.limits.max_streams_per_user),
            config,
            shutdown,
            openapi: OnceLock::new(),
        })))
    }
}

/// The REST API's route table (see [`openapi`]): every route, its guard, and its document entry.
pub fn api(state: AppState) -> Api {
    use Method as M;
    let task_errors: &'static [u16] = &[404, 422, 503];
    let write_errors: &'static [u16] = &[400, 404, 409, 412, 413, 415, 422, 503];
    Api::new(state)
        .add(
            op(M::GET, "/api/tasks", "listTasks", "List tasks (newest change first), filtered, one page")
                .query::<tasks::ListQuery>()
                .ok::<crate::wire::TaskPageJson>(200)
                .errors(&[422, 503]),
            tasks::list,
        )
        .add(
            op(
                M::POST,
                "/api/tasks",
                "createTask",
                "Create a task (201 + Location); Idempotency-Key makes it retry-safe (409 when the key already made a different task)",
            )
            .body::<tasks::CreateTaskBody>()
            .ok::<crate::wire::TaskJson>(201)
            .etag()
            .errors(&[400, 409, 413, 415, 422, 503]),
            tasks::create,
        )
        .add(
            op(
                M::GET,
                "/api/tasks/stream",
                "streamEvents",
                "Live events (Server-Sent Events), resumable with Last-Event-ID",
            )
            .guard(Guard::JwtOrQuery)
            .query::<sse::StreamQuery>()
            .event_stream()
            .errors(&[403, 422, 503]),
            sse::stream,
        )
        .add(
            op(
                M::POST,
                "/api/tasks/stream/ticket",
                "streamTicket",
                "A stream ticket: a token valid for 60 s that opens the event stream (as access_token) and nothing \
                 else, so the sign-in token stays out of URLs",
            )
            .ok::<sse::StreamTicketJson>(200)
            .errors(&[503]),
            sse::ticket,
        )
        .add(
            op(
                M::POST,
                "/api/tasks/claim",
                "claimNextTask",
                "Claim the next ready task for the caller's credential (highest priority, then oldest); task null \
                 and a reason when none is ready",
            )
            .optional_body::<work::ClaimBody>()
            .ok::<crate::wire::ClaimedJson>(200)
            .errors(&[400, 413, 415, 422, 503]),
            work::claim_next,
        )
        .add(
            op(
                M::POST,
                "/api/tasks/{id}/claim",
                "claimTask",
                "Claim a task (or renew your claim's lease); 409 already_claimed when another session holds it, \
                 claim_lost when your lease ran out",
            )
            .optional_body::<work::ClaimOneBody>()
            .ok::<crate::wire::TaskJson>(200)
            .etag()
            .errors(write_errors),
            work::claim,
        )
        .add(
            op(
                M::POST,
                "/api/tasks/{id}/release",
                "releaseTask",
                "Give back a task you hold (not_started, or blocked); 409 claim_lost when you do not hold it",
            )
            .optional_body::<work::ReleaseBody>()
            .ok::<crate::wire::TaskJson>(200)
            .etag()
            .errors(write_errors),
            work::release,
        )
        .add(
            op(M::GET, "/api/tasks/{id}/links", "taskLinks", "The tasks it waits on, waiting on it, its subtasks, its parent")
                .ok::<work::LinksJson>(200)
                .errors(task_errors),
            work::links,
        )
        .add(
            op(M::GET, "/api/tasks/{id}", "getTask", "One task, with its version as ETag")
                .ok::<crate::wire::TaskJson>(200)
                .etag()
                .errors(task_errors),
            tasks::get,
        )
        .add(
            op(M::PATCH, "/api/tasks/{id}", "updateTask", "Change some fields; null clears a nullable one")
                .body::<tasks::PatchTaskBody>()
                .ok::<crate::wire::TaskJson>(200)
                .etag()
                .errors(write_errors),
            tasks::patch,
        )
        .add(
            op(M::DELETE, "/api/tasks/{id}", "deleteTask", "Delete a task (soft): returns it as it was deleted")
                .optional_body::<tasks::DeleteBody>()
                .ok::<crate::wire::TaskJson>(200)
                .etag()
                .errors(write_errors),
            tasks::delete,
        )
        .add(
            op(M::PUT, "/api/tasks/{id}/status", "updateTaskStatus", "Set the status, with an optional comment")
                .body::<tasks::StatusBody>()
                .ok::<crate::wire::TaskJson>(200)
                .etag()
                .errors(write_errors),
            tasks::put_status,
        )
        .add(
            op(M::GET, "/api/tasks/{id}/comments", "listComments", "The task's comments, oldest first")
                .ok::<Vec<crate::wire::CommentJson>>(200)
                .errors(task_errors),
            tasks::list_comments,
        )
        .add(
            op(M::POST, "/api/tasks/{id}/comments", "addComment", "Comment on a task (the author is the caller)")
                .body::<tasks::CommentBody>()
                .ok::<crate::wire::CommentJson>(201)
                .errors(&[400, 404, 413, 415, 422, 503]),
            tasks::add_comment,
        )
        .add(
            op(M::GET, "/api/tasks/{id}/history", "taskHistory", "Who changed what and when, oldest first")
                .ok::<Vec<crate::wire::HistoryJson>>(200)
                .errors(task_errors),
            tasks::history,
        )
        .add(
            op(M::GET, "/api/repositories", "listRepositories", "Repositories, with their open task counts")
                .ok::<Vec<crate::wire::RepositoryJson>>(200)
                .errors(&[503]),
            directory::repositories,
        )
        .add(
            op(
                M::PATCH,
                "/api/repositories/{name}",
                "updateRepository",
                "Change a repository's task key prefix (refused if taken); its old keys keep naming the same tasks",
            )
            .body::<directory::RepositoryBody>()
            .ok::<crate::wire::RepositoryJson>(200)
            .errors(&[400, 404, 413, 415, 422, 503]),
            directory::update_repository,
        )
        .add(
            op(M::GET, "/api/users", "listUsers", "Users").ok::<Vec<crate::wire::UserJson>>(200).errors(&[503]),
            directory::users,
        )
        .add(
            op(M::GET, "/api/me", "me", "The caller, as the credential names them")
                .ok::<crate::wire::UserJson>(200)
                .errors(&[503]),
            directory::me,
        )
        .add(op(M::GET, "/api/openapi.json", "openapi", "This document").guard(Guard::Public).text(), openapi_document)
        .add(
            op(M::GET, "/health", "health", "Whether the database and Redis answer (503 when the database does not)")
                .guard(Guard::Public)
                .ok::<health::HealthJson>(200)
                .errors(&[503]),
            health::health,
        )
        .add(op(M::GET, "/metrics", "metrics", "Prometheus metrics").guard(Guard::Public).text(), metrics::metrics)
}

async fn openapi_document(axum::extract::State(state): axum::extract::State<AppState>) -> Json<serde_json::Value> {
    Json(state.openapi.get().cloned().unwrap_or_default())
}

/// The whole app: REST, SSE, `/mcp`, health and metrics, behind the common layers.
pub fn router(state: AppState) -> Router {
    let (api_routes, operations) = api(state.clone()).into_parts();
    let _ = state.openapi.set(openapi::document(&operations));
    let limits = &state.config.limits;
    let mut app = api_routes.merge(mcp::routes(&state)).merge(dashboard::routes());
    if state.auth.oauth.is_some() {
        // Only with OAuth: without it the metadata paths are unknown routes (404), as before.
        app = app
            .route(auth::oauth::METADATA_PATH, axum::routing::get(auth::oauth::metadata))
            .route(auth::oauth::METADATA_PATH_MCP, axum::routing::get(auth::oauth::metadata));
    }
    app.fallback(errors::fallback)
        .method_not_allowed_fallback(|| async { errors::ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(limits.body_bytes))
        .layer(from_fn_with_state(state.clone(), middleware::time_limit))
        .layer(from_fn_with_state(state.clone(), metrics::track))
        .layer(middleware::cors(Arc::new(state.config.clone())))
        .layer(from_fn_with_state(state.clone(), middleware::guard_origin))
        .layer(from_fn_with_state(Arc::<[String]>::from(hosts::allowed(&state.config)), hosts::guard))
        .layer(from_fn_with_state(state.clone(), middleware::limit_body))
        .layer(middleware::security_headers())
        .layer(middleware::trace())
        .layer(PropagateRequestIdLayer::new(middleware::REQUEST_ID))
        .layer(SetRequestIdLayer::new(middleware::REQUEST_ID, middleware::NewRequestId))
        .layer(map_request(middleware::drop_unsafe_request_id))
        .with_state(state)
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    listener: TcpListener,
    state: AppState,
    secret_source: SecretSource,
    shutdown: CancellationToken,
}

impl Server {
    /// Resolves the JWT secret (refusing to start without a usable one), binds the listener, and
    /// builds the state. Port 0 picks a free port.
    pub async fn build(parts: Parts, mut config: Config) -> anyhow::Result<Server> {
        let (secret, secret_source) =
            auth::resolve_secret(config.jwt_secret.as_deref(), config.host, &parts.settings.data_dir)?;
        let address = SocketAddr::new(config.host, config.port);
        let listener = TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
        if let Some(oauth) = config.oauth.as_mut().filter(|o| o.base_url.is_none()) {
            // Without PUBLIC_URL the resource is named by the address bound (the port 0 picked).
            oauth.base_url = Some(format!("http://{}", listener.local_addr()?));
        }
        let shutdown = CancellationToken::new();
        let state = AppState::new(parts, config, &secret, shutdown.clone())?;
        Ok(Server { listener, state, secret_source, shutdown })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::new(self.state.config.host, self.state.config.port))
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The base URL people open: `PUBLIC_URL`, else the bound address.
    pub fn base_url(&self) -> String {
        match &self.state.config.public_url {
            Some(url) => url.clone(),
            None => format!("http://{}", self.local_addr()),
        }
    }

    /// With a generated secret (local use): the dashboard URL, signed in as the process user.
    pub async fn dashboard_link(&self) -> Option<String> {
        if !matches!(self.secret_source, SecretSource::Generated(_)) {
            return None;
        }
        let user = self.state.parts.settings.user.clone();
        let actor =
            tokio::task::spawn_blocking(move || crate::config::resolve_actor(user.as_deref())).await.ok()?.ok()?;
        let token = self.state.auth.jwt.issue(&actor.email, Duration::from_secs(7 * 86_400)).ok()?;
        Some(format!("{}/#token={token}", self.base_url()))
    }

    /// Serves until `shutdown` is cancelled; then stops accepting, ends event streams, and waits (at
    /// most the grace period) for requests in flight.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Server { listener, state, shutdown: inner, .. } = self;
        let parts = state.parts.clone();
        let relay = parts.spawn_relay(RelayMode::Sweeping, inner.clone());
        if relay.is_none() {
            parts.spawn_pruner(inner.clone());
        }
        parts.spawn_lease_sweeper(inner.clone());
        // Migrate in the background: a database that is down must not keep the server from starting
        // (it answers 503 until the database is back).
        tokio::spawn({
            let store = parts.store.clone();
            async move {
                if let Err(err) = store.migrate().await {
                    tracing::warn!("the database is not ready yet: {err}");
                }
            }
        });
        let grace = state.config.limits.shutdown_grace;
        let patience = state.config.limits.slow_client;
        let serving = conn::Serving {
            header_timeout: state.config.limits.header_timeout,
            max_connections: state.config.limits.max_connections,
        };
        let tune = move |tcp: &tokio::net::TcpStream| {
            // Answers and events are small writes: each goes out at once rather than waiting for the
            // acknowledgement of the one before (Nagle's algorithm), as latency matters more than packets.
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!("cannot set TCP_NODELAY on a connection: {err}");
            }
            cut_off_after(tcp, patience)
        };
        tokio::spawn({
            let inner = inner.clone();
            async move {
                shutdown.cancelled().await;
                tracing::info!("shutting down: no new connections; ending event streams");
                inner.cancel();
            }
        });
        let server = conn::serve(listener, router(state), serving, tune, inner.clone());
        tokio::select! {
            _ = server => {}
            _ = async { inner.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!("requests still in flight after {} s: stopping anyway", grace.as_secs());
            }
        }
        if let Some(relay) = relay {
            let _ = tokio::time::timeout(Duration::from_secs(3), relay).await;
        }
        Ok(())
    }
}

/// Has the kernel close a connection whose sent data stays unacknowledged, or unsent because the
/// client stopped reading (a zero window), for `patience` (`TCP_USER_TIMEOUT`). The event stream drops
/// the subscription of a client that stops reading, but the connection itself would stay open for
/// as long as the client keeps it (the server's last write waits on the full socket forever).
fn cut_off_after(tcp: &tokio::net::TcpStream, patience: Duration) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(err) = socket2::SockRef::from(tcp).set_tcp_user_timeout(Some(patience)) {
        tracing::debug!("cannot set TCP_USER_TIMEOUT on a connection: {err}");
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = (tcp, patience);
}

/// `task-mcp serve`.
pub async fn serve(parts: Parts, args: ServeArgs) -> anyhow::Result<()> {
    crate::capacity::prepare_for_many_connections();
    let server = Server::build(parts, Config::from_args(args)).await?;
    let addr = server.local_addr();
    let store = server.state().parts.store.info();
    let bus = if server.state().parts.publisher.is_some() { "Redis Streams" } else { "the store's event log" };
    tracing::info!("serving on http://{addr} (store: {} {}; live events from {bus})", store.kind, store.location);
    if !addr.ip().is_loopback()
        && server.state().config.allowed_hosts.is_empty()
        && server.state().config.public_url.is_none()
    {
        tracing::warn!(
            "only loopback Host headers are answered: set ALLOWED_HOSTS (or PUBLIC_URL) to the names clients use"
        );
    }
    if let Some(link) = server.dashboard_link().await {
        // The point of this line is to be opened by the person who started the server: stderr, not
        // the log, so it stands out (and stdout stays clean).
        eprintln!("\n  Dashboard (signed in for 7 days): {link}\n");
    }
    let shutdown = CancellationToken::new();
    tokio::spawn({
        let shutdown = shutdown.clone();
        async move {
            shutdown_signal().await;
            shutdown.cancel();
        }
    });
    server.run(shutdown).await
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
