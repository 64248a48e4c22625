//! Every way a request can end in this filter: the `decision` and `reason`
//! labels of `mcp_auth_requests_total`, the filter-state values, the HTTP
//! status, and the fixed error code and message of the local reply.

use crate::jwt::JwtError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    AllowedApiKey,
    AllowedJwt,
    SkippedPath,
    MissingCredential,
    MalformedCredential,
    ConflictingCredentials,
    UnknownKey,
    KeyNotYetValid,
    KeyExpired,
    Token(JwtError),
    RouteForbidden,
    /// No credential, and `anonymous` lets such requests on without identity.
    Anonymous,
}

impl Outcome {
    /// Every outcome, to define all counters up front (they show as 0 until used).
    pub const ALL: [Outcome; 21] = [
        Outcome::AllowedApiKey,
        Outcome::AllowedJwt,
        Outcome::SkippedPath,
        Outcome::MissingCredential,
        Outcome::MalformedCredential,
        Outcome::ConflictingCredentials,
        Outcome::UnknownKey,
        Outcome::KeyNotYetValid,
        Outcome::KeyExpired,
        Outcome::Token(JwtError::Malformed),
        Outcome::Token(JwtError::AlgorithmNotAllowed),
        Outcome::Token(JwtError::UnknownIssuer),
        Outcome::Token(JwtError::UnknownKeyId),
        Outcome::Token(JwtError::BadSignature),
        Outcome::Token(JwtError::Expired),
        Outcome::Token(JwtError::NotYetValid),
        Outcome::Token(JwtError::AudienceMismatch),
        Outcome::Token(JwtError::MissingClaim),
        Outcome::Token(JwtError::InvalidClaim),
        Outcome::RouteForbidden,
        Outcome::Anonymous,
    ];

    /// Position in [`Outcome::ALL`], for per-outcome counter tables.
    pub fn index(self) -> usize {
        match self {
            Outcome::AllowedApiKey => 0,
            Outcome::AllowedJwt => 1,
            Outcome::SkippedPath => 2,
            Outcome::MissingCredential => 3,
            Outcome::MalformedCredential => 4,
            Outcome::ConflictingCredentials => 5,
            Outcome::UnknownKey => 6,
            Outcome::KeyNotYetValid => 7,
            Outcome::KeyExpired => 8,
            Outcome::Token(e) => 9 + e as usize,
            Outcome::RouteForbidden => 19,
            Outcome::Anonymous => 20,
        }
    }

    /// `mcp_auth_result`: allowed / denied / skipped.
    pub fn decision(self) -> &'static str {
        match self {
            Outcome::AllowedApiKey | Outcome::AllowedJwt => "allowed",
            Outcome::SkippedPath | Outcome::Anonymous => "skipped",
            _ => "denied",
        }
    }

    /// `mcp_auth_reason` and the error `code` of the reply body.
    pub fn reason(self) -> &'static str {
        match self {
            Outcome::AllowedApiKey => "api_key",
            Outcome::AllowedJwt => "jwt",
            Outcome::SkippedPath => "skip_path",
            Outcome::MissingCredential => "missing_credential",
            Outcome::MalformedCredential => "malformed_credential",
            Outcome::ConflictingCredentials => "conflicting_credentials",
            Outcome::UnknownKey => "unknown_key",
            Outcome::KeyNotYetValid => "key_not_yet_valid",
            Outcome::KeyExpired => "key_expired",
            Outcome::Token(JwtError::Malformed) => "token_malformed",
            Outcome::Token(JwtError::AlgorithmNotAllowed) => "token_algorithm_not_allowed",
            Outcome::Token(JwtError::UnknownIssuer) => "token_unknown_issuer",
            Outcome::Token(JwtError::UnknownKeyId) => "token_unknown_key_id",
            Outcome::Token(JwtError::BadSignature) => "token_bad_signature",
            Outcome::Token(JwtError::Expired) => "token_expired",
            Outcome::Token(JwtError::NotYetValid) => "token_not_yet_valid",
            Outcome::Token(JwtError::AudienceMismatch) => "token_audience_mismatch",
            Outcome::Token(JwtError::MissingClaim) => "token_missing_claim",
            Outcome::Token(JwtError::InvalidClaim) => "token_invalid_claim",
            Outcome::RouteForbidden => "route_forbidden",
            Outcome::Anonymous => "anonymous",
        }
    }

    /// 0 for outcomes that let the request through.
    pub fn status(self) -> u32 {
        match self.decision() {
            "denied" if self == Outcome::RouteForbidden => 403,
            "denied" => 401,
            _ => 0,
        }
    }

    /// Fixed text for the reply: never a client value.
    pub fn message(self) -> &'static str {
        match self {
            Outcome::MissingCredential => "an API key or API token is required",
            Outcome::MalformedCredential => "the credential is malformed",
            Outcome::ConflictingCredentials => "the request carries different credentials",
            Outcome::UnknownKey => "the API key is not valid",
            Outcome::KeyNotYetValid => "the API key is not valid yet",
            Outcome::KeyExpired => "the API key has expired",
            Outcome::Token(JwtError::Expired) => "the API token has expired",
            Outcome::Token(JwtError::NotYetValid) => "the API token is not valid yet",
            Outcome::Token(_) => "the API token is not valid",
            Outcome::RouteForbidden => "the credential does not allow this request",
            Outcome::AllowedApiKey
            | Outcome::AllowedJwt
            | Outcome::SkippedPath
            | Outcome::Anonymous => "",
        }
    }

    /// RFC 6750 challenge for 401 and 403 replies.
    pub fn www_authenticate(self, realm: &str) -> Option<String> {
        match self {
            Outcome::MissingCredential => Some(format!("Bearer realm=\"{realm}\"")),
            Outcome::RouteForbidden => Some(format!(
                "Bearer realm=\"{realm}\", error=\"insufficient_scope\""
            )),
            o if o.status() == 401 => {
                Some(format!("Bearer realm=\"{realm}\", error=\"invalid_token\""))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn index_is_a_bijection_onto_all() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(o.index(), i, "{o:?}");
        }
        let reasons: HashSet<_> = Outcome::ALL.iter().map(|o| o.reason()).collect();
        assert_eq!(reasons.len(), 21);
    }

    #[test]
    fn statuses_and_challenges() {
        assert_eq!(Outcome::AllowedApiKey.status(), 0);
        assert_eq!(Outcome::SkippedPath.status(), 0);
        assert_eq!(Outcome::UnknownKey.status(), 401);
        assert_eq!(Outcome::Token(JwtError::BadSignature).status(), 401);
        assert_eq!(Outcome::RouteForbidden.status(), 403);
        assert_eq!(
            Outcome::MissingCredential.www_authenticate("mcp").unwrap(),
            "Bearer realm=\"mcp\""
        );
        assert!(Outcome::KeyExpired
            .www_authenticate("mcp")
            .unwrap()
            .ends_with("error=\"invalid_token\""));
        assert!(Outcome::RouteForbidden
            .www_authenticate("mcp")
            .unwrap()
            .ends_with("error=\"insufficient_scope\""));
        assert_eq!(Outcome::AllowedJwt.www_authenticate("mcp"), None);
    }
}
