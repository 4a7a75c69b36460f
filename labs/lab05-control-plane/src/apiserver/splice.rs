//! An object's JSON as the store holds it, with its resourceVersion
//! spliced in, without parsing it.
//!
//! Lists and watches send thousands of objects that the server has no
//! reason to look inside: parsing each into a tree only to write the
//! same bytes back was most of a list's time, and of a watch's, once per
//! watcher. kube-apiserver avoids the same cost by caching each object's
//! serialization (`cachingObject`). The stored bytes are compact JSON
//! with sorted keys (serde_json's map), so the answer is those bytes
//! with `"resourceVersion":"N"` inserted into `metadata` where a sort
//! would put it: byte for byte what parsing and serializing would give.

/// Appends `stored` (a JSON object) to `out` with
/// `metadata.resourceVersion` set to `revision`; false, with `out` as it
/// was, when it is not shaped as expected (no `metadata` object, a
/// resourceVersion already there, not JSON): the caller then takes the
/// slow path through a parsed tree.
pub fn append_with_resource_version(
    out: &mut Vec<u8>,
    stored: &[u8],
    revision: i64,
) -> bool {
    let Some(at) = insertion_point(stored) else {
        return false;
    };
    out.reserve(stored.len() + 40);
    out.extend_from_slice(&stored[..at.offset]);
    if at.comma_before {
        out.push(b',');
    }
    out.extend_from_slice(b"\"resourceVersion\":\"");
    out.extend_from_slice(revision.to_string().as_bytes());
    out.push(b'"');
    if at.comma_after {
        out.push(b',');
    }
    out.extend_from_slice(&stored[at.offset..]);
    true
}

/// Where the new member goes in the top-level `metadata` object.
struct Insertion {
    offset: usize,
    /// A member precedes it.
    comma_before: bool,
    /// A member follows it.
    comma_after: bool,
}

const KEY: &[u8] = b"resourceVersion";

fn insertion_point(s: &[u8]) -> Option<Insertion> {
    let mut r = Reader { s, at: 0 };
    r.expect(b'{')?;
    if r.peek()? == b'}' {
        return None;
    }
    loop {
        let key = r.string()?;
        r.expect(b':')?;
        if key == b"metadata" {
            return r.member_slot();
        }
        r.skip_value()?;
        match r.next()? {
            b',' => {}
            _ => return None,
        }
    }
}

struct Reader<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.s.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// A string's raw bytes between its quotes (escapes left as they are:
    /// keys compared here never need them).
    fn string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.at;
        loop {
            match self.s.get(self.at)? {
                b'"' => {
                    self.at += 1;
                    return Some(&self.s[start..self.at - 1]);
                }
                b'\\' => self.at += 2,
                _ => self.at += 1,
            }
        }
    }

    fn skip_value(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                // Depth counting is enough: strings are skipped whole, so
                // a bracket inside one is never counted.
                let mut depth = 0usize;
                loop {
                    match self.peek()? {
                        b'"' => {
                            self.string()?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => depth -= 1,
                        _ => {}
                    }
                    self.at += 1;
                    if depth == 0 {
                        return Some(());
                    }
                }
            }
            _ => {
                // A number, true, false or null: up to the next delimiter.
                while !matches!(
                    self.s.get(self.at)?,
                    b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'
                ) {
                    self.at += 1;
                }
                Some(())
            }
        }
    }

    /// In the object starting here, the place of a `resourceVersion`
    /// member in key order.
    fn member_slot(&mut self) -> Option<Insertion> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            return Some(Insertion {
                offset: self.at,
                comma_before: false,
                comma_after: false,
            });
        }
        loop {
            self.skip_ws();
            let start = self.at;
            let key = self.string()?;
            // serde_json sorts its map's keys as Rust sorts strings: by
            // their bytes. (An escaped key compares by its escaped bytes
            // here; none of metadata's keys has an escape.)
            match key.cmp(KEY) {
                std::cmp::Ordering::Equal => return None,
                std::cmp::Ordering::Greater => {
                    return Some(Insertion {
                        offset: start,
                        comma_before: false,
                        comma_after: true,
                    });
                }
                std::cmp::Ordering::Less => {}
            }
            self.expect(b':')?;
            self.skip_value()?;
            match self.peek()? {
                b',' => self.at += 1,
                // The member just skipped comes before it.
                b'}' => {
                    return Some(Insertion {
                        offset: self.at,
                        comma_before: true,
                        comma_after: false,
                    });
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn with_resource_version(stored: &[u8], revision: i64) -> Option<Vec<u8>> {
        let mut out = b"before".to_vec();
        let placed = append_with_resource_version(&mut out, stored, revision);
        if !placed {
            assert_eq!(out, b"before", "left as it was");
            return None;
        }
        Some(out.split_off(b"before".len()))
    }

    /// What parsing, setting and serializing gives: the splice must give
    /// the very same bytes.
    fn slow(stored: &[u8], revision: i64) -> Vec<u8> {
        let mut v: Value = serde_json::from_slice(stored).unwrap();
        v["metadata"]["resourceVersion"] = Value::String(revision.to_string());
        v.to_string().into_bytes()
    }

    #[test]
    fn the_same_bytes_as_a_parse_and_a_write() {
        let objects = [
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}}),
            json!({"metadata": {"name": "a"}}),
            json!({"metadata": {"uid": "u"}}),
            json!({"metadata": {"name": "a", "uid": "u", "labels": {"x": "}"}},
                   "spec": {"containers": [{"name": "c", "args": ["{", "\"]"]}]}}),
            json!({"apiVersion": "v1", "data": {"metadata": "{\"a\":1}"},
                   "kind": "ConfigMap", "metadata": {"annotations": {"k": "v"},
                   "creationTimestamp": null, "generation": 3, "ownerReferences": [
                   {"uid": "z"}], "selfLink": "", "zzz": true}}),
            json!({"a": [1, 2.5, -3e4, true, false, null, {"b": []}], "metadata": {"name": "é\u{1}"}}),
        ];
        for o in objects {
            let stored = o.to_string().into_bytes();
            let got = with_resource_version(&stored, 42).unwrap();
            assert_eq!(
                String::from_utf8(got).unwrap(),
                String::from_utf8(slow(&stored, 42)).unwrap(),
                "for {o}"
            );
        }
    }

    #[test]
    fn what_it_cannot_place_goes_the_slow_way() {
        for bad in [
            &b""[..],
            b"[]",
            b"{}",
            b"{\"kind\":\"Pod\"}",
            b"{\"metadata\":null}",
            b"{\"metadata\":{\"resourceVersion\":\"1\"}}",
            b"{\"metadata\":{\"name\":\"a\"",
            b"{\"metadata\"",
            b"not json",
        ] {
            assert_eq!(with_resource_version(bad, 1), None, "{bad:?}");
        }
    }
}
