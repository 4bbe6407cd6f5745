//! Bounds in front of the catcher's SMTP server: `mailin-embedded` gives each session a
//! thread for as long as the client keeps it open, with no timeout, so idle sessions could
//! take every thread and a new client would wait for a greeting forever. Each connection is
//! relayed to the server on loopback by [`serve`]: at most [`Bounds::sessions`] at once (one
//! over gets `421` at once and is closed), and a session whose client says nothing for
//! [`Bounds::idle`] gets `421` and is closed, which frees its server thread.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How many sessions, and how idle they may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Sessions served at once.
    pub sessions: u32,
    /// Longest a client may stay silent.
    pub idle: Duration,
}

const BUSY: &[u8] = b"421 4.3.2 troupe-catcher: too many sessions, try again later\r\n";
const IDLE: &[u8] = b"421 4.4.2 troupe-catcher: idle too long, closing\r\n";

/// Accept on `public` and relay each session to the SMTP server at `server`, within `bounds`.
pub fn serve(public: TcpListener, server: SocketAddr, bounds: Bounds) {
    let open = Arc::new(AtomicU32::new(0));
    for conn in public.incoming() {
        let Ok(mut client) = conn else { continue };
        if open.fetch_add(1, Ordering::SeqCst) >= bounds.sessions {
            open.fetch_sub(1, Ordering::SeqCst);
            let _ = client.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = client.write_all(BUSY);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let open = open.clone();
        let spawned = std::thread::Builder::new().name("catcher-session".into()).spawn(move || {
            relay(client, server, bounds.idle);
            open.fetch_sub(1, Ordering::SeqCst);
        });
        if spawned.is_err() {
            tracing::warn!("catcher: no thread for a new SMTP session");
        }
    }
}

/// Copy bytes both ways between `client` and the server until either side closes or the
/// client is silent for `idle`.
fn relay(mut client: TcpStream, server: SocketAddr, idle: Duration) {
    let Ok(mut upstream) = TcpStream::connect_timeout(&server, Duration::from_secs(2)) else {
        let _ = client.write_all(BUSY);
        return;
    };
    let (Ok(mut from_server), Ok(mut to_client)) = (upstream.try_clone(), client.try_clone()) else { return };
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Both);
    });
    let _ = client.set_read_timeout(Some(idle));
    let mut buf = [0u8; 16 * 1024];
    loop {
        match client.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if upstream.write_all(&buf[..n]).is_ok() => {}
            Ok(_) => break,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                let _ = client.write_all(IDLE);
                break;
            }
            Err(_) => break,
        }
    }
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
    let _ = back.join();
}
