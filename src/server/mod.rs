//! Wires the parts together and runs the HTTP and gRPC servers until a shutdown signal.

pub mod grpc_conn;
pub mod health;
pub mod http;
pub mod per_address;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tonic::service::interceptor::InterceptedService;
use tributary_event_log::EventLog;
use tributary_event_log_fjall::{FjallConfig, FjallLog};
use tributary_event_log_redb::{EmbeddedConfig, EmbeddedLog};

use crate::admin::AdminService;
use crate::admin::adapters::AdaptersService;
use crate::app::App;
use crate::app::Limits;
use crate::auth::{AdminOnly, Authenticator};
use crate::config::{Config, EmbeddedEngine};
use crate::ingest::rate_limit::{LogSampler, WebhookRateLimit};
use crate::proto::adapters_server::AdaptersServer;
use crate::proto::admin_server::AdminServer;
use crate::proto::cloud_event_stream_server::CloudEventStreamServer;
use crate::sources::{Sources, installation_key};
use crate::stream::StreamService;
use crate::stream::cloudevents::CloudEventService;
use tls::Tls;
use tributary_model::encoded::event_stream_server::EventStreamServer;

/// Runs the service with `config` until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let auth = Authenticator::new(&config.grpc.credentials)?;
    refuse_open_exposure(&config, &auth)?;
    let (http_tls, grpc_tls) = listener_tls(&config)?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let app = open_app(&config, shutdown_rx.clone()).await?;
    // Hot reload: plugin directory watching (debounced) and SIGHUP.
    crate::sources::watch(Arc::clone(&app.sources), config.plugins.hot_reload);

    let http_listener = TcpListener::bind(config.http.listen)
        .await
        .with_context(|| listen_failure(config.http.listen, "http.listen"))?;
    let grpc_listener = TcpListener::bind(config.grpc.listen)
        .await
        .with_context(|| listen_failure(config.grpc.listen, "grpc.listen"))?;
    let http_addr = http_listener.local_addr()?;
    let grpc_addr = grpc_listener.local_addr()?;
    let ops_http = bind_optional(config.ops.http_listen, "ops.http_listen").await?;
    let ops_grpc = bind_optional(config.ops.grpc_listen, "ops.grpc_listen").await?;

    if crate::ops::otlp_metrics::histograms().is_some() {
        let interval = crate::ops::telemetry::metric_export_interval();
        tokio::spawn(crate::ops::otlp_metrics::refresh_task(
            app.clone(),
            interval,
        ));
    }
    tokio::spawn(crate::stream::advance_consumers_task(app.clone()));
    let admin_apart = ops_grpc.is_some();
    let grpc = grpc_server(
        &app,
        auth.clone(),
        &config,
        Services::consumers(!admin_apart),
    )
    .await?;
    let grpc_shutdown = wait_for(shutdown_rx.clone());
    let grpc_limits = grpc_conn::Limits {
        max_connections: config.grpc.max_connections,
        max_connections_per_address: config.grpc.max_connections_per_address,
        handshake_timeout: Duration::from_secs(config.grpc.handshake_timeout_seconds.max(1)),
    };
    let grpc: BoxFuture<Result<(), tonic::transport::Error>> = match &grpc_tls {
        Some(tls) => Box::pin(grpc.serve_with_incoming_shutdown(
            grpc_conn::tls(grpc_listener, Arc::clone(tls), grpc_limits),
            grpc_shutdown,
        )),
        None => Box::pin(grpc.serve_with_incoming_shutdown(
            grpc_conn::plain(grpc_listener, grpc_limits),
            grpc_shutdown,
        )),
    };
    let console =
        console_placement(&config, &auth, ops_http.is_some(), http_tls.is_some()).then(|| {
            // The embedded log's storage, whichever engine holds it.
            let log_files = [REDB_FILE, FJALL_DIR]
                .map(|name| config.log.data_dir.join(name))
                .into_iter()
                .find(|path| path.exists());
            crate::console::Console::new(
                app.clone(),
                auth.clone(),
                ops_http.is_none() && http_tls.is_some(),
                log_files,
            )
        });
    let mut router = crate::ingest::http::router(app.clone(), config.http.body_limit)
        .merge(crate::ops::health_router(app.clone()));
    if ops_http.is_none() {
        // Not on a public port without credentials; with them, admins only.
        if auth.is_enforcing() {
            router = router.merge(crate::ops::guarded_metrics_router(
                app.clone(),
                auth.clone(),
            ));
        } else if config.http.listen.ip().is_loopback() {
            router = router.merge(crate::ops::metrics_router(app.clone()));
        } else {
            tracing::warn!(
                "/metrics not served: http.listen is not loopback and there are no \
                 grpc.credentials; set ops.http_listen to serve it"
            );
        }
        if let Some(console) = &console {
            router = router
                .route(
                    "/",
                    axum::routing::get(|| async { axum::response::Redirect::to("/console/") }),
                )
                .merge(console.clone().router());
        }
    }
    let http = http::serve(
        http_listener,
        router,
        http::Limits::from(&config.http),
        http_tls,
        shutdown_rx.clone(),
    );

    // One machine-readable line on stdout, for scripts and tests that bind port 0.
    let mut ready = format!("tributary ready http={http_addr} grpc={grpc_addr}");
    let ops_http = match ops_http {
        Some((listener, address)) => {
            ready.push_str(&format!(" ops_http={address}"));
            let mut router = crate::ops::health_router(app.clone())
                .merge(crate::ops::metrics_router(app.clone()));
            if let Some(console) = console {
                router = router
                    .route(
                        "/",
                        axum::routing::get(|| async { axum::response::Redirect::to("/console/") }),
                    )
                    .merge(console.router());
            }
            let limits = http::Limits::from(&config.http);
            Some(http::serve(
                listener,
                router,
                limits,
                None,
                shutdown_rx.clone(),
            ))
        }
        None => None,
    };
    let ops_grpc = match ops_grpc {
        Some((listener, address)) => {
            ready.push_str(&format!(" ops_grpc={address}"));
            let server = grpc_server(&app, auth, &config, Services::ADMIN).await?;
            Some(server.serve_with_incoming_shutdown(
                grpc_conn::plain(listener, grpc_limits),
                wait_for(shutdown_rx.clone()),
            ))
        }
        None => None,
    };
    tracing::info!(http = %http_addr, grpc = %grpc_addr, version = env!("TRIBUTARY_COMMIT"), "tributary listening");
    println!("{ready}");

    let grace = Duration::from_secs(config.shutdown_timeout_seconds);
    let signals = async move {
        shutdown_signal().await;
        tracing::info!(timeout = ?grace, "shutting down: finishing in-flight requests");
        let _ = shutdown_tx.send(true);
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = async { tokio::try_join!(
            async { http.await; anyhow::Ok(()) },
            async { grpc.await.context("grpc server failed") },
            async {
                if let Some(ops_http) = ops_http {
                    ops_http.await;
                }
                anyhow::Ok(())
            },
            async {
                match ops_grpc {
                    Some(ops_grpc) => ops_grpc.await.context("ops grpc server failed"),
                    None => Ok(()),
                }
            },
        ) } => { result?; }
        () = signals => tracing::warn!("shutdown grace period over; exiting"),
    }
    Ok(())
}

/// The state every stage shares: the data directory made private, the sources' plugins
/// loaded, the event log opened and the limits set. `shutdown` turns true when the service
/// stops.
pub async fn open_app(config: &Config, shutdown: watch::Receiver<bool>) -> anyhow::Result<App> {
    private_dir(&config.log.data_dir)?;
    let key = installation_key(&config.log.data_dir)?;
    let sources = Arc::new(Sources::load(config, &key)?);
    crate::health::tracker().configure(
        config.health.window.0,
        config
            .sources
            .iter()
            .map(|(name, source)| (name.clone(), source.expect.clone()))
            .collect(),
    );
    let archive = crate::archive::Archive::open_configured(&config.archive, &config.log.data_dir)
        .context("cannot open the raw archive")?
        .map(Arc::new);
    let log = open_log(config).await?;
    let audit = crate::audit::AuditLog::open(&config.log.data_dir, config.audit.max_age())
        .context("cannot open the audit log")?;
    tokio::spawn(Arc::clone(&audit).retention_task(shutdown.clone()));
    Ok(App {
        sources,
        log,
        shutdown,
        limits: Arc::new(limits(config)),
        archive,
        audit,
        rejections: Arc::new(crate::ingest::rejections::Rejections::new(
            config.http.rejections_kept,
        )),
    })
}

/// Whether the web console is served, and says where (or why not) in the log: on the
/// operators' HTTP listener when there is one, else on the webhook listener only while that is
/// a loopback address (a public webhook port never serves it); and only when some credential
/// has the admin scope, since its token is the login.
fn console_placement(config: &Config, auth: &Authenticator, ops_http: bool, tls: bool) -> bool {
    if !config.ops.console {
        return false;
    }
    if !auth.has_admin_credential() {
        tracing::info!(
            "web console off: it needs a [[grpc.credentials]] with admin = true (its token is \
             the login)"
        );
        return false;
    }
    if ops_http {
        tracing::info!("web console on the ops.http_listen listener at /console/");
        return true;
    }
    if !config.http.listen.ip().is_loopback() {
        tracing::info!(
            "web console off: http.listen is not loopback; set ops.http_listen to serve it on \
             the operators' listener"
        );
        return false;
    }
    let scheme = if tls { "https" } else { "http" };
    tracing::info!(
        "web console at {scheme}://{}/console/ (loopback webhook listener)",
        config.http.listen
    );
    true
}

type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// Binds `address` when configured: the listener and its address.
async fn bind_optional(
    address: Option<std::net::SocketAddr>,
    setting: &str,
) -> anyhow::Result<Option<(TcpListener, std::net::SocketAddr)>> {
    let Some(address) = address else {
        return Ok(None);
    };
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| listen_failure(address, setting))?;
    let bound = listener.local_addr()?;
    Ok(Some((listener, bound)))
}

/// Why a listener could not bind, naming its setting and what to do.
fn listen_failure(address: std::net::SocketAddr, setting: &str) -> String {
    let flag = match setting {
        "http.listen" => " (--http-listen, TRIBUTARY_HTTP_LISTEN)",
        "grpc.listen" => " (--grpc-listen, TRIBUTARY_GRPC_LISTEN)",
        _ => "",
    };
    format!(
        "cannot listen on {address} ({setting}{flag}): is another process listening there? \
         Stop it or choose another address"
    )
}

/// Which gRPC services a listener serves (health, and reflection when on, always).
#[derive(Clone, Copy)]
struct Services {
    stream: bool,
    admin: bool,
}

impl Services {
    /// The operators' listener: `Admin` and `Adapters`.
    const ADMIN: Services = Services {
        stream: false,
        admin: true,
    };

    /// The consumers' listener: `EventStream` and `CloudEventStream`, and the admin services unless they have a
    /// listener of their own.
    fn consumers(with_admin: bool) -> Self {
        Services {
            stream: true,
            admin: with_admin,
        }
    }
}

/// A listener's TLS, when configured.
type ListenerTls = Option<Arc<Tls>>;

/// The TLS settings of the HTTP and gRPC listeners, re-read on SIGHUP.
fn listener_tls(config: &Config) -> anyhow::Result<(ListenerTls, ListenerTls)> {
    let http = config
        .http
        .tls
        .as_ref()
        .map(|tls| Tls::new(tls, &[b"http/1.1"]))
        .transpose()
        .context("http.tls")?;
    let grpc = config
        .grpc
        .tls
        .as_ref()
        .map(|tls| Tls::new(tls, &[b"h2"]))
        .transpose()
        .context("grpc.tls")?;
    tls::reload_on_sighup(
        [("http", &http), ("grpc", &grpc)]
            .into_iter()
            .filter_map(|(name, tls)| Some((name, Arc::clone(tls.as_ref()?))))
            .collect(),
    );
    Ok((http, grpc))
}

/// The configured event log: NATS JetStream when `log.backend` names servers, else the
/// embedded log in `log.data_dir` on its engine (`log.engine`).
async fn open_log(config: &Config) -> anyhow::Result<Arc<dyn EventLog>> {
    if !config.log.durable {
        tracing::warn!("log.durable = false: a crash may lose acknowledged webhooks");
    }
    if let Some(mut nats) = config.log.nats()? {
        // Appends ride through an election within the webhook's own deadline.
        nats.append_budget = tributary_event_log_nats::append_budget_within(
            http::Limits::from(&config.http).request_timeout,
        );
        return Ok(Arc::new(
            tributary_event_log_nats::NatsLog::connect(nats)
                .await
                .context("cannot open the event log on NATS JetStream")?,
        ));
    }
    let data_dir = &config.log.data_dir;
    let engine = embedded_engine(config.log.engine, data_dir);
    // Dead letters and the archive hold personal data: the log's files are the owner's alone.
    let private = |path: &std::path::Path, mode: u32| -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                .with_context(|| format!("cannot restrict {} to its owner", path.display()))?;
        }
        Ok(())
    };
    let log: Arc<dyn EventLog> = match engine {
        EmbeddedEngine::Redb => {
            let log = EmbeddedLog::open(EmbeddedConfig {
                durable: config.log.durable,
                retention: config.log.retention.to_log(),
                ..EmbeddedConfig::new(data_dir)
            })
            .map_err(|error| data_dir_failure(error.into(), data_dir, "redb"))?;
            private(&data_dir.join(REDB_FILE), 0o600)?;
            Arc::new(log)
        }
        EmbeddedEngine::Fjall | EmbeddedEngine::Auto => {
            let log = FjallLog::open(FjallConfig {
                durable: config.log.durable,
                retention: config.log.retention.to_log(),
                ..FjallConfig::new(data_dir)
            })
            .map_err(|error| data_dir_failure(error.into(), data_dir, "fjall"))?;
            private(&data_dir.join(FJALL_DIR), 0o700)?;
            Arc::new(log)
        }
    };
    tracing::info!(
        engine = if engine == EmbeddedEngine::Redb { "redb" } else { "fjall" },
        data_dir = %data_dir.display(),
        "embedded event log open"
    );
    Ok(log)
}

/// A failure to open the embedded log in `data_dir`, naming the setting; a lock held by
/// another process (a second `tributary serve` on the same directory) is said as such.
fn data_dir_failure(
    error: anyhow::Error,
    data_dir: &std::path::Path,
    engine: &str,
) -> anyhow::Error {
    let text = format!("{error:#}").to_ascii_lowercase();
    let locked = text.contains("lock") || text.contains("already open");
    let setting = "log.data_dir, --data-dir or TRIBUTARY_DATA_DIR";
    if locked {
        error.context(format!(
            "cannot open the {engine} event log in {}: another process holds its lock (is \
             another `tributary serve` using this data directory?); stop it, or give this one \
             its own data directory ({setting})",
            data_dir.display()
        ))
    } else {
        error.context(format!(
            "cannot open the {engine} event log in {} ({setting})",
            data_dir.display()
        ))
    }
}

/// The redb engine's file in the data directory.
const REDB_FILE: &str = "events.redb";
/// The log-structured engine's directory in the data directory.
const FJALL_DIR: &str = "fjall";

/// The engine `configured` resolves to for `data_dir`: `auto` keeps the engine whose log the
/// data directory holds (redb with an `events.redb` file), and takes fjall for a new one.
fn embedded_engine(configured: EmbeddedEngine, data_dir: &std::path::Path) -> EmbeddedEngine {
    let engine = match configured {
        EmbeddedEngine::Auto if data_dir.join(REDB_FILE).exists() => EmbeddedEngine::Redb,
        EmbeddedEngine::Auto => EmbeddedEngine::Fjall,
        other => other,
    };
    // The other engine's log is not read: say so, rather than look like an empty log.
    let other = match engine {
        EmbeddedEngine::Redb => FJALL_DIR,
        _ => REDB_FILE,
    };
    if data_dir.join(other).exists() {
        tracing::warn!(
            "{} also holds a log of the other engine ({other}), which is not read: log.engine \
             chooses one",
            data_dir.display()
        );
    }
    engine
}

/// The limits on what clients control, from `[http]`, `[grpc]` and `[plugins]`.
fn limits(config: &Config) -> Limits {
    Limits {
        rate: WebhookRateLimit::new(
            config.http.rate_limit_per_second,
            config.http.rate_limit_burst,
            config.http.failed_verifications_per_second,
            config.http.failed_verifications_burst,
        ),
        rejection_log: LogSampler::new(config.http.rejection_log_lines_per_second),
        adapter_timeout: Duration::from_millis(config.plugins.call_timeout_ms.max(1)),
        subscriptions: Arc::new(Semaphore::new(config.grpc.max_subscriptions)),
        max_consumers: config.grpc.max_consumers,
        consumer_creation: tokio::sync::Mutex::new(()),
    }
}

/// The gRPC services: health and reflection open, `EventStream` and `CloudEventStream` for any
/// credential (each RPC checks its scope), `Adapters` and `Admin` for the admin scope only.
async fn grpc_server(
    app: &App,
    auth: Authenticator,
    config: &Config,
    services: Services,
) -> anyhow::Result<tonic::transport::server::Router> {
    // Health per service (and "" for the server), as grpc.health.v1 clients expect.
    let (health_reporter, _) = tonic_health::server::health_reporter();
    let health_service =
        tonic_health::pb::health_server::HealthServer::new(health::CountedHealth::new(
            health_reporter.clone(),
            Arc::clone(&app.limits.subscriptions),
        ));
    if services.stream {
        health_reporter
            .set_serving::<EventStreamServer<StreamService>>()
            .await;
        health_reporter
            .set_serving::<CloudEventStreamServer<CloudEventService>>()
            .await;
    }
    if services.admin {
        health_reporter
            .set_serving::<AdaptersServer<AdaptersService>>()
            .await;
        health_reporter
            .set_serving::<AdminServer<AdminService>>()
            .await;
    }
    // Reflection v1, and v1alpha for the tools that speak only it (grpcio-reflection, older
    // grpcurl).
    // Reflection describes the Admin and Adapters services too: only administrators may use
    // it, on the listener that serves them.
    let (reflection, reflection_alpha) = if config.grpc.reflection && services.admin {
        let builder = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(tributary_model::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        (
            Some(InterceptedService::new(
                builder()
                    .build_v1()
                    .context("cannot build gRPC reflection")?,
                AdminOnly(auth.clone()),
            )),
            Some(InterceptedService::new(
                builder()
                    .build_v1alpha()
                    .context("cannot build gRPC reflection")?,
                AdminOnly(auth.clone()),
            )),
        )
    } else {
        (None, None)
    };
    let stream = services.stream.then(|| {
        EventStreamServer::with_interceptor(StreamService::new(app.clone()), auth.clone())
    });
    let cloud_events = services.stream.then(|| {
        CloudEventStreamServer::with_interceptor(
            CloudEventService::new(StreamService::new(app.clone()), config.cloudevents.clone()),
            auth.clone(),
        )
    });
    let adapters = services.admin.then(|| {
        AdaptersServer::with_interceptor(AdaptersService::new(app.clone()), AdminOnly(auth.clone()))
    });
    let admin = services
        .admin
        .then(|| AdminServer::with_interceptor(AdminService::new(app.clone()), AdminOnly(auth)));
    Ok(tonic::transport::Server::builder()
        .max_concurrent_streams(config.grpc.max_concurrent_streams)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(health_service)
        .add_optional_service(reflection)
        .add_optional_service(reflection_alpha)
        .add_optional_service(stream)
        .add_optional_service(cloud_events)
        .add_optional_service(adapters)
        .add_optional_service(admin))
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Refuses to listen beyond loopback in clear (tokens and personal data would cross the
/// network unencrypted) or, for gRPC, without credentials (anyone who can connect would be an
/// administrator), unless `insecure` says the network is trusted (e.g. TLS ends at a proxy).
fn refuse_open_exposure(config: &Config, auth: &Authenticator) -> anyhow::Result<()> {
    let mut problems = Vec::new();
    if !config.http.listen.ip().is_loopback() && config.http.tls.is_none() {
        problems.push(format!(
            "http.listen {} has no http.tls",
            config.http.listen
        ));
    }
    if !config.grpc.listen.ip().is_loopback() {
        if config.grpc.tls.is_none() {
            problems.push(format!(
                "grpc.listen {} has no grpc.tls",
                config.grpc.listen
            ));
        }
        if !auth.is_enforcing() {
            problems.push(format!(
                "grpc.listen {} has no grpc.credentials (every caller would be an administrator)",
                config.grpc.listen
            ));
        }
    }
    for (setting, address) in [
        ("ops.http_listen", config.ops.http_listen),
        ("ops.grpc_listen", config.ops.grpc_listen),
    ] {
        if let Some(address) = address.filter(|a| !a.ip().is_loopback()) {
            problems.push(format!(
                "{setting} {address} is not loopback (it has no TLS)"
            ));
        }
    }
    if problems.is_empty() {
        if !auth.is_enforcing() {
            tracing::info!("no grpc.credentials: gRPC callers on loopback are administrators");
        }
        return Ok(());
    }
    let problems = problems.join("; ");
    if config.insecure {
        tracing::warn!("INSECURE (insecure = true): {problems}");
        return Ok(());
    }
    anyhow::bail!(
        "refusing to start: {problems}. Configure TLS and [[grpc.credentials]], or set \
         insecure = true (--insecure) on a trusted network"
    )
}

/// Creates the data directory readable by its owner only (it holds the installation key, raw
/// personal data in dead letters, and the log), and tightens an existing one.
fn private_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict {} to its owner", dir.display()))
}
