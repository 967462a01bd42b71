//! Wires the parts together and runs the HTTP and gRPC servers until a shutdown signal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tributary_event_log::EventLog;
use tributary_event_log::embedded::{EmbeddedConfig, EmbeddedLog, Retention};

use crate::admin::AdminService;
use crate::admin::adapters::AdaptersService;
use crate::app::App;
use crate::auth::ConsumerAuth;
use crate::config::Config;
use crate::proto::adapters_server::AdaptersServer;
use crate::proto::admin_server::AdminServer;
use crate::proto::event_stream_server::EventStreamServer;
use crate::sources::{Sources, installation_key};
use crate::stream::StreamService;

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

    let http_listener = TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {} (http)", config.http.listen))?;
    let grpc_listener = TcpListener::bind(config.grpc.listen)
        .await
        .with_context(|| format!("cannot listen on {} (grpc)", config.grpc.listen))?;
    let http_addr = http_listener.local_addr()?;
    let grpc_addr = grpc_listener.local_addr()?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let app = App {
        sources,
        log,
        shutdown: shutdown_rx.clone(),
    };

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<EventStreamServer<StreamService>>()
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
            StreamService::new(app.clone()),
            auth.clone(),
        ))
        .add_service(AdaptersServer::with_interceptor(
            AdaptersService::new(app.clone()),
            auth.clone(),
        ))
        .add_service(AdminServer::with_interceptor(
            AdminService::new(app.clone()),
            auth,
        ))
        .serve_with_incoming_shutdown(
            TcpListenerStream::new(grpc_listener),
            wait_for(shutdown_rx.clone()),
        );
    let router = crate::ingest::http::router(app.clone(), config.http.body_limit)
        .merge(crate::ops::router(app));
    let http =
        axum::serve(http_listener, router).with_graceful_shutdown(wait_for(shutdown_rx.clone()));

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
