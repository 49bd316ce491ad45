//! The PostgreSQL store: the same sessions, runs, processes and journals as SQLite, for
//! several `agentos serve` processes on several machines sharing one database.
//!
//! - **Connections.** A deadpool pool of tokio-postgres connections (`--db-pool` or
//!   `AGENTOS_DB_POOL`, 16 by default) serves reads. Writes go through [`WRITERS`] writer
//!   tasks, each with a connection of its own taking its writes in the order they were
//!   made; every write about one run (or one session) goes to the same writer, chosen by
//!   its id, so a run's journal batches and its outcome reach the database in order, as
//!   with SQLite's writer thread, while the commits of different runs overlap (each
//!   commit waits for the database's disk). Heartbeats
//!   take a connection of their own (a pool of one), so a busy server's heartbeat never
//!   waits for a connection its runs hold, and other servers never take it for stopped.
//! - **TLS** (rustls) as libpq's `sslmode`: `prefer` (the default) and `require` encrypt
//!   without checking the server's certificate; `verify-full` checks it against
//!   Mozilla's roots and the host name; `disable` never encrypts.
//! - **Notices.** One more connection LISTENs on `agentos_cancel`, `agentos_journal` and
//!   `agentos_queue`; writes that another process may wait for (a cancel request, a
//!   journal batch, a run's end, a queued background run) NOTIFY with the run id in the
//!   same transaction. After the listener reconnects
//!   it says so ([`Notice::Resync`]): what was sent meanwhile is lost, so waiters read
//!   the store again.
//! - **Schema.** Versioned migrations (`schema.rs`) under an advisory lock, so servers
//!   starting together apply each once.

mod backend;
mod queries;
mod schema;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::backend::Notice;
use super::{Pending, StoreError, StoreResult};
use crate::logging::error_chain;

/// Writer tasks, each on a connection of the pool (see the module documentation).
pub(super) const WRITERS: usize = 4;
/// Connections in the read pool unless `--db-pool`/`AGENTOS_DB_POOL` say otherwise.
pub const DEFAULT_POOL_SIZE: usize = 16;
/// How long getting a connection may take before a store call fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Notices buffered per listener before a slow one misses some (and resyncs).
const NOTICE_BUFFER: usize = 4096;
pub(super) const CANCEL_CHANNEL: &str = "agentos_cancel";
pub(super) const JOURNAL_CHANNEL: &str = "agentos_journal";
pub(super) const QUEUE_CHANNEL: &str = "agentos_queue";

type Client = deadpool_postgres::Client;
type Job = Box<dyn for<'c> FnOnce(&'c mut Client) -> BoxFuture<'c, ()> + Send>;

/// Whether `location` names a PostgreSQL database rather than a SQLite file.
pub fn is_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// A PostgreSQL database. See the module documentation.
pub struct PgStore {
    pool: Pool,
    /// Heartbeats' own connection.
    control: Pool,
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    describe: String,
    writers: OnceLock<Vec<mpsc::UnboundedSender<Job>>>,
    /// The process whose runs this store begins, once known.
    owner: Arc<OnceLock<String>>,
    notices: OnceLock<broadcast::Sender<Notice>>,
}

impl PgStore {
    /// Connects to the database at `url` and brings its schema up to date. Callable with
    /// or without a runtime: the migration runs on a thread of its own.
    pub fn open(url: &str, pool_size: usize) -> StoreResult<PgStore> {
        let (driver_url, verify) = tls_mode(url);
        let config: tokio_postgres::Config = driver_url.parse().map_err(|e| StoreError::Open {
            path: redact(url),
            reason: error_chain(&e).into(),
        })?;
        let tls = tls(verify);
        let describe = format!("PostgreSQL {}", describe(&config));
        let (migrate_config, migrate_tls, location) = (config.clone(), tls.clone(), redact(url));
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| StoreError::Open {
                    path: location.clone(),
                    reason: error_chain(&e).into(),
                })?;
            runtime.block_on(async move {
                let (mut client, connection) =
                    tokio::time::timeout(CONNECT_TIMEOUT, migrate_config.connect(migrate_tls))
                        .await
                        .map_err(|_| StoreError::Open {
                            path: location.clone(),
                            reason: "timed out connecting".into(),
                        })?
                        .map_err(|e| StoreError::Open {
                            path: location.clone(),
                            reason: error_chain(&e).into(),
                        })?;
                tokio::spawn(connection);
                schema::migrate(&mut client).await
            })
        })
        .join()
        .map_err(|_| StoreError::Corrupt("the migration thread panicked".into()))??;
        let pool = |size: usize| {
            let manager = Manager::from_config(
                config.clone(),
                tls.clone(),
                ManagerConfig {
                    recycling_method: RecyclingMethod::Fast,
                },
            );
            Pool::builder(manager)
                .max_size(size)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(CONNECT_TIMEOUT))
                .create_timeout(Some(CONNECT_TIMEOUT))
                .build()
                .map_err(|e| StoreError::Open {
                    path: redact(url),
                    reason: error_chain(&e).into(),
                })
        };
        // The writers hold their connections for good: they come on top of the reads'.
        let (pool, control) = (pool(pool_size.max(1) + WRITERS)?, pool(1)?);
        Ok(PgStore {
            pool,
            control,
            config,
            tls,
            describe,
            writers: OnceLock::new(),
            owner: Arc::new(OnceLock::new()),
            notices: OnceLock::new(),
        })
    }

    pub(super) fn describe(&self) -> String {
        self.describe.clone()
    }

    pub(super) fn owner(&self) -> Option<String> {
        self.owner.get().cloned()
    }

    pub(super) fn set_owner(&self, id: String) {
        let _ = self.owner.set(id);
    }

    /// Runs `f` on a pooled connection.
    pub(super) fn read<T, F>(&self, f: F) -> Pending<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Client) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        on_pool(&self.pool, f)
    }

    /// Runs `f` (a heartbeat) on the control connection.
    pub(super) fn control<T, F>(&self, f: F) -> Pending<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Client) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        on_pool(&self.control, f)
    }

    /// Queues `f` for the first writer: a write about no run or session in particular.
    pub(super) fn write<T, F>(&self, f: F) -> Pending<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Client) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        self.write_to(0, f)
    }

    /// Queues `f` for writer `writer` ([`writer_of`] a run or session id), which runs its
    /// writes one at a time in the order queued.
    pub(super) fn write_to<T, F>(&self, writer: usize, f: F) -> Pending<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut Client) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let span = tracing::Span::current();
        let job: Job = Box::new(move |client| {
            Box::pin(async move {
                let _ = tx.send(tracing::Instrument::instrument(f(client), span).await);
            })
        });
        match self.writers()[writer].send(job) {
            Ok(()) => Pending::from_receiver(rx),
            Err(_) => Pending::stopped(),
        }
    }

    fn writers(&self) -> &[mpsc::UnboundedSender<Job>] {
        self.writers.get_or_init(|| {
            (0..WRITERS)
                .map(|_| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(write_jobs(self.pool.clone(), rx));
                    tx
                })
                .collect()
        })
    }

    /// Notices from other processes, from the listener (started on first use).
    pub(super) fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices
            .get_or_init(|| {
                let (tx, _) = broadcast::channel(NOTICE_BUFFER);
                tokio::spawn(listen(self.config.clone(), self.tls.clone(), tx.clone()));
                tx
            })
            .subscribe()
    }
}

/// The writer of the writes about `key` (a run or session id): always the same one.
pub(super) fn writer_of(key: &str) -> usize {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % WRITERS as u64) as usize
}

/// Runs `f` on a connection of `pool`, in a task of its own.
fn on_pool<T, F>(pool: &Pool, f: F) -> Pending<T>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c mut Client) -> BoxFuture<'c, StoreResult<T>> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    let pool = pool.clone();
    // In the caller's span, so what the call logs carries a run's ids.
    tokio::spawn(tracing::Instrument::in_current_span(async move {
        let result = match pool.get().await {
            Ok(mut client) => f(&mut client).await,
            Err(e) => Err(StoreError::from(e)),
        };
        let _ = tx.send(result);
    }));
    Pending::from_receiver(rx)
}

/// The writer: runs jobs in order on one connection, taking a new one when it breaks.
async fn write_jobs(pool: Pool, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut client: Option<Client> = None;
    while let Some(job) = jobs.recv().await {
        if client.as_ref().is_none_or(|c| c.is_closed()) {
            client = None;
            for attempt in 0..5u32 {
                match pool.get().await {
                    Ok(c) => {
                        client = Some(c);
                        break;
                    }
                    Err(err) => {
                        tracing::warn!("store writer: no connection ({err}); retrying");
                        tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                    }
                }
            }
        }
        match client.as_mut() {
            Some(c) => job(c).await,
            // The job's caller gets "stopped" as its sender is dropped unanswered.
            None => drop(job),
        }
    }
}

/// The listener: LISTENs on a connection of its own, forwarding notifications, and
/// reconnects with backoff when the connection breaks.
async fn listen(
    config: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    notices: broadcast::Sender<Notice>,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match config.connect(tls.clone()).await {
            Ok((client, mut connection)) => {
                let forward = notices.clone();
                let pump = tokio::spawn(async move {
                    let mut messages =
                        futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                    while let Some(message) = messages.next().await {
                        match message {
                            Ok(AsyncMessage::Notification(n)) => {
                                let notice = match n.channel() {
                                    CANCEL_CHANNEL => Notice::Cancel(n.payload().to_string()),
                                    JOURNAL_CHANNEL => Notice::Journal(n.payload().to_string()),
                                    QUEUE_CHANNEL => Notice::Queued(n.payload().to_string()),
                                    _ => continue,
                                };
                                let _ = forward.send(notice);
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                });
                let listening = client
                    .batch_execute(&format!(
                        "LISTEN {CANCEL_CHANNEL}; LISTEN {JOURNAL_CHANNEL}; LISTEN {QUEUE_CHANNEL}"
                    ))
                    .await;
                match listening {
                    Ok(()) => {
                        backoff = Duration::from_millis(100);
                        // Whatever was notified while nobody listened is lost.
                        let _ = notices.send(Notice::Resync);
                        let _ = pump.await;
                        tracing::warn!("store: the notification connection closed; reconnecting");
                    }
                    Err(err) => {
                        pump.abort();
                        tracing::warn!("store: could not LISTEN: {err}");
                    }
                }
                drop(client);
            }
            Err(err) => tracing::warn!("store: the notification connection failed: {err}"),
        }
        if notices.receiver_count() == 0 {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The URL as the driver takes it, and whether the server's certificate is to be
/// verified. As libpq: `sslmode=prefer` (the default) and `require` encrypt without
/// checking the certificate; `verify-full` (and `verify-ca`) check it against Mozilla's
/// roots and the host name, and refuse to connect without TLS.
fn tls_mode(url: &str) -> (String, bool) {
    for verifying in ["sslmode=verify-full", "sslmode=verify-ca"] {
        if url.contains(verifying) {
            return (url.replace(verifying, "sslmode=require"), true);
        }
    }
    (url.to_string(), false)
}

/// TLS for connections whose URL asks for it (rustls, ring).
fn tls(verify: bool) -> MakeRustlsConnect {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
    {
        Ok(builder) => builder,
        Err(_) => unreachable_versions(),
    };
    let config = if verify {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth()
    };
    MakeRustlsConnect::new(config)
}

/// ring supports the default protocol versions; this is never reached.
fn unreachable_versions() -> ! {
    panic!("the ring provider lacks TLS 1.2 and 1.3")
}

/// libpq's `sslmode=require`: the connection is encrypted and the handshake's signatures
/// are checked, but the certificate is not (use `verify-full` for that).
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `host:port/db` of a config, for messages (never the password).
fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{host}:{port}/{}",
        config.get_dbname().unwrap_or("postgres")
    )
}

/// The URL without its password.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_info = &url[scheme + 3..at];
            match user_info.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_told_apart_and_passwords_kept_out_of_messages() {
        assert!(is_url("postgres://u@h/db"));
        assert!(is_url("postgresql://h/db"));
        assert!(!is_url("/var/lib/agentos.db"));
        assert_eq!(
            redact("postgres://ada:secret@db.internal:5433/agentos"),
            "postgres://ada:***@db.internal:5433/agentos"
        );
        assert_eq!(redact("postgres://ada@h/db"), "postgres://ada@h/db");
        let config: tokio_postgres::Config = "postgres://ada:secret@db.internal:5433/agentos"
            .parse()
            .unwrap();
        assert_eq!(describe(&config), "db.internal:5433/agentos");
    }
}
