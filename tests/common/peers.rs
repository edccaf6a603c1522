//! Loopback peers that fail the way an installer meets upstream failing (issue 19 item 4):
//! a closed port, a plain HTTP server, one that resets, one that never answers, and TLS
//! servers whose certificate is expired, not yet valid, or from another CA. Each stops
//! when dropped.
#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[derive(Clone, Copy)]
pub enum Behaviour {
    /// Answers anything with a plain HTTP 400, as a web server on a plain port does.
    PlainHttp,
    /// Closes each connection with its request unread: the kernel sends a reset.
    Reset,
    /// Accepts and never answers.
    Silent,
}

pub struct RawPeer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RawPeer {
    pub fn start(behaviour: Behaviour) -> RawPeer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(5)));
                match behaviour {
                    Behaviour::PlainHttp => {
                        let mut buf = [0u8; 4096];
                        let _ = stream.read(&mut buf);
                        let _ = stream
                            .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    }
                    Behaviour::Reset => {
                        // Wait for the client's first bytes, leave them unread, close.
                        let mut buf = [0u8; 1];
                        let _ = stream.peek(&mut buf);
                        drop(stream);
                    }
                    Behaviour::Silent => held.push(stream),
                }
            }
        });
        RawPeer { port, stop, thread: Some(thread) }
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RawPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A date: year, month, day.
pub type Ymd = (i32, u8, u8);

/// A CA of the test's own, and server certificates for 127.0.0.1 it signs.
pub struct Pki {
    pub ca_pem: String,
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, format!("{name} test CA"));
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
        Pki { ca_pem: ca.pem(), ca }
    }

    /// (certificate, key) PEM for 127.0.0.1, valid between the two dates when given.
    pub fn server(&self, valid: Option<(Ymd, Ymd)>) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, "test peer");
        if let Some(((y1, m1, d1), (y2, m2, d2))) = valid {
            params.not_before = rcgen::date_time_ymd(y1, m1, d1);
            params.not_after = rcgen::date_time_ymd(y2, m2, d2);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// An HTTPS server presenting `cert`; every path answers 404.
pub struct TlsPeer {
    pub url: String,
    handle: axum_server::Handle<std::net::SocketAddr>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TlsPeer {
    pub fn start((cert, key): (String, String)) -> TlsPeer {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = axum_server::Handle::new();
        let serving = handle.clone();
        runtime.block_on(async {
            let tls =
                axum_server::tls_rustls::RustlsConfig::from_pem(cert.into_bytes(), key.into_bytes()).await.unwrap();
            let server = axum_server::from_tcp_rustls(listener, tls).unwrap().handle(serving);
            tokio::spawn(async move {
                let _ = server.serve(axum::Router::new().into_make_service()).await;
            });
        });
        TlsPeer { url: format!("https://127.0.0.1:{port}/"), handle, runtime: Some(runtime) }
    }
}

impl Drop for TlsPeer {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
        }
    }
}
