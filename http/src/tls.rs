//! TLS of a service process, set once at start-up ([`install`]) from [`TlsSettings`]:
//!
//! - **Listeners.** With `TLS_CERT_FILE` and `TLS_KEY_FILE` every HTTP server ([`crate::api::serve`]),
//!   the gRPC server and the JSON-RPC server speak TLS only (rustls, `ring`), presenting the
//!   pair through a [`ReloadingCert`]: the files are checked every `TLS_RELOAD_INTERVAL` and
//!   at once on SIGHUP, and a new pair is used from the next handshake on (a pair that does
//!   not load is logged, and the one in use kept). Each handshake has `TLS_HANDSHAKE_TIMEOUT`.
//! - **Clients.** Every HTTP client of the process comes from [`http_client`], which trusts
//!   `TLS_CA_FILE` besides the system's roots; the gRPC client's endpoint from
//!   [`grpc_endpoint`], trusting `TLS_CA_FILE` (or, without it, the public web roots) for an
//!   `https://` URL. A URL no client can serve, or a CA file that does not load, is a
//!   start-up error, never a failed call later.
//!
//! The HTTP clients use the platform's TLS (OpenSSL, through reqwest's `native-tls`):
//! reqwest's rustls without its `aws-lc-rs` provider needs a process-wide provider
//! installed before any client is built, test clients included.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use troupe_core::config::TlsSettings;
use url::Url;

/// What the process's listeners and clients use; [`none`] until [`install`].
#[derive(Debug, Clone)]
pub struct ProcessTls {
    server: Option<Arc<ReloadingCert>>,
    ca: Option<Arc<Vec<u8>>>,
    handshake_timeout: Duration,
}

static PROCESS: OnceLock<ProcessTls> = OnceLock::new();

/// Plain listeners, clients trusting the system's roots.
pub fn none() -> ProcessTls {
    ProcessTls { server: None, ca: None, handshake_timeout: Duration::from_secs(5) }
}

/// The process's TLS: what [`install`] set, else [`none`].
pub fn current() -> ProcessTls {
    PROCESS.get().cloned().unwrap_or_else(none)
}

/// Load the certificate, key and CA of `settings` (an error names the variable and file)
/// and make them the process's; start the reloader when the listeners have a certificate.
/// Call once, before any listener or client is made; a second call is an error.
///
/// # Errors
///
/// A file that cannot be read or parsed, a key that does not match its certificate.
pub fn install(settings: &TlsSettings) -> anyhow::Result<()> {
    let tls = ProcessTls::load(settings)?;
    if let Some(pem) = tls.ca_pem() {
        troupe_actors::events::publisher::trust_amqps_ca(String::from_utf8_lossy(pem).into_owned());
    }
    if let Some(cert) = &tls.server {
        cert.clone().watch(settings.tls_reload_interval)?;
    }
    set(tls)
}

/// Make `tls` the process's, once.
fn set(tls: ProcessTls) -> anyhow::Result<()> {
    PROCESS.set(tls).map_err(|_| anyhow::anyhow!("TLS settings installed twice"))
}

/// Make the process's clients trust the CA in `ca_file` (TLS_CA_FILE) besides the system's
/// roots, with no listener of its own: for the commands that only call (`troupe logs`,
/// `troupe trace`). `None` changes nothing.
///
/// # Errors
///
/// As [`install`].
pub fn install_ca(ca_file: Option<&Path>) -> anyhow::Result<()> {
    let Some(path) = ca_file else { return Ok(()) };
    let ca = Some(Arc::new(read_ca(path)?));
    set(ProcessTls { ca, ..none() })
}

impl ProcessTls {
    /// The TLS `settings` describe, loaded (no reloader).
    ///
    /// # Errors
    ///
    /// As [`install`].
    pub fn load(settings: &TlsSettings) -> anyhow::Result<Self> {
        let server = match settings.server_files().map_err(anyhow::Error::msg)? {
            Some((cert, key)) => Some(Arc::new(ReloadingCert::load(cert, key)?)),
            None => None,
        };
        let ca = match &settings.tls_ca_file {
            Some(path) => Some(Arc::new(read_ca(path)?)),
            None => None,
        };
        Ok(Self { server, ca, handshake_timeout: settings.tls_handshake_timeout })
    }

    /// The rustls server configuration of a listener offering `alpn` (most preferred
    /// first), or `None` when the listeners are plain.
    pub fn server_config(&self, alpn: &[&[u8]]) -> Option<Arc<rustls::ServerConfig>> {
        let resolver = self.server.clone()?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(resolver);
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Some(Arc::new(config))
    }

    /// A TLS acceptor for a listener offering `alpn`, or `None` when the listeners are plain.
    pub fn acceptor(&self, alpn: &[&[u8]]) -> Option<tokio_rustls::TlsAcceptor> {
        self.server_config(alpn).map(tokio_rustls::TlsAcceptor::from)
    }

    /// True when the listeners speak TLS.
    pub fn serves_tls(&self) -> bool {
        self.server.is_some()
    }

    /// Longest a handshake on a listener may take.
    pub fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }

    /// The PEM of `TLS_CA_FILE`, when set.
    pub fn ca_pem(&self) -> Option<&[u8]> {
        self.ca.as_deref().map(Vec::as_slice)
    }
}

/// The crypto of every rustls configuration here (`ring`).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `TLS_CA_FILE`'s PEM, checked: it must hold at least one certificate.
fn read_ca(path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read(path).with_context(|| format!("TLS_CA_FILE: cannot read {}", path.display()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .with_context(|| format!("TLS_CA_FILE: {} is not PEM", path.display()))?;
    if certs.is_empty() {
        bail!("TLS_CA_FILE: no certificate in {}", path.display());
    }
    Ok(pem)
}

/// The certificate a listener presents, read from its two files and reloaded when they
/// change ([`ReloadingCert::reload`]); every handshake takes the one loaded last.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    stamp: Mutex<Stamp>,
}

/// The modification times of the pair last loaded.
type Stamp = (Option<SystemTime>, Option<SystemTime>);

impl ReloadingCert {
    /// The pair at `cert` and `key`, loaded now.
    ///
    /// # Errors
    ///
    /// Unreadable or unparsable files, or a key not matching the certificate.
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let stamp = stamp(cert, key);
        let loaded = load_pair(cert, key)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(Arc::new(loaded)),
            stamp: Mutex::new(stamp),
        })
    }

    /// Load the pair again when `force`d or when either file changed since the last load;
    /// true when a new pair is in use. A pair that does not load leaves the old one.
    ///
    /// # Errors
    ///
    /// The new pair did not load.
    pub fn reload(&self, force: bool) -> anyhow::Result<bool> {
        let now = stamp(&self.cert, &self.key);
        let mut last = self.stamp.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !force && *last == now {
            return Ok(false);
        }
        // Whatever happens, this version of the files is not tried again until it changes.
        *last = now;
        let loaded = load_pair(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(loaded);
        Ok(true)
    }

    /// The pair in use.
    pub fn certified(&self) -> Arc<CertifiedKey> {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Reload every `interval` when the files changed, and at once on SIGHUP, on a thread
    /// of its own for the life of the process.
    fn watch(self: Arc<Self>, interval: Duration) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        // Registered here, so a SIGHUP right after start-up already reloads (not kills).
        let mut hangup = runtime
            .block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) })?;
        std::thread::Builder::new().name("tls-reload".into()).spawn(move || {
            runtime.block_on(async move {
                let mut every = tokio::time::interval(interval.max(Duration::from_millis(100)));
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    let force = tokio::select! {
                        _ = every.tick() => false,
                        _ = hangup.recv() => true,
                    };
                    self.reload_logged(force);
                }
            });
        })?;
        Ok(())
    }

    fn reload_logged(&self, force: bool) {
        match self.reload(force) {
            Ok(true) => tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded"),
            Ok(false) => {}
            Err(err) => {
                tracing::error!(error = %format!("{err:#}"), "TLS certificate not reloaded; keeping the one in use");
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certified())
    }
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (modified(cert), modified(key))
}

/// The certificate chain at `cert` with its private key at `key`, checked to match.
fn load_pair(cert: &Path, key: &Path) -> anyhow::Result<CertifiedKey> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect)
        .map_err(|e| anyhow::anyhow!("TLS_CERT_FILE: cannot read {}: {e}", cert.display()))?;
    if chain.is_empty() {
        bail!("TLS_CERT_FILE: no certificate in {}", cert.display());
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        anyhow::anyhow!("TLS_KEY_FILE: cannot read a private key from {}: {e}", key.display())
    })?;
    CertifiedKey::from_der(chain, private, &provider())
        .map_err(|e| anyhow::anyhow!("TLS_KEY_FILE: {} does not fit TLS_CERT_FILE: {e}", key.display()))
}

/// An HTTP client with a total deadline and a shorter connect timeout, trusting
/// `TLS_CA_FILE` (when set) besides the system's roots.
///
/// # Errors
///
/// The CA does not load into the TLS backend, or the client cannot be built.
pub fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    http_builder(&current())
        .map(|b| b.timeout(timeout).connect_timeout(timeout.min(Duration::from_secs(2))))?
        .build()
        .context("HTTP client")
}

/// A client builder trusting `tls`'s CA, without deadlines (a stream's caller sets its own).
///
/// # Errors
///
/// The CA does not load into the TLS backend.
pub fn http_builder(tls: &ProcessTls) -> anyhow::Result<reqwest::ClientBuilder> {
    let mut builder = reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(30));
    if let Some(pem) = tls.ca_pem() {
        for cert in reqwest::Certificate::from_pem_bundle(pem).context("TLS_CA_FILE")? {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder)
}

/// Check at start-up that `url` (of `variable`) is one the HTTP clients can call.
///
/// # Errors
///
/// A scheme other than `http` and `https`, or no host.
pub fn check_http_url(variable: &str, url: &Url) -> anyhow::Result<()> {
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(()),
        scheme => bail!("{variable}: {url}: a {scheme}:// URL cannot be called; use http:// or https://"),
    }
}

/// A gRPC endpoint at `url` with connect and call deadlines: for `https://`, TLS trusting
/// `TLS_CA_FILE` (or, without it, the public web roots).
///
/// # Errors
///
/// A scheme other than `http` and `https`, or a URL tonic refuses.
pub fn grpc_endpoint(url: &Url, timeout: Duration) -> anyhow::Result<tonic::transport::Endpoint> {
    check_http_url("LOGGER_GRPC_URL", url)?;
    let endpoint = tonic::transport::Endpoint::from_shared(url.to_string())?
        .connect_timeout(timeout.min(Duration::from_secs(2)))
        .timeout(timeout)
        .tcp_nodelay(true);
    if url.scheme() != "https" {
        return Ok(endpoint);
    }
    let tls = tonic::transport::ClientTlsConfig::new().timeout(timeout.min(Duration::from_secs(5)));
    let tls = match current().ca_pem() {
        Some(pem) => tls.ca_certificate(tonic::transport::Certificate::from_pem(pem)),
        None => tls.with_webpki_roots(),
    };
    endpoint.tls_config(tls).context("LOGGER_GRPC_URL: TLS")
}

/// The TLS connections of `listener`, each handshake on a task of its own within
/// `handshake` (one that fails or takes longer is dropped, and logged at debug level), for a
/// server that takes a stream of connections (tonic); abort the handle to stop accepting.
pub fn incoming(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    handshake: Duration,
) -> (
    impl futures_util::Stream<Item = std::io::Result<tokio_rustls::server::TlsStream<tokio::net::TcpStream>>>
    + Send
    + 'static,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let accepting = tokio::spawn(async move {
        while !tx.is_closed() {
            let (tcp, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx) = (acceptor.clone(), tx.clone());
            tokio::spawn(async move {
                if let Some(tls) = handshake_within(handshake, acceptor.accept(tcp), peer).await {
                    let _ = tx.send(tls).await;
                }
            });
        }
    });
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|tls| (Ok(tls), rx)) });
    (stream, accepting)
}

/// The stream `accept` gives within `within`, or `None` (logged) when the handshake with
/// `peer` fails or takes longer.
pub async fn handshake_within<S>(
    within: Duration,
    accept: impl std::future::Future<Output = std::io::Result<S>>,
    peer: std::net::SocketAddr,
) -> Option<S> {
    match tokio::time::timeout(within, accept).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(err)) => {
            tracing::debug!(%peer, error = %err, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use troupe_testkit::pki::TestCa;

    use super::*;

    fn served(cert: &ReloadingCert) -> Vec<u8> {
        cert.certified().cert[0].to_vec()
    }

    #[test]
    fn a_changed_pair_is_loaded_and_one_that_does_not_fit_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = TestCa::new("unit CA");
        let (first, files) = ca.write(dir.path(), "first");
        let cert = ReloadingCert::load(&files.cert, &files.key).expect("the pair loads");
        assert_eq!(served(&cert), first.der);
        assert!(!cert.reload(false).expect("nothing changed"), "reloaded unchanged files");

        let second = ca.issue("second");
        files.replace(&second);
        assert!(cert.reload(false).expect("the new pair loads"), "a changed pair not picked up");
        assert_eq!(served(&cert), second.der);

        std::fs::write(&files.key, ca.issue("third").key_pem).expect("write another key");
        let err = cert.reload(true).expect_err("a key of another certificate");
        assert!(format!("{err:#}").contains("does not fit TLS_CERT_FILE"), "{err:#}");
        assert_eq!(served(&cert), second.der, "the pair in use is kept");
        assert!(!cert.reload(false).expect("the same broken files"), "a broken pair is retried unchanged");
    }

    #[test]
    fn the_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = TestCa::new("unit CA");
        let (_, files) = ca.write(dir.path(), "leaf");
        assert!(read_ca(&files.ca).is_ok());
        let missing = read_ca(&dir.path().join("absent.pem")).expect_err("no such file");
        assert!(format!("{missing:#}").starts_with("TLS_CA_FILE: cannot read"), "{missing:#}");
        std::fs::write(dir.path().join("garbage.pem"), "garbage").expect("write");
        let garbage = read_ca(&dir.path().join("garbage.pem")).expect_err("not PEM");
        assert!(format!("{garbage:#}").starts_with("TLS_CA_FILE: no certificate"), "{garbage:#}");
    }

    #[test]
    fn only_http_and_https_urls_are_called() {
        let url = |raw: &str| Url::parse(raw).expect("URL");
        assert!(check_http_url("AUTH_URL", &url("https://auth:8082")).is_ok());
        let ftp = check_http_url("AUTH_URL", &url("ftp://auth")).expect_err("ftp");
        assert!(ftp.to_string().starts_with("AUTH_URL: ftp://auth"), "{ftp}");
        let tls = ProcessTls { ca: Some(Arc::new(ca_pem())), ..none() };
        assert!(http_builder(&tls).and_then(|b| Ok(b.build()?)).is_ok(), "a client trusting the CA");
    }

    fn ca_pem() -> Vec<u8> {
        TestCa::new("unit CA").pem().into_bytes()
    }
}
