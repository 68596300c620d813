//! The smallest HTTP/1.1 the RPC and metrics listeners need: a request head read with a size cap, a body
//! read by `Content-Length` only (no chunked uploads: bitcoin-cli and curl both send a length), and a
//! response writer. Every limit is checked before anything is allocated for it.

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum HttpError {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    #[error("connection closed in the middle of a request")]
    Truncated,
    #[error("request head longer than {max} bytes")]
    HeadTooLarge { max: usize },
    #[error("malformed request line")]
    BadRequestLine,
    #[error("malformed header line")]
    BadHeader,
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("body of {length} bytes exceeds the limit of {max}")]
    BodyTooLarge { length: usize, max: usize },
    #[error("chunked transfer encoding is not supported")]
    ChunkedUnsupported,
    #[error("timed out waiting for the client")]
    Timeout,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    pub path: String,
    /// Lower-cased header names with trimmed values, in order.
    pub headers: Vec<(String, String)>,
    /// Whether the client wants the connection kept open after the reply.
    pub keep_alive: bool,
    pub content_length: usize,
    pub chunked: bool,
}

impl RequestHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Reads one request head. `Ok(None)` when the client closed the connection cleanly between requests.
pub async fn read_head<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> Result<Option<RequestHead>, HttpError> {
    let mut buf = Vec::new();
    loop {
        let room = (max + 1).saturating_sub(buf.len()) as u64;
        let n = (&mut *r).take(room).read_until(b'\n', &mut buf).await?;
        if n == 0 {
            return if buf.iter().all(u8::is_ascii_whitespace) { Ok(None) } else { Err(HttpError::Truncated) };
        }
        // Tolerate blank lines before a request (some clients send CRLF after a body).
        if buf.iter().all(u8::is_ascii_whitespace) {
            buf.clear();
            continue;
        }
        if buf.ends_with(b"\n\r\n") || buf.ends_with(b"\n\n") {
            return parse_head(&buf).map(Some);
        }
        if buf.len() > max {
            return Err(HttpError::HeadTooLarge { max });
        }
    }
}

fn parse_head(buf: &[u8]) -> Result<RequestHead, HttpError> {
    let text = std::str::from_utf8(buf).map_err(|_| HttpError::BadHeader)?;
    let mut lines = text.lines();
    let mut parts = lines.next().ok_or(HttpError::BadRequestLine)?.split_whitespace();
    let (Some(method), Some(path), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::BadRequestLine);
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(HttpError::BadRequestLine),
    };
    let mut headers = Vec::new();
    for line in lines.map(str::trim_end).filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(HttpError::BadHeader)?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut head = RequestHead {
        method: method.to_owned(),
        path: path.to_owned(),
        headers,
        keep_alive: http11,
        content_length: 0,
        chunked: false,
    };
    if let Some(c) = head.header("connection") {
        let c = c.to_ascii_lowercase();
        if c.contains("close") {
            head.keep_alive = false;
        } else if c.contains("keep-alive") {
            head.keep_alive = true;
        }
    }
    head.chunked = head.header("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    let lengths: Vec<&str> =
        head.headers.iter().filter(|(n, _)| n == "content-length").map(|(_, v)| v.as_str()).collect();
    head.content_length = match lengths.as_slice() {
        [] => 0,
        // Two different lengths is a request-smuggling shape; refuse it.
        [one, rest @ ..] if rest.iter().all(|r| r == one) => one.parse().map_err(|_| HttpError::BadContentLength)?,
        _ => return Err(HttpError::BadContentLength),
    };
    Ok(head)
}

/// Reads the body announced by `head`, refusing more than `max` bytes before reading any of it.
pub async fn read_body<R: AsyncRead + Unpin>(r: &mut R, head: &RequestHead, max: usize) -> Result<Vec<u8>, HttpError> {
    if head.chunked {
        return Err(HttpError::ChunkedUnsupported);
    }
    if head.content_length > max {
        return Err(HttpError::BodyTooLarge { length: head.content_length, max });
    }
    let mut body = vec![0; head.content_length];
    r.read_exact(&mut body).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => HttpError::Truncated,
        _ => HttpError::Io(e),
    })?;
    Ok(body)
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Writes a complete response with `Content-Length`.
pub async fn write_response<W: AsyncWrite + Unpin>(
    w: &mut W,
    status: u16,
    content_type: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
    keep_alive: bool,
) -> Result<(), HttpError> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {}\r\n",
        reason_phrase(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    for (n, v) in extra_headers {
        head.push_str(n);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes()).await?;
    w.write_all(body).await?;
    w.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn head(bytes: &[u8]) -> Result<Option<RequestHead>, HttpError> {
        let mut r = tokio::io::BufReader::new(bytes);
        read_head(&mut r, 256).await
    }

    #[tokio::test]
    async fn parses_a_bitcoin_cli_request() {
        let req = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}";
        let mut r = tokio::io::BufReader::new(&req[..]);
        let h = read_head(&mut r, 256).await.expect("head").expect("some");
        assert_eq!((h.method.as_str(), h.path.as_str(), h.content_length, h.keep_alive), ("POST", "/", 2, false));
        assert_eq!(read_body(&mut r, &h, 10).await.expect("body"), b"{}");
    }

    #[tokio::test]
    async fn enforces_limits_and_rejects_malformed_heads() {
        assert!(head(b"").await.expect("eof").is_none());
        assert!(matches!(head(b"POST / HTTP/1.1\r\nHost: x").await, Err(HttpError::Truncated)));
        assert!(matches!(head(&[b'a'; 400]).await, Err(HttpError::HeadTooLarge { .. })));
        assert!(matches!(head(b"POST /\r\n\r\n").await, Err(HttpError::BadRequestLine)));
        assert!(matches!(head(b"POST / HTTP/1.1\r\nnocolon\r\n\r\n").await, Err(HttpError::BadHeader)));
        assert!(matches!(
            head(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").await,
            Err(HttpError::BadContentLength)
        ));
        let h = head(b"POST / HTTP/1.0\r\nContent-Length: 99\r\n\r\n").await.expect("head").expect("some");
        assert!(!h.keep_alive);
        let mut empty: &[u8] = &[];
        assert!(matches!(read_body(&mut empty, &h, 10).await, Err(HttpError::BodyTooLarge { length: 99, max: 10 })));
        assert!(matches!(read_body(&mut empty, &h, 100).await, Err(HttpError::Truncated)));
    }
}
