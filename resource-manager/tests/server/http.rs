//! A tiny HTTP/1.1 client for the tests of the web port: one request per connection
//! (`Connection: close`), the answer read to its end, chunked bodies decoded. Enough to speak
//! to the RM as curl would, without a client library.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::within;

#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics, naming the body, if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }

    /// Checks YARN's RemoteException shape and returns its message.
    pub fn remote_exception(&self, status: u16, exception: &str) -> String {
        assert_eq!(self.status, status, "{}", self.body);
        let json = self.json();
        let e = &json["RemoteException"];
        assert_eq!(e["exception"], exception, "{json}");
        let class = e["javaClassName"].as_str().unwrap_or_default();
        assert!(class.ends_with(&format!(".{exception}")), "{json}");
        e["message"].as_str().expect("a message").to_string()
    }
}

/// A request: method, path (with query), extra headers, body.
pub struct Req<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: Vec<(&'a str, String)>,
    pub body: Option<String>,
}

impl<'a> Req<'a> {
    pub fn new(method: &'a str, path: &'a str) -> Req<'a> {
        Req {
            method,
            path,
            headers: Vec::new(),
            body: None,
        }
    }

    pub fn header(mut self, name: &'a str, value: impl Into<String>) -> Req<'a> {
        self.headers.push((name, value.into()));
        self
    }

    pub fn bearer(self, secret: &str) -> Req<'a> {
        self.header("Authorization", format!("Bearer {secret}"))
    }

    pub fn json(mut self, body: &serde_json::Value) -> Req<'a> {
        self.headers
            .push(("Content-Type", "application/json".to_string()));
        self.body = Some(body.to_string());
        self
    }

    pub fn body(mut self, body: &str) -> Req<'a> {
        self.body = Some(body.to_string());
        self
    }

    pub async fn send(self, addr: SocketAddr) -> Answer {
        within("an HTTP answer", self.exchange(addr)).await
    }

    async fn exchange(self, addr: SocketAddr) -> Answer {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n",
            self.method, self.path
        );
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        let body = self.body.unwrap_or_default();
        if !body.is_empty() || matches!(self.method, "POST" | "PUT") {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.expect("write");
        stream.write_all(body.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        parse(&raw)
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Answer {
    Req::new("GET", path).send(addr).await
}

fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| {
        n.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_string()
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = &rest[size + 2..];
    }
    out
}
