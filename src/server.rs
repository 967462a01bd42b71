//! Wires the parts together and runs the HTTP and gRPC servers until a shutdown signal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Status};
use tributary_event_log::EventLog;
use tributary_event_log::Retention;
use tributary_event_log_redb::{EmbeddedConfig, EmbeddedLog};

use crate::admin::AdminService;
use crate::config::Config;
use crate::grpc::Services;
use crate::ingest::Ingest;
use crate::proto::adapters_server::AdaptersServer;
use crate::proto::admin_server::AdminServer;
use crate::proto::event_stream_server::EventStreamServer;
use crate::sources::{Sources, installation_key};

/// Runs the service with `config` until SIGINT or SIGTERM.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let key = installation_key(&config.log.data_dir)?;
    let sources = Arc::new(Sources::load(&config, &key)?);
    // Hot reload: plugin directory watching (debounced) and SIGHUP.
    crate::sources::watch(Arc::clone(&sources));
    let retention = &config.log.retention;
    let log: Arc<dyn EventLog> = if let Some(nats) = config.log.nats()? {
        Arc::new(
            tributary_event_log_nats::NatsLog::connect(nats)
                .await
                .context("cannot open the event log on NATS JetStream")?,
        )
    } else {
        Arc::new(
            EmbeddedLog::open(EmbeddedConfig {
                durable: config.log.durable,
                retention: Retention {
                    max_age: retention.max_age_seconds.map(Duration::from_secs),
                    max_bytes: retention.max_bytes,
                    override_consumers: retention.override_consumers,
                    interval: Duration::from_secs(retention.interval_seconds.max(1)),
                },
                ..EmbeddedConfig::new(&config.log.data_dir)
            })
            .context("cannot open the event log")?,
        )
    };
    if !config.log.durable {
        tracing::warn!("log.durable = false: a crash may lose acknowledged webhooks");
    }
    let ingest = Ingest::new(sources, log);

    let http_listener = TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {} (http)", config.http.listen))?;
    let grpc_listener = TcpListener::bind(config.grpc.listen)
        .await
        .with_context(|| format!("cannot listen on {} (grpc)", config.grpc.listen))?;
    let http_addr = http_listener.local_addr()?;
    let grpc_addr = grpc_listener.local_addr()?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let services = Services::new(ingest.clone(), shutdown_rx.clone());
    let admin = AdminService::new(ingest.clone());

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<EventStreamServer<Services>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(tributary_model::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("cannot build gRPC reflection")?;
    let auth = ConsumerAuth::new(config.grpc.tokens.clone());
    if config.grpc.tokens.is_empty() {
        tracing::warn!("grpc.tokens is empty: gRPC consumers are not authenticated");
    }

    let grpc = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(EventStreamServer::with_interceptor(
            services.clone(),
            auth.clone(),
        ))
        .add_service(AdaptersServer::with_interceptor(services, auth.clone()))
        .add_service(AdminServer::with_interceptor(admin, auth))
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(grpc_listener),
            wait_for(shutdown_rx.clone()),
        );
    let http = axum::serve(
        http_listener,
        crate::http::router(ingest, config.http.body_limit),
    )
    .with_graceful_shutdown(wait_for(shutdown_rx.clone()));

    tracing::info!(http = %http_addr, grpc = %grpc_addr, "tributary listening");
    // One machine-readable line on stdout, for scripts and tests that bind port 0.
    println!("tributary ready http={http_addr} grpc={grpc_addr}");

    let grace = Duration::from_secs(config.shutdown_timeout_seconds);
    let signals = async move {
        shutdown_signal().await;
        tracing::info!(timeout = ?grace, "shutting down: finishing in-flight requests");
        let _ = shutdown_tx.send(true);
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        result = async { tokio::try_join!(
            async { http.await.context("http server failed") },
            async { grpc.await.context("grpc server failed") },
        ) } => { result?; }
        () = signals => tracing::warn!("shutdown grace period over; exiting"),
    }
    Ok(())
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

/// Checks `authorization: Bearer <token>` against the configured tokens in constant time.
#[derive(Clone)]
struct ConsumerAuth {
    tokens: Arc<Vec<String>>,
}

impl ConsumerAuth {
    fn new(tokens: Vec<String>) -> Self {
        Self {
            tokens: Arc::new(tokens),
        }
    }
}

impl tonic::service::Interceptor for ConsumerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.tokens.is_empty() {
            return Ok(request);
        }
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        let valid = self.tokens.iter().fold(false, |ok, token| {
            ok | bool::from(token.as_bytes().ct_eq(presented.as_bytes()))
        });
        if valid {
            Ok(request)
        } else {
            Err(Status::unauthenticated("missing or invalid bearer token"))
        }
    }
}
