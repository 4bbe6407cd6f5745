//! The catcher bounds its SMTP sessions (issue 14: 64 idle sessions used to lock it, a new one
//! got no greeting in 5 s): one over the limit is told `421` at once, and a silent session is
//! told `421` and closed after the idle timeout, which makes room for the next.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use troupe_actors::catcher::{self, Bounds, CatcherStore};

/// A catcher SMTP server within `bounds` (`None`: the defaults), its address.
fn catcher_within(dir: &std::path::Path, bounds: Option<Bounds>) -> SocketAddr {
    let store = CatcherStore::start(dir.join("catcher")).expect("store");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    match bounds {
        Some(b) => catcher::start_smtp_within(listener, store, None, b),
        None => catcher::start_smtp(listener, store, None),
    }
    .expect("smtp");
    addr
}

/// A session and the first line the server sends it (within 5 s, else the test fails).
fn open(addr: SocketAddr) -> (BufReader<TcpStream>, String) {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let mut reader = BufReader::new(stream);
    let line = next_line(&mut reader);
    (reader, line)
}

fn next_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap_or_else(|e| panic!("no line from the catcher within 5 s: {e}"));
    line
}

#[actix_rt::test]
async fn sixty_four_idle_sessions_leave_a_new_client_an_answer_within_five_seconds() {
    let dir = tempfile::tempdir().expect("dir");
    let addr = catcher_within(dir.path(), None);
    let idle: Vec<_> = (0..catcher::SESSIONS).map(|_| open(addr)).collect();
    for (_, greeting) in &idle {
        assert!(greeting.starts_with("220"), "{greeting}");
    }
    let began = Instant::now();
    let (_, answer) = open(addr);
    assert!(answer.starts_with("421"), "one over the limit: {answer}");
    assert!(began.elapsed() < Duration::from_secs(5), "answered after {:?}", began.elapsed());
}

#[actix_rt::test]
async fn a_silent_session_is_closed_after_the_idle_timeout_and_makes_room() {
    let dir = tempfile::tempdir().expect("dir");
    let addr = catcher_within(dir.path(), Some(Bounds { sessions: 2, idle: Duration::from_millis(800) }));
    let (mut talking, greeting) = open(addr);
    assert!(greeting.starts_with("220"), "{greeting}");
    let (mut silent, greeting) = open(addr);
    assert!(greeting.starts_with("220"), "{greeting}");
    let (_, busy) = open(addr);
    assert!(busy.starts_with("421 4.3.2"), "a third while two are open: {busy}");

    // A client that talks within the timeout keeps its session.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(400));
        talking.get_mut().write_all(b"NOOP\r\n").expect("write");
        let reply = next_line(&mut talking);
        assert!(reply.starts_with("250"), "NOOP: {reply}");
    }
    // The silent one was told why and closed (the read ends: no hang).
    let bye = next_line(&mut silent);
    assert!(bye.starts_with("421 4.4.2"), "{bye}");
    assert_eq!(next_line(&mut silent), "", "closed after the 421");
    // Its place is free again.
    let (_, greeting) = open(addr);
    assert!(greeting.starts_with("220"), "after the idle one was closed: {greeting}");
}
