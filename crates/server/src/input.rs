//! Reading what a client sent, for every surface: the body within a limit, and the
//! checks that percent-encoded text is readable. Each surface turns a [`BodyError`] into
//! its own error body.

use axum::body::{Body, Bytes};

/// A path id that must be a positive integer (hosts, labels, connections, tokens):
/// anything else is an id that names nothing.
pub fn positive_id(raw: &str) -> Option<i64> {
    raw.parse::<i64>().ok().filter(|id| *id > 0)
}

/// Why a request body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// The client stalled past the body timeout: 408.
    TimedOut,
    /// The body is larger than the limit: 413.
    TooLarge { limit: usize },
    /// The connection failed or the body is malformed (chunked encoding): 400.
    Unreadable,
}

/// Reads a whole request body of at most `limit` bytes.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .any(|e| e.is::<http_body_util::LengthLimitError>());
        if is_body_timeout(&e) {
            BodyError::TimedOut
        } else if too_large {
            BodyError::TooLarge { limit }
        } else {
            BodyError::Unreadable
        }
    })
}

/// Whether a body read failed because the client stalled (the request body timeout).
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source()).any(|e| e.is::<tower_http::timeout::TimeoutError>())
}

/// Whether percent-encoded text (a path, a query string, a form body) decodes to UTF-8
/// without NUL. Text without escapes is checked in place, without a copy.
pub fn is_readable_percent_encoded(raw: &[u8]) -> bool {
    percent_encoding::percent_decode(raw).decode_utf8().is_ok_and(|s| !s.contains('\0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoded_text_must_decode_to_utf8_without_nul() {
        assert!(is_readable_percent_encoded(b"/hosts/42?query=jos%C3%A9&page=2"));
        assert!(is_readable_percent_encoded(b"name=a+b&csrf_token=x"));
        assert!(!is_readable_percent_encoded(b"/hosts/%FF%FE"));
        assert!(!is_readable_percent_encoded(b"a=%C3&b=%A9"), "a sequence split by '&' is not UTF-8");
        assert!(!is_readable_percent_encoded(b"idp_username=a%00b"));
        assert!(!is_readable_percent_encoded(b"raw\0nul"));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_too_large_and_one_within_it_is_read_whole() {
        assert_eq!(read_body(Body::from("12345"), 4).await, Err(BodyError::TooLarge { limit: 4 }));
        assert_eq!(read_body(Body::from("1234"), 4).await.as_deref(), Ok(&b"1234"[..]));
    }
}
