//! `troupe health`: a container health check that needs no shell and no curl.
//!
//! GETs `/healthz` (or `/readyz` with `--ready`) of a service on 127.0.0.1 and exits 0 on a
//! 2xx answer, 1 otherwise. The service is named (`troupe health logger`), given as a URL
//! (`troupe health http://127.0.0.1:8083/healthz`), or found from what PID 1 runs
//! (`troupe serve <service>`, or `troupe up`, checked on the broker's port), behind an init
//! such as `docker run --init` too. Its port comes from the service's variable
//! (`LOGGER_PORT`, ...) or that variable's default. When the service's listeners speak TLS
//! (`TLS_CERT_FILE` set, as it is in the container the check runs in) or the URL is
//! `https://`, the GET goes over TLS without checking the certificate, as Kubernetes'
//! HTTPS probes do: the check is of the local process, not of who it is.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use clap::Args;
use url::Url;

/// How long connecting, sending and reading may take, each.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Arguments of `troupe health`.
#[derive(Debug, Clone, Args)]
pub struct HealthArgs {
    /// Check readiness (`/readyz`: every backend connected) instead of liveness (`/healthz`).
    #[arg(long)]
    pub ready: bool,
    /// A service name (broker, auth, logger, mailer, listener, frontend, catcher) or an
    /// http:// or https:// URL. Default: the service PID 1 runs.
    pub target: Option<String>,
}

/// The HTTP port variable and its default of each service `troupe serve` runs, read from
/// the service's own settings (their clap definition), so that they cannot drift apart.
fn port_of(service: &str) -> Option<(String, u16)> {
    use troupe_core::config::{
        AuthSettings, BrokerSettings, CatcherSettings, FrontendSettings, ListenerSettings, LoggerSettings,
        MailerSettings,
    };
    let blank = || clap::Command::new("troupe");
    let (command, id) = match service {
        "broker" | "up" => (BrokerSettings::augment_args(blank()), "broker_port"),
        "frontend" => (FrontendSettings::augment_args(blank()), "frontend_port"),
        "auth" => (AuthSettings::augment_args(blank()), "auth_port"),
        "logger" => (LoggerSettings::augment_args(blank()), "logger_port"),
        "mailer" => (MailerSettings::augment_args(blank()), "mailer_port"),
        "listener" => (ListenerSettings::augment_args(blank()), "listener_port"),
        "catcher" => (CatcherSettings::augment_args(blank()), "catcher_http_port"),
        _ => return None,
    };
    let arg = command.get_arguments().find(|a| a.get_id() == id)?;
    let var = arg.get_env()?.to_str()?.to_owned();
    let default = arg.get_default_values().first()?.to_str()?.parse().ok()?;
    Some((var, default))
}

/// The service in a command line: the word after `serve`, else `broker` (`troupe up`).
fn service_in(cmdline: &[String]) -> String {
    cmdline
        .iter()
        .position(|w| w == "serve")
        .and_then(|i| cmdline.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "broker".into())
}

/// The URL to check for these arguments.
fn target_url(args: &HealthArgs) -> Result<Url, String> {
    let path = if args.ready { "/readyz" } else { "/healthz" };
    let service = match &args.target {
        Some(t) if t.starts_with("http://") || t.starts_with("https://") => {
            return Url::parse(t).map_err(|e| format!("{t}: {e}"));
        }
        Some(t) => t.clone(),
        None => {
            let raw =
                std::fs::read("/proc/1/cmdline").map_err(|e| format!("reading /proc/1/cmdline: {e}"))?;
            let words: Vec<String> =
                raw.split(|b| *b == 0).map(|w| String::from_utf8_lossy(w).into_owned()).collect();
            service_in(&words)
        }
    };
    let (var, default) = port_of(&service).ok_or_else(|| format!("unknown service '{service}'"))?;
    let port = match std::env::var(&var) {
        Ok(v) if !v.is_empty() => v.parse::<u16>().map_err(|_| format!("{var}={v} is not a port"))?,
        _ => default,
    };
    let tls = std::env::var_os("TLS_CERT_FILE").is_some_and(|f| !f.is_empty());
    let scheme = if tls { "https" } else { "http" };
    Url::parse(&format!("{scheme}://127.0.0.1:{port}{path}")).map_err(|e| e.to_string())
}

/// One HTTP/1.0 GET; the status code of the answer.
fn get(url: &Url) -> Result<u16, String> {
    let host = url.host_str().ok_or("no host")?;
    let port = url.port_or_known_default().unwrap_or(80);
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    let stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("{addr}: {e}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(|e| e.to_string())?;
    if url.scheme() == "https" {
        let tls = native_tls::TlsConnector::builder()
            .danger_accept_invalid_certs(true)
            .danger_accept_invalid_hostnames(true)
            .build()
            .map_err(|e| format!("TLS: {e}"))?;
        let stream = tls.connect(host, stream).map_err(|e| format!("TLS handshake: {e}"))?;
        return status_of(stream, url, host);
    }
    status_of(stream, url, host)
}

/// Send the GET of `url` on `stream`; the status code of the answer.
fn status_of(mut stream: impl Read + Write, url: &Url, host: &str) -> Result<u16, String> {
    let request = format!("GET {} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n", url.path());
    stream.write_all(request.as_bytes()).map_err(|e| e.to_string())?;
    let mut head = [0u8; 32];
    let mut read = 0;
    while read < 12 {
        match stream.read(&mut head[read..]).map_err(|e| e.to_string())? {
            0 => break,
            n => read += n,
        }
    }
    let line = String::from_utf8_lossy(&head[..read]);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {line:?}"))
}

/// Run the check: `Ok` on a 2xx answer, else what went wrong.
pub fn run(args: &HealthArgs) -> Result<(), String> {
    let url = target_url(args)?;
    match get(&url) {
        Ok(code) if (200..300).contains(&code) => Ok(()),
        Ok(code) => Err(format!("{url}: {code}")),
        Err(e) => Err(format!("{url}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn the_service_comes_from_pid_1s_command_line() {
        assert_eq!(service_in(&words("/sbin/docker-init -- troupe serve logger")), "logger");
        assert_eq!(service_in(&words("troupe up")), "broker");
        assert_eq!(port_of("catcher"), Some(("CATCHER_HTTP_PORT".into(), 8025)));
        assert_eq!(port_of("up"), Some(("BROKER_PORT".into(), 8080)));
        assert_eq!(port_of("listener"), Some(("LISTENER_PORT".into(), 8085)));
        assert_eq!(port_of("nothing"), None);
    }

    #[test]
    fn a_url_is_checked_as_given_and_a_refused_port_fails() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("accept");
            let mut buf = [0u8; 256];
            let _ = s.read(&mut buf);
            s.write_all(b"HTTP/1.1 503 Service Unavailable\r\n\r\n").expect("write");
        });
        let args = HealthArgs { ready: true, target: Some(format!("http://127.0.0.1:{port}/readyz")) };
        assert_eq!(run(&args), Err(format!("http://127.0.0.1:{port}/readyz: 503")));
        server.join().expect("server");
        let err = run(&args).expect_err("nothing listens any more");
        assert!(err.contains("127.0.0.1"), "{err}");
    }
}
