//! Small text codecs several parts of the engine share: base64 (FHIR `base64Binary`, FHIRPath
//! `encode`/`decode`) and XML character references (FHIRPath `unescape('html')`, XML test
//! fixtures).

/// Replaces XML/HTML character references (`&lt;`, `&#x41;`, `&#65;`…) with their characters;
/// an `&` that starts no reference stays as it is.
pub fn unescape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';').filter(|&i| i <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..semi];
        let ch = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            e => e
                .strip_prefix("#x")
                .or_else(|| e.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| e.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match ch {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Base64 (RFC 4648 §4), or its URL-safe alphabet (§5) with `url`, padded.
pub fn base64_encode(bytes: &[u8], url: bool) -> String {
    let table = if url { B64_URL } else { B64 };
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(table[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes base64 in the chosen alphabet; padding and whitespace are ignored. `None` for
/// text that is not base64.
pub fn base64_decode(s: &str, url: bool) -> Option<Vec<u8>> {
    let table = if url { B64_URL } else { B64 };
    let clean: Vec<u8> = s.bytes().filter(|&b| b != b'=' && !b.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            let v = table.iter().position(|&t| t == c)? as u32;
            n |= v << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_both_alphabets() {
        assert_eq!(base64_encode(b"subjects?_d", false), "c3ViamVjdHM/X2Q=");
        assert_eq!(base64_encode(b"subjects?_d", true), "c3ViamVjdHM_X2Q=");
        assert_eq!(base64_decode("dGVzdA==", false), Some(b"test".to_vec()));
        assert_eq!(base64_decode("aGk", false).as_deref(), Some(&b"hi"[..]));
        assert!(base64_decode("a$b", false).is_none());
        assert!(base64_decode("a", false).is_none());
    }

    #[test]
    fn character_references() {
        assert_eq!(unescape_xml("&quot;1&lt;2&quot;"), "\"1<2\"");
        assert_eq!(unescape_xml("&#x41;&#66;&amp;"), "AB&");
        assert_eq!(unescape_xml("a & b &bogus; c"), "a & b &bogus; c");
    }
}
