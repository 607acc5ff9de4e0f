//! How every function's failure reaches Lambda, in one place: the error type tells a retry
//! worth making from an event to inspect in the dead-letter queue and from a bug; the message is
//! the error's own. The types are a contract (alarms, the DLQ runbook, the chaos run read them).

use lambda_runtime::Diagnostic;

/// What kind of failure an invocation ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Worth retrying (the store or Stripe was busy, a conflict outlasted its attempts): Lambda
    /// retries, the next scheduled run goes on.
    Retryable,
    /// The event itself is wrong: retrying changes nothing; the DLQ keeps it for a person.
    Invalid,
    /// stockbridge's own fault (an answer it could not encode).
    Internal,
}

impl Failure {
    /// The `errorType` Lambda records.
    pub fn error_type(self) -> &'static str {
        match self {
            Self::Retryable => "stockbridge.Retryable",
            Self::Invalid => "stockbridge.Invalid",
            Self::Internal => "stockbridge.Internal",
        }
    }

    /// The failure as Lambda's runtime reports it.
    pub fn diagnostic(self, error: &dyn std::fmt::Display) -> Diagnostic {
        Diagnostic {
            error_type: self.error_type().to_owned(),
            error_message: error.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_failure_has_its_documented_type_and_the_errors_message() {
        let d = Failure::Retryable.diagnostic(&"the store is throttling");
        assert_eq!(d.error_type, "stockbridge.Retryable");
        assert_eq!(d.error_message, "the store is throttling");
        assert_eq!(Failure::Invalid.error_type(), "stockbridge.Invalid");
        assert_eq!(Failure::Internal.error_type(), "stockbridge.Internal");
    }
}
