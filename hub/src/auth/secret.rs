//! The hub's secret keys, random credentials, and HMAC-signed opaque blobs.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Name of the key file inside the data directory.
pub const SECRET_FILE_NAME: &str = "hub-secret.key";

/// Length of the key file, in bytes.
pub const SECRET_FILE_LEN: usize = 64;

/// The hub's symmetric keys, read from `DATA_DIR/hub-secret.key`.
///
/// The file holds 64 random bytes: the first 32 are `jwt`, the last 32 are
/// `sync_token`. `Debug` never prints the key bytes.
#[derive(Clone)]
pub struct HubSecrets {
    /// HS256 key for access tokens (bytes 0..32 of the key file).
    pub jwt: [u8; 32],
    /// HMAC key for delta sync tokens (bytes 32..64 of the key file).
    pub sync_token: [u8; 32],
}

impl fmt::Debug for HubSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubSecrets")
            .field("jwt", &"<redacted>")
            .field("sync_token", &"<redacted>")
            .finish()
    }
}

impl HubSecrets {
    fn from_bytes(bytes: &[u8; SECRET_FILE_LEN]) -> Self {
        let mut jwt = [0u8; 32];
        let mut sync_token = [0u8; 32];
        jwt.copy_from_slice(&bytes[..32]);
        sync_token.copy_from_slice(&bytes[32..]);
        Self { jwt, sync_token }
    }
}

/// Loads the hub's keys from `data_dir/hub-secret.key`, creating the
/// directory and a fresh random file (mode 0600 on unix) if there is none.
///
/// A new file is written to a temporary file in the same directory and then
/// moved into place, so a crash never leaves a partial key behind, and a key
/// file created concurrently by another process is never overwritten.
/// An existing file of the wrong length is an [`io::ErrorKind::InvalidData`]
/// error naming the file.
pub fn load_or_create(data_dir: &Path) -> io::Result<HubSecrets> {
    let path = data_dir.join(SECRET_FILE_NAME);
    match fs::read(&path) {
        Ok(bytes) => return parse_key_file(&path, &bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(with_path(e, "cannot read", &path)),
    }

    fs::create_dir_all(data_dir).map_err(|e| with_path(e, "cannot create", data_dir))?;
    let mut bytes = [0u8; SECRET_FILE_LEN];
    getrandom::fill(&mut bytes)
        .map_err(|e| io::Error::other(format!("cannot generate hub secret: {e}")))?;

    let tmp = temp_path(data_dir)?;
    let written = write_private(&tmp, &bytes).and_then(|()| publish(&tmp, &path));
    // Best effort: the temporary name is gone after a rename, and a leftover
    // from a failed write holds nothing anyone uses.
    let _ = fs::remove_file(&tmp);
    match written {
        Ok(true) => {
            sync_dir(data_dir);
            Ok(HubSecrets::from_bytes(&bytes))
        }
        // Another process created the file first: use theirs.
        Ok(false) => {
            let existing = fs::read(&path).map_err(|e| with_path(e, "cannot read", &path))?;
            parse_key_file(&path, &existing)
        }
        Err(e) => Err(with_path(e, "cannot write", &path)),
    }
}

fn parse_key_file(path: &Path, bytes: &[u8]) -> io::Result<HubSecrets> {
    let bytes: &[u8; SECRET_FILE_LEN] = bytes.try_into().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "hub secret file {} is {} bytes long, expected {SECRET_FILE_LEN}; \
                 restore it from a backup or delete it to generate a new one \
                 (this signs out every device)",
                path.display(),
                bytes.len()
            ),
        )
    })?;
    Ok(HubSecrets::from_bytes(bytes))
}

fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

fn temp_path(dir: &Path) -> io::Result<PathBuf> {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce)
        .map_err(|e| io::Error::other(format!("cannot generate hub secret: {e}")))?;
    Ok(dir.join(format!(
        ".{SECRET_FILE_NAME}.{}.{}.tmp",
        std::process::id(),
        hex(&nonce)
    )))
}

fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    #[cfg(unix)]
    {
        // The umask can only narrow the mode, but be explicit anyway.
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

/// Moves `tmp` to `path` unless `path` already exists. Returns whether `tmp`
/// was published.
fn publish(tmp: &Path, path: &Path) -> io::Result<bool> {
    // A hard link is an atomic "create if absent"; fall back to a rename on
    // file systems without hard links.
    match fs::hard_link(tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(_) => {
            if path.exists() {
                return Ok(false);
            }
            fs::rename(tmp, path)?;
            Ok(true)
        }
    }
}

/// Flushes the directory entry of a newly created file (best effort).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

/// Returns `prefix` followed by `bytes` random bytes in unpadded base64url,
/// e.g. `random_token("ssk_", 24)` for an API key.
///
/// # Panics
///
/// If the operating system's random number generator fails, which leaves no
/// safe way to mint a credential.
pub fn random_token(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    if let Err(e) = getrandom::fill(&mut buf) {
        panic!("operating system random number generator failed: {e}");
    }
    let mut token = String::with_capacity(prefix.len() + bytes.div_ceil(3) * 4);
    token.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(&buf, &mut token);
    token
}

/// Lowercase hex SHA-256 of `s`: how API keys, enrollment keys and refresh
/// tokens are stored.
pub fn hash_secret(s: &str) -> String {
    hex(&Sha256::digest(s.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

fn mac(key: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// Signs `payload` as an opaque token:
/// `base64url(payload) + "." + base64url(HMAC-SHA256(key, payload))`,
/// both unpadded. The payload is readable by anyone; it is only tamper-proof.
pub fn sign_blob(key: &[u8], payload: &[u8]) -> String {
    let mut mac = mac(key);
    mac.update(payload);
    let tag = mac.finalize().into_bytes();
    let mut token = String::with_capacity(payload.len().div_ceil(3) * 4 + 1 + 43);
    URL_SAFE_NO_PAD.encode_string(payload, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag, &mut token);
    token
}

/// Opens a token made by [`sign_blob`], checking the tag in constant time.
/// Returns `None` if the token is malformed or was not signed with `key`.
pub fn open_blob(key: &[u8], token: &str) -> Option<Vec<u8>> {
    let (payload_b64, tag_b64) = token.split_once('.')?;
    let payload = URL_SAFE_NO_PAD.decode(payload_b64).ok()?;
    let tag = URL_SAFE_NO_PAD.decode(tag_b64).ok()?;
    let mut mac = mac(key);
    mac.update(&payload);
    mac.verify_slice(&tag).ok()?;
    Some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"sync-token-key-for-tests-32bytes";

    #[test]
    fn creates_then_reloads_same_keys() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("nested").join("data");
        let first = load_or_create(&data_dir).unwrap();
        let path = data_dir.join(SECRET_FILE_NAME);
        let bytes = fs::read(&path).unwrap();
        assert_eq!(bytes.len(), SECRET_FILE_LEN);
        assert_eq!(first.jwt[..], bytes[..32]);
        assert_eq!(first.sync_token[..], bytes[32..]);
        assert_ne!(first.jwt, first.sync_token);

        let second = load_or_create(&data_dir).unwrap();
        assert_eq!(first.jwt, second.jwt);
        assert_eq!(first.sync_token, second.sync_token);

        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(&data_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(SECRET_FILE_NAME)]);

        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn different_dirs_get_different_keys() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let a = load_or_create(a.path()).unwrap();
        let b = load_or_create(b.path()).unwrap();
        assert_ne!(a.jwt, b.jwt);
    }

    #[test]
    fn wrong_length_is_invalid_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SECRET_FILE_NAME);
        fs::write(&path, [7u8; 63]).unwrap();
        let err = load_or_create(dir.path()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        let msg = err.to_string();
        assert!(msg.contains(SECRET_FILE_NAME), "{msg}");
        assert!(msg.contains("63"), "{msg}");
        // The file is left alone.
        assert_eq!(fs::read(&path).unwrap(), vec![7u8; 63]);
    }

    #[test]
    fn debug_hides_bytes() {
        let secrets = HubSecrets::from_bytes(&[0xab; SECRET_FILE_LEN]);
        let shown = format!("{secrets:?}");
        assert!(!shown.contains("171") && !shown.contains("ab"), "{shown}");
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn random_tokens() {
        let a = random_token("ssk_", 24);
        let b = random_token("ssk_", 24);
        assert_ne!(a, b);
        assert!(a.starts_with("ssk_"));
        assert_eq!(a.len(), 4 + 32);
        assert!(
            a[4..]
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(random_token("rt_", 0), "rt_");
        assert_eq!(random_token("enr_", 16).len(), 4 + 22);
    }

    #[test]
    fn hash_secret_is_lowercase_hex_sha256() {
        assert_eq!(
            hash_secret("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hash_secret(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn blob_round_trip() {
        for payload in [
            &b""[..],
            b"x",
            b"{\"seq\":42,\"branch\":\"b1\"}",
            &[0u8; 100],
        ] {
            let token = sign_blob(KEY, payload);
            assert!(!token.contains('='));
            assert_eq!(open_blob(KEY, &token).as_deref(), Some(payload));
        }
    }

    #[test]
    fn blob_wrong_key() {
        let token = sign_blob(KEY, b"payload");
        assert_eq!(open_blob(b"other key", &token), None);
    }

    #[test]
    fn blob_tamper_any_byte() {
        let token = sign_blob(KEY, b"{\"seq\":42}");
        let bytes = token.as_bytes();
        for i in 0..bytes.len() {
            for replacement in [b'A', b'B', b'-', b'_', b'.', b'=', b'z'] {
                if bytes[i] == replacement {
                    continue;
                }
                let mut t = bytes.to_vec();
                t[i] = replacement;
                let t = String::from_utf8(t).unwrap();
                assert_eq!(
                    open_blob(KEY, &t),
                    None,
                    "byte {i} -> {}",
                    replacement as char
                );
            }
        }
    }

    #[test]
    fn blob_truncated_or_garbage() {
        let token = sign_blob(KEY, b"{\"seq\":42}");
        for cut in 0..token.len() {
            assert_eq!(open_blob(KEY, &token[..cut]), None, "cut at {cut}");
        }
        let extended = format!("{token}A");
        assert_eq!(open_blob(KEY, &extended), None);
        let extra_part = format!("{token}.AAAA");
        assert_eq!(open_blob(KEY, &extra_part), None);
        for garbage in ["", ".", "..", "abc", "!!.??", "a.b.c"] {
            assert_eq!(open_blob(KEY, garbage), None, "{garbage:?}");
        }
    }
}
