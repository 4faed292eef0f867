//! Why a frame could not be decoded.

use crate::binance::scan::MAX_DEPTH;

/// Result of decoding.
pub type Result<T, E = DecodeError> = std::result::Result<T, E>;

/// Why a frame could not be decoded.
///
/// The first group of variants (up to [`DecodeError::TrailingBytes`]) means the bytes are not JSON
/// ([`DecodeError::is_syntax`]); the rest mean JSON of the wrong shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The frame is empty or only whitespace.
    #[error("empty frame")]
    Empty,
    /// The frame ended in the middle of a value (truncated).
    #[error("frame truncated")]
    UnexpectedEnd,
    /// A byte that JSON does not allow at this place.
    #[error("unexpected byte {byte:#04x} at offset {pos}")]
    UnexpectedByte {
        /// Offset in the frame.
        pos: usize,
        /// The byte.
        byte: u8,
    },
    /// The top-level value is not an object.
    #[error("frame is not a JSON object")]
    NotAnObject,
    /// Objects and arrays nest deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} at offset {pos}")]
    TooDeep {
        /// Offset in the frame.
        pos: usize,
    },
    /// A string with a control character or an invalid escape.
    #[error("invalid string at offset {pos}")]
    InvalidString {
        /// Offset in the frame.
        pos: usize,
    },
    /// A number that is not valid JSON.
    #[error("invalid number at offset {pos}")]
    InvalidNumber {
        /// Offset in the frame.
        pos: usize,
    },
    /// Something other than whitespace after the top-level object.
    #[error("trailing bytes at offset {pos}")]
    TrailingBytes {
        /// Offset in the frame.
        pos: usize,
    },
    /// A field the recognised payload needs is absent.
    #[error("field `{field}` missing")]
    MissingField {
        /// The JSON key.
        field: &'static str,
    },
    /// A field holds the wrong JSON type.
    #[error("field `{field}`: expected {expected}")]
    WrongType {
        /// The JSON key.
        field: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// A field has the right type but its value does not parse (bad decimal, integer overflow,
    /// escaped symbol, malformed level).
    #[error("field `{field}`: invalid value")]
    InvalidValue {
        /// The JSON key.
        field: &'static str,
    },
}

impl DecodeError {
    /// True when the bytes are not JSON (empty, truncated, a stray byte, a bad string or number,
    /// trailing bytes), as opposed to JSON of the wrong shape (not an object, too deep, a field
    /// missing, of the wrong type or with a bad value).
    pub fn is_syntax(&self) -> bool {
        matches!(
            self,
            Self::Empty
                | Self::UnexpectedEnd
                | Self::UnexpectedByte { .. }
                | Self::InvalidString { .. }
                | Self::InvalidNumber { .. }
                | Self::TrailingBytes { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_are_told_from_shape_errors() {
        assert!(DecodeError::UnexpectedEnd.is_syntax());
        assert!(DecodeError::TrailingBytes { pos: 3 }.is_syntax());
        assert!(!DecodeError::NotAnObject.is_syntax());
        assert!(!DecodeError::TooDeep { pos: 1 }.is_syntax());
        assert!(!DecodeError::MissingField { field: "u" }.is_syntax());
        assert_eq!(DecodeError::TooDeep { pos: 7 }.to_string(), "nesting deeper than 16 at offset 7");
    }
}
