//! Namespace hosts: how long `ipclab hosts up K` and `down` take for K = 2, 4, 8, 16 (goal: 16
//! up in under 5 s), and what the relay adds to a TCP round trip between two hosts when it
//! injects no delay (`--delay h1:h2:0`), as a ratio to a direct connection measured side by
//! side (goal ≤ 1.5×):
//! batches of one-byte round trips alternate between a direct connection and a relayed one,
//! both open at once (nftables redirects new connections only). Run with `make bench-hosts`
//! (root). Prints medians and the ratio; never asserts.

use std::io::{Read, Write};
use std::process::Command;
use std::time::{Duration, Instant};

fn ipclab(args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ipclab"))
        .args(args)
        .output()
        .expect("run ipclab");
    assert!(
        out.status.success(),
        "ipclab {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// An echo server in `h`'s namespace, on a thread of its own; its port.
fn echo_on(h: &ipclab::hosts::Host) -> u16 {
    let ns = std::fs::File::open(format!("/run/netns/{}", h.netns())).expect("netns");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let l = std::net::TcpListener::bind(("0.0.0.0", 0)).expect("bind");
        tx.send(l.local_addr().expect("addr").port()).expect("send");
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut c = c;
                let _ = c.set_nodelay(true);
                let mut b = [0u8; 64];
                while let Ok(n) = c.read(&mut b) {
                    if n == 0 || c.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    rx.recv().expect("port")
}

/// Microseconds per round trip, over `n` one-byte trips on `s`.
fn trips(s: &mut std::net::TcpStream, n: usize) -> f64 {
    let mut b = [0u8; 1];
    let t = Instant::now();
    for _ in 0..n {
        s.write_all(b"x").expect("write");
        s.read_exact(&mut b).expect("read");
    }
    t.elapsed().as_secs_f64() * 1e6 / n as f64
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("bench-hosts needs root (network namespaces, sshd)");
        std::process::exit(2);
    }
    if ipclab::hosts::Cluster::current().is_some() {
        eprintln!("hosts are up already: ipclab hosts down first");
        std::process::exit(2);
    }
    println!("hosts up / down, median of 3 (s):");
    // IPCLAB_BENCH_RELAY_ONLY=1: the relay's ratios alone.
    let ks: &[usize] = if std::env::var_os("IPCLAB_BENCH_RELAY_ONLY").is_some() {
        &[]
    } else {
        &[2, 4, 8, 16]
    };
    for &k in ks {
        let (mut up, mut down) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            up.push(ipclab(&["hosts", "up", &k.to_string()]).as_secs_f64());
            down.push(ipclab(&["hosts", "down"]).as_secs_f64());
        }
        println!(
            "  K={k:2}: up {:.2} s, down {:.2} s",
            median(&mut up),
            median(&mut down)
        );
    }

    ipclab(&["hosts", "up", "2"]);
    let c = ipclab::hosts::Cluster::current().expect("hosts");
    let (h1, h2) = (c.host("h1").expect("h1"), c.host("h2").expect("h2"));
    let port = echo_on(h2);
    let to = std::net::SocketAddr::from((h2.addr, port));
    let mut direct = ipclab::hosts::connect_in(h1, to).expect("direct");
    direct.set_nodelay(true).expect("nodelay");
    trips(&mut direct, 200);
    let rec = ipclab::fifo::private_dir().expect("dir");
    let file = rec.path().join("wire.jsonl");
    // The link named with no delay, then every link recorded (each piece a JSON line): each
    // relayed connection is opened while the relay is on, the direct one before it.
    let ways: [(&str, Vec<&str>); 2] = [
        ("no delay", vec!["--delay", "h1:h2:0"]),
        (
            "no delay, recording",
            vec!["--record", file.to_str().expect("path")],
        ),
    ];
    let (n, rounds) = (2000, 15);
    println!("TCP round trip h1 -> h2 (1 byte, median of {rounds} batches of {n}, side by side):");
    for (what, args) in ways {
        let mut on = vec!["hosts", "relay", "on"];
        on.extend(args);
        ipclab(&on);
        let mut relayed = ipclab::hosts::connect_in(h1, to).expect("relayed");
        relayed.set_nodelay(true).expect("nodelay");
        trips(&mut relayed, 200);
        let (mut d, mut r) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            d.push(trips(&mut direct, n));
            r.push(trips(&mut relayed, n));
        }
        let (md, mr) = (median(&mut d), median(&mut r));
        println!(
            "  direct {md:.1} µs, through the relay ({what}) {mr:.1} µs: ratio {:.2} (goal <= 1.5)",
            mr / md
        );
        drop(relayed);
        ipclab(&["hosts", "relay", "off"]);
    }
    drop(direct);
    ipclab(&["hosts", "down"]);
}
