//! The /metrics endpoint: one thread that accepts a connection, reads the
//! request and writes the answer rendered at the last update, in one
//! write, then closes the connection.
//!
//! On a busy machine every thread a request passes through waits for a
//! CPU. tiny_http passed each through three (its accept thread, a
//! connection thread, the handler, which also rendered the text): on this
//! 2-core VM at load 5-7, 7 answers in 412 took over 50 ms, each hop's
//! wait a part. Here a request wakes one thread, which has nothing else to
//! do, and finds its answer ready.

use std::{
    io::{self, Write as _},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::Duration,
};

use arc_swap::ArcSwap;

/// How long a client gets to send its request and to take the answer:
/// the thread serves one connection at a time.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest request head read (Prometheus sends ~250 bytes).
const MAX_HEAD: usize = 8192;
/// How long to wait before accepting again after a failed accept (out of
/// file descriptors, say), rather than spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A whole HTTP answer: head and body in one buffer, written at once.
pub struct Page {
    bytes: Vec<u8>,
    head_len: usize,
}

impl Page {
    /// The answer to GET /metrics with `body`, the OpenMetrics text.
    pub fn metrics(body: &str) -> Self {
        Self::new("200 OK", CONTENT_TYPE, body)
    }

    fn new(status: &str, content_type: &str, body: &str) -> Self {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let mut bytes = Vec::with_capacity(head.len() + body.len());
        bytes.extend_from_slice(head.as_bytes());
        bytes.extend_from_slice(body.as_bytes());
        Self {
            bytes,
            head_len: head.len(),
        }
    }

    fn plain(status: &str, text: &str) -> Self {
        Self::new(status, "text/plain; charset=utf-8", text)
    }

    /// What is written: a HEAD request gets the head alone.
    fn for_request(&self, head_only: bool) -> &[u8] {
        if head_only {
            &self.bytes[..self.head_len]
        } else {
            &self.bytes
        }
    }
}

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    /// /metrics; `head_only` for HEAD.
    Metrics {
        head_only: bool,
    },
    NotFound,
    MethodNotAllowed,
    BadRequest,
}

/// The route of a request head; None while it is incomplete.
fn route(head: &[u8]) -> Option<Route> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Partial) => None,
        Err(_) => Some(Route::BadRequest),
        Ok(httparse::Status::Complete(_)) => {
            let head_only = match request.method {
                Some("GET") => false,
                Some("HEAD") => true,
                _ => return Some(Route::MethodNotAllowed),
            };
            // A query string (Prometheus's `params`) asks for nothing else.
            let path = request.path.unwrap_or("");
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            Some(if path == "/metrics" {
                Route::Metrics { head_only }
            } else {
                Route::NotFound
            })
        }
    }
}

/// The /metrics endpoint, serving from its own thread until stopped.
pub struct Endpoint {
    listener: Arc<TcpListener>,
    stopping: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Listens on `addr` (before the probes load: a busy port fails first).
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

impl Endpoint {
    /// Serves `pages` (the latest answer, replaced at each update) on
    /// `listener` from a thread of its own.
    pub fn start(listener: TcpListener, pages: Arc<ArcSwap<Page>>) -> io::Result<Self> {
        let listener = Arc::new(listener);
        let stopping = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("zc-trace-http".into())
            .spawn({
                let (listener, stopping) = (Arc::clone(&listener), Arc::clone(&stopping));
                move || serve(&listener, &pages, &stopping)
            })?;
        Ok(Self {
            listener,
            stopping,
            thread,
        })
    }

    /// Stops accepting and waits for the answer being written, if any.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::Relaxed);
        // Shutting a listening socket down wakes the accept blocked on it
        // (Linux returns EINVAL).
        // SAFETY: a socket fd this endpoint owns, open until it is dropped.
        unsafe { libc::shutdown(self.listener.as_raw_fd(), libc::SHUT_RDWR) };
        let _ = self.thread.join();
    }
}

/// The fixed answers to requests for anything but /metrics.
struct Refusals {
    not_found: Page,
    not_allowed: Page,
    bad: Page,
}

impl Refusals {
    fn new() -> Self {
        Self {
            not_found: Page::plain("404 Not Found", "zc-trace serves /metrics\n"),
            not_allowed: Page::plain("405 Method Not Allowed", "zc-trace serves GET /metrics\n"),
            bad: Page::plain("400 Bad Request", "zc-trace serves GET /metrics\n"),
        }
    }
}

fn serve(listener: &TcpListener, pages: &ArcSwap<Page>, stopping: &AtomicBool) {
    let refusals = Refusals::new();
    while !stopping.load(Ordering::Relaxed) {
        match listener.accept() {
            // A client that fails loses its own answer; one that stalls
            // holds the next back CLIENT_TIMEOUT at most.
            Ok((stream, _)) => drop(answer(stream, pages, &refusals)),
            Err(_) if stopping.load(Ordering::Relaxed) => break,
            // The client gave up before it was accepted.
            Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
            Err(_) => std::thread::sleep(ACCEPT_RETRY),
        }
    }
}

/// Reads one request and writes its answer.
fn answer(mut stream: TcpStream, pages: &ArcSwap<Page>, refusals: &Refusals) -> io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let Some(route) = read_route(&mut stream)? else {
        return Ok(());
    };
    let metrics;
    let bytes = match route {
        Route::Metrics { head_only } => {
            metrics = pages.load_full();
            metrics.for_request(head_only)
        }
        Route::NotFound => refusals.not_found.for_request(false),
        Route::MethodNotAllowed => refusals.not_allowed.for_request(false),
        Route::BadRequest => refusals.bad.for_request(false),
    };
    stream.write_all(bytes)?;
    stream.shutdown(Shutdown::Write)
}

/// Reads a request head; None when the client closed before sending one.
fn read_route(stream: &mut impl io::Read) -> io::Result<Option<Route>> {
    let mut head = [0u8; MAX_HEAD];
    let mut len = 0;
    loop {
        let n = stream.read(&mut head[len..])?;
        if n == 0 {
            return Ok(None);
        }
        len += n;
        if let Some(route) = route(&head[..len]) {
            return Ok(Some(route));
        }
        if len == head.len() {
            return Ok(Some(Route::BadRequest));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client that sends its request a few bytes at a time.
    struct Trickle<'a>(&'a [u8]);

    impl io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(3);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    fn routed(request: &str) -> Option<Route> {
        read_route(&mut Trickle(request.as_bytes())).expect("read")
    }

    #[test]
    fn prometheus_s_request_gets_the_metrics_even_sent_in_pieces() {
        let request = "GET /metrics HTTP/1.1\r\nHost: 10.0.0.1:9464\r\nUser-Agent: Prometheus/2.45.3\r\n\
                       Accept: application/openmetrics-text;version=1.0.0,text/plain;q=0.5\r\n\
                       Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n";
        assert_eq!(routed(request), Some(Route::Metrics { head_only: false }));
    }

    #[test]
    fn head_a_query_and_other_paths_and_methods() {
        let head = "HEAD /metrics HTTP/1.0\r\n\r\n";
        assert_eq!(routed(head), Some(Route::Metrics { head_only: true }));
        let query = "GET /metrics?module=x HTTP/1.1\r\n\r\n";
        assert_eq!(routed(query), Some(Route::Metrics { head_only: false }));
        assert_eq!(routed("GET / HTTP/1.1\r\n\r\n"), Some(Route::NotFound));
        assert_eq!(
            routed("GET /metricsx HTTP/1.1\r\n\r\n"),
            Some(Route::NotFound)
        );
        let post = "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(routed(post), Some(Route::MethodNotAllowed));
    }

    #[test]
    fn garbage_an_endless_head_and_a_closed_client_get_no_metrics() {
        assert_eq!(
            routed("\x16\x03\x01 TLS hello\r\n\r\n"),
            Some(Route::BadRequest)
        );
        let endless = format!("GET /metrics HTTP/1.1\r\nX: {}", "a".repeat(2 * MAX_HEAD));
        assert_eq!(routed(&endless), Some(Route::BadRequest));
        assert_eq!(routed("GET /metr"), None);
    }

    #[test]
    fn a_page_is_its_head_then_its_body_and_head_gets_the_head() {
        let page = Page::metrics("# EOF\n");
        let all = String::from_utf8(page.for_request(false).to_vec()).expect("text");
        assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
        assert!(all.contains("\r\nContent-Length: 6\r\n"), "{all}");
        assert!(all.ends_with("\r\n\r\n# EOF\n"), "{all}");
        assert_eq!(page.for_request(true), &all.as_bytes()[..all.len() - 6]);
    }
}
