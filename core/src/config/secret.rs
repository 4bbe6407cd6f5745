//! Secret settings. Each secret `X` is a [`Secret`]: its value in `X` (or `--x`), or the file
//! `X_FILE` (`--x-file`) names, as Docker and Kubernetes mount secrets; one rule for all of
//! them ([`secret_or_file`]), and no value ever repeated in an error or in `--help`.
//!
//! The variables are the marker types below ([`Dsn`], [`JwtSecret`], ...), a line each.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use clap::Args;
use secrecy::{ExposeSecret as _, SecretString};

/// The names and the check of one secret variable (the marker types below).
pub trait SecretName: std::fmt::Debug + Clone + Send + Sync + 'static {
    /// The variable, e.g. `DSN`.
    const ENV: &'static str;
    /// The variable naming its file, e.g. `DSN_FILE`.
    const ENV_FILE: &'static str;
    /// The flag, e.g. `dsn`.
    const LONG: &'static str;
    /// The file's flag, e.g. `dsn-file`.
    const LONG_FILE: &'static str;
    /// The variable's `--help`.
    const HELP: &'static str;
    /// The file variable's `--help`.
    const HELP_FILE: &'static str;

    /// Refuse a value the service could never use (the default: none); the message must not
    /// contain the value.
    ///
    /// # Errors
    ///
    /// Why the value is refused.
    fn check(_value: &str) -> Result<(), String> {
        Ok(())
    }
}

/// The marker types naming the secret variables: `Type("ENV", "flag"): "help"`, with an
/// optional check (`fn(&str) -> Result<(), String>`) after `if`.
macro_rules! secret_names {
    ($($name:ident($env:literal, $long:literal): $help:literal $(if $check:path)?;)*) => {$(
        #[doc = concat!("The secret `", $env, "` (or the file `", $env, "_FILE` names).")]
        #[derive(Debug, Clone)]
        pub struct $name;

        impl SecretName for $name {
            const ENV: &'static str = $env;
            const ENV_FILE: &'static str = concat!($env, "_FILE");
            const LONG: &'static str = $long;
            const LONG_FILE: &'static str = concat!($long, "-file");
            const HELP: &'static str = $help;
            const HELP_FILE: &'static str =
                concat!("File holding ", $env, " instead (e.g. a mounted secret)");
            $(fn check(value: &str) -> Result<(), String> {
                $check(value)
            })?
        }
    )*};
}

secret_names! {
    Dsn("DSN", "dsn"): "PostgreSQL to keep users in, as a libpq key=value string (as the Go platform used) or a postgres:// URL. Unset: SQLite in TROUPE_DATA_DIR";
    JwtSecret("JWT_SECRET", "jwt-secret"): "HMAC key (HS256) signing access tokens, shared by auth and the services that sign service tokens; at least 32 bytes";
    MongoUrl("MONGO_URL", "mongo-url"): "MongoDB to keep logs in (`mongodb://host:27017`). Unset: SQLite in TROUPE_DATA_DIR";
    MongoPassword("MONGO_PASSWORD", "mongo-password"): "MongoDB password, when not in MONGO_URL";
    MailPassword("MAIL_PASSWORD", "mail-password"): "SMTP password";
    RabbitUrl("RABBIT_URL", "rabbit-url"): "RabbitMQ, as an amqp:// URL (e.g. amqp://guest:guest@rabbitmq:5672/%2f), or amqps:// for TLS (trusting the system's roots and TLS_CA_FILE); for a cluster, the nodes' URLs separated by commas, tried in turn on every (re)connect. Unset: the in-process bus (`troupe up` only)" if super::events::check_rabbit_url;
}

/// The secret `N`: a value, or the file holding it.
#[derive(Debug, Clone, Args)]
#[group(skip)]
pub struct Secret<N: SecretName> {
    #[arg(id = N::ENV, long = N::LONG, env = N::ENV, help = N::HELP, hide_env_values = true,
          value_parser = Checked::<N>(PhantomData))]
    value: Option<SecretString>,
    #[arg(id = N::ENV_FILE, long = N::LONG_FILE, env = N::ENV_FILE, help = N::HELP_FILE)]
    file: Option<PathBuf>,
    #[arg(skip)]
    name: PhantomData<N>,
}

impl<N: SecretName> Default for Secret<N> {
    fn default() -> Self {
        Self { value: None, file: None, name: PhantomData }
    }
}

impl<N: SecretName> From<SecretString> for Secret<N> {
    fn from(value: SecretString) -> Self {
        Self { value: Some(value), ..Self::default() }
    }
}

impl<N: SecretName> From<&str> for Secret<N> {
    fn from(value: &str) -> Self {
        SecretString::from(value.to_owned()).into()
    }
}

impl<N: SecretName> Secret<N> {
    /// The value, when set (after [`Self::read_file`], the file's contents).
    pub fn value(&self) -> Option<&SecretString> {
        self.value.as_ref()
    }

    /// The value or the file's contents, without keeping them ([`secret_or_file`]).
    ///
    /// # Errors
    ///
    /// Both set, an unreadable or empty file: a message naming the variable.
    pub fn read(&self) -> Result<Option<SecretString>, String> {
        secret_or_file(N::ENV, self.value.as_ref(), self.file.as_deref())
    }

    /// Replace a file by its contents, checked as a value is, so that every consumer reads
    /// [`Self::value`].
    ///
    /// # Errors
    ///
    /// As [`Self::read`], and the check's complaint prefixed by `X_FILE`.
    pub fn read_file(&mut self) -> Result<(), String> {
        if self.file.is_none() {
            return Ok(());
        }
        let secret = self.read()?;
        if let Some(secret) = &secret {
            N::check(secret.expose_secret()).map_err(|e| format!("{}: {e}", N::ENV_FILE))?;
        }
        self.value = secret;
        self.file = None;
        Ok(())
    }
}

/// The value parser of a secret: [`SecretName::check`], with an error that never repeats the
/// value (which clap's own value errors would).
#[derive(Debug, Clone, Copy)]
struct Checked<N>(PhantomData<N>);

impl<N: SecretName> clap::builder::TypedValueParser for Checked<N> {
    type Value = SecretString;

    fn parse_ref(
        &self,
        _: &clap::Command,
        _: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<SecretString, clap::Error> {
        let invalid = |why: &str| {
            clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{}: {why}\n", N::ENV))
        };
        let raw = value.to_str().ok_or_else(|| invalid("not UTF-8"))?;
        N::check(raw).map_err(|e| invalid(&e))?;
        Ok(SecretString::from(raw.to_owned()))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory for one test's files, and a file `name` in it holding `contents`.
    fn scratch(test: &str, name: &str, contents: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("troupe-{test}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join(name);
        std::fs::write(&file, contents).expect("write secret");
        (dir, file)
    }

    #[test]
    fn a_secret_comes_from_its_value_or_its_file_never_both() {
        let (dir, file) = scratch("secret", "dsn", "postgres://u:p@db/x\n");
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
    fn rabbit_urls_must_be_amqp() {
        let parse = |raw: &str| {
            let command = clap::Command::new("t");
            let parser = Checked::<RabbitUrl>(PhantomData);
            clap::builder::TypedValueParser::parse_ref(&parser, &command, None, std::ffi::OsStr::new(raw))
        };
        let cluster = parse("amqp://u:p@a:5672/%2f, AMQP://u:p@b:5672/%2f").expect("amqp");
        assert_eq!(cluster.expose_secret(), "amqp://u:p@a:5672/%2f, AMQP://u:p@b:5672/%2f");
        parse("amqp://a, amqps://u:secret@b:5671/x").expect("amqps (TLS) too");
        let other = parse("http://u:secret@b").expect_err("http").to_string();
        assert!(other.contains("RABBIT_URL: expected amqp:// or amqps:// URLs"), "{other}");
        assert!(!other.contains("secret"), "the password leaked");
    }

    #[test]
    fn a_file_is_checked_as_a_value_is() {
        let (dir, file) = scratch("secret-check", "rabbit", "http://u:secret@mq\n");
        let mut url = Secret::<RabbitUrl> { file: Some(file.clone()), ..Secret::default() };
        let err = url.read_file().expect_err("not amqp");
        assert!(err.starts_with("RABBIT_URL_FILE: expected amqp://") && !err.contains("secret"), "{err}");
        std::fs::write(&file, "amqp://u:p@mq:5672/%2f").expect("write secret");
        url.read_file().expect("an amqp URL");
        assert_eq!(url.value().map(|s| s.expose_secret()), Some("amqp://u:p@mq:5672/%2f"));
        url.read_file().expect("read once: the value stays");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
