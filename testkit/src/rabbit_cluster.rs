//! The 3-node RabbitMQ cluster on loopback that `scripts/services.d/25-rabbitmq-cluster.sh`
//! starts (nodes `troupe1..3@localhost` on 127.0.0.1:5701-5703), for the fail-over tests:
//! its `RABBIT_URL`, the node holding a quorum queue's leader, and a SIGKILL of one node (the
//! killed node is started again by the next [`require`] or `make services`).

use std::time::Duration;

use crate::eventually;

/// The nodes' AMQP ports.
pub const NODES: [u16; 3] = [5701, 5702, 5703];

/// `RABBIT_URL` naming the three nodes (default vhost).
pub fn url() -> String {
    let nodes: Vec<String> = NODES.iter().map(|p| format!("amqp://guest:guest@127.0.0.1:{p}/%2f")).collect();
    nodes.join(",")
}

/// The cluster, with a node an earlier run killed started again (the project's script,
/// idempotent); panics with what to do when it cannot be had.
pub fn require() {
    let down = || NODES.iter().any(|port| std::net::TcpStream::connect(("127.0.0.1", *port)).is_err());
    if down() {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/services.sh");
        let _ = std::process::Command::new("bash").arg(script).status();
    }
    for port in NODES {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            panic!("the 3-node RabbitMQ cluster is required (127.0.0.1:{port}). Run `make services`.");
        }
    }
}

/// The node (`troupeN@localhost`) holding the leader of quorum queue `queue` (waits up to
/// 20 s for the queue to exist).
pub async fn leader_of(queue: &str) -> String {
    eventually(Duration::from_secs(20), "the queue's leader", || async {
        let out = tokio::process::Command::new("rabbitmqctl")
            .args(["-q", "-n", "troupe1@localhost", "list_queues", "--no-table-headers", "name", "leader"])
            .output()
            .await
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().find_map(|l| {
            let mut cols = l.split_whitespace();
            (cols.next() == Some(queue)).then(|| cols.next().map(str::to_owned)).flatten()
        })
    })
    .await
}

/// SIGKILL the node named `node` (`troupeN@localhost`): its OS process, as the node says.
pub fn kill_node(node: &str) {
    let out = std::process::Command::new("rabbitmqctl")
        .args(["-q", "-n", node, "eval", "os:getpid()."])
        .output()
        .expect("rabbitmqctl runs");
    let pid = String::from_utf8_lossy(&out.stdout).trim().trim_matches('"').to_owned();
    assert!(pid.parse::<u32>().is_ok(), "no pid for {node}: {pid:?}");
    let status = std::process::Command::new("kill").args(["-9", &pid]).status().expect("kill runs");
    assert!(status.success(), "cannot kill {node} ({pid})");
}
