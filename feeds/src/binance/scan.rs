//! The JSON scanner of the general path: a cursor over the frame that validates and skips values,
//! hands out keys, strings and number texts borrowed from the frame, and bounds nesting by
//! [`MAX_DEPTH`]. No allocation, no copy, no `unsafe`; every method returns `Ok` or `Err`.
//!
//! Simplifications, on purpose: UTF-8 inside strings is not validated, `\u` escapes are checked for
//! four hex digits but not for surrogate pairs, and the range of numbers is not checked here (the
//! fields the decoder reads are checked when parsed).

use crate::binance::error::{DecodeError, Result};
use crate::binance::word::{load8, special_bytes};

/// Deepest nesting of objects and arrays accepted (Binance payloads use 4).
pub const MAX_DEPTH: usize = 16;

/// A scanned JSON value, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok<'a> {
    /// String contents without the quotes; `true` when it contains escapes.
    Str(&'a [u8], bool),
    /// Number text.
    Num(&'a [u8]),
    True,
    False,
    Null,
    /// Object text including braces.
    Obj(&'a [u8]),
    /// Array text including brackets.
    Arr(&'a [u8]),
}

impl<'a> Tok<'a> {
    /// The JSON text of the value (strings without quotes).
    pub(crate) fn raw(self) -> &'a [u8] {
        match self {
            Tok::Str(s, _) | Tok::Num(s) | Tok::Obj(s) | Tok::Arr(s) => s,
            Tok::True => b"true",
            Tok::False => b"false",
            Tok::Null => b"null",
        }
    }
}

/// Index of the closing quote of a string whose contents start at `start`, if the string has no
/// escape and no control character (`None` also when the frame ends first).
#[inline(always)]
pub(crate) fn plain_string_end(f: &[u8], start: usize) -> Option<usize> {
    let mut i = start;
    loop {
        let special = special_bytes(load8(f, i));
        if special != 0 {
            // The lowest flagged byte is exact; past the end the zero padding is flagged.
            let at = i + (special.trailing_zeros() / 8) as usize;
            return (*f.get(at)? == b'"').then_some(at);
        }
        i += 8;
    }
}

/// A cursor over the frame.
#[derive(Debug, Clone)]
pub(crate) struct Cur<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) i: usize,
}

impl<'a> Cur<'a> {
    #[inline(always)]
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Self { b, i: 0 }
    }

    #[inline(always)]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline(always)]
    pub(crate) fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    #[inline(always)]
    pub(crate) fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    #[inline(always)]
    pub(crate) fn unexpected(&self) -> DecodeError {
        match self.peek() {
            Some(byte) => DecodeError::UnexpectedByte { pos: self.i, byte },
            None => DecodeError::UnexpectedEnd,
        }
    }

    /// Iterates the object at the cursor (after whitespace), calling `f` with the cursor positioned
    /// before each value; `f` must consume the value. `depth` is the object's own nesting level.
    #[inline(always)]
    pub(crate) fn object(
        &mut self,
        depth: usize,
        mut f: impl FnMut(&mut Self, &'a [u8]) -> Result<()>,
    ) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep { pos: self.i });
        }
        self.ws();
        if self.peek() != Some(b'{') {
            return Err(self.unexpected());
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.unexpected());
            }
            let (key, _) = self.string()?;
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.unexpected());
            }
            self.i += 1;
            f(self, key)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.unexpected()),
            }
        }
    }

    /// The string at the cursor (which is on the opening quote): its contents and whether it has
    /// escapes.
    #[inline(always)]
    pub(crate) fn string(&mut self) -> Result<(&'a [u8], bool)> {
        let start = self.i + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            // Skip 8 plain bytes at a time, then land on the first special byte.
            let special = special_bytes(load8(self.b, i));
            if special == 0 {
                i += 8;
                continue;
            }
            i += (special.trailing_zeros() / 8) as usize;
            let Some(&c) = self.b.get(i) else {
                return Err(DecodeError::UnexpectedEnd);
            };
            match c {
                b'"' => {
                    self.i = i + 1;
                    return Ok((self.b.get(start..i).unwrap_or_default(), escaped));
                }
                b'\\' => {
                    escaped = true;
                    i = self.escape(i + 1)?;
                }
                _ => return Err(DecodeError::InvalidString { pos: i }),
            }
        }
    }

    /// Validates the escape whose letter is at `i`; returns the index after it.
    #[cold]
    fn escape(&self, i: usize) -> Result<usize> {
        match self.b.get(i) {
            None => Err(DecodeError::UnexpectedEnd),
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(i + 1),
            Some(b'u') => {
                let hex = self.b.get(i + 1..i + 5).ok_or(DecodeError::UnexpectedEnd)?;
                if hex.iter().all(u8::is_ascii_hexdigit) {
                    Ok(i + 5)
                } else {
                    Err(DecodeError::InvalidString { pos: i })
                }
            }
            Some(_) => Err(DecodeError::InvalidString { pos: i }),
        }
    }

    /// The number at the cursor, validated against JSON's grammar.
    #[inline(always)]
    fn number(&mut self) -> Result<&'a [u8]> {
        let start = self.i;
        let mut i = start;
        let digits = |b: &[u8], mut i: usize| {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            i
        };
        if self.b.get(i) == Some(&b'-') {
            i += 1;
        }
        let int_start = i;
        i = digits(self.b, i);
        let bad = |i: usize, b: &[u8]| {
            if i >= b.len() { DecodeError::UnexpectedEnd } else { DecodeError::InvalidNumber { pos: i } }
        };
        if i == int_start {
            return Err(bad(i, self.b));
        }
        if self.b.get(int_start) == Some(&b'0') && i - int_start > 1 {
            // JSON forbids leading zeros.
            return Err(DecodeError::InvalidNumber { pos: int_start + 1 });
        }
        if self.b.get(i) == Some(&b'.') {
            let s = i + 1;
            i = digits(self.b, s);
            if i == s {
                return Err(bad(i, self.b));
            }
        }
        if matches!(self.b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(self.b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let s = i;
            i = digits(self.b, s);
            if i == s {
                return Err(bad(i, self.b));
            }
        }
        self.i = i;
        Ok(self.b.get(start..i).unwrap_or_default())
    }

    fn literal(&mut self, lit: &'static [u8]) -> Result<()> {
        let end = self.i + lit.len();
        match self.b.get(self.i..end) {
            Some(s) if s == lit => {
                self.i = end;
                Ok(())
            }
            _ => {
                // Point at the first differing byte, or report truncation.
                let mut j = self.i;
                while j < end && self.b.get(j) == lit.get(j - self.i) {
                    j += 1;
                }
                match self.b.get(j) {
                    Some(&byte) => Err(DecodeError::UnexpectedByte { pos: j, byte }),
                    None => Err(DecodeError::UnexpectedEnd),
                }
            }
        }
    }

    /// The value at the cursor (after whitespace). `depth` is the nesting level the value would have.
    #[inline(always)]
    pub(crate) fn value(&mut self, depth: usize) -> Result<Tok<'a>> {
        self.ws();
        match self.peek() {
            Some(b'"') => {
                let (s, esc) = self.string()?;
                Ok(Tok::Str(s, esc))
            }
            Some(b'-' | b'0'..=b'9') => Ok(Tok::Num(self.number()?)),
            Some(b'{') => {
                let start = self.i;
                self.object(depth, |cur, _| cur.skip(depth + 1))?;
                Ok(Tok::Obj(self.b.get(start..self.i).unwrap_or_default()))
            }
            Some(b'[') => {
                let start = self.i;
                self.array(depth)?;
                Ok(Tok::Arr(self.b.get(start..self.i).unwrap_or_default()))
            }
            Some(b't') => self.literal(b"true").map(|()| Tok::True),
            Some(b'f') => self.literal(b"false").map(|()| Tok::False),
            Some(b'n') => self.literal(b"null").map(|()| Tok::Null),
            _ => Err(self.unexpected()),
        }
    }

    /// Validates and skips the value at the cursor.
    pub(crate) fn skip(&mut self, depth: usize) -> Result<()> {
        self.value(depth).map(|_| ())
    }

    /// Validates and skips the array at the cursor.
    fn array(&mut self, depth: usize) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep { pos: self.i });
        }
        self.i += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(());
        }
        loop {
            self.skip(depth + 1)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(self.unexpected()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_strings_end_at_their_quote() {
        let f = br#"{"s":"ABCDEFGHIJKLMNOPQRST","x":1}"#;
        assert_eq!(plain_string_end(f, 6), Some(26));
        assert_eq!(plain_string_end(br#""""#, 1), Some(1));
        assert_eq!(plain_string_end(br#""a\"b""#, 1), None);
        assert_eq!(plain_string_end(b"\"a\x01b\"", 1), None);
        assert_eq!(plain_string_end(br#""abcdefghijkl"#, 1), None);
        assert_eq!(plain_string_end(br#""abc"#, 1), None);
        assert_eq!(plain_string_end(b"", 5), None);
    }

    #[test]
    fn strings_find_the_first_special_byte_at_every_offset() {
        for pos in 0..20 {
            let mut f = br#""ABCDEFGHIJKLMNOPQRST""#.to_vec();
            f[1 + pos] = 0x01;
            assert_eq!(Cur::new(&f).string(), Err(DecodeError::InvalidString { pos: 1 + pos }));
            f[1 + pos] = b'"';
            assert_eq!(Cur::new(&f).string(), Ok((&f[1..1 + pos], false)));
        }
        assert_eq!(Cur::new(br#""ab\"c\u00e9""#).string(), Ok((&br#"ab\"c\u00e9"#[..], true)));
        assert_eq!(Cur::new(br#""ab"#).string(), Err(DecodeError::UnexpectedEnd));
        assert_eq!(Cur::new(br#""ab\"#).string(), Err(DecodeError::UnexpectedEnd));
        assert_eq!(Cur::new(br#""ab\u00"#).string(), Err(DecodeError::UnexpectedEnd));
        assert_eq!(Cur::new(br#""ab\x""#).string(), Err(DecodeError::InvalidString { pos: 4 }));
    }
}
