//! TLS settings every service process shares: the certificate its listeners present
//! (`TLS_CERT_FILE`, `TLS_KEY_FILE`, reloaded on change or SIGHUP) and the certificate
//! authority its clients trust for `https://` peers (`TLS_CA_FILE`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use super::parse_duration;

/// TLS of the process's listeners (HTTP, gRPC, JSON-RPC) and of its clients.
#[derive(Debug, Clone, Args)]
pub struct TlsSettings {
    /// PEM certificate chain every listener of the process presents (leaf first). With
    /// TLS_KEY_FILE, every HTTP, gRPC and JSON-RPC listener speaks TLS only.
    #[arg(long, env = "TLS_CERT_FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of TLS_CERT_FILE.
    #[arg(long, env = "TLS_KEY_FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM certificate(s) of the authority that signed the `https://` services this process
    /// calls (AUTH_URL, LOGGER_URL, LOGGER_GRPC_URL, MAILER_URL, ...), trusted besides the
    /// system's roots (the gRPC client: instead of the public web roots).
    #[arg(long, env = "TLS_CA_FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// How often the certificate and key files are checked for a change (SIGHUP reloads at
    /// once); a pair that does not load is logged and the one in use is kept.
    #[arg(long, env = "TLS_RELOAD_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub tls_reload_interval: Duration,
    /// Longest a client may take to finish the TLS handshake on any listener.
    #[arg(long, env = "TLS_HANDSHAKE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub tls_handshake_timeout: Duration,
}

impl TlsSettings {
    /// The certificate and key files, when the listeners are to speak TLS.
    ///
    /// # Errors
    ///
    /// Only one of the two is set.
    pub fn server_files(&self) -> Result<Option<(&Path, &Path)>, String> {
        match (self.tls_cert_file.as_deref(), self.tls_key_file.as_deref()) {
            (Some(cert), Some(key)) => Ok(Some((cert, key))),
            (None, None) => Ok(None),
            _ => Err("TLS_CERT_FILE and TLS_KEY_FILE: set both or neither".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_speak_tls_only_with_both_files() {
        let mut tls = TlsSettings::default();
        assert_eq!(tls.server_files(), Ok(None));
        assert_eq!(tls.tls_handshake_timeout, Duration::from_secs(5));
        tls.tls_cert_file = Some("cert.pem".into());
        assert_eq!(tls.server_files(), Err("TLS_CERT_FILE and TLS_KEY_FILE: set both or neither".into()));
        tls.tls_key_file = Some("key.pem".into());
        assert_eq!(tls.server_files(), Ok(Some((Path::new("cert.pem"), Path::new("key.pem")))));
    }
}
