//! Interned keys: every distinct key of a history is held once, and operations refer to it
//! by a 4-byte id, which decides their partition.
//!
//! A key arrives as the text a line spelled it in (JSON or EDN) or as a parsed [`Value`].
//! Its text is the fast way in: keys repeat on every line, and a repeat costs a hash of a
//! few bytes. Text seen for the first time is parsed, and the value's canonical form
//! (compact JSON) decides its id, so that two spellings of one value (`[1, 2]` and `[1,2]`,
//! `"k\u0031"` and `"k1"`, EDN's `:k1` and JSON's `"k1"`) share it: partitions are told
//! apart by key ids, so equal keys must have equal ids.

use serde_json::Value;

use crate::fasthash::FastMap;

/// The id of an interned value.
pub(crate) type ValueId = u32;

/// The id's top bit in [`Values::by_text`]: the text is also the value's canonical form.
const CANONICAL: u32 = 1 << 31;

/// The table of distinct values.
#[derive(Debug, Default)]
pub(crate) struct Values {
    list: Vec<Value>,
    /// Spellings seen in the file, to their id (with [`CANONICAL`] when the spelling is
    /// also the canonical form, which is the usual case for JSON).
    by_text: FastMap<Box<[u8]>, u32>,
    /// Canonical forms that are not also a spelling in `by_text`.
    by_canonical: FastMap<Box<[u8]>, ValueId>,
}

impl Values {
    /// The value of an id.
    pub(crate) fn get(&self, id: ValueId) -> &Value {
        &self.list[id as usize]
    }

    /// How many distinct values there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// The id of a value spelled `text`; `parse` reads it when the spelling is new (its
    /// error is the caller's to report).
    #[inline]
    pub(crate) fn intern_text<E>(
        &mut self,
        text: &[u8],
        parse: impl FnOnce(&[u8]) -> Result<Value, E>,
    ) -> Result<ValueId, E> {
        if let Some(&id) = self.by_text.get(text) {
            return Ok(id & !CANONICAL);
        }
        let value = parse(text)?;
        let canonical = canonical_form(&value);
        let spelled = canonical.as_slice() == text;
        let id = match self.find_canonical(&canonical) {
            Some(id) => id,
            None => self.push(value, canonical, spelled),
        };
        self.by_text.insert(text.into(), id | if spelled { CANONICAL } else { 0 });
        Ok(id)
    }

    /// The id of a parsed value.
    pub(crate) fn intern_value(&mut self, value: &Value) -> ValueId {
        let canonical = canonical_form(value);
        match self.find_canonical(&canonical) {
            Some(id) => id,
            None => self.push(value.clone(), canonical, false),
        }
    }

    /// The id of the value whose canonical form is `canonical`, if it has one.
    fn find_canonical(&self, canonical: &[u8]) -> Option<ValueId> {
        if let Some(&id) = self.by_canonical.get(canonical) {
            return Some(id);
        }
        match self.by_text.get(canonical) {
            Some(&id) if id & CANONICAL != 0 => Some(id & !CANONICAL),
            _ => None,
        }
    }

    /// Adds a new value; `spelled` says that the caller is about to record its canonical
    /// form as a spelling in `by_text` (which then serves canonical look-ups too).
    fn push(&mut self, value: Value, canonical: Vec<u8>, spelled: bool) -> ValueId {
        let id = self.list.len() as ValueId;
        assert!(id < CANONICAL, "more than 2^31 distinct values in one history");
        self.list.push(value);
        if !spelled {
            self.by_canonical.insert(canonical.into(), id);
        }
        id
    }

    /// The bytes the table holds, roughly (for memory accounting and figures).
    pub(crate) fn bytes(&self) -> usize {
        let texts: usize = self.by_text.keys().map(|k| k.len() + 40).sum();
        let canonical: usize = self.by_canonical.keys().map(|k| k.len() + 40).sum();
        self.list.capacity() * std::mem::size_of::<Value>() + texts + canonical
    }
}

fn canonical_form(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn json(t: &[u8]) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(t)
    }

    #[test]
    fn spellings_of_one_value_share_its_id() {
        let mut v = Values::default();
        let a = v.intern_text(b"[1, 2]", json).unwrap();
        let b = v.intern_text(b"[1,2]", json).unwrap();
        let c = v.intern_value(&json!([1, 2]));
        assert_eq!((a, b), (c, c));
        let k = v.intern_text(b"\"k1\"", json).unwrap();
        assert_eq!(v.intern_text(b"\"k\\u0031\"", json).unwrap(), k);
        assert_eq!(v.intern_value(&json!("k1")), k);
        assert_eq!(v.len(), 2);
        assert_eq!(v.get(k), &json!("k1"));
    }

    #[test]
    fn a_spelling_that_is_another_values_canonical_form_does_not_alias_it() {
        // EDN's symbol `null` is the string "null"; JSON's `null` is null.
        let mut v = Values::default();
        let edn = |t: &[u8]| crate::edn::parse(std::str::from_utf8(t).unwrap());
        let symbol = v.intern_text(b"null", edn).unwrap();
        let nil = v.intern_text(b"nil", edn).unwrap();
        assert_ne!(symbol, nil);
        assert_eq!(v.get(symbol), &json!("null"));
        assert_eq!(v.get(nil), &Value::Null);
        assert_eq!(v.intern_value(&Value::Null), nil);
        assert_eq!(v.intern_value(&json!("null")), symbol);
    }

    #[test]
    fn a_bad_spelling_is_the_callers_error_and_is_not_kept() {
        let mut v = Values::default();
        assert!(v.intern_text(b"[1,", json).is_err());
        assert_eq!(v.len(), 0);
    }
}
