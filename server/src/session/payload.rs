//! The `data` of a publication (and a ping's `id`), checked once at the door
//! and stored compact.
//!
//! serde_json's `RawValue` proves the text is JSON but keeps it byte for
//! byte: the whitespace of a pretty-printed body would end an SSE `data:`
//! line early, and it lets through what many clients cannot parse (nesting
//! deeper than their parser's limit, lone UTF-16 surrogate escapes). One
//! pass here removes insignificant whitespace and refuses those, so every
//! delivery is one line that any JSON parser reads.

use serde_json::value::RawValue;

/// Why relayed JSON was refused; the protocol answers it as `invalid_json`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(String);

/// Deepest nesting of arrays and objects accepted in `data` (serde_json's
/// own limit is 128, Python's `json` fails near 1,000; 64 leaves room for
/// the frame around it).
pub const MAX_JSON_DEPTH: usize = 64;

/// `raw` without insignificant whitespace, or `invalid_json` when it nests
/// deeper than [`MAX_JSON_DEPTH`] or holds an invalid `\u` escape.
///
/// `raw` has already been parsed as JSON, so only whitespace, depth and
/// escapes need a look; the scan is iterative (no recursion on client
/// input).
pub fn compact(raw: &RawValue) -> Result<Box<RawValue>, PayloadError> {
    let text = raw.get();
    let src = text.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut depth = 0usize;
    let mut i = 0;
    // Copy runs of bytes, not one byte at a time: `start` marks the run.
    let mut start = 0;
    while i < src.len() {
        match src[i] {
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.push_str(&text[start..i]);
                i += 1;
                start = i;
            }
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(invalid(format!("`data` nests deeper than {MAX_JSON_DEPTH} levels")));
                }
                i += 1;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'"' => i = string_end(src, i + 1)?,
            _ => i += 1,
        }
    }
    out.push_str(&text[start..]);
    RawValue::from_string(out).map_err(|e| invalid(format!("not valid JSON: {e}")))
}

/// Index just past the closing quote of the string whose content starts at
/// `i`, checking every `\u` escape on the way.
fn string_end(src: &[u8], mut i: usize) -> Result<usize, PayloadError> {
    while i < src.len() {
        match src[i] {
            b'"' => return Ok(i + 1),
            b'\\' if src.get(i + 1) == Some(&b'u') => {
                let unit = hex4(src, i + 2)?;
                i += 6;
                if (0xD800..0xDC00).contains(&unit) {
                    // A high surrogate must be followed by a low one.
                    let low = if src.get(i) == Some(&b'\\') && src.get(i + 1) == Some(&b'u') {
                        hex4(src, i + 2)?
                    } else {
                        0
                    };
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(invalid("`data` holds a lone UTF-16 surrogate escape".into()));
                    }
                    i += 6;
                } else if (0xDC00..0xE000).contains(&unit) {
                    return Err(invalid("`data` holds a lone UTF-16 surrogate escape".into()));
                }
            }
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    Err(invalid("unterminated string in `data`".into()))
}

fn hex4(src: &[u8], at: usize) -> Result<u32, PayloadError> {
    let digits = src.get(at..at + 4).ok_or_else(|| invalid("truncated `\\u` escape in `data`".into()))?;
    let text = std::str::from_utf8(digits).map_err(|_| invalid("invalid `\\u` escape in `data`".into()))?;
    u32::from_str_radix(text, 16).map_err(|_| invalid("invalid `\\u` escape in `data`".into()))
}

fn invalid(message: String) -> PayloadError {
    PayloadError(message)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<String, PayloadError> {
        let raw = RawValue::from_string(text.to_owned()).unwrap();
        compact(&raw).map(|r| r.get().to_owned())
    }

    #[test]
    fn removes_whitespace_outside_strings_only() {
        let pretty = "{\r\n  \"text\" : \"a  b\\n\\\" c\",\n\t\"list\": [ 1, 2 ,{ } ]\r\n\r\n}";
        assert_eq!(run(pretty).unwrap(), r#"{"text":"a  b\n\" c","list":[1,2,{}]}"#);
        assert_eq!(run(" 5 ").unwrap(), "5");
        assert_eq!(run("\"x\"").unwrap(), "\"x\"");
        let compacted = run(pretty).unwrap();
        assert!(!compacted.contains(['\n', '\r']), "one SSE data line");
    }

    #[test]
    fn refuses_nesting_past_the_limit_without_recursing() {
        let ok = format!("{}{}", "[".repeat(MAX_JSON_DEPTH), "]".repeat(MAX_JSON_DEPTH));
        assert_eq!(run(&ok).unwrap(), ok);
        let deep = format!("{}{}", "[".repeat(MAX_JSON_DEPTH + 1), "]".repeat(MAX_JSON_DEPTH + 1));
        assert!(run(&deep).unwrap_err().to_string().contains("deeper than 64"));
        // Brackets inside strings are text, not nesting.
        let quoted = format!("\"{}\"", "[".repeat(500));
        assert!(run(&quoted).is_ok());
    }

    #[test]
    fn refuses_lone_surrogates_and_keeps_pairs() {
        assert_eq!(run(r#""\ud83d\ude00""#).unwrap(), r#""\ud83d\ude00""#);
        assert_eq!(run(r#""\u00e9\\u""#).unwrap(), r#""\u00e9\\u""#);
        for bad in [r#""\ud800""#, r#""\udc00""#, r#""\ud800x""#, r#""\ud800\u0041""#, r#"{"a":"\uDFFF"}"#] {
            assert!(run(bad).unwrap_err().to_string().contains("surrogate"), "{bad}");
        }
    }
}
