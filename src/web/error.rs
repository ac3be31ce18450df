//! One error type for the web handlers: what went wrong on the server side, with the status it
//! answers with and a sentence saying what to do. Refusals of what a person typed are not
//! errors here: the forms show those beside the field (a `String` per form).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

/// A handler's failure. `?` turns database, mailbox and blocking-pool errors into it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The database refused a read or a write (a full disk, a locked or damaged file).
    #[error("database: {0}. Check the disk and the log of shepherd run")]
    Database(String),
    /// The database writer (DbActor) is gone or its mailbox is full: shepherd is stopping or
    /// overloaded.
    #[error("the database writer is not answering ({0}); try again in a moment")]
    WriterBusy(#[from] actix::MailboxError),
    /// The thread pool for blocking reads failed.
    #[error("the server could not run the request ({0}); try again")]
    Blocking(#[from] actix_web::error::BlockingError),
    /// A request this server does not accept from where it came (a cross-site form).
    #[error("{0}")]
    Forbidden(String),
    /// Something the server needs is missing (no randomness for a token, a document that
    /// cannot be serialized).
    #[error("{0}")]
    Internal(String),
}

impl From<rusqlite::Error> for ApiError {
    fn from(e: rusqlite::Error) -> Self {
        ApiError::Database(e.to_string())
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        ApiError::Database(e.to_string())
    }
}

impl From<serde_json::Error> for ApiError {
    fn from(e: serde_json::Error) -> Self {
        ApiError::Internal(format!("cannot serialize the answer: {e}"))
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::WriterBusy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        tracing::warn!("request failed: {self}");
        HttpResponse::build(self.status_code())
            .content_type("text/plain; charset=utf-8")
            .body(self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_answers_with_its_status_and_says_what_to_do() {
        let db = ApiError::from(rusqlite::Error::InvalidQuery);
        assert_eq!(db.status_code(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(db.to_string().starts_with("database: "), "{db}");
        let busy = ApiError::from(actix::MailboxError::Closed);
        assert_eq!(busy.status_code(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(busy.to_string().contains("try again"), "{busy}");
    }
}
