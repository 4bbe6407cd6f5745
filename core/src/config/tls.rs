//! TLS settings every service process shares: the certificate its listeners present
//! (`TLS_CERT_FILE`, `TLS_KEY_FILE`, reloaded on change or SIGHUP) and the certificate
//! authority its clients trust for `https://` peers (`TLS_CA_FILE`), plus [`secret_or_file`],
//! the rule every `X` / `X_FILE` secret pair follows, and [`fill_from_file`] applying it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use secrecy::{ExposeSecret as _, SecretString};

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

/// The secret `name` as configured: its value `X`, or the contents of the file `X_FILE`
/// names (surrounding whitespace and the final newline trimmed, as a mounted secret has
/// them), or `None` when neither is set. Both set, an unreadable or an empty file: an error
/// naming the variable.
///
/// # Errors
///
/// As above; the message never contains the secret.
pub fn secret_or_file(
    name: &str,
    value: Option<&SecretString>,
    file: Option<&Path>,
) -> Result<Option<SecretString>, String> {
    match (value, file) {
        (Some(_), Some(_)) => Err(format!("{name} and {name}_FILE: set only one")),
        (Some(value), None) => Ok(Some(value.clone())),
        (None, None) => Ok(None),
        (None, Some(path)) => {
            let raw = std::fs::read_to_string(path)
                .map_err(|e| format!("{name}_FILE: cannot read {}: {e}", path.display()))?;
            let trimmed = raw.trim();
            if trimmed.is_empty() {
                return Err(format!("{name}_FILE: {} is empty", path.display()));
            }
            Ok(Some(SecretString::from(trimmed.to_owned())))
        }
    }
}

/// Fill `value` (the secret `name`) from the file `name_FILE` names, when that is set, after
/// checking the contents as `name`'s own parser checks a value (`check`); for the settings
/// whose value clap reads, so that every consumer keeps reading the one field.
///
/// # Errors
///
/// As [`secret_or_file`], and the check's complaint prefixed by `name_FILE`.
pub fn fill_from_file(
    name: &str,
    value: &mut Option<SecretString>,
    file: Option<&Path>,
    check: impl Fn(&str) -> Result<(), String>,
) -> Result<(), String> {
    if file.is_none() {
        return Ok(());
    }
    let secret = secret_or_file(name, value.as_ref(), file)?;
    if let Some(secret) = &secret {
        check(secret.expose_secret()).map_err(|e| format!("{name}_FILE: {e}"))?;
    }
    *value = secret;
    Ok(())
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn a_secret_comes_from_its_value_or_its_file_never_both() {
        let dir = std::env::temp_dir().join(format!("troupe-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("dsn");
        std::fs::write(&file, "postgres://u:p@db/x\n").expect("write secret");
        let value = SecretString::from("postgres://inline");

        let read = secret_or_file("DSN", None, Some(&file)).expect("read from the file");
        assert_eq!(read.as_ref().map(|s| s.expose_secret()), Some("postgres://u:p@db/x"));
        let inline = secret_or_file("DSN", Some(&value), None).expect("the value");
        assert_eq!(inline.as_ref().map(|s| s.expose_secret()), Some("postgres://inline"));
        assert!(secret_or_file("DSN", None, None).expect("neither").is_none());

        let both = secret_or_file("DSN", Some(&value), Some(&file)).expect_err("both set");
        assert_eq!(both, "DSN and DSN_FILE: set only one");
        let missing = secret_or_file("DSN", None, Some(&dir.join("absent"))).expect_err("no such file");
        assert!(missing.starts_with("DSN_FILE: cannot read "), "{missing}");
        std::fs::write(&file, " \n").expect("write an empty secret");
        let empty = secret_or_file("DSN", None, Some(&file)).expect_err("empty");
        assert!(empty.ends_with("is empty"), "{empty}");
        assert!(!format!("{both}{missing}{empty}").contains("postgres://"), "a message leaked the secret");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

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
