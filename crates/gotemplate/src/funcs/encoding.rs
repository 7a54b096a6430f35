//! sprig's encodings and digests.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::args::{Res, adler32, arg, hex, room, s, sarg};
use crate::budget::Budget;
use crate::value::Value;

pub(super) fn f_b64enc(_name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    let x = sarg(&a, 0);
    room(b, x.len() / 3 * 4 + 4)?;
    s(STANDARD.encode(x.as_bytes()))
}

pub(super) fn f_b64dec(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    match STANDARD.decode(sarg(&a, 0).as_bytes()) {
        Ok(b) => s(String::from_utf8_lossy(&b).into_owned()),
        // sprig returns the error text as the result.
        Err(e) => s(e.to_string()),
    }
}

pub(super) fn f_to_json(name: &str, a: Vec<Value>, b: &mut Budget) -> Res {
    // A JSON tree of the value, then text escaping each byte to at most six.
    let v = arg(&a, 0);
    room(b, 8 * v.size())?;
    let json = v.to_json();
    s(match name {
        "toJson" | "mustToJson" => crate::json::to_json_compact(&json, true),
        "toRawJson" | "mustToRawJson" => crate::json::to_json_compact(&json, false),
        _ => crate::json::to_json_pretty(&json),
    })
}

pub(super) fn f_sha256sum(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    s(hex(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        sarg(&a, 0).as_bytes(),
    )
    .as_ref()))
}

pub(super) fn f_sha1sum(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    s(hex(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY,
        sarg(&a, 0).as_bytes(),
    )
    .as_ref()))
}

pub(super) fn f_sha512sum(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    s(hex(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA512,
        sarg(&a, 0).as_bytes(),
    )
    .as_ref()))
}

pub(super) fn f_adler32sum(_name: &str, a: Vec<Value>, _b: &mut Budget) -> Res {
    s(adler32(sarg(&a, 0).as_bytes()).to_string())
}
