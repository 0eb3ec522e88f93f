//! HS256 JSON Web Tokens, implemented by hand on `hmac` + `sha2`.
//!
//! Only the one algorithm the hub issues is accepted: a token whose header
//! names anything but `HS256` (including `none`) is refused before its
//! signature is even looked at, and the signature is checked in constant time
//! before the claims are parsed.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Longest token accepted by [`verify`], in bytes.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Clock skew tolerated for `nbf` and `iat`, in seconds.
pub const CLOCK_SKEW_SECS: i64 = 30;

/// `base64url({"alg":"HS256","typ":"JWT"})`, the only header [`sign`] emits.
const HEADER_B64: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";

/// base64url that accepts input with or without `=` padding (and rejects
/// non-canonical trailing bits).
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The claims of a hub access token.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    /// Device id the token was issued to.
    pub sub: String,
    /// Organisation id.
    pub org: String,
    /// Branch id.
    pub branch: String,
    /// Role name.
    pub role: String,
    /// Permissions granted by the role.
    pub permissions: Vec<String>,
    /// Expiry, epoch seconds (the token is invalid from this instant on).
    pub exp: i64,
    /// Issued at, epoch seconds.
    pub iat: i64,
    /// Not before, epoch seconds.
    pub nbf: i64,
    /// Refresh token family the token was minted from.
    pub fam: String,
    /// Unique token id.
    pub jti: String,
}

/// Why a token was refused. The messages are safe to show a client: they
/// never contain the token or the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not a well-formed HS256 JWT carrying hub claims.
    #[error("malformed token")]
    Malformed,
    /// The header names an algorithm other than HS256 (or none at all).
    #[error("unsupported token algorithm")]
    BadAlgorithm,
    /// The signature does not match.
    #[error("invalid token signature")]
    BadSignature,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` is in the future (beyond the allowed clock skew).
    #[error("token not yet valid")]
    NotYetValid,
}

fn mac(secret: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// Signs `claims` with `secret` as an HS256 JWT (header
/// `{"alg":"HS256","typ":"JWT"}`, unpadded base64url parts).
pub fn sign(secret: &[u8], claims: &Claims) -> String {
    // Serialising strings and integers cannot fail; an empty payload would
    // only make the token unverifiable, never forgeable.
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    let mut token = String::with_capacity(HEADER_B64.len() + payload.len() * 4 / 3 + 48);
    token.push_str(HEADER_B64);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
    let mut mac = mac(secret);
    mac.update(token.as_bytes());
    let signature = mac.finalize().into_bytes();
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut token);
    token
}

/// Verifies an HS256 `token` against `secret` at time `now` (epoch seconds)
/// and returns its claims.
///
/// Checks, in order: length (at most [`MAX_TOKEN_LEN`]), three base64url
/// parts, header `alg == "HS256"`, constant-time signature, claims shape,
/// `exp > now`, and `nbf`/`iat` no more than [`CLOCK_SKEW_SECS`] ahead.
pub fn verify(secret: &[u8], token: &str, now: i64) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Malformed);
    };

    let header = URL_SAFE_LENIENT
        .decode(header_b64)
        .map_err(|_| JwtError::Malformed)?;
    let header: serde_json::Value =
        serde_json::from_slice(&header).map_err(|_| JwtError::Malformed)?;
    let header = header.as_object().ok_or(JwtError::Malformed)?;
    if header.get("alg").and_then(serde_json::Value::as_str) != Some("HS256") {
        return Err(JwtError::BadAlgorithm);
    }

    let signature = URL_SAFE_LENIENT
        .decode(signature_b64)
        .map_err(|_| JwtError::Malformed)?;
    let signing_input_len = header_b64.len() + 1 + payload_b64.len();
    let mut mac = mac(secret);
    mac.update(&token.as_bytes()[..signing_input_len]);
    mac.verify_slice(&signature)
        .map_err(|_| JwtError::BadSignature)?;

    let payload = URL_SAFE_LENIENT
        .decode(payload_b64)
        .map_err(|_| JwtError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| JwtError::Malformed)?;

    if claims.exp <= now {
        return Err(JwtError::Expired);
    }
    let horizon = now.saturating_add(CLOCK_SKEW_SECS);
    if claims.nbf > horizon || claims.iat > horizon {
        return Err(JwtError::NotYetValid);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const NOW: i64 = 1_700_000_000;

    fn claims() -> Claims {
        Claims {
            sub: "dev_1".into(),
            org: "org_1".into(),
            branch: "br_1".into(),
            role: "cashier".into(),
            permissions: vec!["stock.read".into(), "sale.create".into()],
            exp: NOW + 900,
            iat: NOW,
            nbf: NOW,
            fam: "fam_1".into(),
            jti: "jti_1".into(),
        }
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Builds a token with an arbitrary header and payload, correctly signed.
    fn forge(secret: &[u8], header: &str, payload: &str) -> String {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
        let mut mac = mac(secret);
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(&mac.finalize().into_bytes()))
    }

    #[test]
    fn header_constant_matches() {
        assert_eq!(HEADER_B64, b64(br#"{"alg":"HS256","typ":"JWT"}"#));
    }

    #[test]
    fn round_trip() {
        let token = sign(SECRET, &claims());
        assert!(!token.contains('='));
        assert_eq!(token.split('.').count(), 3);
        assert_eq!(verify(SECRET, &token, NOW), Ok(claims()));
    }

    #[test]
    fn padded_parts_accepted() {
        // Payload/signature lengths that need padding; re-sign over padded text.
        let header = URL_SAFE_LENIENT.decode(HEADER_B64).unwrap();
        let payload = serde_json::to_vec(&claims()).unwrap();
        let std = base64::engine::general_purpose::URL_SAFE;
        let input = format!("{}.{}", std.encode(header), std.encode(payload));
        let mut m = mac(SECRET);
        m.update(input.as_bytes());
        let token = format!("{input}.{}", std.encode(m.finalize().into_bytes()));
        assert!(token.ends_with('='));
        assert_eq!(verify(SECRET, &token, NOW), Ok(claims()));
    }

    #[test]
    fn tampered_payload() {
        let token = sign(SECRET, &claims());
        let mut evil = claims();
        evil.role = "admin".into();
        let evil_payload = b64(&serde_json::to_vec(&evil).unwrap());
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], evil_payload, parts[2]);
        assert_eq!(verify(SECRET, &tampered, NOW), Err(JwtError::BadSignature));
    }

    #[test]
    fn tampered_signature() {
        let token = sign(SECRET, &claims());
        let (input, sig) = token.rsplit_once('.').unwrap();
        let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
        sig[0] ^= 1;
        let tampered = format!("{input}.{}", b64(&sig));
        assert_eq!(verify(SECRET, &tampered, NOW), Err(JwtError::BadSignature));
    }

    #[test]
    fn alg_none_rejected() {
        let payload = serde_json::to_string(&claims()).unwrap();
        let token = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(payload.as_bytes())
        );
        assert_eq!(verify(SECRET, &token, NOW), Err(JwtError::BadAlgorithm));
    }

    #[test]
    fn other_algorithms_rejected() {
        let payload = serde_json::to_string(&claims()).unwrap();
        for header in [
            r#"{"alg":"HS512","typ":"JWT"}"#,
            r#"{"alg":"RS256","typ":"JWT"}"#,
            r#"{"alg":"hs256","typ":"JWT"}"#,
            r#"{"alg":256,"typ":"JWT"}"#,
            r#"{"typ":"JWT"}"#,
        ] {
            let token = forge(SECRET, header, &payload);
            assert_eq!(
                verify(SECRET, &token, NOW),
                Err(JwtError::BadAlgorithm),
                "{header}"
            );
        }
    }

    #[test]
    fn expired() {
        let mut c = claims();
        c.exp = NOW;
        let token = sign(SECRET, &c);
        assert_eq!(verify(SECRET, &token, NOW), Err(JwtError::Expired));
        assert_eq!(verify(SECRET, &token, NOW - 1), Ok(c));
    }

    #[test]
    fn not_yet_valid() {
        let mut c = claims();
        c.nbf = NOW + 31;
        let token = sign(SECRET, &c);
        assert_eq!(verify(SECRET, &token, NOW), Err(JwtError::NotYetValid));
        c.nbf = NOW + 30;
        assert!(verify(SECRET, &sign(SECRET, &c), NOW).is_ok());

        let mut c = claims();
        c.iat = NOW + 31;
        let token = sign(SECRET, &c);
        assert_eq!(verify(SECRET, &token, NOW), Err(JwtError::NotYetValid));
    }

    #[test]
    fn truncated() {
        let token = sign(SECRET, &claims());
        let (two_parts, _) = token.rsplit_once('.').unwrap();
        assert_eq!(verify(SECRET, two_parts, NOW), Err(JwtError::Malformed));
        let with_dot = format!("{two_parts}.");
        assert_eq!(verify(SECRET, &with_dot, NOW), Err(JwtError::BadSignature));
        for cut in 1..token.len() {
            assert!(verify(SECRET, &token[..cut], NOW).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn garbage() {
        for token in [
            "",
            ".",
            "..",
            "...",
            "a.b.c",
            "not a token",
            "a.b.c.d",
            "!!!.???.***",
        ] {
            assert_eq!(
                verify(SECRET, token, NOW),
                Err(JwtError::Malformed),
                "{token:?}"
            );
        }
        // Header that is valid base64 but not a JSON object.
        let token = forge(SECRET, "[1,2]", "{}");
        assert_eq!(verify(SECRET, &token, NOW), Err(JwtError::Malformed));
        // Correctly signed, but the claims are missing or wrong-typed.
        let header = r#"{"alg":"HS256","typ":"JWT"}"#;
        let token = forge(SECRET, header, r#"{"sub":"x"}"#);
        assert_eq!(verify(SECRET, &token, NOW), Err(JwtError::Malformed));
        let mut value = serde_json::to_value(claims()).unwrap();
        value["exp"] = serde_json::json!("soon");
        let token = forge(SECRET, header, &value.to_string());
        assert_eq!(verify(SECRET, &token, NOW), Err(JwtError::Malformed));
        // Oversized.
        let huge = format!("{HEADER_B64}.{}.x", "A".repeat(MAX_TOKEN_LEN));
        assert_eq!(verify(SECRET, &huge, NOW), Err(JwtError::Malformed));
    }

    #[test]
    fn wrong_secret() {
        let token = sign(SECRET, &claims());
        assert_eq!(
            verify(b"another secret entirely", &token, NOW),
            Err(JwtError::BadSignature)
        );
    }

    #[test]
    fn error_messages_do_not_echo_input() {
        let token = sign(SECRET, &claims());
        for err in [
            JwtError::Malformed,
            JwtError::BadAlgorithm,
            JwtError::BadSignature,
            JwtError::Expired,
            JwtError::NotYetValid,
        ] {
            let msg = err.to_string();
            assert!(!msg.contains(&token) && !msg.contains("0123456789"));
        }
    }
}
