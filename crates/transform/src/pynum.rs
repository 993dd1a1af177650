//! Numbers the way the reference's Python sees them: `float(x)` and `int(x)`
//! on message text, and `repr(float)` for writing floats back out (the
//! `value` field and floats inside re-serialised JSON).

use super::pyunicode;

/// Python's `float(str)`: surrounding whitespace allowed, `_` between digits
/// allowed, `inf`/`infinity`/`nan` in any case with an optional sign, digits
/// of any script (see [`pyunicode::number_text`]). `None` when Python would
/// raise `ValueError`.
pub(crate) fn float_from_text(text: &str) -> Option<f64> {
    let text = pyunicode::number_text(text)?;
    if !text.contains('_') {
        return text.parse().ok();
    }
    let mut digits = String::with_capacity(text.len());
    strip_digit_separators(&text, &mut digits)?;
    digits.parse().ok()
}

/// Why a text or number is not an integer Python's `int()` would accept
/// within InfluxDB's range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntError {
    /// `int()` would raise `ValueError`.
    NotInteger,
    /// A valid integer, but not representable in an `i64`.
    OutOfRange,
}

/// Python's `int(str)`: surrounding whitespace, a sign, digits (of any
/// script, see [`pyunicode::number_text`]) with `_` between them. Fractions
/// are not accepted (`int("1.5")` raises).
pub(crate) fn int_from_text(text: &str) -> Result<i64, IntError> {
    let text = pyunicode::number_text(text).ok_or(IntError::NotInteger)?;
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, &text[..]),
    };
    let bytes = digits.as_bytes();
    if bytes.is_empty() || !bytes[0].is_ascii_digit() || !bytes[bytes.len() - 1].is_ascii_digit() {
        return Err(IntError::NotInteger);
    }
    // Accumulate as a negative number: i64's range is one wider below zero.
    let mut value: i64 = 0;
    let mut overflow = false;
    let mut previous_underscore = false;
    for &b in bytes {
        match b {
            b'0'..=b'9' => {
                previous_underscore = false;
                match value
                    .checked_mul(10)
                    .and_then(|v| v.checked_sub(i64::from(b - b'0')))
                {
                    Some(v) => value = v,
                    None => overflow = true,
                }
            }
            b'_' if !previous_underscore => previous_underscore = true,
            _ => return Err(IntError::NotInteger),
        }
    }
    if overflow {
        return Err(IntError::OutOfRange);
    }
    if negative {
        Ok(value)
    } else {
        value.checked_neg().ok_or(IntError::OutOfRange)
    }
}

/// Python's `int(float)`: truncation toward zero.
pub(crate) fn int_from_float(x: f64) -> Result<i64, IntError> {
    // i64::MAX as f64 rounds up to 2^63, so the bound check is exclusive.
    if x.is_finite() && x > -9.223_372_036_854_776e18 && x < 9.223_372_036_854_776e18 {
        Ok(x.trunc() as i64)
    } else {
        Err(IntError::OutOfRange)
    }
}

/// Python's `float()` of a JSON number as `json.loads` reads it: one without
/// fraction or exponent is an int, so `-0` is 0 and its float 0.0.
pub(crate) fn float_from_json_number(text: &str) -> Option<f64> {
    let x: f64 = text.parse().ok()?;
    let integer = !text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'));
    // Adding zero turns -0.0 into 0.0 and changes nothing else.
    Some(if integer { x + 0.0 } else { x })
}

/// Python's `int()` on a JSON number as written: integers are exact, numbers
/// with a fraction or exponent go through a float first, as `json.loads` does.
pub(crate) fn int_from_json_number(text: &str) -> Result<i64, IntError> {
    if text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        let x: f64 = text.parse().map_err(|_| IntError::NotInteger)?;
        int_from_float(x)
    } else {
        int_from_text(text)
    }
}

/// `int()` of a JSON integer of up to 18 digits (no fraction, no exponent),
/// the common timestamp, without the general parse; `None` for anything
/// else. 18 digits cannot overflow an `i64`.
pub(crate) fn small_json_int(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text {
        [b'-', digits @ ..] => (true, digits),
        digits => (false, digits),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None;
    }
    let mut value: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(d - b'0');
    }
    Some(if negative { -value } else { value })
}

/// Copies `text` without the `_` separators Python allows between digits;
/// `None` when an underscore is anywhere else.
fn strip_digit_separators(text: &str, into: &mut String) -> Option<()> {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'_' {
            let before = i.checked_sub(1).and_then(|j| bytes.get(j));
            let after = bytes.get(i + 1);
            if !before.is_some_and(u8::is_ascii_digit) || !after.is_some_and(u8::is_ascii_digit) {
                return None;
            }
        } else {
            into.push(char::from(b));
        }
    }
    // Only ASCII bytes reach a valid float literal, so pushing bytes as chars
    // is lossless for every input that can still parse.
    Some(())
}

/// `repr(x)` of a finite Python float, formatted on the stack.
pub struct FloatRepr {
    buf: [u8; 32],
    len: usize,
}

impl FloatRepr {
    /// Formats `x` like Python 3's `repr(float)`: the shortest digits that
    /// round-trip, fixed notation for decimal exponents -4..16 with at least
    /// one fractional digit (`100.0`), otherwise `d.ddde±XX` (`1e+16`,
    /// `1e-05`). Non-finite input gives Python's JSON spellings
    /// (`Infinity`, `-Infinity`, `NaN`).
    pub fn new(x: f64) -> FloatRepr {
        let mut repr = FloatRepr {
            buf: [0; 32],
            len: 0,
        };
        if !x.is_finite() {
            repr.push(if x.is_nan() {
                b"NaN"
            } else if x > 0.0 {
                b"Infinity"
            } else {
                b"-Infinity"
            });
            return repr;
        }
        let mut ryu_buf = ryu::Buffer::new();
        let shortest = ryu_buf.format_finite(x).as_bytes();
        // ryu already writes Python's form in fixed notation, except that it
        // keeps four leading zeros after the point where Python switches to
        // an exponent (0.00001234 vs 1.234e-05).
        let digits_start = usize::from(shortest.first() == Some(&b'-'));
        if !shortest.contains(&b'e') && !shortest[digits_start..].starts_with(b"0.0000") {
            repr.push(shortest);
            return repr;
        }
        let (negative, shortest) = match shortest.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, shortest),
        };
        // ryu writes either `ddd.ddd` or `d.ddde±N`; recover the digit string
        // and the position of the decimal point relative to it.
        let (mantissa, exponent) = match shortest.iter().position(|&b| b == b'e') {
            Some(e) => (&shortest[..e], parse_exponent(&shortest[e + 1..])),
            None => (shortest, 0),
        };
        let mut digits = [0u8; 24];
        let mut n = 0;
        let mut int_len = mantissa.len() as i32;
        for (i, &b) in mantissa.iter().enumerate() {
            if b == b'.' {
                int_len = i as i32;
            } else if n < digits.len() {
                digits[n] = b;
                n += 1;
            }
        }
        let leading = digits[..n].iter().take_while(|&&d| d == b'0').count();
        let significant_end = n - digits[leading..n]
            .iter()
            .rev()
            .take_while(|&&d| d == b'0')
            .count();
        if negative {
            repr.push(b"-");
        }
        if leading == n {
            repr.push(b"0.0");
            return repr;
        }
        let digits = &digits[leading..significant_end.max(leading + 1)];
        // Value is 0.DIGITS × 10^point.
        let point = int_len + exponent - leading as i32;
        if point <= -4 || point > 16 {
            repr.push(&digits[..1]);
            if digits.len() > 1 {
                repr.push(b".");
                repr.push(&digits[1..]);
            }
            let e = point - 1;
            repr.push(if e < 0 { b"e-" } else { b"e+" });
            let e = e.unsigned_abs();
            if e < 10 {
                repr.push(b"0");
            }
            let mut itoa_buf = itoa::Buffer::new();
            repr.push(itoa_buf.format(e).as_bytes());
        } else if point <= 0 {
            repr.push(b"0.");
            for _ in 0..-point {
                repr.push(b"0");
            }
            repr.push(digits);
        } else {
            let point = point as usize;
            if point >= digits.len() {
                repr.push(digits);
                for _ in digits.len()..point {
                    repr.push(b"0");
                }
                repr.push(b".0");
            } else {
                repr.push(&digits[..point]);
                repr.push(b".");
                repr.push(&digits[point..]);
            }
        }
        repr
    }

    /// `repr(float(text))` for a JSON number (already validated) written
    /// in fixed notation with at most 15 significant digits and a
    /// magnitude in 1e-4..1e16, without parsing or formatting a float;
    /// `None` for any other number.
    ///
    /// A decimal of at most 15 significant digits is the only one of that
    /// length that rounds to its nearest double (15 is `DBL_DIG`), so it is
    /// exactly the shortest round-tripping text `repr` writes; only its
    /// spelling needs normalising (trailing fraction zeros dropped, at least
    /// one fraction digit).
    pub(crate) fn from_short_decimal(bytes: &[u8]) -> Option<FloatRepr> {
        // The integer `-0` is Python's 0, whose float is 0.0, not -0.0.
        if bytes == b"-0" {
            return None;
        }
        let unsigned = bytes.strip_prefix(b"-").unwrap_or(bytes);
        let (int_part, fraction) = match unsigned.iter().position(|&b| b == b'.') {
            Some(dot) => (&unsigned[..dot], &unsigned[dot + 1..]),
            None => (unsigned, &[][..]),
        };
        if int_part.is_empty() || int_part.len() > 16 {
            return None;
        }
        let kept = fraction.len() - fraction.iter().rev().take_while(|&&d| d == b'0').count();
        let fraction = &fraction[..kept];
        if !int_part.iter().chain(fraction).all(u8::is_ascii_digit) {
            return None;
        }
        let significant = if int_part == b"0" {
            let leading = fraction.iter().take_while(|&&d| d == b'0').count();
            // Below 1e-4 Python switches to exponent notation.
            if leading >= 4 && leading < fraction.len() {
                return None;
            }
            fraction.len() - leading
        } else {
            int_part.len() + fraction.len()
        };
        if significant > 15 {
            return None;
        }
        let mut repr = FloatRepr {
            buf: [0; 32],
            len: 0,
        };
        repr.push(&bytes[..bytes.len() - unsigned.len()]);
        repr.push(int_part);
        repr.push(b".");
        repr.push(if fraction.is_empty() { b"0" } else { fraction });
        Some(repr)
    }

    fn push(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(self.buf.len());
        self.buf[self.len..end].copy_from_slice(&bytes[..end - self.len]);
        self.len = end;
    }

    /// The formatted text as the first `len` bytes of a fixed-size array
    /// (for a copy of constant size).
    pub(crate) fn padded(&self) -> (&[u8; 32], usize) {
        (&self.buf, self.len)
    }

    /// The formatted text.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, signs, '.', 'e' and the ASCII words are pushed.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("NaN")
    }
}

fn parse_exponent(text: &[u8]) -> i32 {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let magnitude = digits
        .iter()
        .fold(0i32, |acc, &d| acc * 10 + i32::from(d - b'0'));
    if negative {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repr(x: f64) -> String {
        FloatRepr::new(x).as_str().to_owned()
    }

    #[test]
    fn float_repr_matches_python() {
        // Expected strings are Python 3 `repr()` output.
        let cases: &[(f64, &str)] = &[
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (7.5, "7.5"),
            (100.0, "100.0"),
            (-3.25, "-3.25"),
            (123456789.125, "123456789.125"),
            (0.001, "0.001"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (0.000123, "0.000123"),
            (0.00001234, "1.234e-05"),
            (-0.00001234, "-1.234e-05"),
            (0.0001234, "0.0001234"),
            (1e-4, "0.0001"),
            (0.0000123, "1.23e-05"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1234567890123456.7, "1234567890123456.8"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.3333333333333333"),
            (2.0 / 3.0, "0.6666666666666666"),
            (1e100, "1e+100"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (2.2250738585072014e-308, "2.2250738585072014e-308"),
            (-1e-7, "-1e-07"),
            (10.0, "10.0"),
            (1554725987408.105, "1554725987408.105"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for &(x, want) in cases {
            assert_eq!(repr(x), want, "repr({x:e})");
        }
    }

    #[test]
    fn short_decimals_are_their_own_repr() {
        let cases = [
            "0",
            "-0",
            "7",
            "-7",
            "0.0",
            "-0.0",
            "0.000",
            "1.50",
            "100",
            "120.0",
            "0.1",
            "0.05",
            "0.0001",
            "0.000123",
            "0.00001",
            "0.00001234",
            "1.37",
            "123456789012345",
            "1234567890123456",
            "9999999999999999",
            "12345678901234567",
            "0.123456789012345",
            "0.1234567890123456",
            "4.109999999999999",
            "1554725987408.105",
            "99.999999999999",
            "1e3",
            "1.5E-2",
            "-12.25",
        ];
        for text in cases {
            let want = repr(text.parse().unwrap_or(f64::NAN));
            if let Some(fast) = FloatRepr::from_short_decimal(text.as_bytes()) {
                assert_eq!(fast.as_str(), want, "{text}");
            }
        }
        for text in ["0", "-0.0", "1.50", "0.0001", "123456789012345", "-12.25"] {
            assert!(
                FloatRepr::from_short_decimal(text.as_bytes()).is_some(),
                "{text}"
            );
        }
        for text in [
            "0.00001",
            "1234567890123456",
            "4.109999999999999",
            "1e3",
            "-0",
        ] {
            assert!(
                FloatRepr::from_short_decimal(text.as_bytes()).is_none(),
                "{text}"
            );
        }
    }

    /// The short-decimal shortcut, where it answers, agrees with parse + repr.
    fn check_short_decimal(text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        if let Some(fast) = FloatRepr::from_short_decimal(text.as_bytes()) {
            let x: f64 = text.parse().unwrap_or(f64::NAN);
            proptest::prop_assert_eq!(fast.as_str(), repr(x));
        }
        Ok(())
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config {
            cases: 20_000,
                        ..Default::default()
        })]

        #[test]
        fn short_decimals_match_parse_and_repr(
            text in "-?(0|[1-9][0-9]{0,17})(\\.[0-9]{1,18})?",
        ) {
            check_short_decimal(&text)?;
        }

        #[test]
        fn short_decimals_with_zeros_match_parse_and_repr(
            text in "-?(0|[1-9][0-9]{0,6}0{0,9})(\\.0{0,5}[0-9]{0,6}0{0,3})?",
        ) {
            check_short_decimal(&text)?;
        }

        #[test]
        fn small_json_ints_match_int_from_json_number(text in "-?(0|[1-9][0-9]{0,19})") {
            if let Some(fast) = small_json_int(text.as_bytes()) {
                proptest::prop_assert_eq!(Ok(fast), int_from_json_number(&text));
            }
        }
    }

    #[test]
    fn json_integers_are_python_ints() {
        assert_eq!(
            float_from_json_number("-0").map(f64::to_bits),
            Some(0.0f64.to_bits())
        );
        assert_eq!(
            float_from_json_number("-0.0").map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
        assert_eq!(
            float_from_json_number("-0e0").map(f64::to_bits),
            Some((-0.0f64).to_bits())
        );
        assert_eq!(float_from_json_number("-7"), Some(-7.0));
        assert_eq!(
            float_from_json_number("9007199254740993"),
            Some(9007199254740992.0)
        );
    }

    #[test]
    fn small_json_ints_match_the_general_parse() {
        for text in [
            "0",
            "-0",
            "7",
            "-12",
            "1554725987408",
            "999999999999999999",
            "-999999999999999999",
        ] {
            assert_eq!(
                small_json_int(text.as_bytes()).map(Ok),
                Some(int_from_json_number(text)),
                "{text}"
            );
        }
        for text in ["1.5", "1e3", "9999999999999999999", "", "-"] {
            assert_eq!(small_json_int(text.as_bytes()), None, "{text}");
        }
    }

    #[test]
    fn float_from_text_follows_python_float() {
        assert_eq!(float_from_text("7.5"), Some(7.5));
        assert_eq!(float_from_text("  -1e3\n"), Some(-1000.0));
        assert_eq!(float_from_text("1_000.5"), Some(1000.5));
        assert_eq!(float_from_text(".5"), Some(0.5));
        assert_eq!(float_from_text("5."), Some(5.0));
        assert!(float_from_text("nan").is_some_and(f64::is_nan));
        assert_eq!(float_from_text("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(float_from_text("\u{3000}١٢٣.٥\u{a0}"), Some(123.5));
        assert_eq!(float_from_text("\u{b}3\u{c}"), Some(3.0));
        for bad in [
            "abc", "", "1__0", "_1", "1_", "1e", "0x10", "1,5", "\u{1c}12", "5\u{7f}", "1€",
        ] {
            assert_eq!(float_from_text(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn int_from_text_follows_python_int() {
        assert_eq!(int_from_text("1554725987408"), Ok(1554725987408));
        assert_eq!(int_from_text(" -12 "), Ok(-12));
        assert_eq!(int_from_text("+1_000"), Ok(1000));
        assert_eq!(
            int_from_text("99999999999999999999"),
            Err(IntError::OutOfRange)
        );
        assert_eq!(int_from_text("\u{2003}１２\u{3000}"), Ok(12));
        for bad in [
            "1.5", "", "-", "1__0", "_1", "1_", "1e3", "abc", "\u{1c}1", "- 1",
        ] {
            assert_eq!(int_from_text(bad), Err(IntError::NotInteger), "{bad:?}");
        }
        assert_eq!(int_from_json_number("1554725987408.105"), Ok(1554725987408));
        assert_eq!(int_from_json_number("-1.9"), Ok(-1));
        assert_eq!(int_from_json_number("1e400"), Err(IntError::OutOfRange));
    }
}
