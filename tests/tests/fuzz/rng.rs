//! A small deterministic generator (SplitMix64) and the hostile values every target draws from.

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    /// An integer, biased to the edges: 0, ±1, the ends of i64, epoch-like values, powers of two.
    pub fn int(&mut self) -> i64 {
        match self.below(10) {
            0 => *self.pick(&[0, 1, -1, 2, 60, 1000]),
            1 => *self.pick(&[i64::MAX, i64::MIN, i64::MAX - 1, i64::MIN + 1]),
            2 => *self.pick(&[
                1_700_000_000,
                253_402_300_799,
                253_402_300_800,
                -62_135_596_800,
                -62_135_596_801,
                4_102_444_800_000,
            ]),
            3 => 1i64.wrapping_shl(self.below(64) as u32),
            4 => -(1i64.wrapping_shl(self.below(63) as u32)),
            5 => self.below(200) as i64 - 100,
            6 => 1_700_000_000 + self.below(100_000) as i64,
            _ => self.next() as i64,
        }
    }

    /// A float, biased to what JSON and arithmetic get wrong: non-finite, signed zero,
    /// subnormals, the extremes, and values that need all 17 digits.
    pub fn float(&mut self) -> f64 {
        match self.below(8) {
            0 => *self.pick(&[
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                -0.0,
                0.0,
                f64::MIN_POSITIVE,
                5e-324,
                f64::MAX,
                f64::MIN,
                f64::EPSILON,
                0.1,
                1e308,
            ]),
            1 => self.below(1000) as f64 / 8.0,
            2 => (self.below(100_000) as f64) * 1048576.0,
            _ => f64::from_bits(self.next()),
        }
    }

    /// A string with quotes, escapes, control characters and non-ASCII text.
    pub fn string(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a", "step", "\"", "\\", "\n", "\t", "\r", "\0", "\u{1}", "\u{7f}", "é", "日本",
            "\u{2028}", "🦀", "${x}", "`", "'", "#{", "}", " ", "-", "0", "\u{fffd}",
        ];
        let n = self.below(8);
        (0..n).map(|_| *self.pick(PIECES)).collect()
    }
}

/// `v` as Rhai source that evaluates to exactly `v`.
pub fn rhai_float(f: f64) -> String {
    if f.is_nan() {
        "(0.0 / 0.0)".into()
    } else if f == f64::INFINITY {
        "(1e308 * 10.0)".into()
    } else if f == f64::NEG_INFINITY {
        "(-1e308 * 10.0)".into()
    } else {
        let s = format!("{f:?}");
        let s = if s.contains(['.', 'e']) {
            s
        } else {
            format!("{s}.0")
        };
        // `1e300` needs a fraction for Rhai to read it as a float.
        let s = match s.split_once('e') {
            Some((m, e)) if !m.contains('.') => format!("{m}.0e{e}"),
            _ => s,
        };
        if f.is_sign_negative() {
            format!("({s})")
        } else {
            s
        }
    }
}

/// `i` as Rhai source (`i64::MIN` has no literal).
pub fn rhai_int(i: i64) -> String {
    if i == i64::MIN {
        "(-9223372036854775807 - 1)".into()
    } else if i < 0 {
        format!("({i})")
    } else {
        i.to_string()
    }
}

/// `s` as a Rhai string literal.
pub fn rhai_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
