//! Header names of the contract.

/// Organization the call is for.
pub const ORGANIZATION_ID: &str = "X-Organization-ID";
/// Narrows a call to one branch.
pub const BRANCH_ID: &str = "X-Branch-ID";
/// The calling device; required on `/v1/sync/*` and `/v1/ws`.
pub const MOBILE_DEVICE_ID: &str = "X-Mobile-Device-Id";
/// Makes a mutation safe to resend.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// Integration credential.
pub const API_KEY: &str = "X-API-Key";
/// Delta token (same as `since_token`).
pub const SYNC_TOKEN: &str = "X-Sync-Token";
/// Token for the next delta call.
pub const NEXT_SYNC_TOKEN: &str = "X-Next-Sync-Token";
/// Request id echoed on every response.
pub const REQUEST_ID: &str = "X-Request-ID";
