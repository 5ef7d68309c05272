//! `waguard serve`'s throughput over real HTTP/1.1 keep-alive connections, beside a floor
//! measured in the same run with the same client: a bare axum endpoint that reads the body and
//! answers a constant decision.
//!
//! ```sh
//! cargo run --release -p waguard-server --example http_bench -- \
//!   [--seconds 5] [--connections 32] [--contacts 10000] [--postgres URL]
//! ```
//!
//! For each of the floor, sled (and PostgreSQL with `--postgres`): `POST /v1/check` and
//! `POST /v1/reserve` with uniform random contacts among `--contacts`, each of which has
//! written first (so checks answer `free_form`), from `--connections` concurrent keep-alive
//! connections for `--seconds`; it prints requests/s, p50/p99 latency and the share of answers
//! that allowed the message. The business number's pace (S4) is lifted, so that reservations
//! measure the write path; the pair budget (D3) still refuses some.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::post;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use waguard::{ContactKey, Event, Guard, KeyedEvent, Policy};
use waguard_server::{Config, DynStore, Server, Tokens};

const TOKEN: &str = "bench-token-0123456789";
const BUSINESS: &str = "100000001";

struct Args {
    seconds: u64,
    connections: usize,
    contacts: u64,
    postgres: Option<String>,
}

fn args() -> Args {
    let mut args = Args {
        seconds: 5,
        connections: 32,
        contacts: 10_000,
        postgres: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--seconds" => args.seconds = value.parse().expect("--seconds N"),
            "--connections" => args.connections = value.parse().expect("--connections N"),
            "--contacts" => args.contacts = value.parse().expect("--contacts N"),
            "--postgres" => args.postgres = Some(value),
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

fn phone(i: u64) -> String {
    format!("336{:08}", i)
}

/// One measured run: requests/s, p50 and p99 in microseconds.
struct Figures {
    rps: f64,
    p50: u64,
    p99: u64,
    errors: u64,
    allowed: f64,
}

/// Drives `path` on `addr` from `connections` keep-alive connections for `seconds`.
async fn drive(addr: SocketAddr, path: &'static str, reserve: bool, a: &Args) -> Figures {
    let deadline = Instant::now() + Duration::from_secs(a.seconds);
    let contacts = a.contacts;
    let mut tasks = Vec::new();
    for c in 0..a.connections {
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            stream.set_nodelay(true).unwrap();
            let mut rng = fastrand::Rng::with_seed(c as u64);
            let mut latencies = Vec::with_capacity(1 << 16);
            let mut errors = 0u64;
            let mut allowed = 0u64;
            let mut buf = vec![0u8; 8192];
            let mut n = 0u64;
            while Instant::now() < deadline {
                let to = phone(rng.u64(0..contacts));
                let body = if reserve {
                    n += 1;
                    format!(r#"{{"from":"{BUSINESS}","to":"{to}","message":"free_form","idempotency_key":"c{c}-{n}"}}"#)
                } else {
                    format!(r#"{{"from":"{BUSINESS}","to":"{to}","message":"free_form"}}"#)
                };
                let request = format!(
                    "POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let started = Instant::now();
                stream.write_all(request.as_bytes()).await.unwrap();
                let (status, permitted) = read_response(&mut stream, &mut buf).await;
                latencies.push(started.elapsed().as_micros() as u64);
                if status != 200 {
                    errors += 1;
                }
                allowed += u64::from(permitted);
            }
            (latencies, errors, allowed)
        }));
    }
    let started = Instant::now();
    let mut all = Vec::new();
    let mut errors = 0;
    let mut allowed = 0;
    for t in tasks {
        let (l, e, a) = t.await.unwrap();
        all.extend(l);
        errors += e;
        allowed += a;
    }
    let allowed = allowed as f64 / all.len().max(1) as f64;
    let secs = started.elapsed().as_secs_f64().max(a.seconds as f64);
    all.sort_unstable();
    let at = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Figures {
        rps: all.len() as f64 / secs,
        p50: at(0.50),
        p99: at(0.99),
        errors,
        allowed,
    }
}

/// Reads one response (headers, then `Content-Length` bytes of body); returns its status and
/// whether it says `"allowed":true`.
async fn read_response(stream: &mut TcpStream, buf: &mut [u8]) -> (u16, bool) {
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await.unwrap();
        assert!(n > 0, "the server closed the connection");
        filled += n;
        if let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap();
            let status: u16 = head[9..12].parse().unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse().unwrap())
                })
                .unwrap_or(0);
            let mut have = filled - end - 4;
            let allowed = buf[end..filled]
                .windows(14)
                .any(|w| w == b"\"allowed\":true");
            while have < length {
                let n = stream.read(&mut buf[..]).await.unwrap();
                assert!(n > 0, "the server closed the connection");
                have += n;
            }
            return (status, allowed);
        }
    }
}

async fn floor() -> SocketAddr {
    const ANSWER: &str = r#"{"decision":"free_form","allowed":true,"reason":null,"until":null}"#;
    let handler = |_body: axum::body::Bytes| async {
        (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            ANSWER,
        )
    };
    let app = Router::new()
        .route("/v1/check", post(handler))
        .route("/v1/reserve", post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

async fn server(store: DynStore, blocking: bool, a: &Args) -> SocketAddr {
    // One business number sends to every contact: its pace (S4, 80/s by default) is lifted so
    // that reservations measure the write path rather than refusals.
    let mut policy = Policy::default();
    policy.throughput.interval = Duration::from_micros(1);
    policy.throughput.burst = 100_000;
    let guard = Guard::new(store, policy).unwrap();
    // Every contact wrote a minute ago: checks answer free_form.
    let now = guard.clock().now();
    let at = now.saturating_sub(Duration::from_secs(60));
    let business = BUSINESS.to_owned();
    let mut events = Vec::new();
    for i in 0..a.contacts {
        let key: ContactKey = format!("{business}/p:{}", phone(i)).parse().unwrap();
        events.push(KeyedEvent::Contact {
            key,
            event: Event::Inbound {
                at,
                referral: false,
                text: None,
            },
        });
        if events.len() == 1000 {
            guard.ingest(std::mem::take(&mut events)).await.unwrap();
        }
    }
    guard.ingest(events).await.unwrap();
    let config = Config::new(Tokens::new([TOKEN]).unwrap())
        .with_max_concurrent_requests(a.connections.max(1) * 2)
        .with_blocking_store(blocking);
    let server = Server::new(guard, config);
    let main = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = main.local_addr().unwrap();
    tokio::spawn(waguard_server::serve(
        server,
        main,
        admin,
        std::future::pending(),
    ));
    addr
}

fn line(name: &str, f: &Figures, floor: Option<&Figures>) {
    let ratio = floor.map_or(String::new(), |fl| format!("{:.2}x floor", f.rps / fl.rps));
    println!(
        "{name:<22} {:>10.0} req/s   p50 {:>6} us   p99 {:>6} us   allowed {:>3.0} %   {ratio}{}",
        f.rps,
        f.p50,
        f.p99,
        f.allowed * 100.0,
        if f.errors > 0 {
            format!("   {} non-200", f.errors)
        } else {
            String::new()
        }
    );
}

#[tokio::main]
async fn main() {
    let a = args();
    println!(
        "{} connections, {} s each, {} contacts, {} cores",
        a.connections,
        a.seconds,
        a.contacts,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let floor_addr = floor().await;
    let floor_check = drive(floor_addr, "/v1/check", false, &a).await;
    line("floor (constant JSON)", &floor_check, None);

    let dir = tempfile::tempdir().unwrap();
    let sled: DynStore = Arc::new(waguard_sled::SledStore::open(dir.path().join("db")).unwrap());
    let addr = server(sled, true, &a).await;
    let check = drive(addr, "/v1/check", false, &a).await;
    line("sled check", &check, Some(&floor_check));
    let reserve = drive(addr, "/v1/reserve", true, &a).await;
    line("sled reserve", &reserve, Some(&floor_check));

    if let Some(url) = &a.postgres {
        let schema = format!("wg_http_bench_{}", std::process::id());
        let options = waguard_postgres::PostgresOptions::default().with_schema(schema);
        let store = waguard_postgres::PostgresStore::connect_with(url, options)
            .await
            .unwrap();
        let pg: Arc<waguard_postgres::PostgresStore> = Arc::new(store);
        let addr = server(pg.clone(), false, &a).await;
        let check = drive(addr, "/v1/check", false, &a).await;
        line("postgres check", &check, Some(&floor_check));
        let reserve = drive(addr, "/v1/reserve", true, &a).await;
        line("postgres reserve", &reserve, Some(&floor_check));
        let _ = pg.drop_schema().await;
    }
}
