//! RDS IAM auth tokens, checked the way RDS checks them: a token is a SigV4-presigned
//! `GET https://HOST:PORT/?Action=connect&DBUser=USER` for service `rds-db`, and is valid for the
//! endpoint it names, for the user it names, until `X-Amz-Date + X-Amz-Expires` (at most 15
//! minutes), signed with a key RDS knows.
//!
//! Written from the SigV4 specification (docs.aws.amazon.com/IAM/latest/UserGuide/
//! create-signed-request.html), not with the SDK's signer, so a test that the SDK's token
//! verifies here checks the SDK's token format against the specification rather than against
//! itself. [`sign`] exists for tokens the SDK will not make (expired, another key).

use sha2::{Digest, Sha256};

/// The longest validity RDS accepts (`X-Amz-Expires`), seconds.
pub const MAX_EXPIRES: i64 = 900;
/// Clock skew tolerated for a token dated in the future, seconds (SigV4's usual 5 minutes).
const SKEW: i64 = 300;

/// What a token must be for: the endpoint, the user, the keys and region RDS knows.
#[derive(Debug, Clone)]
pub struct Expect<'a> {
    /// `HOST:PORT` of the endpoint connected to.
    pub endpoint: &'a str,
    pub user: &'a str,
    pub region: &'a str,
    pub access_key: &'a str,
    pub secret_key: &'a str,
    /// Now, epoch seconds.
    pub now: i64,
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// HMAC-SHA256 (RFC 2104).
fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// SigV4's URI encoding: everything but `A-Z a-z 0-9 - _ . ~` as `%XX`.
fn uri_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `application/x-www-form-urlencoded` decoding (how the SDK's `url` crate wrote the query).
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Epoch seconds of SigV4's `YYYYMMDDTHHMMSSZ`.
fn parse_amz_date(s: &str) -> Option<i64> {
    if s.len() != 16 || &s[8..9] != "T" || !s.ends_with('Z') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(4..6)?, n(6..8)?);
    let (hh, mm, ss) = (n(9..11)?, n(11..13)?, n(13..15)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYYMMDDTHHMMSSZ` of epoch seconds.
fn format_amz_date(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    // Inverse of days_from_civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// The signature of a presigned `GET https://{host_port}/?{params}` (params without the
/// signature) with `secret_key`.
fn signature(host_port: &str, params: &[(String, String)], secret_key: &str) -> Option<String> {
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let date_time = get("X-Amz-Date")?;
    let credential = get("X-Amz-Credential")?;
    let scope = credential.split_once('/')?.1; // DATE/REGION/SERVICE/aws4_request
    let mut parts = scope.split('/');
    let (date, region, service) = (parts.next()?, parts.next()?, parts.next()?);
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (uri_encode(k), uri_encode(v)))
        .collect();
    encoded.sort();
    let query = encoded
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let signed_headers = get("X-Amz-SignedHeaders")?;
    if signed_headers != "host" {
        return None; // a token signs the host header only
    }
    // The payload of a GET is empty; its hash is signed.
    let canonical = format!(
        "GET\n/\n{query}\nhost:{host_port}\n\n{signed_headers}\n{}",
        sha256_hex(b"")
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let k_date = hmac(format!("AWS4{secret_key}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    Some(hex::encode(hmac(&k_signing, to_sign.as_bytes())))
}

/// Check `token` against `want`; the error says why it is refused (for the harness's log:
/// the client only ever hears PostgreSQL's "PAM authentication failed", as from RDS).
pub fn verify(token: &str, want: &Expect<'_>) -> Result<(), String> {
    let (host_port, query) = token
        .split_once("/?")
        .ok_or("not a presigned URL (HOST:PORT/?QUERY)")?;
    if host_port != want.endpoint {
        return Err(format!(
            "token for {host_port}, presented at {}",
            want.endpoint
        ));
    }
    let mut params = Vec::new();
    let mut sig = None;
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (
            form_decode(k).ok_or("bad query encoding")?,
            form_decode(v).ok_or("bad query encoding")?,
        );
        if k == "X-Amz-Signature" {
            sig = Some(v);
        } else {
            params.push((k, v));
        }
    }
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let sig = sig.ok_or("no X-Amz-Signature")?;
    if get("Action") != Some("connect") {
        return Err("Action is not connect".into());
    }
    if get("DBUser") != Some(want.user) {
        return Err(format!(
            "token for user {:?}, login as {:?}",
            get("DBUser"),
            want.user
        ));
    }
    if get("X-Amz-Algorithm") != Some("AWS4-HMAC-SHA256") {
        return Err("X-Amz-Algorithm is not AWS4-HMAC-SHA256".into());
    }
    let credential = get("X-Amz-Credential").ok_or("no X-Amz-Credential")?;
    let c: Vec<&str> = credential.split('/').collect();
    match c.as_slice() {
        [key, _, region, "rds-db", "aws4_request"] => {
            if *key != want.access_key {
                return Err(format!("unknown access key {key}"));
            }
            if *region != want.region {
                return Err(format!(
                    "token for region {region}, endpoint in {}",
                    want.region
                ));
            }
        }
        _ => return Err(format!("credential scope {credential:?} is not rds-db's")),
    }
    let amz_date = get("X-Amz-Date").ok_or("no X-Amz-Date")?;
    let date = parse_amz_date(amz_date).ok_or("bad X-Amz-Date")?;
    if c[1] != &amz_date[..8] {
        return Err("credential date differs from X-Amz-Date".into());
    }
    let expires: i64 = get("X-Amz-Expires")
        .and_then(|e| e.parse().ok())
        .ok_or("bad X-Amz-Expires")?;
    if !(1..=MAX_EXPIRES).contains(&expires) {
        return Err(format!("X-Amz-Expires {expires} outside 1..={MAX_EXPIRES}"));
    }
    if want.now > date + expires {
        return Err(format!("expired {} s ago", want.now - date - expires));
    }
    if date > want.now + SKEW {
        return Err(format!("dated {} s in the future", date - want.now));
    }
    let good =
        signature(host_port, &params, want.secret_key).ok_or("cannot rebuild the request")?;
    // Constant-time compare: a harness, but no reason to be sloppy.
    let same = good.len() == sig.len()
        && good
            .bytes()
            .zip(sig.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if !same {
        return Err("signature does not match".into());
    }
    Ok(())
}

/// A token as the SDK makes one, signed at `at` (epoch seconds), valid `expires` seconds.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    host_port: &str,
    user: &str,
    region: &str,
    access_key: &str,
    secret_key: &str,
    at: i64,
    expires: i64,
) -> String {
    let date_time = format_amz_date(at);
    let params: Vec<(String, String)> = [
        ("Action", "connect".to_string()),
        ("DBUser", user.to_string()),
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_string()),
        (
            "X-Amz-Credential",
            format!(
                "{access_key}/{}/{region}/rds-db/aws4_request",
                &date_time[..8]
            ),
        ),
        ("X-Amz-Date", date_time.clone()),
        ("X-Amz-Expires", expires.to_string()),
        ("X-Amz-SignedHeaders", "host".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let sig = signature(host_port, &params, secret_key).unwrap_or_default();
    let query = params
        .iter()
        .map(|(k, v)| format!("{}={}", uri_encode(k), uri_encode(v)))
        .chain(std::iter::once(format!("X-Amz-Signature={sig}")))
        .collect::<Vec<_>>()
        .join("&");
    format!("{host_port}/?{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const EP: &str = "127.0.0.9:5432";

    fn want(now: i64) -> Expect<'static> {
        Expect {
            endpoint: EP,
            user: "godwit",
            region: "eu-west-1",
            access_key: "AKIDEXAMPLE",
            secret_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            now,
        }
    }

    #[test]
    fn dates_round_trip() {
        for t in [0, 951_782_400, 1_700_000_000, 4_102_444_799] {
            assert_eq!(parse_amz_date(&format_amz_date(t)), Some(t), "{t}");
        }
        assert_eq!(format_amz_date(1_440_938_160), "20150830T123600Z");
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            hex::encode(hmac(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_token_is_valid_for_its_endpoint_user_and_lifetime_only() {
        let w = want(1_700_000_000);
        let t = sign(
            EP,
            "godwit",
            w.region,
            w.access_key,
            w.secret_key,
            w.now - 60,
            900,
        );
        assert_eq!(verify(&t, &w), Ok(()));
        let later = Expect {
            now: w.now + 900,
            ..w.clone()
        };
        assert!(verify(&t, &later).unwrap_err().contains("expired"));
        let elsewhere = Expect {
            endpoint: "127.0.0.10:5432",
            ..w.clone()
        };
        assert!(verify(&t, &elsewhere).unwrap_err().contains("presented at"));
        let other_user = Expect {
            user: "app",
            ..w.clone()
        };
        assert!(verify(&t, &other_user).unwrap_err().contains("user"));
        let other_key = Expect {
            secret_key: "another",
            ..w.clone()
        };
        assert!(verify(&t, &other_key).unwrap_err().contains("signature"));
        let tampered = t.replace("DBUser=godwit", "DBUser=godwiT");
        assert!(
            verify(
                &tampered,
                &Expect {
                    user: "godwiT",
                    ..w.clone()
                }
            )
            .is_err()
        );
        let long = sign(
            EP,
            "godwit",
            w.region,
            w.access_key,
            w.secret_key,
            w.now,
            3600,
        );
        assert!(verify(&long, &w).unwrap_err().contains("X-Amz-Expires"));
    }
}
